// RUN: attn-opt %s --split-input-file --attn-select-kernel-config --attn-to-nvgpu | FileCheck %s
// RUN: attn-opt %s --split-input-file --attn-select-kernel-config="mma=sync" --attn-to-nvgpu | FileCheck %s --check-prefix=SYNC

// wgmma tiles: Q, then the K and V rings, in 64-column panels of 128-byte
// rows with the XOR swizzle and no padding (32 KiB of Q and 2 x 64 KiB of K
// and V at head dim 128); a trap if dynamic shared memory is not 1024-byte
// aligned.
// CHECK: gpu.func @softmax_d128
// CHECK: gpu.dynamic_shared_memory
// CHECK-DAG: memref.view {{.+}} to memref<1x2x128x64xbf16, #gpu.address_space<workgroup>>
// CHECK-DAG: memref.view {{.+}} to memref<2x2x128x64xbf16, #gpu.address_space<workgroup>>
// CHECK: memref.extract_aligned_pointer_as_index
// CHECK: arith.constant 1023 : i64
// CHECK: llvm.intr.trap
// CHECK: arith.xori
// mma.sync tiles: rows padded by 8 elements (ldmatrix without bank
// conflicts).
// SYNC: gpu.func @softmax_d128
// SYNC-DAG: memref.view {{.+}} to memref<1x128x136xbf16, #gpu.address_space<workgroup>>
// SYNC-DAG: memref.view {{.+}} to memref<3x32x136xbf16, #gpu.address_space<workgroup>>
// SYNC-NOT: llvm.intr.trap
// SYNC-NOT: arith.xori
// SYNC: gpu.return
func.func @softmax_d128(%q: tensor<?x?x?x128xbf16>, %k: tensor<?x?x?x128xbf16>, %v: tensor<?x?x?x128xbf16>) -> tensor<?x?x?x128xbf16> {
  %o = attn.attention %q, %k, %v
      : tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16> -> tensor<?x?x?x128xbf16>
  return %o : tensor<?x?x?x128xbf16>
}

// -----

// RBF with f32 key norms: a [stages][block_n] f32 tile after the V ring.
// CHECK: gpu.func @rbf_f16
// CHECK: memref.view {{.+}} to memref<4x64xf32, #gpu.address_space<workgroup>>
func.func @rbf_f16(%q: tensor<?x?x?x64xf16>, %k: tensor<?x?x?x64xf16>, %v: tensor<?x?x?x64xf16>) -> tensor<?x?x?x64xf16> {
  %o = attn.attention %q, %k, %v score<rbf>
      : tensor<?x?x?x64xf16>, tensor<?x?x?x64xf16>, tensor<?x?x?x64xf16> -> tensor<?x?x?x64xf16>
  return %o : tensor<?x?x?x64xf16>
}
