// RUN: attn-opt %s --split-input-file --attn-lower-to-loops --canonicalize --verify-diagnostics | FileCheck %s

// The naive meaning: loops over (b, h, q_idx), the scores of a row
// materialized in a tensor<Sk x f32> with the visibility of each key beside
// them, then weights, then the weighted sum of V rows.

// CHECK-LABEL: func.func @causal_gqa
// CHECK-SAME: (%[[Q:.+]]: tensor<2x4x8x16xbf16>, %[[K:.+]]: tensor<2x2x8x16xbf16>, %[[V:.+]]: tensor<2x2x8x16xbf16>)
// CHECK-NOT: attn.attention
// The default scale 1/sqrt(16).
// CHECK-DAG: %[[SCALE:.+]] = arith.constant 2.500000e-01 : f32
// CHECK: scf.for %[[B:[a-z0-9_]+]] = {{.+}} iter_args
// CHECK: scf.for %[[H:[a-z0-9_]+]] = {{.+}} iter_args
// CHECK: scf.for %[[I:[a-z0-9_]+]] = {{.+}} iter_args
// GQA: kv head = h / (Hq / Hkv) = h / 2.
// CHECK: %[[HK:[a-z0-9_]+]] = arith.divsi %[[H]], %{{.+}} : index
// CHECK: tensor.empty() : tensor<8xf32>
// CHECK: tensor.empty() : tensor<8xi1>
// CHECK: scf.for %[[J:[a-z0-9_]+]] = {{.+}} -> (tensor<8xf32>, tensor<8xi1>, index)
// CHECK: tensor.extract %[[Q]][%[[B]], %[[H]], %[[I]], %{{.+}}] : tensor<2x4x8x16xbf16>
// CHECK: arith.extf {{.+}} : bf16 to f32
// CHECK: tensor.extract %[[K]][%[[B]], %[[HK]], %[[J]], %{{.+}}] : tensor<2x2x8x16xbf16>
// CHECK: arith.mulf %{{.+}}, %[[SCALE]] : f32
// Causal (top-left): kv_idx <= q_idx.
// CHECK: arith.cmpi sle, %[[J]], %[[I]] : index
// Softmax: exp of the shifted scores.
// CHECK: math.exp
// CHECK: math.log
// The output, rounded to the input type.
// CHECK: arith.truncf {{.+}} : f32 to bf16
// CHECK: tensor.insert {{.+}} into {{.+}} : tensor<2x4x8x16xbf16>
func.func @causal_gqa(%q: tensor<2x4x8x16xbf16>, %k: tensor<2x2x8x16xbf16>, %v: tensor<2x2x8x16xbf16>) -> tensor<2x4x8x16xbf16> {
  %o = attn.attention %q, %k, %v mask = [#attn.causal]
      : tensor<2x4x8x16xbf16>, tensor<2x2x8x16xbf16>, tensor<2x2x8x16xbf16> -> tensor<2x4x8x16xbf16>
  return %o : tensor<2x4x8x16xbf16>
}

// -----

// The score region is inlined per (b, h, q_idx, kv_idx) with the captures.
// CHECK-LABEL: func.func @alibi
// CHECK-SAME: %[[SLOPES:[^:]+]]: tensor<2xf32>
// CHECK-DAG: %[[BIAS:.+]] = arith.constant -2.000000e+00 : f32
// CHECK: tensor.extract %[[SLOPES]][%{{.+}}] : tensor<2xf32>
// CHECK: arith.sitofp
// Sigmoid: 1 / (1 + exp(-(s + bias))).
// CHECK: arith.addf %{{.+}}, %[[BIAS]] : f32
// CHECK: math.exp
// CHECK: arith.divf
func.func @alibi(%q: tensor<1x2x8x16xf32>, %k: tensor<1x2x8x16xf32>, %v: tensor<1x2x8x16xf32>, %slopes: tensor<2xf32>) -> tensor<1x2x8x16xf32> {
  %o = attn.attention %q, %k, %v captures(%slopes : tensor<2xf32>) normalize<sigmoid> bias = -2.0
      : tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32> -> tensor<1x2x8x16xf32>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index, %sl: tensor<?xf32>):
    %m = tensor.extract %sl[%h] : tensor<?xf32>
    %ii = arith.index_cast %i : index to i64
    %jj = arith.index_cast %j : index to i64
    %d = arith.subi %jj, %ii : i64
    %df = arith.sitofp %d : i64 to f32
    %bias = arith.mulf %m, %df : f32
    %r = arith.addf %s, %bias : f32
    attn.yield %r : f32
  }
  return %o : tensor<1x2x8x16xf32>
}

// -----

attn.variant @causal mask = [#attn.causal]

func.func @needs_instantiation(%q: tensor<1x2x8x16xf32>) -> tensor<1x2x8x16xf32> {
  // expected-error @+1 {{references variant @causal; run attn-instantiate-variants first}}
  %o = attn.attention %q, %q, %q variant @causal
      : tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32> -> tensor<1x2x8x16xf32>
  return %o : tensor<1x2x8x16xf32>
}
