// RUN: attn-opt %s --split-input-file --attn-test-score-mod-vjp | FileCheck %s

// Softcap 30 tanh(s/30): ds = g * 30 * (1 - tanh^2(s/30)) / 30.
attn.variant @softcap score_mod {
^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
  %c = arith.constant 30.0 : f32
  %x = arith.divf %s, %c : f32
  %t = math.tanh %x : f32
  %r = arith.mulf %c, %t : f32
  attn.yield %r : f32
}

// CHECK-LABEL: func.func @softcap_score_mod(
// CHECK-SAME:      %[[S:.+]]: f32, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index) -> f32
// CHECK:         %[[T:.+]] = math.tanh
// CHECK:         %[[R:.+]] = arith.mulf %{{.+}}, %[[T]]
// CHECK:         return %[[R]] : f32

// CHECK-LABEL: func.func @softcap_score_mod_vjp(
// CHECK-SAME:      %[[S:[^:]+]]: f32, %{{[^:]+}}: index, %{{[^:]+}}: index, %{{[^:]+}}: index, %{{[^:]+}}: index, %[[G:[^:]+]]: f32) -> f32
// CHECK-SAME:      attn.vjp_captures = array<i64>
// CHECK:         %[[C30:.+]] = arith.constant 3.000000e+01 : f32
// CHECK:         %[[X:.+]] = arith.divf %[[S]], %[[C30]]
// CHECK:         %[[T:.+]] = math.tanh %[[X]]
// CHECK:         %[[GT:.+]] = arith.mulf %[[G]], %[[C30]]
// CHECK:         %[[T2:.+]] = arith.mulf %[[T]], %[[T]]
// CHECK:         %[[ONE:.+]] = arith.constant 1.000000e+00 : f32
// CHECK:         %[[D:.+]] = arith.subf %[[ONE]], %[[T2]]
// CHECK:         %[[GX:.+]] = arith.mulf %[[GT]], %[[D]]
// CHECK:         %[[DS:.+]] = arith.divf %[[GX]], %[[C30]]
// CHECK:         return %[[DS]] : f32

// -----

// ALiBi s + m[h] * (j - i): ds = g, dm[h] += g * (j - i).
attn.variant @alibi score_mod {
^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index,
     %slopes: tensor<?xf32>):
  %m = tensor.extract %slopes[%h] : tensor<?xf32>
  %ii = arith.index_cast %i : index to i64
  %jj = arith.index_cast %j : index to i64
  %d = arith.subi %jj, %ii : i64
  %df = arith.sitofp %d : i64 to f32
  %bias = arith.mulf %m, %df : f32
  %r = arith.addf %s, %bias : f32
  attn.yield %r : f32
}

// CHECK-LABEL: func.func @alibi_score_mod_vjp(
// CHECK-SAME:      %{{[^:]+}}: f32, %{{[^:]+}}: index, %[[H:[^:]+]]: index, %{{[^:]+}}: index, %{{[^:]+}}: index, %[[G:[^:]+]]: f32, %[[M:[^:]+]]: tensor<?xf32>) -> (f32, f32, index)
// CHECK-SAME:      attn.vjp_captures = array<i64: 0>
// CHECK:         tensor.extract %[[M]][%[[H]]]
// CHECK:         %[[DF:.+]] = arith.sitofp
// CHECK:         %[[DM:.+]] = arith.mulf %[[G]], %[[DF]] : f32
// CHECK-NOT:     arith.
// CHECK:         return %[[G]], %[[DM]], %[[H]] : f32, f32, index

// -----

// A bias table b[h, clamp(j - i, -4, 4) + 4]: ds = g, db[h, k] += g.
attn.variant @bias_table score_mod {
^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index,
     %table: tensor<?x9xf32>):
  %lo = arith.constant -4 : index
  %hi = arith.constant 4 : index
  %d = arith.subi %j, %i : index
  %d0 = arith.maxsi %d, %lo : index
  %d1 = arith.minsi %d0, %hi : index
  %k = arith.addi %d1, %hi : index
  %t = tensor.extract %table[%h, %k] : tensor<?x9xf32>
  %r = arith.addf %s, %t : f32
  attn.yield %r : f32
}

