// softmax1: "quiet" softmax with an implicit zero logit, so the weights of a
// query may sum to less than one and a head can abstain.
//
//   p_ij = exp(s_ij) / (1 + sum_j' exp(s_ij')),   s_ij = q_i . k_j / sqrt(D)
//   O_i  = sum_j p_ij v_j
//
// Evan Miller, "Attention Is Off By One", 2023 (blog post); equivalently a
// sink logit fixed at 0 (compare gpt_oss_sinks.mlir).
attn.variant @softmax1 normalize<softmax1>
