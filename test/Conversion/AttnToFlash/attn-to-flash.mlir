// RUN: attn-opt %s --split-input-file --attn-to-flash="q-tile=4 kv-tile=8" --canonicalize | FileCheck %s

// The tiled online form: q-tiles of 4 rows, KV tiles of 8 keys; a running
// max and normalizer per row; for a causal mask the KV range of a q-tile
// ends at its last row, and only tiles that are not fully visible run mask
// code (scf.if on the block test).

// CHECK-LABEL: func.func @causal
// CHECK-DAG: %[[C4:.+]] = arith.constant 4 : index
// CHECK-DAG: %[[C8:.+]] = arith.constant 8 : index
// CHECK: scf.for %[[T:[a-z0-9_]+]] = {{.+}} to %{{.+}} step
// CHECK: %[[I0:.+]] = arith.muli %[[T]], %[[C4]] : index
// The online state: max, normalizer, accumulator rows.
// CHECK: tensor.empty() : tensor<4xf32>
// CHECK: tensor.empty() : tensor<4xf32>
// CHECK: tensor.empty() : tensor<4x16xf32>
// KV tiles, each either fully visible (no mask code) or masked.
// CHECK: scf.for {{.+}} -> (tensor<4xf32>, tensor<4xf32>, tensor<4x16xf32>)
// CHECK: %[[FULL:.+]] = arith.cmpi sle
// CHECK: scf.if %[[FULL]] -> (tensor<4xf32>, tensor<4xf32>, tensor<4x16xf32>)
// CHECK: arith.maximumf
// CHECK: math.exp
// CHECK: } else {
// CHECK: arith.cmpi sle
// CHECK: arith.select
// CHECK: math.exp
func.func @causal(%q: tensor<1x1x13x16xf32>, %k: tensor<1x1x13x16xf32>, %v: tensor<1x1x13x16xf32>) -> tensor<1x1x13x16xf32> {
  %o = attn.attention %q, %k, %v mask = [#attn.causal]
      : tensor<1x1x13x16xf32>, tensor<1x1x13x16xf32>, tensor<1x1x13x16xf32> -> tensor<1x1x13x16xf32>
  return %o : tensor<1x1x13x16xf32>
}

// -----

// No mask: no block test, one unmasked tile body.
// CHECK-LABEL: func.func @unmasked
// CHECK-NOT: scf.if
// CHECK: return
func.func @unmasked(%q: tensor<1x1x13x16xf32>, %k: tensor<1x1x13x16xf32>, %v: tensor<1x1x13x16xf32>) -> tensor<1x1x13x16xf32> {
  %o = attn.attention %q, %k, %v
      : tensor<1x1x13x16xf32>, tensor<1x1x13x16xf32>, tensor<1x1x13x16xf32> -> tensor<1x1x13x16xf32>
  return %o : tensor<1x1x13x16xf32>
}

// -----

// RBF under softmax: the key norms once per KV tile into a tensor<8xf32>,
// the query norms once per q-tile into a tensor<4xf32>; scores as
// 2*gamma*q.k - gamma*|k|^2 (gamma = 1/(2*sqrt(16)) = 0.125, so 2*gamma =
// 0.25), the |q|^2 term dropped from the scores but subtracted from the LSE.
// CHECK-LABEL: func.func @rbf
// CHECK-DAG: %[[TWOGAMMA:.+]] = arith.constant 2.500000e-01 : f32
// CHECK-DAG: %[[GAMMA:.+]] = arith.constant 1.250000e-01 : f32
// CHECK: %[[QN:.+]] = scf.for {{.+}} -> (tensor<4xf32>)
// CHECK: arith.mulf %{{.+}}, %[[GAMMA]] : f32
// CHECK: %[[KN:.+]] = scf.for {{.+}} -> (tensor<8xf32>)
// CHECK: %[[KNJ:.+]] = tensor.extract %[[KN]]
// CHECK: %[[S:.+]] = arith.mulf %{{.+}}, %[[TWOGAMMA]] : f32
// CHECK-NEXT: arith.subf %[[S]], %[[KNJ]] : f32
// CHECK: tensor.extract %[[QN]]
func.func @rbf(%q: tensor<1x1x13x16xf32>, %k: tensor<1x1x13x16xf32>, %v: tensor<1x1x13x16xf32>) -> (tensor<1x1x13x16xf32>, tensor<1x1x13xf32>) {
  %o, %lse = attn.attention %q, %k, %v score<rbf>
      : tensor<1x1x13x16xf32>, tensor<1x1x13x16xf32>, tensor<1x1x13x16xf32> -> tensor<1x1x13x16xf32>, tensor<1x1x13xf32>
  return %o, %lse : tensor<1x1x13x16xf32>, tensor<1x1x13xf32>
}

// -----

// Learned sink rows are one tile of their own, whatever their number: with
// 64 sink rows and KV tiles of 8 keys, the sink tile's per-key buffers hold
// 64 values (they once held 8 and the lowering wrote past them).
// CHECK-LABEL: func.func @many_sink_rows
// CHECK-DAG: %[[C64:.+]] = arith.constant 64 : index
// CHECK: tensor.empty() : tensor<64xf32>
// CHECK: scf.for %{{.+}} = %{{.+}} to %[[C64]] step %{{.+}} -> (tensor<64xf32>, f32)
func.func @many_sink_rows(%q: tensor<1x1x1x16xf32>, %k: tensor<1x1x1x16xf32>, %v: tensor<1x1x1x16xf32>,
                          %sk: tensor<1x64x16xf32>, %sv: tensor<1x64x16xf32>) -> tensor<1x1x1x16xf32> {
  %o = attn.attention %q, %k, %v sink_rows(%sk, %sv : tensor<1x64x16xf32>, tensor<1x64x16xf32>)
      : tensor<1x1x1x16xf32>, tensor<1x1x1x16xf32>, tensor<1x1x1x16xf32> -> tensor<1x1x1x16xf32>
  return %o : tensor<1x1x1x16xf32>
}

// -----

// A dynamic number of sink rows: the sink tile's buffers take it.
// CHECK-LABEL: func.func @dynamic_sink_rows
// CHECK: %[[NS:.+]] = tensor.dim %{{.+}}, %{{.+}} : tensor<1x?x16xf32>
// CHECK: tensor.empty(%[[NS]]) : tensor<?xf32>
func.func @dynamic_sink_rows(%q: tensor<1x1x1x16xf32>, %k: tensor<1x1x1x16xf32>, %v: tensor<1x1x1x16xf32>,
                             %sk: tensor<1x?x16xf32>, %sv: tensor<1x?x16xf32>) -> tensor<1x1x1x16xf32> {
  %o = attn.attention %q, %k, %v sink_rows(%sk, %sv : tensor<1x?x16xf32>, tensor<1x?x16xf32>)
      : tensor<1x1x1x16xf32>, tensor<1x1x1x16xf32>, tensor<1x1x1x16xf32> -> tensor<1x1x1x16xf32>
  return %o : tensor<1x1x1x16xf32>
}
