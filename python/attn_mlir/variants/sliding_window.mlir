// sliding_window: causal local attention; query i sees the 128 keys
// i - 127 <= j <= i.
//
//   s_ij = q_i . k_j / sqrt(D)           for i - W < j <= i, W = 128
//   O_i  = softmax over those keys, applied to v
//
// Beltagy et al., "Longformer: The Long-Document Transformer", 2020
// (arXiv:2004.05150); Jiang et al., "Mistral 7B", 2023 (arXiv:2310.06825)
// uses W = 4096; the banded layers of gpt-oss (OpenAI, "gpt-oss-120b &
// gpt-oss-20b Model Card", 2025, arXiv:2508.10925) use W = 128, the width of
// this file. The window is fixed in the variant: copy the file and change
// `left` (= W - 1) for another width.
attn.variant @sliding_window mask = [#attn.causal, #attn.sliding_window<left = 127>]
    normalize<softmax>