// CHECK-LABEL: func.func @bias_table_score_mod_vjp(
// CHECK-SAME:      %{{[^:]+}}: f32, %{{[^:]+}}: index, %[[H:[^:]+]]: index, %{{[^:]+}}: index, %{{[^:]+}}: index, %[[G:[^:]+]]: f32, %[[TAB:[^:]+]]: tensor<?x9xf32>) -> (f32, f32, index, index)
// CHECK:         %[[K:.+]] = arith.addi
// CHECK:         tensor.extract %[[TAB]][%[[H]], %[[K]]]
// CHECK-NEXT:    arith.addf
// CHECK-NEXT:    return %[[G]], %[[G]], %[[H]], %[[K]] : f32, f32, index, index

// -----

// Leaky ReLU by select, then a floor from a capture by maximumf: the
// adjoint goes to the branch taken.
attn.variant @relu_like score_mod {
^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index,
     %floor: tensor<?xf32>):
  %zero = arith.constant 0.0 : f32
  %slope = arith.constant 0.125 : f32
  %pos = arith.cmpf ogt, %s, %zero : f32
  %small = arith.mulf %s, %slope : f32
  %leaky = arith.select %pos, %s, %small : f32
  %f = tensor.extract %floor[%h] : tensor<?xf32>
  %r = arith.maximumf %leaky, %f : f32
  attn.yield %r : f32
}

// CHECK-LABEL: func.func @relu_like_score_mod_vjp(
// CHECK-SAME:      %{{[^:]+}}: f32, %{{[^:]+}}: index, %[[H:[^:]+]]: index, %{{[^:]+}}: index, %{{[^:]+}}: index, %[[G:[^:]+]]: f32, %{{[^:]+}}: tensor<?xf32>) -> (f32, f32, index)
// CHECK-DAG:     %[[SLOPE:.+]] = arith.constant 1.250000e-01 : f32
// CHECK:         %[[POS:.+]] = arith.cmpf ogt
// CHECK:         %[[LEAKY:.+]] = arith.select %[[POS]]
// CHECK:         %[[F:.+]] = tensor.extract
// CHECK:         %[[TAKEN:.+]] = arith.cmpf oge, %[[LEAKY]], %[[F]] : f32
// CHECK:         %[[Z0:.+]] = arith.constant 0.000000e+00 : f32
// CHECK:         %[[DL:.+]] = arith.select %[[TAKEN]], %[[G]], %[[Z0]] : f32
// CHECK:         %[[Z1:.+]] = arith.constant 0.000000e+00 : f32
// CHECK:         %[[DF:.+]] = arith.select %[[TAKEN]], %[[Z1]], %[[G]] : f32
// CHECK:         %[[Z2:.+]] = arith.constant 0.000000e+00 : f32
// CHECK:         %[[DS0:.+]] = arith.select %[[POS]], %[[DL]], %[[Z2]] : f32
// CHECK:         %[[Z3:.+]] = arith.constant 0.000000e+00 : f32
// CHECK:         %[[DSMALL:.+]] = arith.select %[[POS]], %[[Z3]], %[[DL]] : f32
// CHECK:         %[[DS1:.+]] = arith.mulf %[[DSMALL]], %[[SLOPE]] : f32
// CHECK:         %[[DS:.+]] = arith.addf %[[DS0]], %[[DS1]] : f32
// CHECK:         return %[[DS]], %[[DF]], %[[H]] : f32, f32, index

// -----

// exp, log, sqrt: f = sqrt(log(1 + exp(s))) (softplus under a root).
attn.variant @chain score_mod {
^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
  %e = math.exp %s : f32
  %l = math.log1p %e : f32
  %r = math.sqrt %l : f32
  attn.yield %r : f32
}

// CHECK-LABEL: func.func @chain_score_mod_vjp(
// CHECK-SAME:      %[[S:[^:]+]]: f32, %{{[^:]+}}: index, %{{[^:]+}}: index, %{{[^:]+}}: index, %{{[^:]+}}: index, %[[G:[^:]+]]: f32) -> f32
// CHECK:         %[[E:.+]] = math.exp %[[S]]
// CHECK:         %[[L:.+]] = math.log1p %[[E]]
// CHECK:         %[[R:.+]] = math.sqrt %[[L]]
// CHECK:         %[[HALF:.+]] = arith.constant 5.000000e-01 : f32
// CHECK:         %[[DSQRT:.+]] = arith.divf %[[HALF]], %[[R]]
// CHECK:         %[[DL:.+]] = arith.mulf %[[G]], %[[DSQRT]]
// CHECK:         %[[ONE:.+]] = arith.constant 1.000000e+00 : f32
// CHECK:         %[[XP1:.+]] = arith.addf %[[ONE]], %[[E]]
// CHECK:         %[[ONE:.+]] = arith.constant 1.000000e+00 : f32
// CHECK:         %[[DLOG:.+]] = arith.divf %[[ONE]], %[[XP1]]
// CHECK:         %[[DE:.+]] = arith.mulf %[[DL]], %[[DLOG]]
// CHECK:         %[[DS:.+]] = arith.mulf %[[DE]], %[[E]]
// CHECK:         return %[[DS]] : f32

