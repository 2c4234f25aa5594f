// RUN: attn-opt %s --split-input-file --verify-diagnostics

// The verifier of attn.attention_grad, one rule per split. The rules on q, k,
// v, the sinks and the specification are attn.attention's (invalid.mlir
// covers them one by one; a few are repeated here to show that they run).
// Unless a case says otherwise q = k = v = O = dO = tensor<1x4x16x32xf32>
// (B = 1, H = 4, S = 16, D = 32) and lse = tensor<1x4x16xf32>.

//===----------------------------------------------------------------------===//
// ODS-level constraints
//===----------------------------------------------------------------------===//

func.func @grad_output_not_float(%q: tensor<1x4x16x32xf32>, %do: tensor<1x4x16x32xi32>, %lse: tensor<1x4x16xf32>) {
  // expected-error @+1 {{operand #4 must be ranked tensor of 16-bit float or bfloat16 type or 32-bit float values, but got 'tensor<1x4x16x32xi32>'}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %do
      lse(%lse : tensor<1x4x16xf32>)
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
        tensor<1x4x16x32xf32>, tensor<1x4x16x32xi32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
  return
}

// -----

func.func @lse_not_f32(%q: tensor<1x4x16x32xf32>, %lse: tensor<1x4x16xf16>) {
  // expected-error @+1 {{operand #5 must be ranked tensor of 32-bit float values, but got 'tensor<1x4x16xf16>'}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %q
      lse(%lse : tensor<1x4x16xf16>)
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
        tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// Rules shared with attn.attention
//===----------------------------------------------------------------------===//

func.func @key_heads_not_divisor(%q: tensor<1x4x16x32xf32>, %k: tensor<1x3x16x32xf32>, %lse: tensor<1x4x16xf32>) {
  // expected-error @+1 {{query heads (4) must be a multiple of key/value heads (3)}}
  %dq, %dk, %dv = attn.attention_grad %q, %k, %k, %q, %q
      lse(%lse : tensor<1x4x16xf32>)
      : tensor<1x4x16x32xf32>, tensor<1x3x16x32xf32>, tensor<1x3x16x32xf32>,
        tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x3x16x32xf32>, tensor<1x3x16x32xf32>
  return
}

// -----

func.func @sink_logits_shape(%q: tensor<1x4x16x32xf32>, %lse: tensor<1x4x16xf32>, %sl: tensor<3xf32>) {
  // expected-error @+1 {{'sink_logits' must have shape [Hq] = [4], got 'tensor<3xf32>'}}
  %dq, %dk, %dv, %dsl = attn.attention_grad %q, %q, %q, %q, %q
      lse(%lse : tensor<1x4x16xf32>) sink_logits(%sl : tensor<3xf32>)
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
        tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
         tensor<3xf32>
  return
}

// -----

attn.variant @v mask = [#attn.causal]

func.func @variant_and_inline_spec(%q: tensor<1x4x16x32xf32>, %lse: tensor<1x4x16xf32>) {
  // expected-error @+1 {{references variant @v and also gives a specification inline; give one or the other}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %q
      lse(%lse : tensor<1x4x16xf32>) variant @v mask = [#attn.causal]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
        tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
  return
}

// -----

func.func @spec_rule(%q: tensor<1x4x16x32xf32>) {
  // expected-error @+1 {{'score_mod' has no effect under normalize<mean>, which ignores scores}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %q
      normalize<mean>
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
        tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    attn.yield %s : f32
  }
  return
}

// -----

func.func @sink_logits_under_relu(%q: tensor<1x4x16x32xf32>, %sl: tensor<4xf32>) {
  // expected-error @+1 {{'sink_logits' has no use under normalize<relu>; they join a softmax denominator}}
  %dq, %dk, %dv, %dsl = attn.attention_grad %q, %q, %q, %q, %q
      sink_logits(%sl : tensor<4xf32>) normalize<relu>
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
        tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
         tensor<4xf32>
  return
}

// -----

attn.variant @scaled score_mod {
^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index, %t: tensor<?xf32>):
  attn.yield %s : f32
}

func.func @captures_against_regions(%q: tensor<1x4x16x32xf32>, %lse: tensor<1x4x16xf32>) {
  // expected-error @+1 {{the variant @scaled regions take 1 captured operands but the op passes 0}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %q
      lse(%lse : tensor<1x4x16xf32>) variant @scaled
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
        tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
  return
}

// -----

func.func @variant_missing(%q: tensor<1x4x16x32xf32>, %lse: tensor<1x4x16xf32>) {
  // expected-error @+1 {{'variant' references @nowhere, which does not exist}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %q
      lse(%lse : tensor<1x4x16xf32>) variant @nowhere
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
        tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// O and dO
//===----------------------------------------------------------------------===//

func.func @output_shape(%q: tensor<1x4x16x32xf32>, %o: tensor<1x4x8x32xf32>, %lse: tensor<1x4x16xf32>) {
  // expected-error @+1 {{'output' must have shape [B, Hq, Sq, Dv] = [1, 4, 16, 32], got 'tensor<1x4x8x32xf32>'}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %o, %q
      lse(%lse : tensor<1x4x16xf32>)
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
        tensor<1x4x8x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
  return
}

// -----

func.func @output_element_type(%q: tensor<1x4x16x32xf32>, %o: tensor<1x4x16x32xf16>, %lse: tensor<1x4x16xf32>) {
  // expected-error @+1 {{'output' element type 'f16' differs from the 'query' element type 'f32'}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %o, %q
      lse(%lse : tensor<1x4x16xf32>)
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
        tensor<1x4x16x32xf16>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
  return
}

// -----

func.func @grad_output_shape(%q: tensor<1x4x16x32xf32>, %do: tensor<1x4x16x16xf32>, %lse: tensor<1x4x16xf32>) {
  // expected-error @+1 {{'grad_output' must have shape [B, Hq, Sq, Dv] = [1, 4, 16, 32], got 'tensor<1x4x16x16xf32>'}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %do
      lse(%lse : tensor<1x4x16xf32>)
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
        tensor<1x4x16x32xf32>, tensor<1x4x16x16xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
  return
}

// -----

func.func @grad_output_element_type(%q: tensor<1x4x16x32xf32>, %do: tensor<1x4x16x32xbf16>, %lse: tensor<1x4x16xf32>) {
  // expected-error @+1 {{'grad_output' element type 'bf16' differs from the 'query' element type 'f32'}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %do
      lse(%lse : tensor<1x4x16xf32>)
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
        tensor<1x4x16x32xf32>, tensor<1x4x16x32xbf16>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// lse and dlse
//===----------------------------------------------------------------------===//

func.func @lse_shape(%q: tensor<1x4x16x32xf32>, %lse: tensor<1x4x16x1xf32>) {
  // expected-error @+1 {{'lse' must have shape [B, Hq, Sq] = [1, 4, 16], got 'tensor<1x4x16x1xf32>'}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %q
      lse(%lse : tensor<1x4x16x1xf32>)
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
        tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
  return
}

// -----

func.func @grad_lse_without_lse(%q: tensor<1x4x16x32xf32>, %dlse: tensor<1x4x16xf32>) {
  // expected-error @+1 {{'grad_lse' needs the 'lse' operand: it is the gradient of the forward's lse}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %q
      grad_lse(%dlse : tensor<1x4x16xf32>) normalize<mean>
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
        tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
  return
}

// -----

func.func @grad_lse_shape(%q: tensor<1x4x16x32xf32>, %lse: tensor<1x4x16xf32>, %dlse: tensor<1x4x15xf32>) {
  // expected-error @+1 {{'grad_lse' must have shape [B, Hq, Sq] = [1, 4, 16], got 'tensor<1x4x15xf32>'}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %q
      lse(%lse : tensor<1x4x16xf32>) grad_lse(%dlse : tensor<1x4x15xf32>)
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
        tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
  return
}

// -----

func.func @lse_missing_softmax(%q: tensor<1x4x16x32xf32>) {
  // expected-error @+1 {{needs the 'lse' operand: the op has normalize<softmax>, whose backward recomputes the weights from the forward's log-sum-exp}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %q
      mask = [#attn.causal]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
        tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
  return
}

// -----

attn.variant @ssmax normalize<scalable_softmax>

func.func @lse_missing_variant(%q: tensor<1x4x16x32xf32>) {
  // expected-error @+1 {{needs the 'lse' operand: the variant @ssmax has normalize<scalable_softmax>, whose backward recomputes the weights from the forward's log-sum-exp}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %q
      variant @ssmax
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
        tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
  return
}

// -----

func.func @lse_under_sigmoid(%q: tensor<1x4x16x32xf32>, %lse: tensor<1x4x16xf32>) {
  // expected-error @+1 {{'lse' operand needs a softmax-family or mean normalization, but the op has normalize<sigmoid>}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %q
      lse(%lse : tensor<1x4x16xf32>) normalize<sigmoid>
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
        tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// Result types
//===----------------------------------------------------------------------===//

func.func @grad_query_type(%q: tensor<1x4x16x32xf32>, %lse: tensor<1x4x16xf32>) {
  // expected-error @+1 {{result 'grad_query' must have the type of 'query' ('tensor<1x4x16x32xf32>'), got 'tensor<1x4x16x32xf16>'}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %q
      lse(%lse : tensor<1x4x16xf32>)
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
        tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf16>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
  return
}

// -----

// GQA: dk has the kv heads of k, not the query heads.
func.func @grad_key_type(%q: tensor<1x4x16x32xf32>, %k: tensor<1x2x16x32xf32>, %lse: tensor<1x4x16xf32>) {
  // expected-error @+1 {{result 'grad_key' must have the type of 'key' ('tensor<1x2x16x32xf32>'), got 'tensor<1x4x16x32xf32>'}}
  %dq, %dk, %dv = attn.attention_grad %q, %k, %k, %q, %q
      lse(%lse : tensor<1x4x16xf32>)
      : tensor<1x4x16x32xf32>, tensor<1x2x16x32xf32>, tensor<1x2x16x32xf32>,
        tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x2x16x32xf32>
  return
}

// -----

func.func @grad_value_type(%q: tensor<1x4x16x32xf32>, %lse: tensor<1x4x16xf32>) {
  // expected-error @+1 {{result 'grad_value' must have the type of 'value' ('tensor<1x4x16x32xf32>'), got 'tensor<1x4x16x?xf32>'}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %q
      lse(%lse : tensor<1x4x16xf32>)
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
        tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x?xf32>
  return
}

// -----

func.func @param_grads_missing(%q: tensor<1x4x16x32xf32>, %lse: tensor<1x4x16xf32>, %t: tensor<4xf32>) {
  // expected-error @+1 {{has 0 parameter gradients after dq, dk, dv but needs 1 (d_sink_logits with sink logits, d_sink_key and d_sink_value with sink rows, then one per floating capture)}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %q
      lse(%lse : tensor<1x4x16xf32>) captures(%t : tensor<4xf32>)
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
        tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
  return
}

// -----

// Integer captures (segment ids) get no gradient.
func.func @param_grad_for_integer_capture(%q: tensor<1x4x16x32xf32>, %lse: tensor<1x4x16xf32>, %seg: tensor<1x16xi32>, %t: tensor<4xf32>) {
  // expected-error @+1 {{has 2 parameter gradients after dq, dk, dv but needs 1 (d_sink_logits with sink logits, d_sink_key and d_sink_value with sink rows, then one per floating capture)}}
  %dq, %dk, %dv, %dseg, %dt = attn.attention_grad %q, %q, %q, %q, %q
      lse(%lse : tensor<1x4x16xf32>) captures(%seg, %t : tensor<1x16xi32>, tensor<4xf32>)
      mask = [#attn.document<q_segments = 0, kv_segments = 0>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
        tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
         tensor<1x16xi32>, tensor<4xf32>
  return
}

// -----

func.func @param_grad_sink_logits_type(%q: tensor<1x4x16x32xf32>, %lse: tensor<1x4x16xf32>, %sl: tensor<4xf32>) {
  // expected-error @+1 {{parameter gradient #0 (of 'sink_logits') must have type 'tensor<4xf32>', got 'tensor<1xf32>'}}
  %dq, %dk, %dv, %dsl = attn.attention_grad %q, %q, %q, %q, %q
      lse(%lse : tensor<1x4x16xf32>) sink_logits(%sl : tensor<4xf32>)
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
        tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
         tensor<1xf32>
  return
}

// -----

func.func @param_grad_sink_value_type(%q: tensor<1x4x16x32xf32>, %lse: tensor<1x4x16xf32>, %sr: tensor<4x2x32xf32>) {
  // expected-error @+1 {{parameter gradient #1 (of 'sink_value') must have type 'tensor<4x2x32xf32>', got 'tensor<4x2x32xf16>'}}
  %dq, %dk, %dv, %dsk, %dsv = attn.attention_grad %q, %q, %q, %q, %q
      lse(%lse : tensor<1x4x16xf32>) sink_rows(%sr, %sr : tensor<4x2x32xf32>, tensor<4x2x32xf32>)
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
        tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
         tensor<4x2x32xf32>, tensor<4x2x32xf16>
  return
}

// -----

// A capture's gradient has exactly the capture's type.
func.func @param_grad_capture_type(%q: tensor<1x4x16x32xf32>, %lse: tensor<1x4x16xf32>, %seg: tensor<1x16xi32>, %t: tensor<4xf32>) {
  // expected-error @+1 {{parameter gradient #0 (of 'capture #1') must have type 'tensor<4xf32>', got 'tensor<?xf32>'}}
  %dq, %dk, %dv, %dt = attn.attention_grad %q, %q, %q, %q, %q
      lse(%lse : tensor<1x4x16xf32>) captures(%seg, %t : tensor<1x16xi32>, tensor<4xf32>)
      mask = [#attn.document<q_segments = 0, kv_segments = 0>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
        tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
         tensor<?xf32>
  return
}
