// prefix_lm: prefix language model. The first 64 positions (the prompt, an
// image's tokens) attend to each other bidirectionally; the positions after
// them attend causally to everything before.
//
//   visible(i, j) = j < 64  or  j <= i
//   O_i = softmax over the visible keys, applied to v
//
// Raffel et al., "Exploring the Limits of Transfer Learning with a Unified
// Text-to-Text Transformer", JMLR 2020 (arXiv:1910.10683), Sec. 3.2. The
// prefix length is fixed in the variant: copy the file and change `prefix`.
attn.variant @prefix_lm mask = [#attn.prefix_lm<prefix = 64>] normalize<softmax>
