// linear: causal linear attention with the elu(x) + 1 feature map, without
// the normalizer.
//
//   phi(x) = x + 1 if x > 0 else exp(x)
//   O_i    = sum_{j<=i} (phi(q_i) . phi(k_j) / sqrt(D)) v_j
//
// Katharopoulos et al., "Transformers are RNNs: Fast Autoregressive
// Transformers with Linear Attention", ICML 2020 (arXiv:2006.16236). The
// paper divides by phi(q_i) . sum_{j<=i} phi(k_j); that normalizer is the same
// op applied to v = 1 (a column of ones), so O / Z with Z from a second call.
// normalize<none> computes the numerator exactly as written (the quadratic
// form; the recurrent form is what makes it linear, the values are equal).
// The GPU kernel does not take feature maps yet; the CPU lowerings do.
attn.variant @linear q_map<elu_plus_one> k_map<elu_plus_one>
    mask = [#attn.causal] normalize<none>
