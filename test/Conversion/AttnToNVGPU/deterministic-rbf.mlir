// RUN: attn-opt %s --attn-select-kernel-config="deterministic=true" --attn-to-nvgpu | FileCheck %s

// RBF (wgmma): each warp's dQ row sums go to its padding column of the dQ
// tile (no atomic), added in turn with the tile; the postprocess sums the
// columns in order.
// CHECK-LABEL: gpu.func @rbf(
// CHECK-NOT: memref.atomic_rmw addf
// CHECK: gpu.func @rbf_post(
// CHECK-COUNT-8: memref.load %arg0
func.func @rbf(%q: tensor<?x?x?x64xbf16>, %o: tensor<?x?x?x64xbf16>, %lse: tensor<?x?x?xf32>)
    -> (tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %o, %o lse(%lse : tensor<?x?x?xf32>)
      score<rbf> mask = [#attn.causal]
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>,
        tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
      -> tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
  return %dq, %dk, %dv : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
}

