// RUN: attn-opt %s --split-input-file --attn-to-nvgpu --verify-diagnostics | FileCheck %s
// RUN: attn-opt %s --split-input-file --attn-to-nvgpu="warps=8 stages=2 kv-tile=16" --verify-diagnostics | FileCheck %s --check-prefix=W8
// RUN: not attn-opt %s --split-input-file --attn-to-nvgpu="warps=3" 2>&1 | FileCheck %s --check-prefix=BADOPT

// W8: block = [256, 1, 1]{{.*}}block_m = 256 : i64, block_n = 16 : i64
// W8: nvvm.cp.async.wait.group 0
// BADOPT: attn-to-nvgpu: m-tiles must be 0, 1 or 2, kv-tile 0 or a multiple of 16 up to 128, warps 0, 1, 2, 4 or 8, stages 0 or 2 to 4, mma sync, wgmma or auto, and pipeline auto, on or off

// One kernel per attention op, named after its function, in
// gpu.module @attn_kernels; the host function is gone and the launch
// description is on the module.

// CHECK: module attributes {attn.kernels = [{{{.*}}block = [128, 1, 1]{{.*}}block_m = 128 : i64, block_n = 64 : i64{{.*}}grid = ["ceildiv(Sq, block_m)", "Hq", "B"]{{.*}}kernel = "causal_d64"
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
// CHECK: block_n = 32 : i64
// CHECK: gpu.func @f16_d128
// CHECK: nvvm.mma.sync {{.+}} : (vector<2xf16>, vector<2xf16>, f32) -> !llvm.struct<(f32, f32, f32, f32)>
func.func @f16_d128(%q: tensor<2x8x100x128xf16>, %k: tensor<2x8x100x128xf16>, %v: tensor<2x8x100x128xf16>) -> tensor<2x8x100x128xf16> {
  %o = attn.attention %q, %k, %v
      : tensor<2x8x100x128xf16>, tensor<2x8x100x128xf16>, tensor<2x8x100x128xf16> -> tensor<2x8x100x128xf16>
  return %o : tensor<2x8x100x128xf16>
}

// -----

func.func @refuse_f32(%q: tensor<1x1x64x64xf32>) -> tensor<1x1x64x64xf32> {
  // expected-error @+1 {{cannot be compiled for the GPU yet: element type f32 (the tensor-core kernel takes f16 or bf16)}}
  %o = attn.attention %q, %q, %q
      : tensor<1x1x64x64xf32>, tensor<1x1x64x64xf32>, tensor<1x1x64x64xf32> -> tensor<1x1x64x64xf32>
  return %o : tensor<1x1x64x64xf32>
}

// -----

func.func @refuse_head_dim(%q: tensor<1x1x64x72xbf16>) -> tensor<1x1x64x72xbf16> {
  // expected-error @+1 {{cannot be compiled for the GPU yet: head dims 72 and 72 (they must be multiples of 16, at most 256)}}
  %o = attn.attention %q, %q, %q
      : tensor<1x1x64x72xbf16>, tensor<1x1x64x72xbf16>, tensor<1x1x64x72xbf16> -> tensor<1x1x64x72xbf16>
  return %o : tensor<1x1x64x72xbf16>
}

// -----

func.func @refuse_feature_map(%q: tensor<1x1x64x64xbf16>) -> tensor<1x1x64x64xbf16> {
  // expected-error @+1 {{cannot be compiled for the GPU yet: feature maps q_map/k_map}}
  %o = attn.attention %q, %q, %q q_map<elu_plus_one> k_map<elu_plus_one> normalize<none>
      : tensor<1x1x64x64xbf16>, tensor<1x1x64x64xbf16>, tensor<1x1x64x64xbf16> -> tensor<1x1x64x64xbf16>
  return %o : tensor<1x1x64x64xbf16>
}

// -----

func.func @refuse_region_op(%q: tensor<1x1x64x64xbf16>, %t: tensor<4xf32>) -> tensor<1x1x64x64xbf16> {
  // expected-error @+1 {{cannot be compiled for the GPU yet: op 'tensor.dim' in a region}}
  %o = attn.attention %q, %q, %q captures(%t : tensor<4xf32>)
      : tensor<1x1x64x64xbf16>, tensor<1x1x64x64xbf16>, tensor<1x1x64x64xbf16> -> tensor<1x1x64x64xbf16>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index, %c: tensor<4xf32>):
    %c0 = arith.constant 0 : index
    %n = tensor.dim %c, %c0 : tensor<4xf32>
    %nf = arith.index_cast %n : index to i32
    %f = arith.sitofp %nf : i32 to f32
    %r = arith.addf %s, %f : f32
    attn.yield %r : f32
  }
  return %o : tensor<1x1x64x64xbf16>
}
