// Edge: a sequence length near 2^62, the verifier and both lowerings must not overflow computing tile counts.
func.func @f(%q: tensor<1x1x4611686018427387904x16xf32>, %k: tensor<1x1x4611686018427387904x16xf32>, %v: tensor<1x1x4611686018427387904x16xf32>) -> (tensor<1x1x4611686018427387904x16xf32>, tensor<1x1x4611686018427387904xf32>) {
  %o, %lse = attn.attention %q, %k, %v mask = [#attn.causal]
      : tensor<1x1x4611686018427387904x16xf32>, tensor<1x1x4611686018427387904x16xf32>, tensor<1x1x4611686018427387904x16xf32> -> tensor<1x1x4611686018427387904x16xf32>, tensor<1x1x4611686018427387904xf32>
  return %o, %lse : tensor<1x1x4611686018427387904x16xf32>, tensor<1x1x4611686018427387904xf32>
}
