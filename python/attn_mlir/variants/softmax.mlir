// softmax: scaled dot-product attention with no mask (encoders,
// cross-attention, vision transformers).
//
//   s_ij = q_i . k_j / sqrt(D)
//   O_i  = sum_j exp(s_ij) v_j / sum_j exp(s_ij)
//
// Vaswani et al., "Attention Is All You Need", NeurIPS 2017
// (arXiv:1706.03762).
//
// Like every variant of this library it is shape-independent: the same
// variant serves multi-head (Hkv = Hq), grouped-query (Hq = G * Hkv) and
// multi-query (Hkv = 1) attention; the shapes of q, k and v decide.
attn.variant @softmax normalize<softmax>
