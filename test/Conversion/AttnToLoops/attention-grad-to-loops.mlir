// RUN: attn-opt %s --split-input-file --attn-lower-to-loops --canonicalize --cse | FileCheck %s

// The literal backward: f32 accumulators zero-filled, then per (b, h, q_idx)
// the rows of scores s0 (before the region) and s (after it) with the
// visibility, weights p = exp(s - lse), dP = dO . v, D = sum p dP,
// dS = p (dP - D), dS0 and the capture gradients through the region's
// derivative (only where visible and dS != 0), then dq, dk, dv; last the
// kernel's factor (the scale) on dq and dk.

// CHECK-LABEL: func.func @alibi
// CHECK-SAME: (%[[Q:[^:]+]]: tensor<2x2x5x8xf32>, %[[K:[^:]+]]: tensor<2x1x7x8xf32>, %[[V:[^:]+]]: tensor<2x1x7x4xf32>, %[[O:[^:]+]]: tensor<2x2x5x4xf32>, %[[DO:[^:]+]]: tensor<2x2x5x4xf32>, %[[LSE:[^:]+]]: tensor<2x2x5xf32>, %[[SLOPES:[^:]+]]: tensor<2xf32>)
// CHECK-NOT: attn.attention_grad
// CHECK-DAG: %[[SCALE:.+]] = arith.constant 0.353553385 : f32
// CHECK-DAG: %[[ZERO:.+]] = arith.constant 0.000000e+00 : f32
// The zero-filled accumulator of the slopes' gradient.
// CHECK: tensor.insert %[[ZERO]] into %{{.+}} : tensor<2xf32>
// CHECK: %[[ACC:.+]]:4 = scf.for %[[B:[a-z0-9_]+]] = {{.+}} -> (tensor<2x2x5x8xf32>, tensor<2x1x7x8xf32>, tensor<2x1x7x4xf32>, tensor<2xf32>)
// CHECK: scf.for %[[H:[a-z0-9_]+]] = {{.+}} -> (tensor<2x2x5x8xf32>, tensor<2x1x7x8xf32>, tensor<2x1x7x4xf32>, tensor<2xf32>)
// CHECK: scf.for %[[I:[a-z0-9_]+]] = {{.+}} iter_args(%[[DQ:[a-z0-9_]+]] = {{.+}}, %[[DK:[a-z0-9_]+]] = {{.+}}, %[[DV:[a-z0-9_]+]] = {{.+}}, %[[DSL:[a-z0-9_]+]] = {{.+}})
// CHECK: %[[HK:.+]] = arith.divsi %[[H]], %{{.+}} : index
// Scores: the kernel, then the region (ALiBi), then the causal mask.
// CHECK: %[[ROW:.+]]:4 = scf.for %[[J:[a-z0-9_]+]] = {{.+}} -> (tensor<7xf32>, tensor<7xf32>, tensor<7xi1>, index)
// CHECK: tensor.extract %[[K]][%[[B]], %[[HK]], %[[J]], %{{.+}}]
// CHECK: %[[S0:.+]] = arith.mulf %{{.+}}, %[[SCALE]] : f32
// CHECK: tensor.extract %[[SLOPES]][%[[H]]] : tensor<2xf32>
// CHECK: arith.cmpi sle, %[[J]], %[[I]] : index
// Weights from the forward's lse, and dP.
// CHECK: %[[L:.+]] = tensor.extract %[[LSE]][%[[B]], %[[H]], %[[I]]]
// CHECK: %[[W:.+]]:3 = scf.for
// CHECK: arith.subf %{{.+}}, %[[L]] : f32
// CHECK: math.exp
// CHECK: tensor.extract %[[V]][%[[B]], %[[HK]], %{{.+}}, %{{.+}}]
// CHECK: tensor.extract %[[DO]][%[[B]], %[[H]], %[[I]], %{{.+}}]
// dS = p (dP - D), then the region's derivative: ds0 = dS, dm_h += dS (j - i).
// CHECK: %[[GRAD:.+]]:2 = scf.for %[[J2:[a-z0-9_]+]] = {{.+}} iter_args({{.+}}, %[[DSL2:[a-z0-9_]+]] = %[[DSL]])
// CHECK: %[[DPD:.+]] = arith.subf %{{.+}}, %[[W]]#2 : f32
// CHECK: %[[DS:.+]] = arith.mulf %{{.+}}, %[[DPD]] : f32
// CHECK: %[[DSV:.+]] = arith.select %{{.+}}, %[[DS]], %[[ZERO]] : f32
// CHECK: %[[NZ:.+]] = arith.cmpf one, %[[DSV]], %[[ZERO]] : f32
// CHECK: %[[LIVE:.+]] = arith.andi %{{.+}}, %[[NZ]] : i1
// CHECK: scf.if %[[LIVE]] -> (tensor<2xf32>) {
// CHECK: arith.subi
// CHECK: %[[SHARE:.+]] = arith.mulf %[[DSV]], %{{.+}} : f32
// CHECK: %[[OLD:.+]] = tensor.extract %[[DSL2]][%[[H]]] : tensor<2xf32>
// CHECK: %[[NEW:.+]] = arith.addf %[[OLD]], %[[SHARE]] : f32
// CHECK: tensor.insert %[[NEW]] into %[[DSL2]][%[[H]]] : tensor<2xf32>
// CHECK: } else {
// CHECK: scf.yield %[[DSL2]] : tensor<2xf32>
// dq[b, h, i] += sum_j dS0_j k_j; dk[b, hk, j] += dS0_j q_i; dv += p_j dO.
// CHECK: scf.for {{.+}} iter_args(%{{.+}} = %[[DQ]])
// CHECK: tensor.extract %[[K]]
// CHECK: tensor.extract %[[GRAD]]#0
// CHECK: scf.for {{.+}} iter_args(%{{.+}} = %[[DK]], %{{.+}} = %[[DV]])
// CHECK: tensor.extract %[[Q]][%[[B]], %[[H]], %[[I]], %{{.+}}]
// CHECK: tensor.extract %[[DO]][%[[B]], %[[H]], %[[I]], %{{.+}}]
// The postprocess: the scale on dq and dk, none on dv.
// CHECK: tensor.extract %[[ACC]]#0
// CHECK-NEXT: arith.mulf %{{.+}}, %[[SCALE]] : f32
// CHECK: tensor.extract %[[ACC]]#1
// CHECK-NEXT: arith.mulf %{{.+}}, %[[SCALE]] : f32
// CHECK: return %{{.+}}, %{{.+}}, %[[ACC]]#2, %[[ACC]]#3
func.func @alibi(%q: tensor<2x2x5x8xf32>, %k: tensor<2x1x7x8xf32>,
                 %v: tensor<2x1x7x4xf32>, %o: tensor<2x2x5x4xf32>,
                 %do: tensor<2x2x5x4xf32>, %lse: tensor<2x2x5xf32>,
                 %slopes: tensor<2xf32>)
    -> (tensor<2x2x5x8xf32>, tensor<2x1x7x8xf32>, tensor<2x1x7x4xf32>,
        tensor<2xf32>) {
  %dq, %dk, %dv, %ds = attn.attention_grad %q, %k, %v, %o, %do
      lse(%lse : tensor<2x2x5xf32>) captures(%slopes : tensor<2xf32>)
      mask = [#attn.causal]
      : tensor<2x2x5x8xf32>, tensor<2x1x7x8xf32>, tensor<2x1x7x4xf32>,
        tensor<2x2x5x4xf32>, tensor<2x2x5x4xf32>
      -> tensor<2x2x5x8xf32>, tensor<2x1x7x8xf32>, tensor<2x1x7x4xf32>,
         tensor<2xf32>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index,
       %c: tensor<?xf32>):
    %m = tensor.extract %c[%h] : tensor<?xf32>
    %ii = arith.index_cast %i : index to i64
    %jj = arith.index_cast %j : index to i64
    %d = arith.subi %jj, %ii : i64
    %df = arith.sitofp %d : i64 to f32
    %t = arith.mulf %m, %df : f32
    %r = arith.addf %s, %t : f32
    attn.yield %r : f32
  }
  return %dq, %dk, %dv, %ds : tensor<2x2x5x8xf32>, tensor<2x1x7x8xf32>,
      tensor<2x1x7x4xf32>, tensor<2xf32>
}