// -----

// A value used twice: f = t * t + t with t = tanh(s); the adjoints of t
// from the product (both operands) and the sum accumulate.
attn.variant @twice score_mod {
^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
  %t = math.tanh %s : f32
  %t2 = arith.mulf %t, %t : f32
  %r = arith.addf %t2, %t : f32
  attn.yield %r : f32
}

// CHECK-LABEL: func.func @twice_score_mod_vjp(
// CHECK-SAME:      %[[S:[^:]+]]: f32, %{{[^:]+}}: index, %{{[^:]+}}: index, %{{[^:]+}}: index, %{{[^:]+}}: index, %[[G:[^:]+]]: f32) -> f32
// CHECK:         %[[T:.+]] = math.tanh %[[S]]
// CHECK:         %[[A:.+]] = arith.mulf %[[G]], %[[T]]
// CHECK:         %[[AB:.+]] = arith.addf %[[G]], %[[A]]
// CHECK:         %[[B:.+]] = arith.mulf %[[G]], %[[T]]
// CHECK:         %[[DT:.+]] = arith.addf %[[AB]], %[[B]]
// CHECK:         %[[TT:.+]] = arith.mulf %[[T]], %[[T]]
// CHECK:         %[[D:.+]] = arith.subf %{{.+}}, %[[TT]]
// CHECK:         %[[DS:.+]] = arith.mulf %[[DT]], %[[D]]
// CHECK:         return %[[DS]] : f32

// -----

// Ops that depend on neither s nor a floating capture get no adjoint code,
// even ones without a rule (math.sin of an index); a read the score does
// not depend on contributes 0; an f16 capture's contribution is f32.
attn.variant @inactive score_mod {
^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index,
     %w: tensor<4xf16>, %unused: tensor<4xf32>):
  %jj = arith.index_cast %j : index to i64
  %jf = arith.sitofp %jj : i64 to f32
  %sin = math.sin %jf : f32
  %w16 = tensor.extract %w[%h] : tensor<4xf16>
  %w32 = arith.extf %w16 : f16 to f32
  %u = tensor.extract %unused[%b] : tensor<4xf32>
  %ws = arith.mulf %w32, %s : f32
  %r = arith.addf %ws, %sin : f32
  attn.yield %r : f32
}

// CHECK-LABEL: func.func @inactive_score_mod_vjp(
// CHECK-SAME:      %[[S:[^:]+]]: f32, %[[B:[^:]+]]: index, %[[H:[^:]+]]: index, %{{[^:]+}}: index, %{{[^:]+}}: index, %[[G:[^:]+]]: f32, %{{[^:]+}}: tensor<4xf16>, %{{[^:]+}}: tensor<4xf32>) -> (f32, f32, f32, index, index)
// CHECK-SAME:      attn.vjp_captures = array<i64: 0, 1>
// CHECK:         %[[W16:.+]] = tensor.extract {{.+}} : tensor<4xf16>
// CHECK:         %[[W32:.+]] = arith.extf %[[W16]]
// CHECK:         arith.addf
// CHECK-NOT:     math.cos
// CHECK:         %[[DW:.+]] = arith.mulf %[[G]], %[[S]] : f32
// CHECK:         %[[DS:.+]] = arith.mulf %[[G]], %[[W32]] : f32
// CHECK:         %[[ZERO:.+]] = arith.constant 0.000000e+00 : f32
// CHECK:         return %[[DS]], %[[DW]], %[[ZERO]], %[[H]], %[[B]]

// -----

// An inline score_mod of an attn.attention: named after its function.
func.func @scaled(%q: tensor<1x1x4x8xf32>, %k: tensor<1x1x4x8xf32>,
                  %v: tensor<1x1x4x8xf32>, %t: tensor<1xf32>)
    -> tensor<1x1x4x8xf32> {
  %o = attn.attention %q, %k, %v captures(%t : tensor<1xf32>)
      : tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>
      -> tensor<1x1x4x8xf32>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index,
       %temp: tensor<1xf32>):
    %c0 = arith.constant 0 : index
    %x = tensor.extract %temp[%c0] : tensor<1xf32>
    %r = arith.divf %s, %x : f32
    attn.yield %r : f32
  }
  return %o : tensor<1x1x4x8xf32>
}

