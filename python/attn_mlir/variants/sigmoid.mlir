// sigmoid: sigmoid attention; every key gets an independent weight in
// (0, 1), no normalization over the row.
//
//   p_ij = sigmoid(q_i . k_j / sqrt(D) + b),   b = -log(1024)
//   O_i  = sum_j p_ij v_j
//
// Ramapuram et al., "Theory, Analysis, and Best Practices for Sigmoid
// Self-Attention", 2024 (arXiv:2409.04431), which sets b = -log(n) for
// sequences of length n; this file fixes n = 1024.
attn.variant @sigmoid normalize<sigmoid> bias = -6.931471805599453
