// scalable_softmax: Scalable-Softmax (SSMax). The scores are multiplied by
// s * log(n), n the number of keys the query sees, so that the attention
// distribution does not flatten as the context grows.
//
//   s_ij = q_i . k_j / sqrt(D)
//   p_ij = exp(s * log(n) * s_ij) / sum_j' exp(s * log(n) * s_ij'),  s = 0.5
//   O_i  = sum_j p_ij v_j
//
// Nakanishi, "Scalable-Softmax Is Superior for Attention", 2025
// (arXiv:2501.19399). The paper learns s per head; here it is the fixed
// `length_scale` of the variant.
attn.variant @scalable_softmax normalize<scalable_softmax> length_scale = 0.5
