// rbf_sink_rows: causal RBF (negative squared distance) attention with
// learned sink rows: Ns extra key/value rows per kv head that every query
// sees. A sink key initialised to zero scores -gamma |q_i|^2, a
// norm-dependent threshold a query must beat to attend to real keys, and a
// zero sink value contributes nothing: the head can attend to "nothing".
//
//   s_ij = -gamma * |q_i - k_j|^2,  gamma = 1 / (2 sqrt(D))   for j <= i
//   s_ir = -gamma * |q_i - K_r|^2                              sink rows r
//   O_i  = (sum_j exp(s_ij) v_j + sum_r exp(s_ir) V_r)
//          / (sum_j exp(s_ij) + sum_r exp(s_ir))
//
// RBF-kernel attention: Tsai et al., "Transformer Dissection: A Unified
// Understanding of Transformer's Attention via the Lens of Kernel", EMNLP
// 2019 (arXiv:1908.11775); Kim et al., "The Lipschitz Constant of
// Self-Attention", ICML 2021 (arXiv:2006.04710). Learned sink tokens: Xiao et
// al., "Efficient Streaming Language Models with Attention Sinks", ICLR 2024
// (arXiv:2309.17453), Sec. 3.3; Darcet et al., "Vision Transformers Need
// Registers", ICLR 2024 (arXiv:2309.16588). The rows are operands of the
// attn.attention op:
//
// @sink_rows [Hkv, Ns, D]: K_r and V_r, the learned key and value rows (zero at initialisation)
attn.variant @rbf_sink_rows score<rbf> mask = [#attn.causal] normalize<softmax>
