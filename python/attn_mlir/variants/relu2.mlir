// relu2: squared-ReLU attention weights, no normalization over the row.
//
//   p_ij = max(q_i . k_j / sqrt(D), 0)^2
//   O_i  = sum_j p_ij v_j
//
// Hua et al., "Transformer Quality in Linear Time", ICML 2022
// (arXiv:2202.10447), whose gated attention unit uses relu^2 weights. The
// weights are not normalized, so the output grows with the number of keys;
// the paper divides the scores by the sequence length (choose `scale`
// accordingly).
attn.variant @relu2 normalize<relu2>
