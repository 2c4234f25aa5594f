// streaming_llm: attention sinks plus a recent window (StreamingLLM).
// Query i sees the first 4 tokens (the "attention sinks") and the 252 most
// recent ones, so a KV cache of 4 + 252 = 256 entries serves any length.
//
//   visible(i, j) = j <= i  and  (j < 4  or  i - 251 <= j)
//   O_i = softmax over the visible keys, applied to v
//
// Xiao et al., "Efficient Streaming Language Models with Attention Sinks",
// ICLR 2024 (arXiv:2309.17453). #attn.sink_tokens lets keys j < count
// through the local masks (the window) but not through the global ones
// (causal).
attn.variant @streaming_llm
    mask = [#attn.causal, #attn.sink_tokens<count = 4>,
            #attn.sliding_window<left = 251>]
    normalize<softmax>
