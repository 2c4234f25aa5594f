// RUN: attn-opt %s --split-input-file --attn-to-nvgpu="mma=wgmma" --verify-diagnostics | FileCheck %s
// RUN: attn-opt %s --split-input-file --attn-to-nvgpu="mma=auto" 2>&1 | FileCheck %s --check-prefix=AUTO
// RUN: not attn-opt %s --split-input-file --attn-to-nvgpu="mma=wgmma warps=2" 2>&1 | FileCheck %s --check-prefix=WARPS
// RUN: not attn-opt %s --split-input-file --attn-to-nvgpu="mma=wgmma m-tiles=2" 2>&1 | FileCheck %s --check-prefix=MTILES
// RUN: not attn-opt %s --split-input-file --attn-to-nvgpu="mma=tcgen05" 2>&1 | FileCheck %s --check-prefix=BADMMA
// RUN: not attn-opt %s --split-input-file --attn-to-nvgpu="mma=wgmma pipeline=on stages=2" 2>&1 | FileCheck %s --check-prefix=PIPE2
// RUN: not attn-opt %s --split-input-file --attn-to-nvgpu="mma=wgmma kv-tile=128 stages=4" 2>&1 | FileCheck %s --check-prefix=SMEM
// RUN: not attn-opt %s --split-input-file --attn-to-nvgpu="mma=wgmma pipeline=on" 2>&1 | FileCheck %s --check-prefix=PIPE

// The Hopper kernel: two warpgroups of 64 query rows (256 threads), 128-key
// tiles in a 2-stage ring of swizzled tiles (no row padding: 32 KiB of Q and
// 2 x 64 KiB of K and V at head dim 128).
// CHECK: block = [256, 1, 1]{{.*}}block_m = 128 : i64, block_n = 128 : i64{{.*}}kernel = "softmax_d128", mma = "wgmma", shared_memory_bytes = 163840 : i64, stages = 2 : i64
// CHECK: gpu.func @softmax_d128
// CHECK-SAME: known_block_size = array<i32: 256, 1, 1>
// The wgmma descriptors hold the shared-window address of the tiles.
// CHECK: memref.extract_aligned_pointer_as_index
// cp.async lands in 64-column panels with the 128-byte XOR swizzle.
// CHECK: arith.xori
// CHECK: nvgpu.device_async_copy {{.+}} : memref<?xbf16, 1> to memref<1x2x128x64xbf16, #gpu.address_space<workgroup>>
// The copies are published to the async proxy before the barrier.
// CHECK: nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
// CHECK-NEXT: gpu.barrier
// S = Q.K^T: 8 k-steps of m64n128k16 from shared memory, K-major operands.
// CHECK: scf.for
// CHECK: nvvm.wgmma.fence.aligned
// CHECK: nvvm.wgmma.mma_async {{.+}}, <m = 64, n = 128, k = 16>, D[<f32>, <zero>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <col>]
// CHECK-COUNT-7: nvvm.wgmma.mma_async {{.+}}, <m = 64, n = 128, k = 16>, D[<f32>, <one>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <col>]
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// CHECK: nvvm.wgmma.wait.group.sync.aligned 0
// The accumulators are pinned after the wait.
// CHECK: llvm.inline_asm has_side_effects asm_dialect = att "", "=f,
// CHECK: llvm.call_intrinsic "llvm.nvvm.ex2.approx.ftz.f32"
// P.V: P from registers (register-A wgmma, V N-major: transposed B).
// CHECK: nvvm.wgmma.fence.aligned
// CHECK-COUNT-8: wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {{.+}}p, 1, 1, 1;
// CHECK: nvvm.wgmma.wait.group.sync.aligned 0
// CHECK: vector.store
// AUTO: kernel = "softmax_d128", mma = "wgmma"
func.func @softmax_d128(%q: tensor<?x?x?x128xbf16>, %k: tensor<?x?x?x128xbf16>, %v: tensor<?x?x?x128xbf16>) -> tensor<?x?x?x128xbf16> {
  %o = attn.attention %q, %k, %v
      : tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16> -> tensor<?x?x?x128xbf16>
  return %o : tensor<?x?x?x128xbf16>
}

// WARPS: error: 'attn.attention' op cannot use wgmma (mma=wgmma): warps=2 (wgmma needs whole warpgroups: 4 or 8)
// MTILES: error: 'attn.attention' op cannot use wgmma (mma=wgmma): m-tiles=2 (a wgmma warp owns one 16-row m-tile)
// BADMMA: attn-to-nvgpu: m-tiles must be 0, 1 or 2, {{.+}} mma sync, wgmma or auto, and pipeline auto, on or off
// PIPE2: error: 'attn.attention' op cannot use wgmma (mma=wgmma): stages=2 with pipeline (the pipelined wgmma loop prefetches two tiles ahead: 3 or 4)
// SMEM: error: 'attn.attention' op needs 294912 bytes of shared memory with kv-tile=128 and stages=4 (at most 232448): use a smaller kv-tile or fewer stages

// The pipelined loop (pipeline=on; the default at head dims up to 64):
// S of tile u+1 is issued before P.V of tile u, and its wait leaves the
// P.V in flight while the warps compute the next weights.
// PIPE: kernel = "softmax_d128", mma = "wgmma", shared_memory_bytes = 229376 : i64, stages = 3 : i64
// PIPE: scf.for
// PIPE: nvvm.wgmma.commit.group.sync.aligned
// PIPE: nvvm.wgmma.commit.group.sync.aligned
// PIPE: nvvm.wgmma.wait.group.sync.aligned 1
// PIPE: llvm.call_intrinsic "llvm.nvvm.ex2.approx.ftz.f32"
// PIPE: nvvm.wgmma.wait.group.sync.aligned 0

