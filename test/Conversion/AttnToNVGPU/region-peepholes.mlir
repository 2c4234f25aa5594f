// RUN: attn-opt %s --split-input-file --attn-select-kernel-config --attn-to-nvgpu | FileCheck %s


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

// tanh on the special-function unit (1 - 2 / (2^(2x log2 e) + 1)), division
// by a constant as a multiply, captures read from their flat buffers.
// CHECK-LABEL: gpu.func @softcap_bias
// CHECK-NOT: math.tanh
// CHECK-NOT: arith.divf {{.+}}, %cst
// CHECK: nvvm.rcp.approx.ftz.f
// CHECK: memref.load %{{.+}}[%{{.+}}] : memref<?xf32, 1>
// CHECK: gpu.return
func.func @softcap_bias(%q: tensor<?x?x?x64xbf16>, %k: tensor<?x?x?x64xbf16>, %v: tensor<?x?x?x64xbf16>, %t: tensor<?x7xf32>) -> tensor<?x?x?x64xbf16> {
  %o = attn.attention %q, %k, %v captures(%t : tensor<?x7xf32>)
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16> -> tensor<?x?x?x64xbf16>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index, %c: tensor<?x7xf32>):
    %cap = arith.constant 30.0 : f32
    %x = arith.divf %s, %cap : f32
    %th = math.tanh %x : f32
    %y = arith.mulf %th, %cap : f32
    %c3 = arith.constant 3 : index
    %bias = tensor.extract %c[%h, %c3] : tensor<?x7xf32>
    %r = arith.addf %y, %bias : f32
    attn.yield %r : f32
  }
  return %o : tensor<?x?x?x64xbf16>
}
