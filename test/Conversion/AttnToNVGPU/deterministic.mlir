// RUN: attn-opt %s --split-input-file --attn-select-kernel-config="deterministic=true" --attn-to-nvgpu | FileCheck %s --check-prefixes=CHECK,WGMMA
// RUN: attn-opt %s --split-input-file --attn-select-kernel-config="deterministic=true chip=sm_80" --attn-to-nvgpu | FileCheck %s --check-prefixes=CHECK,SYNC
// RUN: attn-opt %s --split-input-file --attn-select-kernel-config | FileCheck %s --check-prefix=DEFAULT

// deterministic=true: the backward's CTAs add to each dQ tile in turn. One
// i32 turn counter per (batch, query head, query tile), zeroed by the
// runtime; the grid is (tiles, Hkv, B) with the rank blockIdx.x and the
// last KV tile first. Under a document mask (not decided by intervals) the
// tiles outside the CTA's query range take their turn without adding (a
// loop of waits and passes before the steps and after).
// DEFAULT-NOT: deterministic
// CHECK: config = {{{.*}}deterministic = true
// CHECK-SAME: kind = "backward"
// CHECK-SAME: grid = ["ceildiv(Sk, {{[0-9]+}})", "Hkv", "B"], kernel = "grad"
// CHECK-SAME: {dtype = "i32", elements = "B * Hq * ceildiv(Sq, {{[0-9]+}})", kind = "buffer", name = "dq_turns", zero = true}
// CHECK: gpu.func @grad(
// CHECK: scf.for
// CHECK: scf.while
// CHECK: llvm.load {{.*}} atomic syncscope("device") acquire
// CHECK: llvm.fence syncscope("device") acq_rel
// CHECK: llvm.atomicrmw add {{.*}} monotonic
// A step with wgmma (thread 0): the previous step's reductions, which ran
// meanwhile, complete and pass its turn; then this step's turn, and its
// reductions (with D = 64 the two warpgroups' parts one after the other);
// the last step's turn passes after the loop. With mma.sync every thread
// adds its elements between two barriers, fenced, and the turn passes.
// WGMMA: nvvm.cp.async.bulk.wait_group 0{{$}}
// WGMMA-NEXT: nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.global>}
// WGMMA: llvm.fence syncscope("device") acq_rel
// WGMMA: llvm.atomicrmw add {{.*}} monotonic
// WGMMA: scf.while
// WGMMA: nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.global>}
// WGMMA: cp.reduce.async.bulk
// WGMMA-NEXT: nvvm.cp.async.bulk.commit.group
// WGMMA-NEXT: nvvm.cp.async.bulk.wait_group 0{{$}}
// WGMMA: cp.reduce.async.bulk
// WGMMA-NEXT: nvvm.cp.async.bulk.commit.group
// WGMMA: nvvm.cp.async.bulk.wait_group 0{{$}}
// WGMMA: nvvm.cp.async.bulk.wait_group 0{{$}}
// WGMMA-NEXT: nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.global>}
// WGMMA: llvm.atomicrmw add {{.*}} monotonic
// SYNC: scf.while
// SYNC: gpu.barrier
// SYNC: memref.atomic_rmw addf
// SYNC: llvm.fence syncscope("device") acq_rel
// SYNC-NEXT: gpu.barrier
// SYNC: llvm.fence syncscope("device") acq_rel
// SYNC: llvm.atomicrmw add {{.*}} monotonic
// The tiles after the range, at the end.
// CHECK: scf.for
// CHECK: scf.while
// CHECK: llvm.atomicrmw add {{.*}} monotonic
func.func @grad(%q: tensor<?x?x?x64xbf16>, %o: tensor<?x?x?x64xbf16>, %lse: tensor<?x?x?xf32>,
                %ids: tensor<?x?xi32>)
    -> (tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %o, %o lse(%lse : tensor<?x?x?xf32>)
      captures(%ids : tensor<?x?xi32>)
      mask = [#attn.document<q_segments = 0, kv_segments = 0>]
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>,
        tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
      -> tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
  return %dq, %dk, %dv : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
}

// -----

// Positional masks alone: a query tile's adders are the KV tiles that meet
// its intervals, so each CTA waits for the count of those before it (no
// loop of empty turns).
// CHECK-LABEL: gpu.func @positional(
// CHECK-NOT: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c{{256|128}}
// CHECK: scf.while
// CHECK: llvm.load {{.*}} atomic syncscope("device") acquire
func.func @positional(%q: tensor<?x?x?x64xbf16>, %o: tensor<?x?x?x64xbf16>, %lse: tensor<?x?x?xf32>)
    -> (tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %o, %o lse(%lse : tensor<?x?x?xf32>)
      mask = [#attn.causal, #attn.sink_tokens<count = 4>, #attn.sliding_window<left = 200>]
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>,
        tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
      -> tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
  return %dq, %dk, %dv : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
}

// -----

// A floating capture read only by the mask region gets no gradient (zeros,
// no atomics): accepted; the region is not an interval, so empty turns.
// CHECK: config = {{{.*}}deterministic = true
// CHECK-LABEL: gpu.func @mask_only_capture(
// CHECK: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c{{256|128}}
func.func @mask_only_capture(%q: tensor<?x?x?x64xbf16>, %o: tensor<?x?x?x64xbf16>,
                             %lse: tensor<?x?x?xf32>, %w: tensor<?xf32>)
    -> (tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?xf32>) {
  %dq, %dk, %dv, %dw = attn.attention_grad %q, %q, %q, %o, %o lse(%lse : tensor<?x?x?xf32>)
      captures(%w : tensor<?xf32>)
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>,
        tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
      -> tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?xf32>
      mask_mod {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %ww: tensor<?xf32>):
    %x = tensor.extract %ww[%h] : tensor<?xf32>
    %z = arith.constant 0.0 : f32
    %keep = arith.cmpf oge, %x, %z : f32
    attn.yield %keep : i1
  }
  return %dq, %dk, %dv, %dw : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?xf32>
}

// -----

// Sink logits: the preprocess kernel stores each row's term of their
// gradient (no atomic), and one warp per head sums the terms in a fixed
// order after the main kernel.
// CHECK: launches = [{args = ["o", "do", "lse", "sink_logits", "delta", "d_sink_logit_rows",
// CHECK-SAME: {args = ["d_sink_logit_rows", "d_sink_logits", {{.*}}block = [32, 1, 1], grid = ["Hq", "1", "1"], kernel = "logits_sink_logits"
// CHECK-SAME: {dtype = "f32", elements = "B * Hq * Sq", kind = "buffer", name = "d_sink_logit_rows", zero = false}
// CHECK-LABEL: gpu.func @logits_pre(
// CHECK-NOT: memref.atomic_rmw
// CHECK: gpu.return
// CHECK-LABEL: gpu.func @logits_sink_logits(
// CHECK: scf.for {{.*}} step %c128
// CHECK: gpu.shuffle xor
func.func @logits(%q: tensor<?x?x?x64xbf16>, %o: tensor<?x?x?x64xbf16>, %lse: tensor<?x?x?xf32>,
                  %c: tensor<?xf32>)
    -> (tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?xf32>) {
  %dq, %dk, %dv, %dc = attn.attention_grad %q, %q, %q, %o, %o lse(%lse : tensor<?x?x?xf32>)
      sink_logits(%c : tensor<?xf32>) mask = [#attn.causal]
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>,
        tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
      -> tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?xf32>
  return %dq, %dk, %dv, %dc : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?xf32>
}

// -----

// The forward kernel adds in a fixed order already: the option leaves it be.
// CHECK: config = {{{.*}}deterministic = false
// CHECK: gpu.func @forward
func.func @forward(%q: tensor<?x?x?x64xbf16>) -> tensor<?x?x?x64xbf16> {
  %o = attn.attention %q, %q, %q mask = [#attn.causal]
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
      -> tensor<?x?x?x64xbf16>
  return %o : tensor<?x?x?x64xbf16>
}
