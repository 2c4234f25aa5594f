// RUN: attn-opt %s --split-input-file --attn-select-kernel-config="chip=sm_80" --attn-to-nvgpu | FileCheck %s --check-prefixes=CHECK,SYNC
// RUN: attn-opt %s --split-input-file --attn-select-kernel-config --attn-to-nvgpu | FileCheck %s --check-prefixes=CHECK,WGMMA

// The backward of a causal op: three kernels launched in order (preprocess:
// delta per query row; main: one CTA per KV tile, dQ added to an f32
// workspace by atomics; postprocess: dQ converted), described for the
// runtime with the results (dq, dk, dv) and the zero-filled workspace.
// CHECK: attn.kernels = [{{{.*}}kind = "backward"
// CHECK-SAME: launches = [{args = ["o", "do", "lse", "delta", {{.*}}kernel = "grad_pre"
// CHECK-SAME: {args = ["q", "k", "v", "do", "lse", "delta", "dq_accum", "dk", "dv", {{.*}}grid = ["ceildiv(Sk, 128)", "Hkv", "B"], kernel = "grad"
// CHECK-SAME: {args = ["dq_accum", "dq", {{.*}}kernel = "grad_post"
// CHECK-SAME: results = ["dq", "dk", "dv"]
// The wgmma kernel's workspace rows are padded like its shared-memory dQ
// tile (64 + 8 f32), which it adds whole.
// SYNC-SAME: {dtype = "f32", elements = "B * Hq * Sq * 64", kind = "buffer", name = "dq_accum", zero = true}
// WGMMA-SAME: {dtype = "f32", elements = "B * Hq * Sq * 72", kind = "buffer", name = "dq_accum", zero = true}
// CHECK: gpu.func @grad_pre
// CHECK: gpu.shuffle xor
// CHECK: gpu.func @grad(
// WGMMA: scf.for
// WGMMA: nvvm.cp.async.wait.group 1
// WGMMA-NEXT: nvvm.fence.proxy
// WGMMA-NEXT: gpu.barrier
// SYNC: nvvm.mma.sync
// On sm_90a: S^T and dP^T from shared memory (two chains, waited in
// turn), dV and dK with P^T and dS^T from registers, dQ with K read
// MN-major (layoutB = row), then the atomics.
// WGMMA-COUNT-8: nvvm.wgmma.mma_async {{.*}}A[<bf16>, <one>, <row>], B[<bf16>, <one>, <col>]
// WGMMA: nvvm.wgmma.wait.group.sync.aligned 1
// WGMMA: nvvm.wgmma.wait.group.sync.aligned 0
// WGMMA: wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16
// Three stages (no score region): the copies of tile u + 2 are issued
// while the key-side chains run.
// WGMMA: nvvm.cp.async.commit.group
// dS to shared memory transposed, from the registers the dK chain reads:
// one stmatrix.x4.trans per 16-query k-step.
// WGMMA-COUNT-4: nvvm.stmatrix {{.*}}layout = #nvvm.mma_layout<col>, shape = #nvvm.ld_st_matrix_shape<m = 8, n = 8>} : !llvm.ptr<3>, i32, i32, i32, i32
// The previous tile's dQ reductions have read the dQ tile before the
// barrier after which it is written again.
// WGMMA: nvvm.cp.async.bulk.wait_group 0 {read}
// WGMMA: nvvm.fence.proxy
// WGMMA-NEXT: gpu.barrier
// WGMMA: nvvm.wgmma.mma_async {{.*}}A[<bf16>, <one>, <row>], B[<bf16>, <one>, <row>]
// WGMMA: nvvm.wgmma.wait.group.sync.aligned 0
// SYNC: memref.atomic_rmw addf
// On sm_90a dQ goes through shared memory (one tile per warpgroup: they
// split the keys of dQ = dS.K at head dim 64), one bulk reduction of the
// valid rows per tile (by thread 0), all complete before the kernel ends.
// WGMMA: vector.store {{.*}} : memref<2x64x72xf32, #gpu.address_space<workgroup>>, vector<2xf32>
// WGMMA: nvvm.fence.proxy
// WGMMA-NEXT: gpu.barrier
// WGMMA: arith.cmpi eq, %{{.*}}, %c0
// WGMMA-COUNT-2: cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [$0], [$1], $2;
// WGMMA-NEXT: nvvm.cp.async.bulk.commit.group
// WGMMA-NOT: memref.atomic_rmw
// WGMMA: nvvm.cp.async.bulk.wait_group 0{{$}}
// CHECK: gpu.func @grad_post
// CHECK: arith.truncf {{.*}} : f32 to bf16
// CHECK-NOT: func.func @grad
func.func @grad(%q: tensor<?x?x?x64xbf16>, %k: tensor<?x?x?x64xbf16>, %v: tensor<?x?x?x64xbf16>,
                %o: tensor<?x?x?x64xbf16>, %do: tensor<?x?x?x64xbf16>, %lse: tensor<?x?x?xf32>)
    -> (tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %k, %v, %o, %do lse(%lse : tensor<?x?x?xf32>)
      mask = [#attn.causal]
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>,
        tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
      -> tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
  return %dq, %dk, %dv : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
}

// -----

// ALiBi's slope is read at an index of the head alone: its gradient is
// summed in registers over a query tile, reduced over the warp and added by
// lane 0 (one atomic per warp and tile, not per element); RBF scores keep the
// row sums of dS for the postprocess.
// CHECK: kind = "backward"
// CHECK-SAME: results = ["dq", "dk", "dv", "d_capture0"]
// CHECK-SAME: {dtype = "f32", elements = "B * Hq * Sq", kind = "buffer", name = "dq_row_sums", zero = true}
// CHECK: gpu.func @alibi_rbf(
// CHECK: gpu.shuffle xor {{.*}}, %c16_i32
// CHECK: scf.if
// CHECK: memref.atomic_rmw addf
// CHECK: gpu.func @alibi_rbf_post
// CHECK: memref.load %arg{{[0-9]+}}
func.func @alibi_rbf(%q: tensor<?x?x?x64xbf16>, %o: tensor<?x?x?x64xbf16>, %lse: tensor<?x?x?xf32>,
                     %slopes: tensor<?xf32>)
    -> (tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?xf32>) {
  %dq, %dk, %dv, %ds = attn.attention_grad %q, %q, %q, %o, %o lse(%lse : tensor<?x?x?xf32>)
      captures(%slopes : tensor<?xf32>) score<rbf> mask = [#attn.causal]
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>,
        tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
      -> tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?xf32>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index, %m: tensor<?xf32>):
    %x = tensor.extract %m[%h] : tensor<?xf32>
    %ii = arith.index_cast %i : index to i64
    %jj = arith.index_cast %j : index to i64
    %d = arith.subi %jj, %ii : i64
    %df = arith.sitofp %d : i64 to f32
    %bias = arith.mulf %x, %df : f32
    %r = arith.addf %s, %bias : f32
    attn.yield %r : f32
  }
  return %dq, %dk, %dv, %ds : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?xf32>
}