// -----

// RBF with sink logits, sink rows, grad_lse and a key feature map, in bf16:
// the sink rows get scores without the region, never masked; the sink logit
// gets p_c (dlse - D) with p_c = 0 where lse = -inf; the postprocess puts
// 2 gamma and relu'(k) on dk and the sink keys, and rounds to bf16.

// CHECK-LABEL: func.func @rbf_sinks
// CHECK-SAME: %[[LSE:[^:]+]]: tensor<1x2x3xf32>, %[[DLSE:[^:]+]]: tensor<1x2x3xf32>, %[[C:[^:]+]]: tensor<2xf32>, %[[SK:[^:]+]]: tensor<1x2x4xbf16>
// CHECK-DAG: %[[NEGINF:.+]] = arith.constant 0xFF800000 : f32
// CHECK-DAG: %[[TWOGAMMA:.+]] = arith.constant 5.000000e-01 : f32
// Per query: the sink rows' scores from the sink keys.
// CHECK: scf.for
// CHECK: scf.for
// CHECK: tensor.extract %[[SK]][%{{.+}}, %{{.+}}, %{{.+}}] : tensor<1x2x4xbf16>
// CHECK: %[[L:.+]] = tensor.extract %[[LSE]]
// CHECK: %[[G:.+]] = tensor.extract %[[DLSE]]
// The sink logit's gradient.
// CHECK: %[[CH:.+]] = tensor.extract %[[C]][%{{.+}}] : tensor<2xf32>
// CHECK: %[[X:.+]] = arith.subf %[[CH]], %[[L]] : f32
// CHECK: %[[PC:.+]] = math.exp %[[X]] : f32
// CHECK: %[[EMPTY:.+]] = arith.cmpf oeq, %[[L]], %[[NEGINF]] : f32
// CHECK: arith.select %[[EMPTY]], %{{.+}}, %[[PC]] : f32
// CHECK: arith.subf %[[G]], %{{.+}} : f32
// The postprocess of dk: 2 gamma, relu'(k) = [k > 0], bf16.
// CHECK: arith.mulf %{{.+}}, %[[TWOGAMMA]] : f32
// CHECK: arith.cmpf ogt
// CHECK: arith.truncf %{{.+}} : f32 to bf16
// CHECK: return
func.func @rbf_sinks(%q: tensor<1x2x3x4xbf16>, %k: tensor<1x1x5x4xbf16>,
                     %v: tensor<1x1x5x2xbf16>, %o: tensor<1x2x3x2xbf16>,
                     %do: tensor<1x2x3x2xbf16>, %lse: tensor<1x2x3xf32>,
                     %dlse: tensor<1x2x3xf32>, %c: tensor<2xf32>,
                     %sk: tensor<1x2x4xbf16>, %sv: tensor<1x2x2xbf16>)
    -> (tensor<1x2x3x4xbf16>, tensor<1x1x5x4xbf16>, tensor<1x1x5x2xbf16>,
        tensor<2xf32>, tensor<1x2x4xbf16>, tensor<1x2x2xbf16>) {
  %dq, %dk, %dv, %dc, %dsk, %dsv = attn.attention_grad %q, %k, %v, %o, %do
      lse(%lse : tensor<1x2x3xf32>) grad_lse(%dlse : tensor<1x2x3xf32>)
      sink_logits(%c : tensor<2xf32>)
      sink_rows(%sk, %sv : tensor<1x2x4xbf16>, tensor<1x2x2xbf16>)
      score<rbf> gamma = 0.25 k_map<relu>
      : tensor<1x2x3x4xbf16>, tensor<1x1x5x4xbf16>, tensor<1x1x5x2xbf16>,
        tensor<1x2x3x2xbf16>, tensor<1x2x3x2xbf16>
      -> tensor<1x2x3x4xbf16>, tensor<1x1x5x4xbf16>, tensor<1x1x5x2xbf16>,
         tensor<2xf32>, tensor<1x2x4xbf16>, tensor<1x2x2xbf16>
  return %dq, %dk, %dv, %dc, %dsk, %dsv
      : tensor<1x2x3x4xbf16>, tensor<1x1x5x4xbf16>, tensor<1x1x5x2xbf16>,
        tensor<2xf32>, tensor<1x2x4xbf16>, tensor<1x2x2xbf16>
}

