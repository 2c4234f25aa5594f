// RUN: attn-opt %s --split-input-file --attn-to-flash="q-tile=4 kv-tile=8" --canonicalize --cse | FileCheck %s

// A mask region is evaluated over each KV tile by interval arithmetic
// (RegionIntervals.cpp): here keys past a per-batch length, the capture
// read once per tile at the batch index. A tile it proves hidden keeps the
// online-softmax state (the first branch yields the loop's values
// unchanged); one it proves visible takes the unmasked tile code; the rest
// evaluate the region per element.
// CHECK-LABEL: func.func @padding
// CHECK: %[[N:.+]] = tensor.extract %{{.+}}[%{{.+}}] : tensor<2xindex>
// CHECK: arith.cmpi sle, %[[N]], %{{.+}} : index
// CHECK: scf.if %{{.+}} -> (tensor<4xf32>, tensor<4xf32>, tensor<4x32xf32>) {
// CHECK-NEXT: scf.yield %arg{{[0-9]+}}, %arg{{[0-9]+}}, %arg{{[0-9]+}} : tensor<4xf32>, tensor<4xf32>, tensor<4x32xf32>
// CHECK-NEXT: } else {
// CHECK-NEXT: scf.if
// The per-element branch still evaluates the region.
// CHECK: arith.cmpi ult, %{{.+}}, %[[N]] : index
func.func @padding(%q: tensor<2x4x16x32xf32>, %k: tensor<2x4x16x32xf32>,
                   %v: tensor<2x4x16x32xf32>, %lens: tensor<2xindex>)
    -> tensor<2x4x16x32xf32> {
  %o = attn.attention %q, %k, %v captures(%lens : tensor<2xindex>)
      : tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>
      -> tensor<2x4x16x32xf32>
      mask_mod {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %l: tensor<2xindex>):
    %n = tensor.extract %l[%b] : tensor<2xindex>
    %p = arith.cmpi ult, %j, %n : index
    attn.yield %p : i1
  }
  return %o : tensor<2x4x16x32xf32>
}

// -----

// A region the analysis cannot bound (a float comparison of a capture read
// at the key) decides no tile: both facts are false constants after
// canonicalization, so every tile takes the per-element branch.
// CHECK-LABEL: func.func @unknown
// CHECK-NOT: tensor.extract %{{.+}}[%{{.+}}] : tensor<16xf32>
// CHECK: scf.for
// CHECK: tensor.extract %{{.+}}[%{{.+}}] : tensor<16xf32>
func.func @unknown(%q: tensor<1x1x16x32xf32>, %k: tensor<1x1x16x32xf32>,
                   %v: tensor<1x1x16x32xf32>, %w: tensor<16xf32>)
    -> tensor<1x1x16x32xf32> {
  %o = attn.attention %q, %k, %v captures(%w : tensor<16xf32>)
      : tensor<1x1x16x32xf32>, tensor<1x1x16x32xf32>, tensor<1x1x16x32xf32>
      -> tensor<1x1x16x32xf32>
      mask_mod {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %c: tensor<16xf32>):
    %x = tensor.extract %c[%j] : tensor<16xf32>
    %z = arith.constant 0.0 : f32
    %p = arith.cmpf ogt, %x, %z : f32
    attn.yield %p : i1
  }
  return %o : tensor<1x1x16x32xf32>
}

// -----

// Document masks: each KV tile's segment ids are summarized as (min, max)
// loops over the queries and the keys of the tile; a tile whose intervals
// do not meet keeps the state, one where both sides hold the same single
// id takes the unmasked tile code, the rest compare ids per element.
// CHECK-LABEL: func.func @documents
// CHECK: scf.for {{.+}} iter_args(%{{.+}} = %[[F:.+]], %{{.+}} = %[[F]]) -> (i32, i32)
// CHECK: arith.minsi {{.+}} : i32
// CHECK: arith.maxsi {{.+}} : i32
// CHECK: arith.cmpi slt, {{.+}} : i32
// CHECK: scf.if %{{.+}} -> (tensor<4xf32>, tensor<4xf32>, tensor<4x32xf32>) {
// CHECK-NEXT: scf.yield %arg{{[0-9]+}}, %arg{{[0-9]+}}, %arg{{[0-9]+}} : tensor<4xf32>, tensor<4xf32>, tensor<4x32xf32>
// CHECK-NEXT: } else {
// CHECK-NEXT: scf.if
func.func @documents(%q: tensor<2x4x16x32xf32>, %k: tensor<2x4x16x32xf32>,
                     %v: tensor<2x4x16x32xf32>, %seg: tensor<2x16xi32>)
    -> tensor<2x4x16x32xf32> {
  %o = attn.attention %q, %k, %v captures(%seg : tensor<2x16xi32>)
      mask = [#attn.document<q_segments = 0, kv_segments = 0>]
      : tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>
      -> tensor<2x4x16x32xf32>
  return %o : tensor<2x4x16x32xf32>
}
