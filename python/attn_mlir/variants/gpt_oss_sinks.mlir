// gpt_oss_sinks: causal softmax attention with a learned sink logit per
// head in the denominator (gpt-oss). The sink takes probability mass but
// contributes no value, so a head can attend to "nothing".
//
//   s_ij = q_i . k_j / sqrt(D)                       for j <= i
//   p_ij = exp(s_ij) / (exp(c_h) + sum_{j'<=i} exp(s_ij'))
//   O_i  = sum_j p_ij v_j
//
// OpenAI, "gpt-oss-120b & gpt-oss-20b Model Card", 2025 (arXiv:2508.10925).
// gpt-oss alternates dense layers (this variant) and banded ones (add
// #attn.sliding_window<left = 127> to the masks). The logits c are operands
// of the attn.attention op, not part of the variant:
//
// @sink_logits [Hq]: c_h, the learned sink logit of query head h (f32)
attn.variant @gpt_oss_sinks mask = [#attn.causal] normalize<softmax>
