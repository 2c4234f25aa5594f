// Edge: an attn.attention_grad (sinks, a floating and an integer capture,
// dlse) beside a forward op; attn-to-cpu must refuse it with a diagnostic.
func.func @f(%q: tensor<1x2x3x4xf32>, %lse: tensor<1x2x3xf32>, %sl: tensor<2xf32>, %sr: tensor<2x1x4xf32>, %seg: tensor<1x3xi32>, %t: tensor<2xf32>) -> (tensor<1x2x3x4xf32>, tensor<2xf32>) {
  %o = attn.attention %q, %q, %q : tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32> -> tensor<1x2x3x4xf32>
  %dq, %dk, %dv, %dsl, %dsk, %dsv, %dt = attn.attention_grad %q, %q, %q, %o, %o lse(%lse : tensor<1x2x3xf32>) grad_lse(%lse : tensor<1x2x3xf32>) captures(%seg, %t : tensor<1x3xi32>, tensor<2xf32>) sink_logits(%sl : tensor<2xf32>) sink_rows(%sr, %sr : tensor<2x1x4xf32>, tensor<2x1x4xf32>) mask = [#attn.document<q_segments = 0, kv_segments = 0>]
      : tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32> -> tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>, tensor<2xf32>, tensor<2x1x4xf32>, tensor<2x1x4xf32>, tensor<2xf32>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index, %sg: tensor<1x3xi32>, %m: tensor<2xf32>):
    %x = tensor.extract %m[%h] : tensor<2xf32>
    %r = arith.mulf %s, %x : f32
    attn.yield %r : f32
  }
  return %dq, %dt : tensor<1x2x3x4xf32>, tensor<2xf32>
}
