// RUN: attn-opt %s --split-input-file --attn-select-kernel-config --attn-to-nvgpu | FileCheck %s

// Keys no query of the CTA sees must not reach an output through
// 0 * NaN in O += P.V: on masked tiles the forward kernel zeroes their V
// rows in shared memory first (InvisibleKeys.h). The warps OR the columns
// their rows see (shuffles over the 8 lanes of a column class), publish
// them in an i32 per (lane % 4, warp) after the V tile, and after a barrier
// every thread clears its share of the unseen rows with 16-byte stores
// (through NVVM's shared space 3: vector-to-llvm runs before the GPU address
// spaces are mapped); a proxy fence and a barrier publish them to wgmma. The bundle says so
// (invisible_keys), and the flags add 4 x 8 i32 to shared memory.

// The plain loop (D = 128, a mask region): once, in the masked branch,
// before S.
// CHECK-LABEL: attn.kernels = [{config = {block_m = 128 : i64, block_n = 128 : i64, deterministic = false, key_norms = "none", m_tiles = 1 : i64, mma = "wgmma", pipelined = false, shared_memory_bytes = 164032 : i64, stages = 2 : i64, warps = 8 : i64}
// CHECK-SAME: head_dim_v = 128 : i64, invisible_keys = "zeroed_per_cta", launches
// CHECK-LABEL: gpu.func @causal_d128
// CHECK: %[[V:.+]] = memref.view %{{.+}}[%c98304{{.*}}] : memref<?xi8, #gpu.address_space<workgroup>> to memref<2x2x128x64xbf16, #gpu.address_space<workgroup>>
// CHECK: %[[FLAGS:.+]] = memref.view %{{.+}}[%c163840{{.*}}] : memref<?xi8, #gpu.address_space<workgroup>> to memref<4x8xi32, #gpu.address_space<workgroup>>
// CHECK: scf.for
// CHECK: gpu.shuffle  xor %{{.+}}, %c4_i32{{.*}} : i32
// CHECK: gpu.shuffle  xor %{{.+}}, %c8_i32{{.*}} : i32
// CHECK: gpu.shuffle  xor %{{.+}}, %c16_i32{{.*}} : i32
// CHECK: memref.store %{{.+}}, %[[FLAGS]]
// CHECK-NEXT: }
// CHECK-NEXT: gpu.barrier
// CHECK-COUNT-8: memref.load %[[FLAGS]]
// CHECK: %[[DST:.+]] = memref.memory_space_cast %[[V]] : memref<2x2x128x64xbf16, #gpu.address_space<workgroup>> to memref<2x2x128x64xbf16, 3>
// CHECK-COUNT-8: vector.store %{{.+}}, %[[DST]][{{.+}}] : memref<2x2x128x64xbf16, 3>, vector<8xbf16>
// CHECK: nvvm.fence.proxy
// CHECK-NEXT: gpu.barrier
// CHECK: nvvm.wgmma.fence.aligned
// CHECK-NOT: memref.memory_space_cast
// CHECK: gpu.return
func.func @causal_d128(%q: tensor<?x?x?x128xbf16>, %k: tensor<?x?x?x128xbf16>, %v: tensor<?x?x?x128xbf16>) -> tensor<?x?x?x128xbf16> {
  %o = attn.attention %q, %k, %v
      : tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16> -> tensor<?x?x?x128xbf16>
      mask_mod {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %c = arith.cmpi ule, %j, %i : index
    attn.yield %c : i1
  }
  return %o : tensor<?x?x?x128xbf16>
}

// -----