// -----

// Normalizations without an lse: sigmoid's dS = dP p (1 - p), no lse read.

// CHECK-LABEL: func.func @sigmoid
// CHECK-DAG: %[[ONE:.+]] = arith.constant 1.000000e+00 : f32
// CHECK: math.exp
// CHECK: arith.divf
// CHECK: %[[OMP:.+]] = arith.subf %[[ONE]], %[[P:.+]] : f32
// CHECK-NEXT: arith.mulf %{{.+}}, %[[OMP]] : f32
func.func @sigmoid(%q: tensor<1x1x3x4xf32>, %o: tensor<1x1x3x4xf32>)
    -> (tensor<1x1x3x4xf32>, tensor<1x1x3x4xf32>, tensor<1x1x3x4xf32>) {
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %o, %o
      normalize<sigmoid> bias = -1.0
      : tensor<1x1x3x4xf32>, tensor<1x1x3x4xf32>, tensor<1x1x3x4xf32>,
        tensor<1x1x3x4xf32>, tensor<1x1x3x4xf32>
      -> tensor<1x1x3x4xf32>, tensor<1x1x3x4xf32>, tensor<1x1x3x4xf32>
  return %dq, %dk, %dv
      : tensor<1x1x3x4xf32>, tensor<1x1x3x4xf32>, tensor<1x1x3x4xf32>
}
