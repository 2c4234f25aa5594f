// document: causal attention over packed sequences. Several documents are
// concatenated into one sequence; a query sees only earlier keys of its own
// document.
//
//   visible(b, i, j) = j <= i  and  seg[b, i] == seg[b, j]
//   O_i = softmax over the visible keys, applied to v
//
// Dubey et al. (Llama Team), "The Llama 3 Herd of Models", 2024
// (arXiv:2407.21783): "an attention mask that prevents self-attention
// between different documents within the same sequence". One capture holds
// the segment ids of both queries and keys, so Sq == Sk:
//
// @capture segment_ids tensor<?x?xi32> [B, Sk]: the document of every position
attn.variant @document
    mask = [#attn.causal, #attn.document<q_segments = 0, kv_segments = 0>]
    normalize<softmax>
