// RUN: attn-opt %s --attn-select-kernel-config --attn-to-nvgpu | FileCheck %s

// The cp.async ring: Q, then the first stages - 1 KV tiles, one commit
// group each; whole tiles copy without per-row checks, partial ones
// zero-fill past Sk; the copies are published to the async proxy (wgmma
// reads through it) before the barrier; in the loop, wait for the oldest
// tile, publish, prefetch the next into the stage just freed.
// CHECK: gpu.func @softmax_d128
// CHECK: nvgpu.device_async_copy {{.+}} : memref<?xbf16, 1> to memref<1x2x128x64xbf16, #gpu.address_space<workgroup>>
// CHECK: nvvm.cp.async.commit.group
// CHECK: nvgpu.device_async_copy {{.+}} : memref<?xbf16, 1> to memref<2x2x128x64xbf16, #gpu.address_space<workgroup>>
// CHECK: nvvm.cp.async.commit.group
// CHECK: nvvm.cp.async.wait.group 1
// CHECK-NEXT: nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
// CHECK-NEXT: gpu.barrier
// CHECK: scf.for
// CHECK: nvvm.cp.async.wait.group 0
// CHECK-NEXT: nvvm.fence.proxy
// CHECK-NEXT: gpu.barrier
// CHECK: nvgpu.device_async_copy
// CHECK: nvvm.cp.async.commit.group
func.func @softmax_d128(%q: tensor<?x?x?x128xbf16>, %k: tensor<?x?x?x128xbf16>, %v: tensor<?x?x?x128xbf16>) -> tensor<?x?x?x128xbf16> {
  %o = attn.attention %q, %k, %v
      : tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16> -> tensor<?x?x?x128xbf16>
  return %o : tensor<?x?x?x128xbf16>
}
