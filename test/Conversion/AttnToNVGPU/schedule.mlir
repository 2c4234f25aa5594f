// RUN: attn-opt %s --split-input-file --attn-select-kernel-config --attn-to-nvgpu | FileCheck %s
// RUN: attn-opt %s --split-input-file --attn-select-kernel-config="pipeline=off" --attn-to-nvgpu | FileCheck %s --check-prefix=PLAIN

// The pipelined loop (the default at head dim 64): the first tile's S and
// weights before the loop; in the loop S of tile u+1 is issued, then P.V of
// tile u, and the wait for S leaves the P.V in flight (wait.group 1) while
// the warps weight u+1; the last P.V after the loop.
// CHECK-LABEL: gpu.func @softmax_d64
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// CHECK: nvvm.wgmma.wait.group.sync.aligned 0
// CHECK: scf.for
// CHECK: nvvm.cp.async.wait.group 1
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// CHECK: nvvm.wgmma.wait.group.sync.aligned 1
// CHECK: llvm.call_intrinsic "llvm.nvvm.ex2.approx.ftz.f32"
// CHECK: nvvm.wgmma.wait.group.sync.aligned 0
// CHECK: scf.yield
// CHECK: wgmma.mma_async.sync.aligned.m64n64k16
// CHECK: nvvm.wgmma.wait.group.sync.aligned 0
// The plain loop: S, weights, P.V, each waited for in turn.
// PLAIN-LABEL: gpu.func @softmax_d64
// PLAIN: scf.for
// PLAIN: nvvm.cp.async.wait.group 0
// PLAIN-NOT: nvvm.wgmma.wait.group.sync.aligned 1
// PLAIN: gpu.return
func.func @softmax_d64(%q: tensor<?x?x?x64xbf16>, %k: tensor<?x?x?x64xbf16>, %v: tensor<?x?x?x64xbf16>) -> tensor<?x?x?x64xbf16> {
  %o = attn.attention %q, %k, %v
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16> -> tensor<?x?x?x64xbf16>
  return %o : tensor<?x?x?x64xbf16>
}
