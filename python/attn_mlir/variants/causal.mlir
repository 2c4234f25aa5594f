// causal: softmax attention of a decoder-only language model; query i sees
// the keys j <= i.
//
//   s_ij = q_i . k_j / sqrt(D)           for j <= i
//   O_i  = sum_{j<=i} exp(s_ij) v_j / sum_{j<=i} exp(s_ij)
//
// Vaswani et al., "Attention Is All You Need", NeurIPS 2017
// (arXiv:1706.03762), masked decoder self-attention.
//
// MHA, GQA and MQA: the variant does not depend on shapes. With
// k, v of Hkv heads and q of Hq = G * Hkv heads, query head h reads key/value
// head h / G: Hkv = Hq is multi-head attention, 1 < Hkv < Hq grouped-query
// attention (Ainslie et al., "GQA: Training Generalized Multi-Query
// Transformer Models from Multi-Head Checkpoints", EMNLP 2023,
// arXiv:2305.13245), Hkv = 1 multi-query attention (Shazeer, "Fast
// Transformer Decoding: One Write-Head is All You Need", 2019,
// arXiv:1911.02150). The Python library therefore names this same file
// `gqa_causal` and `mqa_causal` too (aliases, not copies).
//
// For decoding against a KV cache (Sq < Sk) use #attn.causal<bottom_right>,
// which lines the last query up with the last key.
attn.variant @causal mask = [#attn.causal] normalize<softmax>
