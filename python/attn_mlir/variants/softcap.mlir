// softcap: logit soft-capping; the scores are squashed smoothly into
// (-30, 30) before a causal softmax.
//
//   s_ij = 30 * tanh((q_i . k_j / sqrt(D)) / 30)    for j <= i
//   O_i  = softmax over j <= i, applied to v
//
// Gemma Team, "Gemma 2: Improving Open Language Models at a Practical
// Size", 2024 (arXiv:2408.00118), caps attention logits this way (with a
// cap of 50; its final logits use 30). This file uses 30, the cap of the
// bench's softcap case (bench/cases.py); copy it and change the constant for
// another cap.
attn.variant @softcap mask = [#attn.causal] normalize<softmax> score_mod {
^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
  %cap = arith.constant 30.0 : f32
  %x = arith.divf %s, %cap : f32
  %t = math.tanh %x : f32
  %r = arith.mulf %t, %cap : f32
  attn.yield %r : f32
}