// CHECK-LABEL: func.func @scaled_score_mod(
// CHECK-LABEL: func.func @scaled_score_mod_vjp(
// CHECK-SAME:      %[[S:[^:]+]]: f32, %{{[^:]+}}: index, %{{[^:]+}}: index, %{{[^:]+}}: index, %{{[^:]+}}: index, %[[G:[^:]+]]: f32, %{{[^:]+}}: tensor<1xf32>) -> (f32, f32, index)
// CHECK:         %[[C0:.+]] = arith.constant 0 : index
// CHECK:         %[[X:.+]] = tensor.extract %{{.+}}[%[[C0]]]
// CHECK:         %[[R:.+]] = arith.divf %[[S]], %[[X]]
// CHECK:         %[[DS:.+]] = arith.divf %[[G]], %[[X]]
// CHECK:         %[[GR:.+]] = arith.mulf %[[G]], %[[R]]
// CHECK:         %[[Q:.+]] = arith.divf %[[GR]], %[[X]]
// CHECK:         %[[DX:.+]] = arith.negf %[[Q]]
// CHECK:         return %[[DS]], %[[DX]], %[[C0]]

// -----

// exp2 and clamp, with a block distance from shifts (FlexAttention-style):
// r = exp2(clamp(s, -8, 8)) * exp2(-((i >> 2) - (j >> 2)) / 4). The shifts
// and the second exp2 depend on neither s nor a capture: no adjoint code.
// ds = g * w * ln2 * exp2(c) where -8 <= s <= 8, else 0.
attn.variant @exp2_clamp score_mod {
^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
  %lo = arith.constant -8.0 : f32
  %hi = arith.constant 8.0 : f32
  %c0 = arith.maximumf %s, %lo : f32
  %c = arith.minimumf %c0, %hi : f32
  %p = math.exp2 %c : f32
  %two = arith.constant 2 : index
  %bi = arith.shrsi %i, %two : index
  %bj = arith.shrsi %j, %two : index
  %d = arith.subi %bi, %bj : index
  %d64 = arith.index_cast %d : index to i64
  %df = arith.sitofp %d64 : i64 to f32
  %k = arith.constant -0.25 : f32
  %e = arith.mulf %df, %k : f32
  %w = math.exp2 %e : f32
  %r = arith.mulf %p, %w : f32
  attn.yield %r : f32
}

// CHECK-LABEL: func.func @exp2_clamp_score_mod_vjp(
// CHECK-SAME:      %[[S:[^:]+]]: f32, %{{[^:]+}}: index, %{{[^:]+}}: index, %[[I:[^:]+]]: index, %[[J:[^:]+]]: index, %[[G:[^:]+]]: f32) -> f32
// CHECK:         %[[LO:.+]] = arith.constant -8.000000e+00 : f32
// CHECK:         %[[HI:.+]] = arith.constant 8.000000e+00 : f32
// CHECK:         %[[C0:.+]] = arith.maximumf %[[S]], %[[LO]]
// CHECK:         %[[C:.+]] = arith.minimumf %[[C0]], %[[HI]]
// CHECK:         %[[P:.+]] = math.exp2 %[[C]]
// CHECK:         arith.shrsi %[[I]]
// CHECK:         arith.shrsi %[[J]]
// CHECK:         %[[W:.+]] = math.exp2
// CHECK:         arith.mulf %[[P]], %[[W]]
// CHECK:         %[[GP:.+]] = arith.mulf %[[G]], %[[W]] : f32
// CHECK:         %[[LN2:.+]] = arith.constant 0.693147182 : f32
// CHECK:         %[[DP:.+]] = arith.mulf %[[P]], %[[LN2]] : f32
// CHECK:         %[[GC:.+]] = arith.mulf %[[GP]], %[[DP]] : f32
// CHECK:         %[[INHI:.+]] = arith.cmpf ole, %[[C0]], %[[HI]] : f32
// CHECK:         %[[Z:.+]] = arith.constant 0.000000e+00 : f32
// CHECK:         %[[GC0:.+]] = arith.select %[[INHI]], %[[GC]], %[[Z]] : f32
// CHECK:         %[[INLO:.+]] = arith.cmpf oge, %[[S]], %[[LO]] : f32
// CHECK:         %[[DS:.+]] = arith.select %[[INLO]], %[[GC0]], %{{.+}} : f32
// CHECK-NOT:     math.exp2
// CHECK:         return %[[DS]] : f32
