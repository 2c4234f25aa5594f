// RUN: attn-opt %s --split-input-file --attn-to-flash="q-tile=4 kv-tile=5" --canonicalize --cse | FileCheck %s

// The backward in the FlashAttention-2 order: a preprocess writes
// D = rowsum(dO * O) per query; then per (b, kv head, KV tile) the tile's
// dK and dV accumulate in tile-sized buffers while the loops visit the query
// heads of the group and the q-tiles, skipping those the masks hide the tile
// from and running mask code only on blocks that are not fully visible; per
// query row, p = exp(s - lse) and dS = p (dP - D) of the tile's keys only
// (tensor<kv-tile x f32>), dQ accumulates in place; the tile's dK and dV are
// added to the results after the q-tiles.

// CHECK-LABEL: func.func @causal
// CHECK-SAME: (%[[Q:[^:]+]]: tensor<2x4x9x8xf32>, %[[K:[^:]+]]: tensor<2x2x11x8xf32>, %[[V:[^:]+]]: tensor<2x2x11x4xf32>, %[[O:[^:]+]]: tensor<2x4x9x4xf32>, %[[DO:[^:]+]]: tensor<2x4x9x4xf32>, %[[LSE:[^:]+]]: tensor<2x4x9xf32>)
// CHECK-DAG: %[[C3:.+]] = arith.constant 3 : index
// CHECK-DAG: %[[C5:.+]] = arith.constant 5 : index
// The preprocess: D per query.
// CHECK: %[[D:.+]] = scf.for {{.+}} -> (tensor<2x4x9xf32>)
// CHECK: tensor.extract %[[O]]
// CHECK: tensor.extract %[[DO]]
// CHECK: tensor.insert {{.+}} : tensor<2x4x9xf32>
// The main loops: batch, kv head, ceil(11 / 5) = 3 KV tiles.
// CHECK: scf.for %[[B:[a-z0-9_]+]] =
// CHECK: scf.for %[[HK:[a-z0-9_]+]] =
// CHECK: scf.for %[[T:[a-z0-9_]+]] = %{{.+}} to %[[C3]]
// CHECK: %[[J0:.+]] = arith.muli %[[T]], %[[C5]] : index
// CHECK: %[[DKT:.+]] = scf.for {{.+}} -> (tensor<5x8xf32>)
// CHECK: %[[DVT:.+]] = scf.for {{.+}} -> (tensor<5x4xf32>)
// The query heads of the group, then ceil(9 / 4) = 3 q-tiles.
// CHECK: %[[TILES:.+]]:3 = scf.for %[[G:[a-z0-9_]+]] = {{.+}} iter_args(%{{.+}} = %[[DKT]], %{{.+}} = %[[DVT]], %{{.+}})
// CHECK: scf.for {{.+}} to %[[C3]]
// CHECK: %[[HQ:.+]] = arith.addi %{{.+}}, %[[G]] : index
// Skipped unless the q-tile's visible KV range meets the tile; masked
// unless the block is fully visible.
// CHECK: %[[SEES:.+]] = arith.andi
// CHECK: %[[FULL:.+]] = arith.cmpi sle
// CHECK: scf.if %[[SEES]] -> (tensor<5x8xf32>, tensor<5x4xf32>, tensor<2x4x9x8xf32>)
// CHECK: scf.if %[[FULL]] -> (tensor<5x8xf32>, tensor<5x4xf32>, tensor<2x4x9x8xf32>)
// A fully visible block: no mask code, p from lse, dS from D.
// CHECK: scf.for %[[I:[a-z0-9_]+]] =
// CHECK: %[[L:.+]] = tensor.extract %[[LSE]][%[[B]], %[[HQ]], %[[I]]]
// CHECK: %[[DI:.+]] = tensor.extract %[[D]][%[[B]], %[[HQ]], %[[I]]]
// CHECK: %[[ROW:.+]]:2 = scf.for {{.+}} -> (tensor<5xf32>, tensor<5xf32>)
// CHECK-NOT: arith.cmpi sle
// CHECK: tensor.extract %[[K]][%[[B]], %[[HK]], %{{.+}}, %{{.+}}]
// CHECK: arith.subf %{{.+}}, %[[L]] : f32
// CHECK: %[[P:.+]] = math.exp
// CHECK: tensor.extract %[[V]][%[[B]], %[[HK]], %{{.+}}, %{{.+}}]
// CHECK: %[[DPD:.+]] = arith.subf %{{.+}}, %[[DI]] : f32
// CHECK: arith.mulf %[[P]], %[[DPD]] : f32
// dV, dK of the tile, then dQ of the row.
// CHECK: tensor.extract %[[ROW]]#0
// CHECK: tensor.insert {{.+}} : tensor<5x4xf32>
// CHECK: tensor.extract %[[ROW]]#1
// CHECK: tensor.insert {{.+}} : tensor<5x8xf32>
// CHECK: tensor.insert {{.+}} : tensor<2x4x9x8xf32>
// A partially visible block: the causal mask per element.
// CHECK: } else {
// CHECK: arith.cmpi sle
// CHECK: math.exp
// CHECK: arith.select
// A q-tile that cannot see the tile passes its state through.
// CHECK: } else {
// CHECK-NEXT: scf.yield
// After the q-tiles: the tile's dK and dV into the results.
// CHECK: tensor.extract %[[TILES]]#0
// CHECK: tensor.insert {{.+}} : tensor<2x2x11x8xf32>
// CHECK: tensor.extract %[[TILES]]#1
// CHECK: tensor.insert {{.+}} : tensor<2x2x11x4xf32>
// The postprocess: the scale on dq and dk.
// CHECK: arith.mulf
// CHECK: return
func.func @causal(%q: tensor<2x4x9x8xf32>, %k: tensor<2x2x11x8xf32>,
                  %v: tensor<2x2x11x4xf32>, %o: tensor<2x4x9x4xf32>,
                  %do: tensor<2x4x9x4xf32>, %lse: tensor<2x4x9xf32>)
    -> (tensor<2x4x9x8xf32>, tensor<2x2x11x8xf32>, tensor<2x2x11x4xf32>) {
  %dq, %dk, %dv = attn.attention_grad %q, %k, %v, %o, %do
      lse(%lse : tensor<2x4x9xf32>) mask = [#attn.causal]
      : tensor<2x4x9x8xf32>, tensor<2x2x11x8xf32>, tensor<2x2x11x4xf32>,
        tensor<2x4x9x4xf32>, tensor<2x4x9x4xf32>
      -> tensor<2x4x9x8xf32>, tensor<2x2x11x8xf32>, tensor<2x2x11x4xf32>
  return %dq, %dk, %dv
      : tensor<2x4x9x8xf32>, tensor<2x2x11x8xf32>, tensor<2x2x11x4xf32>
}

// -----

// The sink rows are one tile per kv head, visited by every batch and query
// head of the group, never masked; their dK and dV go to the sink rows'
// gradients. Without masks no tile is skipped or masked.

// CHECK-LABEL: func.func @sink_rows
// CHECK-SAME: %[[SK:[^:]+]]: tensor<2x3x8xf32>, %[[SV:[^:]+]]: tensor<2x3x4xf32>)
// CHECK-NOT: scf.if
// The sink tiles: kv head, then batch.
// CHECK: %[[SINKS:.+]]:3 = scf.for %[[HK:[a-z0-9_]+]] =
// CHECK: tensor.empty() : tensor<3x8xf32>
// CHECK: tensor.empty() : tensor<3x4xf32>
// CHECK: scf.for %[[B:[a-z0-9_]+]] =
// CHECK: tensor.empty() : tensor<3xf32>
// CHECK: tensor.extract %[[SK]][%[[HK]], %{{.+}}, %{{.+}}] : tensor<2x3x8xf32>
// CHECK: tensor.extract %[[SV]][%[[HK]], %{{.+}}, %{{.+}}] : tensor<2x3x4xf32>
// CHECK: tensor.insert {{.+}}[%[[HK]], %{{.+}}, %{{.+}}] : tensor<2x3x8xf32>
// CHECK: tensor.insert {{.+}}[%[[HK]], %{{.+}}, %{{.+}}] : tensor<2x3x4xf32>
// CHECK: return {{.+}}, %[[SINKS]]#2
func.func @sink_rows(%q: tensor<2x4x9x8xf32>, %k: tensor<2x2x11x8xf32>,
                     %v: tensor<2x2x11x4xf32>, %o: tensor<2x4x9x4xf32>,
                     %do: tensor<2x4x9x4xf32>, %lse: tensor<2x4x9xf32>,
                     %sk: tensor<2x3x8xf32>, %sv: tensor<2x3x4xf32>)
    -> (tensor<2x4x9x8xf32>, tensor<2x2x11x8xf32>, tensor<2x2x11x4xf32>,
        tensor<2x3x8xf32>, tensor<2x3x4xf32>) {
  %dq, %dk, %dv, %dsk, %dsv = attn.attention_grad %q, %k, %v, %o, %do
      lse(%lse : tensor<2x4x9xf32>)
      sink_rows(%sk, %sv : tensor<2x3x8xf32>, tensor<2x3x4xf32>)
      : tensor<2x4x9x8xf32>, tensor<2x2x11x8xf32>, tensor<2x2x11x4xf32>,
        tensor<2x4x9x4xf32>, tensor<2x4x9x4xf32>
      -> tensor<2x4x9x8xf32>, tensor<2x2x11x8xf32>, tensor<2x2x11x4xf32>,
         tensor<2x3x8xf32>, tensor<2x3x4xf32>
  return %dq, %dk, %dv, %dsk, %dsv
      : tensor<2x4x9x8xf32>, tensor<2x2x11x8xf32>, tensor<2x2x11x4xf32>,
        tensor<2x3x8xf32>, tensor<2x3x4xf32>
}
