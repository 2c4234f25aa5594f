// prev_token_mean: a fixed "previous token" head with average context:
// query i takes the plain mean of the values at i - 1 and i (position 0,
// which has no predecessor, takes its own value). The scores do not matter.
//
//   visible(i, j) = i - 1 <= j <= i
//   O_i = (1 / n_i) sum_{visible j} v_j,   n_i = 2 (1 for i = 0)
//
// Previous-token heads: Olsson et al., "In-context Learning and Induction
// Heads", Transformer Circuits Thread, 2022 (arXiv:2209.11895); here built
// in rather than learned.
attn.variant @prev_token_mean mask = [#attn.causal, #attn.sliding_window<left = 1>]
    normalize<mean>
