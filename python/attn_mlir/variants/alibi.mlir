// alibi: Attention with Linear Biases. Each head adds a penalty linear in
// the distance to the key, with a fixed per-head slope m_h, and no position
// embeddings are used.
//
//   s_ij = q_i . k_j / sqrt(D) + m_h * (j - i)      for j <= i
//   O_i  = softmax over j <= i, applied to v
//   m_h  = 2^(-8 (h + 1) / Hq)  (Hq a power of two)
//
// Press et al., "Train Short, Test Long: Attention with Linear Biases
// Enables Input Length Extrapolation", ICLR 2022 (arXiv:2108.12409).
// The slopes are captured by the op (any Hq, any slopes):
//
// @capture slopes tensor<?xf32> [Hq]: m_h, the slope of query head h
attn.variant @alibi mask = [#attn.causal] normalize<softmax> score_mod {
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