// -----

// RBF (bf16): the key norms ride on the tensor cores. A prologue kernel
// writes |k|^2 / 2 of every key as three bf16 parts (8 bf16 per key, rows
// padded to whole KV tiles); the main kernel takes it as `key_norms`, copies
// a tile's parts next to the K tile, and appends one unswizzled k-step
// ([-1, -1, -1, 0...] rows for Q) to the S chain; the scores then take the
// plain softmax path. Head dim 64: pipelined, 64-key tiles, 4 stages.
// CHECK: block_n = 64 : i64{{.*}}kernel = "rbf_d64", key_norms_padding = 64 : i64, key_norms_width = 8 : i64, mma = "wgmma", prologue = {{{.*}}block = [64, 1, 1]{{.*}}kernel = "rbf_d64_key_norms"{{.*}}stages = 4 : i64
// CHECK: gpu.func @rbf_d64({{.+}}, %[[NORMS:.+]]: memref<?xbf16, 1>, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index) kernel
// The unswizzled descriptor's fixed bits: leading byte offset 128, stride
// byte offset 256, no swizzle.
// CHECK-DAG: arith.constant 68720001024 : i64
// CHECK-DAG: arith.constant -1.000000e+00 : bf16
// CHECK: nvgpu.device_async_copy %[[NORMS]]
// CHECK: nvvm.wgmma.wait.group.sync.aligned 1
// CHECK: gpu.func @rbf_d64_key_norms(%{{.+}}: memref<?xbf16, 1>, %[[OUT:.+]]: memref<?xbf16, 1>, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index) kernel
// CHECK: vector.load {{.+}} : memref<?xbf16, 1>, vector<8xbf16>
// CHECK-COUNT-3: arith.truncf {{.+}} : f32 to bf16
// CHECK: vector.store {{.+}}, %[[OUT]]{{.+}} : memref<?xbf16, 1>, vector<8xbf16>
// AUTO: kernel = "rbf_d64"{{.*}}mma = "wgmma"
func.func @rbf_d64(%q: tensor<?x?x?x64xbf16>, %k: tensor<?x?x?x64xbf16>, %v: tensor<?x?x?x64xbf16>) -> tensor<?x?x?x64xbf16> {
  %o = attn.attention %q, %k, %v score<rbf>
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16> -> tensor<?x?x?x64xbf16>
  return %o : tensor<?x?x?x64xbf16>
}

// -----

// RBF in f16 (norms past the f16 range): f32 norms, gamma * log2(e) * |k|^2
// per key, applied per accumulator element.
// CHECK: kernel = "rbf_f16", key_norms_padding = 64 : i64, key_norms_width = 1 : i64
// CHECK: gpu.func @rbf_f16({{.+}}, %[[NORMS:.+]]: memref<?xf32, 1>, %{{.+}}: index
// CHECK: gpu.func @rbf_f16_key_norms(%{{.+}}: memref<?xf16, 1>, %[[OUT:.+]]: memref<?xf32, 1>
// CHECK: memref.store {{.+}}, %[[OUT]]
func.func @rbf_f16(%q: tensor<?x?x?x64xf16>, %k: tensor<?x?x?x64xf16>, %v: tensor<?x?x?x64xf16>) -> tensor<?x?x?x64xf16> {
  %o = attn.attention %q, %k, %v score<rbf>
      : tensor<?x?x?x64xf16>, tensor<?x?x?x64xf16>, tensor<?x?x?x64xf16> -> tensor<?x?x?x64xf16>
  return %o : tensor<?x?x?x64xf16>
}

// -----

// A score region converting a position difference (i64) to float: the
// conversion goes through i32 (positions are below 2^31), not the slow
// 64-bit integer conversion.
// CHECK-LABEL: gpu.func @alibi_like
// CHECK: arith.trunci {{.+}} : i64 to i32
// CHECK-NEXT: arith.sitofp {{.+}} : i32 to f32
// CHECK-NOT: arith.sitofp {{.+}} : i64 to f32
// CHECK: gpu.return
func.func @alibi_like(%q: tensor<?x?x?x64xbf16>, %k: tensor<?x?x?x64xbf16>, %v: tensor<?x?x?x64xbf16>) -> tensor<?x?x?x64xbf16> {
  %o = attn.attention %q, %k, %v mask = [#attn.causal]
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16> -> tensor<?x?x?x64xbf16>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    %ii = arith.index_cast %i : index to i64
    %jj = arith.index_cast %j : index to i64
    %d = arith.subi %jj, %ii : i64
    %df = arith.sitofp %d : i64 to f32
    %c = arith.constant -0.0625 : f32
    %bias = arith.mulf %c, %df : f32
    %r = arith.addf %s, %bias : f32
    attn.yield %r : f32
  }
  return %o : tensor<?x?x?x64xbf16>
}

// -----

// Head dims that are not multiples of 64: mma=wgmma refuses, mma=auto falls
// back to mma.sync.
// AUTO: kernel = "d80", mma = "mma.sync"
func.func @d80(%q: tensor<?x?x?x80xbf16>, %k: tensor<?x?x?x80xbf16>, %v: tensor<?x?x?x80xbf16>) -> tensor<?x?x?x80xbf16> {
  // expected-error @+1 {{cannot use wgmma (mma=wgmma): head dims 80 and 80 (the swizzled wgmma tiles take multiples of 64)}}
  %o = attn.attention %q, %k, %v
      : tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16> -> tensor<?x?x?x80xbf16>
  return %o : tensor<?x?x?x80xbf16>
}