// -----

// Learned sink rows: one more CTA column takes them as its keys, sums their
// gradients over the batch in f32 workspaces, and a last kernel converts
// them.
// CHECK: kind = "backward"
// CHECK-SAME: grid = ["(ceildiv(Sk, 128) + 1) * Hkv * B", "1", "1"], kernel = "sinks"
// CHECK-SAME: kernel = "sinks_sinks"
// CHECK-SAME: results = ["dq", "dk", "dv", "d_sink_key", "d_sink_value"]
// CHECK-SAME: name = "d_sink_key_accum", zero = true
// CHECK: gpu.func @sinks_sinks
func.func @sinks(%q: tensor<?x?x?x64xbf16>, %o: tensor<?x?x?x64xbf16>, %lse: tensor<?x?x?xf32>,
                 %sk: tensor<?x?x64xbf16>)
    -> (tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x64xbf16>, tensor<?x?x64xbf16>) {
  %dq, %dk, %dv, %dsk, %dsv = attn.attention_grad %q, %q, %q, %o, %o lse(%lse : tensor<?x?x?xf32>)
      sink_rows(%sk, %sk : tensor<?x?x64xbf16>, tensor<?x?x64xbf16>) score<rbf>
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>,
        tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
      -> tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x64xbf16>, tensor<?x?x64xbf16>
  return %dq, %dk, %dv, %dsk, %dsv : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x64xbf16>, tensor<?x?x64xbf16>
}

// -----

// Mean: the preprocess kernel counts each query's visible keys and stores
// 1 / n as the row factor; the main kernel streams it with the query tiles
// (the weights need no lse and no delta). Positional masks: the count is
// the length of the query's key interval, no loop.
// CHECK: kind = "backward"
// CHECK-SAME: launches = [{args = ["row_factor", "B", "Hq", "Hkv", "Sq", "Sk", "Ns"], {{.*}}kernel = "mean_pre"
// CHECK-SAME: {args = ["q", "k", "v", "do", "row_factor", "dq_accum", "dk", "dv", {{.*}}kernel = "mean"
// CHECK-SAME: name = "row_factor", zero = false
// CHECK: gpu.func @mean_pre
// CHECK-NOT: scf.for
// CHECK: arith.divf
// CHECK: memref.store
// CHECK: gpu.func @mean(
func.func @mean(%q: tensor<?x?x?x64xbf16>, %o: tensor<?x?x?x64xbf16>)
    -> (tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %o, %o
      mask = [#attn.causal, #attn.sliding_window<left = 1>] normalize<mean>
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>,
        tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
      -> tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
  return %dq, %dk, %dv : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
}

// -----

// Scalable softmax: delta and the row factor (length_scale * log n) come
// from one preprocess kernel; under a document mask its lanes split the
// keys, evaluate the mask on each (the ids read there) and sum over the
// warp.
// CHECK: kind = "backward"
// CHECK-SAME: launches = [{args = ["o", "do", "lse", "delta", "capture0", "row_factor", {{.*}}kernel = "ssmax_pre"
// CHECK-SAME: {args = ["q", "k", "v", "do", "lse", "delta", "row_factor", "capture0", {{.*}}kernel = "ssmax"
// CHECK: gpu.func @ssmax_pre
// CHECK: scf.for
// CHECK: memref.load %arg4
// CHECK: arith.select
// CHECK: gpu.shuffle xor
// CHECK: math.log
// CHECK: gpu.func @ssmax(
func.func @ssmax(%q: tensor<?x?x?x64xbf16>, %o: tensor<?x?x?x64xbf16>, %lse: tensor<?x?x?xf32>,
                 %ids: tensor<?x?xi32>)
    -> (tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %o, %o lse(%lse : tensor<?x?x?xf32>)
      captures(%ids : tensor<?x?xi32>)
      mask = [#attn.document<q_segments = 0, kv_segments = 0>]
      normalize<scalable_softmax> length_scale = 0.5
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>,
        tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
      -> tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
  return %dq, %dk, %dv : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
}
