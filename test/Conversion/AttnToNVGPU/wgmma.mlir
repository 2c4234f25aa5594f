// RUN: attn-opt %s --attn-select-kernel-config --attn-to-nvgpu | FileCheck %s

// The Hopper family: S = Q.K^T as a chain of wgmma.mma_async on
// shared-memory descriptors, O += P.V with the register-A form (the one
// inline-PTX instruction), commit groups, waits and register pins.
// CHECK: gpu.func @softmax_d128
// S = Q.K^T: 8 k-steps of m64n128k16 from shared memory, K-major operands;
// the descriptors (swizzle bit 62, stride 1024 bytes) are pinned before the
// fence so that the chain issues back to back.
// CHECK: scf.for
// CHECK: llvm.inline_asm has_side_effects asm_dialect = att "", "=l,
// CHECK: nvvm.wgmma.fence.aligned
// CHECK: nvvm.wgmma.mma_async {{.+}}, <m = 64, n = 128, k = 16>, D[<f32>, <zero>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <col>]
// CHECK-COUNT-7: nvvm.wgmma.mma_async {{.+}}, <m = 64, n = 128, k = 16>, D[<f32>, <one>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <col>]
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// CHECK: nvvm.wgmma.wait.group.sync.aligned 0
// The accumulators are pinned after the wait.
// CHECK: llvm.inline_asm has_side_effects asm_dialect = att "", "=f,
// P.V: P from registers (register-A wgmma, V MN-major: transposed B).
// CHECK: nvvm.wgmma.fence.aligned
// CHECK-COUNT-8: wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {{.+}}p, 1, 1, 1;
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// CHECK: nvvm.wgmma.wait.group.sync.aligned 0
// CHECK: vector.store
func.func @softmax_d128(%q: tensor<?x?x?x128xbf16>, %k: tensor<?x?x?x128xbf16>, %v: tensor<?x?x?x128xbf16>) -> tensor<?x?x?x128xbf16> {
  %o = attn.attention %q, %k, %v
      : tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16> -> tensor<?x?x?x128xbf16>
  return %o : tensor<?x?x?x128xbf16>
}
