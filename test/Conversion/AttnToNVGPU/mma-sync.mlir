// RUN: attn-opt %s --split-input-file --attn-select-kernel-config="mma=sync" --attn-to-nvgpu | FileCheck %s
// RUN: attn-opt %s --split-input-file --attn-select-kernel-config="mma=sync warps=8 stages=2 kv-tile=16" --attn-to-nvgpu | FileCheck %s --check-prefix=W8

// The mma.sync kernel (sm_80 and later): ldmatrix fragments from padded
// shared-memory rows, mma.sync.m16n8k16.
// W8: block = [256, 1, 1], grid = ["ceildiv(Sq, 256)", "Hq", "B"]
// W8: nvvm.cp.async.wait.group 0

// One kernel per attention op, named after its function, in
// gpu.module @attn_kernels; the host function is gone and the launch
// description is on the module.

// CHECK: module attributes {attn.kernels = [{config = {block_m = 128 : i64, block_n = 64 : i64{{.*}}mma = "sync"{{.*}}launches = [{{{.*}}block = [128, 1, 1], grid = ["ceildiv(Sq, 128)", "Hq", "B"], kernel = "causal_d64"
// CHECK-NOT: func.func @causal_d64
// CHECK: gpu.module @attn_kernels
// CHECK: gpu.func @causal_d64(%[[Q:.+]]: memref<?xbf16, 1>, %[[K:.+]]: memref<?xbf16, 1>, %[[V:.+]]: memref<?xbf16, 1>, %[[O:.+]]: memref<?xbf16, 1>, %[[LSE:.+]]: memref<?xf32, 1>, %[[B:.+]]: index, %[[HQ:.+]]: index, %[[HKV:.+]]: index, %[[SQ:.+]]: index, %[[SK:.+]]: index, %[[NS:.+]]: index) kernel
// CHECK-SAME: known_block_size = array<i32: 128, 1, 1>
// CHECK: gpu.dynamic_shared_memory
// K/V stream through shared memory with cp.async, zero-filled past Sk.
// CHECK: nvgpu.device_async_copy %[[Q]]
// CHECK: nvgpu.device_async_copy %[[K]]
// CHECK: nvgpu.device_async_copy %[[V]]
// CHECK: nvvm.cp.async.commit.group
// The KV loop: Q.K^T from ldmatrix fragments on tensor cores.
// CHECK: scf.for
// CHECK: nvvm.cp.async.wait.group 1
// CHECK: gpu.barrier
// CHECK: nvgpu.ldmatrix {{.+}} {numTiles = 4 : i32, transpose = false}
// CHECK: nvvm.mma.sync {{.+}} multiplicandAPtxType = #nvvm.mma_type<bf16>{{.+}}shape = #nvvm.shape<m = 16, n = 8, k = 16>
// Row statistics over the quad; exp2 online softmax on the MUFU unit.
// CHECK: gpu.shuffle xor
// CHECK: llvm.call_intrinsic "llvm.nvvm.ex2.approx.ftz.f32"
// P.V with V fragments loaded transposed.
// CHECK: nvgpu.ldmatrix {{.+}} {numTiles = 4 : i32, transpose = true}
// CHECK: nvvm.mma.sync
// Epilogue: O as pairs of bf16, LSE as f32.
// CHECK: vector.store {{.+}}, %[[O]]
// CHECK: memref.store {{.+}}, %[[LSE]]
func.func @causal_d64(%q: tensor<?x?x?x64xbf16>, %k: tensor<?x?x?x64xbf16>, %v: tensor<?x?x?x64xbf16>) -> (tensor<?x?x?x64xbf16>, tensor<?x?x?xf32>) {
  %o, %lse = attn.attention %q, %k, %v mask = [#attn.causal]
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16> -> tensor<?x?x?x64xbf16>, tensor<?x?x?xf32>
  return %o, %lse : tensor<?x?x?x64xbf16>, tensor<?x?x?xf32>
}

// -----

// Head dims above 64 take 32-key tiles; f16 operands.
// CHECK: block_n = 32 : i64{{.*}}mma = "sync"
// CHECK: gpu.func @f16_d128
// CHECK: nvvm.mma.sync {{.+}} : (vector<2xf16>, vector<2xf16>, f32) -> !llvm.struct<(f32, f32, f32, f32)>
func.func @f16_d128(%q: tensor<2x8x100x128xf16>, %k: tensor<2x8x100x128xf16>, %v: tensor<2x8x100x128xf16>) -> tensor<2x8x100x128xf16> {
  %o = attn.attention %q, %k, %v
      : tensor<2x8x100x128xf16>, tensor<2x8x100x128xf16>, tensor<2x8x100x128xf16> -> tensor<2x8x100x128xf16>
  return %o : tensor<2x8x100x128xf16>
}