// Positional masks alone: the keys of a visited tile are real keys of the
// sequence (seen by other queries), not zeroed; no flags, no field.
// CHECK-LABEL: attn.kernels
// CHECK-NOT: invisible_keys
// CHECK-SAME: shared_memory_bytes = 163840 : i64
// CHECK-NOT: invisible_keys
// CHECK: gpu.func @causal_structured
func.func @causal_structured(%q: tensor<?x?x?x128xbf16>, %k: tensor<?x?x?x128xbf16>, %v: tensor<?x?x?x128xbf16>) -> tensor<?x?x?x128xbf16> {
  %o = attn.attention %q, %k, %v mask = [#attn.causal, #attn.sliding_window<left = 100>]
      : tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16> -> tensor<?x?x?x128xbf16>
  return %o : tensor<?x?x?x128xbf16>
}

// -----

// The pipelined loop (D = 64): after the first tile's weights, and in the
// loop after P.V of tile u retired (no wgmma in flight), for tile u + 1.
// CHECK-LABEL: gpu.func @document_d64
// CHECK: %[[V:.+]] = memref.view %{{.+}}[%c49152{{.*}}] : {{.+}} to memref<4x1x64x64xbf16, #gpu.address_space<workgroup>>
// CHECK: nvvm.wgmma.wait.group.sync.aligned 0
// CHECK: gpu.barrier
// CHECK: memref.memory_space_cast %[[V]]
// CHECK-COUNT-2: vector.store
// CHECK: nvvm.fence.proxy
// CHECK-NEXT: gpu.barrier
// CHECK: scf.for
// CHECK: nvvm.wgmma.wait.group.sync.aligned 1
// CHECK: nvvm.wgmma.wait.group.sync.aligned 0
// CHECK-NOT: wgmma
// CHECK: gpu.barrier
// CHECK: memref.memory_space_cast %[[V]]
// CHECK-COUNT-2: vector.store
// CHECK: nvvm.fence.proxy
// CHECK-NEXT: gpu.barrier
// CHECK-NOT: wgmma
// CHECK: scf.yield
func.func @document_d64(%q: tensor<?x?x?x64xbf16>, %k: tensor<?x?x?x64xbf16>, %v: tensor<?x?x?x64xbf16>, %seg: tensor<?x?xi32>) -> tensor<?x?x?x64xbf16> {
  %o = attn.attention %q, %k, %v captures(%seg : tensor<?x?xi32>)
      mask = [#attn.document<q_segments = 0, kv_segments = 0>]
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16> -> tensor<?x?x?x64xbf16>
  return %o : tensor<?x?x?x64xbf16>
}

// -----

// mma.sync (D = 80, padded tiles; a window and a mask region dropping every
// 7th key): no proxy fence, a plain barrier.
// CHECK-LABEL: gpu.func @window_d80
// CHECK: gpu.shuffle  xor %{{.+}}, %c16_i32{{.*}} : i32
// CHECK: gpu.barrier
// CHECK: vector.store %{{.+}} : memref<3x32x88xbf16, 3>, vector<8xbf16>
// CHECK-NOT: nvvm.fence.proxy
// CHECK: gpu.barrier
// CHECK: nvgpu.ldmatrix
func.func @window_d80(%q: tensor<?x?x?x80xbf16>, %k: tensor<?x?x?x80xbf16>, %v: tensor<?x?x?x80xbf16>) -> tensor<?x?x?x80xbf16> {
  %o = attn.attention %q, %k, %v mask = [#attn.sliding_window<left = 100, right = 3>]
      : tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16> -> tensor<?x?x?x80xbf16>
      mask_mod {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %c7 = arith.constant 7 : index
    %r = arith.remui %j, %c7 : index
    %c0 = arith.constant 0 : index
    %keep = arith.cmpi ne, %r, %c0 : index
    attn.yield %keep : i1
  }
  return %o : tensor<?x?x?x80xbf16>
}

// -----

// Without masks the only invisible keys are the rows past Sk, which the
// copies zero-fill: no flags, no pass, no bundle entry (as under positional
// masks alone, above).
// CHECK-LABEL: attn.kernels = [{config = {block_m = 128 : i64, block_n = 128 : i64, deterministic = false, key_norms = "none", m_tiles = 1 : i64, mma = "wgmma", pipelined = false, shared_memory_bytes = 163840 : i64, stages = 2 : i64, warps = 8 : i64}
// CHECK-SAME: head_dim_v = 128 : i64, launches
// CHECK-LABEL: gpu.func @softmax_d128
// CHECK-NOT: xi32, #gpu.address_space<workgroup>>
// CHECK-NOT: vector<8xbf16>
// CHECK: gpu.return
func.func @softmax_d128(%q: tensor<?x?x?x128xbf16>, %k: tensor<?x?x?x128xbf16>, %v: tensor<?x?x?x128xbf16>) -> tensor<?x?x?x128xbf16> {
  %o = attn.attention %q, %k, %v
      : tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16> -> tensor<?x?x?x128xbf16>
  return %o : tensor<?x?x?x128xbf16>
}
