// RUN: attn-opt %s --split-input-file --attn-select-kernel-config --attn-to-nvgpu | FileCheck %s

// The online softmax on accumulators: the raw row maximum over the quad
// (two shuffles), scale * log2(e) applied to the maximum and folded into
// the exponent's FMA, ex2.approx, O rescaled only when some lane's maximum
// moved (vote.any); the epilogue divides by the normalizer (0 for rows
// that saw nothing) and writes the natural-log LSE.
// CHECK-LABEL: gpu.func @softmax_d64
// CHECK: arith.maximumf
// CHECK: gpu.shuffle xor {{.+}}, %c1_i32
// CHECK: gpu.shuffle xor {{.+}}, %c2_i32
// CHECK: arith.mulf {{.+}} fastmath<contract>
// CHECK: llvm.call_intrinsic "llvm.nvvm.ex2.approx.ftz.f32"
// CHECK: nvvm.vote.sync any
// CHECK: arith.divf
// CHECK: math.log
func.func @softmax_d64(%q: tensor<?x?x?x64xbf16>, %k: tensor<?x?x?x64xbf16>, %v: tensor<?x?x?x64xbf16>) -> (tensor<?x?x?x64xbf16>, tensor<?x?x?xf32>) {
  %o, %lse = attn.attention %q, %k, %v
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16> -> tensor<?x?x?x64xbf16>, tensor<?x?x?xf32>
  return %o, %lse : tensor<?x?x?x64xbf16>, tensor<?x?x?xf32>
}

// -----

// Sigmoid weights each element directly (rcp.approx of 1 + 2^(-z log2 e)):
// no row maximum, no rescale, no division.
// CHECK-LABEL: gpu.func @sigmoid_d64
// CHECK: nvvm.rcp.approx.ftz.f
// CHECK-NOT: nvvm.vote.sync
// CHECK-NOT: arith.divf
// CHECK: gpu.return
func.func @sigmoid_d64(%q: tensor<?x?x?x64xbf16>, %k: tensor<?x?x?x64xbf16>, %v: tensor<?x?x?x64xbf16>) -> tensor<?x?x?x64xbf16> {
  %o = attn.attention %q, %k, %v normalize<sigmoid> bias = -4.0
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16> -> tensor<?x?x?x64xbf16>
  return %o : tensor<?x?x?x64xbf16>
}

// -----

// Sink logits start the row state: m0 = c * log2(e), l0 = 1 on lane 0 of
// the quad only (l is summed over the quad at the end).
// CHECK-LABEL: gpu.func @sinks_d64
// CHECK-DAG: arith.constant 1.44269{{.+}} : f32
// CHECK-DAG: memref.load %{{.+}}[%{{.+}}] : memref<?xf32, 1>
func.func @sinks_d64(%q: tensor<?x?x?x64xbf16>, %k: tensor<?x?x?x64xbf16>, %v: tensor<?x?x?x64xbf16>, %s: tensor<?xf32>) -> tensor<?x?x?x64xbf16> {
  %o = attn.attention %q, %k, %v sink_logits(%s : tensor<?xf32>)
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16> -> tensor<?x?x?x64xbf16>
  return %o : tensor<?x?x?x64xbf16>
}
