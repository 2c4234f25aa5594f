// RUN: attn-opt %s --split-input-file --verify-diagnostics

// One verifier rule per split. Unless a case says otherwise the shapes are
// q = k = v = o = tensor<1x4x16x32xf32> (B = 1, H = 4, S = 16, D = 32).

//===----------------------------------------------------------------------===//
// ODS-level constraints
//===----------------------------------------------------------------------===//

func.func @query_not_float(%q: tensor<1x4x16x32xi32>, %k: tensor<1x4x16x32xf32>)
    -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{operand #0 must be ranked tensor of 16-bit float or bfloat16 type or 32-bit float values, but got 'tensor<1x4x16x32xi32>'}}
  %o = attn.attention %q, %k, %k
      : tensor<1x4x16x32xi32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @lse_not_f32(%q: tensor<1x4x16x32xf16>) -> tensor<1x4x16x32xf16> {
  // expected-error @+1 {{result #1 must be ranked tensor of 32-bit float values, but got 'tensor<1x4x16xf16>'}}
  %o, %lse = attn.attention %q, %q, %q
      : tensor<1x4x16x32xf16>, tensor<1x4x16x32xf16>, tensor<1x4x16x32xf16>
      -> tensor<1x4x16x32xf16>, tensor<1x4x16xf16>
  return %o : tensor<1x4x16x32xf16>
}

// -----

func.func @sink_logits_not_f32(%q: tensor<1x4x16x32xf16>, %sl: tensor<4xf16>)
    -> tensor<1x4x16x32xf16> {
  // expected-error @+1 {{operand #3 must be ranked tensor of 32-bit float values, but got 'tensor<4xf16>'}}
  %o = attn.attention %q, %q, %q sink_logits(%sl : tensor<4xf16>)
      : tensor<1x4x16x32xf16>, tensor<1x4x16x32xf16>, tensor<1x4x16x32xf16>
      -> tensor<1x4x16x32xf16>
  return %o : tensor<1x4x16x32xf16>
}

// -----

func.func @yield_outside_attn(%x: f32) -> f32 {
  // expected-error @+1 {{'attn.yield' op expects parent op to be one of 'attn.attention, attn.attention_grad, attn.variant'}}
  attn.yield %x : f32
}

// -----

//===----------------------------------------------------------------------===//
// Operand and result shapes
//===----------------------------------------------------------------------===//

func.func @query_rank(%q: tensor<4x16x32xf32>, %k: tensor<1x4x16x32xf32>)
    -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'query' must have rank 4 [B, Hq, Sq, Dqk], got 'tensor<4x16x32xf32>'}}
  %o = attn.attention %q, %k, %k
      : tensor<4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @key_rank(%q: tensor<1x4x16x32xf32>, %k: tensor<1x1x4x16x32xf32>)
    -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'key' must have rank 4 [B, Hkv, Sk, Dqk], got 'tensor<1x1x4x16x32xf32>'}}
  %o = attn.attention %q, %k, %q
      : tensor<1x4x16x32xf32>, tensor<1x1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @value_rank(%q: tensor<1x4x16x32xf32>, %v: tensor<16x32xf32>)
    -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'value' must have rank 4 [B, Hkv, Sk, Dv], got 'tensor<16x32xf32>'}}
  %o = attn.attention %q, %q, %v
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @key_element_type(%q: tensor<1x4x16x32xf32>, %k: tensor<1x4x16x32xf16>)
    -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'key' element type 'f16' differs from the 'query' element type 'f32'}}
  %o = attn.attention %q, %k, %q
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf16>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @value_element_type(%q: tensor<1x4x16x32xf16>, %v: tensor<1x4x16x32xbf16>)
    -> tensor<1x4x16x32xf16> {
  // expected-error @+1 {{'value' element type 'bf16' differs from the 'query' element type 'f16'}}
  %o = attn.attention %q, %q, %v
      : tensor<1x4x16x32xf16>, tensor<1x4x16x32xf16>, tensor<1x4x16x32xbf16>
      -> tensor<1x4x16x32xf16>
  return %o : tensor<1x4x16x32xf16>
}

// -----

func.func @batch_mismatch(%q: tensor<1x4x16x32xf32>, %k: tensor<2x4x16x32xf32>)
    -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{batch sizes differ: 'query' [1, 4, 16, 32], 'key' [2, 4, 16, 32], 'value' [2, 4, 16, 32]}}
  %o = attn.attention %q, %k, %k
      : tensor<1x4x16x32xf32>, tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @kv_heads_mismatch(%q: tensor<1x4x16x32xf32>, %k: tensor<1x2x16x32xf32>,
                             %v: tensor<1x1x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'key' has 2 heads but 'value' has 1}}
  %o = attn.attention %q, %k, %v
      : tensor<1x4x16x32xf32>, tensor<1x2x16x32xf32>, tensor<1x1x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @heads_not_multiple(%q: tensor<1x4x16x32xf32>, %k: tensor<1x3x16x32xf32>)
    -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{query heads (4) must be a multiple of key/value heads (3)}}
  %o = attn.attention %q, %k, %k
      : tensor<1x4x16x32xf32>, tensor<1x3x16x32xf32>, tensor<1x3x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @zero_kv_heads(%q: tensor<1x4x16x32xf32>, %k: tensor<1x0x16x32xf32>)
    -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{query heads (4) must be a multiple of key/value heads (0)}}
  %o = attn.attention %q, %k, %k
      : tensor<1x4x16x32xf32>, tensor<1x0x16x32xf32>, tensor<1x0x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @head_dim_mismatch(%q: tensor<1x4x16x64xf32>, %k: tensor<1x4x16x32xf32>)
    -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'query' head dim 64 differs from the 'key' head dim 32}}
  %o = attn.attention %q, %k, %k
      : tensor<1x4x16x64xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @kv_positions_mismatch(%q: tensor<1x4x16x32xf32>, %v: tensor<1x4x8x32xf32>)
    -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'key' has 16 positions but 'value' has 8}}
  %o = attn.attention %q, %q, %v
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x8x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

// The output takes Dv from the value, not Dqk from the query.
func.func @output_shape(%q: tensor<1x4x16x32xf32>, %v: tensor<1x4x16x64xf32>)
    -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'output' must have shape [B, Hq, Sq, Dv] = [1, 4, 16, 64], got 'tensor<1x4x16x32xf32>'}}
  %o = attn.attention %q, %q, %v
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x64xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @output_element_type(%q: tensor<1x4x16x32xbf16>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'output' element type 'f32' differs from the 'query' element type 'bf16'}}
  %o = attn.attention %q, %q, %q
      : tensor<1x4x16x32xbf16>, tensor<1x4x16x32xbf16>, tensor<1x4x16x32xbf16>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @lse_shape(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'lse' must have shape [B, Hq, Sq] = [1, 4, 16], got 'tensor<1x4x16x1xf32>'}}
  %o, %lse = attn.attention %q, %q, %q
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16x1xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

// sink_logits are per query head, not per key/value head.
func.func @sink_logits_shape(%q: tensor<1x4x16x32xf32>, %k: tensor<1x2x16x32xf32>,
                             %sl: tensor<2xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'sink_logits' must have shape [Hq] = [4], got 'tensor<2xf32>'}}
  %o = attn.attention %q, %k, %k sink_logits(%sl : tensor<2xf32>)
      : tensor<1x4x16x32xf32>, tensor<1x2x16x32xf32>, tensor<1x2x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

// Only reachable in the generic form: a sink_key without a sink_value.
func.func @sink_rows_half(%q: tensor<1x4x16x32xf32>, %sk: tensor<4x2x32xf32>)
    -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'sink_rows' needs both 'sink_key' and 'sink_value'}}
  %o = "attn.attention"(%q, %q, %q, %sk)
      <{operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 1, 0>}> ({}, {})
      : (tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
         tensor<4x2x32xf32>) -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @sink_rows_element_type(%q: tensor<1x4x16x32xbf16>, %sk: tensor<4x2x32xf32>,
                                  %sv: tensor<4x2x32xbf16>) -> tensor<1x4x16x32xbf16> {
  // expected-error @+1 {{'sink_key' and 'sink_value' must have the 'query' element type 'bf16'}}
  %o = attn.attention %q, %q, %q sink_rows(%sk, %sv : tensor<4x2x32xf32>, tensor<4x2x32xbf16>)
      : tensor<1x4x16x32xbf16>, tensor<1x4x16x32xbf16>, tensor<1x4x16x32xbf16>
      -> tensor<1x4x16x32xbf16>
  return %o : tensor<1x4x16x32xbf16>
}

// -----

// Sink rows are per key/value head (Hkv = 2 here), not per query head.
func.func @sink_key_shape(%q: tensor<1x4x16x32xf32>, %k: tensor<1x2x16x32xf32>,
                          %sk: tensor<4x3x32xf32>, %sv: tensor<2x3x32xf32>)
    -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'sink_key' must have shape [Hkv, Ns, Dqk] with Hkv = 2 and Dqk = 32, got 'tensor<4x3x32xf32>'}}
  %o = attn.attention %q, %k, %k sink_rows(%sk, %sv : tensor<4x3x32xf32>, tensor<2x3x32xf32>)
      : tensor<1x4x16x32xf32>, tensor<1x2x16x32xf32>, tensor<1x2x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

// The sink values take Dv (16), the sink keys Dqk (32).
func.func @sink_value_shape(%q: tensor<1x4x16x32xf32>, %v: tensor<1x4x16x16xf32>,
                            %sk: tensor<4x3x32xf32>, %sv: tensor<4x3x32xf32>)
    -> tensor<1x4x16x16xf32> {
  // expected-error @+1 {{'sink_value' must have shape [Hkv, Ns, Dv] with Hkv = 4 and Dv = 16, got 'tensor<4x3x32xf32>'}}
  %o = attn.attention %q, %q, %v sink_rows(%sk, %sv : tensor<4x3x32xf32>, tensor<4x3x32xf32>)
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x16xf32>
      -> tensor<1x4x16x16xf32>
  return %o : tensor<1x4x16x16xf32>
}

// -----

func.func @sink_rows_count(%q: tensor<1x4x16x32xf32>, %sk: tensor<4x3x32xf32>,
                           %sv: tensor<4x2x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'sink_key' has 3 rows but 'sink_value' has 2}}
  %o = attn.attention %q, %q, %q sink_rows(%sk, %sv : tensor<4x3x32xf32>, tensor<4x2x32xf32>)
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

//===----------------------------------------------------------------------===//
// Normalization against results and operands
//===----------------------------------------------------------------------===//

func.func @lse_with_sigmoid(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'lse' result needs a softmax-family or mean normalization, but the op has normalize<sigmoid>}}
  %o, %lse = attn.attention %q, %q, %q normalize<sigmoid>
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @sink_logits_with_relu(%q: tensor<1x4x16x32xf32>, %sl: tensor<4xf32>)
    -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'sink_logits' has no use under normalize<relu>; they join a softmax denominator}}
  %o = attn.attention %q, %q, %q sink_logits(%sl : tensor<4xf32>) normalize<relu>
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

//===----------------------------------------------------------------------===//
// Score kernel and normalization parameters
//===----------------------------------------------------------------------===//

func.func @scale_with_rbf(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'scale' applies to score<dot>; score<rbf> takes 'gamma'}}
  %o = attn.attention %q, %q, %q score<rbf> scale = 0.5
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @zero_scale(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'scale' must be finite and non-zero, got 0.000000e+00}}
  %o = attn.attention %q, %q, %q scale = 0.0
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @gamma_with_dot(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'gamma' applies only to score<rbf>}}
  %o = attn.attention %q, %q, %q score<dot> gamma = 0.5
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @gamma_not_positive(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'gamma' must be positive and finite, got -5.000000e-01}}
  %o = attn.attention %q, %q, %q score<rbf> gamma = -0.5
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @bias_with_softmax(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'bias' applies only to normalize<sigmoid>}}
  %o = attn.attention %q, %q, %q bias = -1.0
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

// bias = +inf, as an f64 bit pattern.
func.func @bias_not_finite(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'bias' must be finite}}
  %o = attn.attention %q, %q, %q normalize<sigmoid> bias = 0x7FF0000000000000
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @length_scale_with_softmax1(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'length_scale' applies only to normalize<scalable_softmax>}}
  %o = attn.attention %q, %q, %q normalize<softmax1> length_scale = 0.5
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @length_scale_not_positive(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'length_scale' must be positive and finite, got 0.000000e+00}}
  %o = attn.attention %q, %q, %q normalize<scalable_softmax> length_scale = 0.0
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

//===----------------------------------------------------------------------===//
// Mask lists and mask parameters
//===----------------------------------------------------------------------===//

func.func @mask_not_a_mask(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'mask' element #1 (#attn.normalization<softmax>) is not a mask attribute}}
  %o = attn.attention %q, %q, %q mask = [#attn.causal, #attn.normalization<softmax>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

// Two causal masks, even with different alignments, are one kind twice.
func.func @mask_duplicate_kind(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'mask' holds more than one #attn.causal<bottom_right>-kind mask; each kind may appear once}}
  %o = attn.attention %q, %q, %q mask = [#attn.causal, #attn.causal<bottom_right>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @window_negative_left(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{mask #attn.sliding_window<left = -1>: 'left' must be at least 0, got -1}}
  %o = attn.attention %q, %q, %q mask = [#attn.sliding_window<left = -1>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @window_negative_right(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{mask #attn.sliding_window<left = 1, right = -1>: 'right' must be at least 0, got -1}}
  %o = attn.attention %q, %q, %q mask = [#attn.causal, #attn.sliding_window<left = 1, right = -1>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @sink_tokens_zero(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{mask #attn.sink_tokens<count = 0>: 'count' must be at least 1, got 0}}
  %o = attn.attention %q, %q, %q
      mask = [#attn.sink_tokens<count = 0>, #attn.sliding_window<left = 4>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @sink_tokens_without_local(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{mask #attn.sink_tokens has no effect without a local mask (sliding_window, chunked or a neighborhood)}}
  %o = attn.attention %q, %q, %q mask = [#attn.causal, #attn.sink_tokens<count = 4>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @chunk_size_zero(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{mask #attn.chunked<size = 0>: 'size' must be at least 1, got 0}}
  %o = attn.attention %q, %q, %q mask = [#attn.chunked<size = 0>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @neighborhood_1d_even_kernel(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{mask #attn.neighborhood_1d<kernel = 4>: 'kernel' must be a positive odd number, got 4}}
  %o = attn.attention %q, %q, %q mask = [#attn.neighborhood_1d<kernel = 4>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @neighborhood_1d_zero_dilation(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{mask #attn.neighborhood_1d<kernel = 3, dilation = 0>: 'dilation' must be at least 1, got 0}}
  %o = attn.attention %q, %q, %q mask = [#attn.neighborhood_1d<kernel = 3, dilation = 0>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @neighborhood_2d_zero_width(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'width' must be at least 1, got 0}}
  %o = attn.attention %q, %q, %q
      mask = [#attn.neighborhood_2d<height = 16, width = 0, kernel_h = 3, kernel_w = 1>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @neighborhood_2d_even_kernel(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'kernel_w' must be a positive odd number, got 2}}
  %o = attn.attention %q, %q, %q
      mask = [#attn.neighborhood_2d<height = 4, width = 4, kernel_h = 3, kernel_w = 2>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @neighborhood_2d_zero_dilation(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'dilation_h' must be at least 1, got 0}}
  %o = attn.attention %q, %q, %q
      mask = [#attn.neighborhood_2d<height = 4, width = 4, kernel_h = 3, kernel_w = 3,
                                    dilation_h = 0>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @neighborhood_2d_kernel_h_too_large(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{kernel_h * dilation_h exceeds the grid height (4)}}
  %o = attn.attention %q, %q, %q
      mask = [#attn.neighborhood_2d<height = 4, width = 4, kernel_h = 3, kernel_w = 3,
                                    dilation_h = 2>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @neighborhood_2d_kernel_w_too_large(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{kernel_w * dilation_w exceeds the grid width (4)}}
  %o = attn.attention %q, %q, %q
      mask = [#attn.neighborhood_2d<height = 4, width = 4, kernel_h = 3, kernel_w = 5>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @document_negative_index(%q: tensor<1x4x16x32xf32>, %s: tensor<1x16xi32>)
    -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'kv_segments' must be at least 0, got -1}}
  %o = attn.attention %q, %q, %q captures(%s : tensor<1x16xi32>)
      mask = [#attn.document<q_segments = 0, kv_segments = -1>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @prefix_negative(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{mask #attn.prefix_lm<prefix = -2>: 'prefix' must be at least 0, got -2}}
  %o = attn.attention %q, %q, %q mask = [#attn.prefix_lm<prefix = -2>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @prefix_lm_with_causal(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{mask #attn.prefix_lm already implies causality past the prefix; drop #attn.causal}}
  %o = attn.attention %q, %q, %q mask = [#attn.prefix_lm<prefix = 4>, #attn.causal]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

//===----------------------------------------------------------------------===//
// Masks against the operand shapes
//===----------------------------------------------------------------------===//

func.func @neighborhood_needs_square(%q: tensor<1x4x8x32xf32>, %k: tensor<1x4x16x32xf32>)
    -> tensor<1x4x8x32xf32> {
  // expected-error @+1 {{mask #attn.neighborhood_1d<kernel = 3> needs Sq == Sk, got Sq = 8 and Sk = 16}}
  %o = attn.attention %q, %k, %k mask = [#attn.neighborhood_1d<kernel = 3>]
      : tensor<1x4x8x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x8x32xf32>
  return %o : tensor<1x4x8x32xf32>
}

// -----

func.func @neighborhood_1d_too_large(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{mask #attn.neighborhood_1d<kernel = 9, dilation = 2>: kernel * dilation exceeds the sequence length (16)}}
  %o = attn.attention %q, %q, %q mask = [#attn.neighborhood_1d<kernel = 9, dilation = 2>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @neighborhood_2d_grid_size(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{the grid holds 20 tokens but Sk = 16}}
  %o = attn.attention %q, %q, %q
      mask = [#attn.neighborhood_2d<height = 4, width = 5, kernel_h = 3, kernel_w = 3>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @document_index_out_of_range(%q: tensor<1x4x16x32xf32>, %s: tensor<1x16xi32>)
    -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{mask #attn.document<q_segments = 0, kv_segments = 1>: 'kv_segments' names capture #1 but the op has 1 captures}}
  %o = attn.attention %q, %q, %q captures(%s : tensor<1x16xi32>)
      mask = [#attn.document<q_segments = 0, kv_segments = 1>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @document_capture_type(%q: tensor<1x4x16x32xf32>, %s: tensor<1x16xi64>)
    -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'q_segments' capture #0 must be tensor<1x16xi32> ([B, S] segment ids), got 'tensor<1x16xi64>'}}
  %o = attn.attention %q, %q, %q captures(%s : tensor<1x16xi64>)
      mask = [#attn.document<q_segments = 0, kv_segments = 0>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

//===----------------------------------------------------------------------===//
// Regions
//===----------------------------------------------------------------------===//

func.func @region_two_blocks(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'score_mod' region must have one block}}
  %o = attn.attention %q, %q, %q
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    cf.br ^bb1
  ^bb1:
    attn.yield %s : f32
  }
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @score_mod_too_few_args(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'score_mod' region must have at least 5 arguments (score, b, h, q_idx, kv_idx), got 4}}
  %o = attn.attention %q, %q, %q
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
      score_mod {
  ^bb0(%s: f32, %h: index, %i: index, %j: index):
    attn.yield %s : f32
  }
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @mask_mod_arg_type(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'mask_mod' region argument #3 must be 'index' (b, h, q_idx, kv_idx), got 'i64'}}
  %o = attn.attention %q, %q, %q
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
      mask_mod {
  ^bb0(%b: index, %h: index, %i: index, %j: i64):
    %t = arith.constant true
    attn.yield %t : i1
  }
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @capture_arg_not_tensor(%q: tensor<1x4x16x32xf32>, %c: tensor<4xf32>)
    -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'score_mod' region argument #5 (a captured operand) must be a ranked tensor, got 'f32'}}
  %o = attn.attention %q, %q, %q captures(%c : tensor<4xf32>)
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index, %x: f32):
    attn.yield %s : f32
  }
  return %o : tensor<1x4x16x32xf32>
}

// -----

// llvm.unreachable is a terminator with no parent constraint.
func.func @region_not_yield(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'score_mod' region must end with attn.yield}}
  %o = attn.attention %q, %q, %q
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    llvm.unreachable
  }
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @score_mod_yield_type(%q: tensor<1x4x16x32xf16>) -> tensor<1x4x16x32xf16> {
  // expected-error @+1 {{'score_mod' region must yield 'f32', got 'f16'}}
  %o = attn.attention %q, %q, %q
      : tensor<1x4x16x32xf16>, tensor<1x4x16x32xf16>, tensor<1x4x16x32xf16>
      -> tensor<1x4x16x32xf16>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    %r = arith.truncf %s : f32 to f16
    attn.yield %r : f16
  }
  return %o : tensor<1x4x16x32xf16>
}

// -----

func.func @mask_mod_yield_type(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'mask_mod' region must yield 'i1', got 'index'}}
  %o = attn.attention %q, %q, %q
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
      mask_mod {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    attn.yield %j : index
  }
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @score_mod_with_mean(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'score_mod' has no effect under normalize<mean>, which ignores scores}}
  %o = attn.attention %q, %q, %q normalize<mean>
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    attn.yield %s : f32
  }
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @region_captures_disagree(%q: tensor<1x4x16x32xf32>, %c: tensor<4xf32>)
    -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'score_mod' and 'mask_mod' regions must take the same captured operand types}}
  %o = attn.attention %q, %q, %q captures(%c : tensor<4xf32>)
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index, %x: tensor<4xf32>):
    attn.yield %s : f32
  } mask_mod {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %x: tensor<?xf32>):
    %t = arith.constant true
    attn.yield %t : i1
  }
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @capture_count(%q: tensor<1x4x16x32xf32>, %c: tensor<4xf32>)
    -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{the op regions take 2 captured operands but the op passes 1}}
  %o = attn.attention %q, %q, %q captures(%c : tensor<4xf32>)
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index,
       %x: tensor<4xf32>, %y: tensor<4xf32>):
    attn.yield %s : f32
  }
  return %o : tensor<1x4x16x32xf32>
}

// -----

// A static size in the region must match the capture.
func.func @capture_type(%q: tensor<1x4x16x32xf32>, %c: tensor<8xf32>)
    -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{captured operand #0 has type 'tensor<8xf32>' but the op regions expect 'tensor<4xf32>'}}
  %o = attn.attention %q, %q, %q captures(%c : tensor<8xf32>)
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
      mask_mod {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %x: tensor<4xf32>):
    %t = arith.constant true
    attn.yield %t : i1
  }
  return %o : tensor<1x4x16x32xf32>
}

// -----

//===----------------------------------------------------------------------===//
// Variant references
//===----------------------------------------------------------------------===//

func.func @missing_variant(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'variant' references @nowhere, which does not exist}}
  %o = attn.attention %q, %q, %q variant @nowhere
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func private @not_a_variant()

func.func @variant_names_func(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'variant' references @not_a_variant, which is a 'func.func', not an attn.variant}}
  %o = attn.attention %q, %q, %q variant @not_a_variant
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

attn.variant @causal mask = [#attn.causal]

func.func @variant_and_inline_spec(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{references variant @causal and also gives a specification inline; give one or the other}}
  %o = attn.attention %q, %q, %q variant @causal normalize<softmax1>
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

// The rules that tie a specification to operands apply through a reference.
attn.variant @sig normalize<sigmoid>

func.func @lse_through_variant(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'lse' result needs a softmax-family or mean normalization, but the variant @sig has normalize<sigmoid>}}
  %o, %lse = attn.attention %q, %q, %q variant @sig
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

attn.variant @alibi score_mod {
^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index, %slopes: tensor<?xf32>):
  %m = tensor.extract %slopes[%h] : tensor<?xf32>
  %r = arith.addf %s, %m : f32
  attn.yield %r : f32
}

func.func @captures_through_variant(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{the variant @alibi regions take 1 captured operands but the op passes 0}}
  %o = attn.attention %q, %q, %q variant @alibi
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

//===----------------------------------------------------------------------===//
// attn.variant
//===----------------------------------------------------------------------===//

// expected-error @+1 {{'attn.variant' op 'gamma' applies only to score<rbf>}}
attn.variant @dot_with_gamma gamma = 0.25

// -----

// expected-error @+1 {{'attn.variant' op mask #attn.neighborhood_1d<kernel = 0>: 'kernel' must be a positive odd number, got 0}}
attn.variant @bad_mask mask = [#attn.neighborhood_1d<kernel = 0>]

// -----

// expected-error @+1 {{'attn.variant' op 'mask_mod' region must yield 'i1', got 'f32'}}
attn.variant @bad_region mask_mod {
^bb0(%b: index, %h: index, %i: index, %j: index):
  %c = arith.constant 1.0 : f32
  attn.yield %c : f32
}

// -----

// expected-error @+1 {{'attn.variant' op visibility expected to be one of ["public", "private", "nested"], but got "hidden"}}
attn.variant "hidden" @bad_visibility mask = [#attn.causal]

// -----

func.func @variant_not_in_symbol_table() {
  // expected-error @+1 {{'attn.variant' op symbol's parent must have the SymbolTable trait}}
  attn.variant @nested mask = [#attn.causal]
  return
}

// -----

attn.variant @sig normalize<sigmoid>

func.func @variant_with_explicit_default(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{references variant @sig and also gives a specification inline}}
  %o = attn.attention %q, %q, %q variant @sig normalize<softmax>
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32> -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @neighborhood_dilation_overflow(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'dilation' must be at most 1099511627776 (2^40), got 6148914691236517206}}
  %o = attn.attention %q, %q, %q mask = [#attn.neighborhood_1d<kernel = 3, dilation = 6148914691236517206>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32> -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @kv_batch_mismatch_dynamic_q(%q: tensor<?x4x16x32xf32>, %k: tensor<2x4x16x32xf32>, %v: tensor<3x4x16x32xf32>) -> tensor<?x4x16x32xf32> {
  // expected-error @+1 {{batch sizes differ}}
  %o = attn.attention %q, %k, %v
      : tensor<?x4x16x32xf32>, tensor<2x4x16x32xf32>, tensor<3x4x16x32xf32> -> tensor<?x4x16x32xf32>
  return %o : tensor<?x4x16x32xf32>
}

// -----

func.func @sink_key_dim_vs_query(%q: tensor<1x4x16x32xf32>, %k: tensor<1x4x16x?xf32>, %v: tensor<1x4x16x32xf32>, %sk: tensor<4x2x64xf32>, %sv: tensor<4x2x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'sink_key' must have shape [Hkv, Ns, Dqk] with Hkv = 4 and Dqk = 32}}
  %o = attn.attention %q, %k, %v sink_rows(%sk, %sv : tensor<4x2x64xf32>, tensor<4x2x32xf32>)
      : tensor<1x4x16x32xf32>, tensor<1x4x16x?xf32>, tensor<1x4x16x32xf32> -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

// Mask parameters are bounded by 2^40 so that the position arithmetic of the
// lowerings (pos(i) + right, chunk and grid products) cannot overflow.
func.func @window_right_near_int64_max(%q: tensor<1x4x?x32xf32>) -> tensor<1x4x?x32xf32> {
  // expected-error @+1 {{mask #attn.sliding_window<left = 4, right = 9223372036854775807>: 'right' must be at most 1099511627776 (2^40), got 9223372036854775807}}
  %o = attn.attention %q, %q, %q mask = [#attn.causal, #attn.sliding_window<left = 4, right = 9223372036854775807>]
      : tensor<1x4x?x32xf32>, tensor<1x4x?x32xf32>, tensor<1x4x?x32xf32> -> tensor<1x4x?x32xf32>
  return %o : tensor<1x4x?x32xf32>
}

// -----

func.func @window_left_near_int64_max(%q: tensor<1x4x?x32xf32>) -> tensor<1x4x?x32xf32> {
  // expected-error @+1 {{mask #attn.sliding_window<left = 9223372036854775806>: 'left' must be at most 1099511627776 (2^40), got 9223372036854775806}}
  %o = attn.attention %q, %q, %q mask = [#attn.sliding_window<left = 9223372036854775806>]
      : tensor<1x4x?x32xf32>, tensor<1x4x?x32xf32>, tensor<1x4x?x32xf32> -> tensor<1x4x?x32xf32>
  return %o : tensor<1x4x?x32xf32>
}

// -----

func.func @window_just_past_bound(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'left' must be at most 1099511627776 (2^40), got 1099511627777}}
  %o = attn.attention %q, %q, %q mask = [#attn.sliding_window<left = 1099511627777>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32> -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @chunk_size_huge(%q: tensor<1x4x?x32xf32>) -> tensor<1x4x?x32xf32> {
  // expected-error @+1 {{mask #attn.chunked<size = 9223372036854775807>: 'size' must be at most 1099511627776 (2^40)}}
  %o = attn.attention %q, %q, %q mask = [#attn.chunked<size = 9223372036854775807>]
      : tensor<1x4x?x32xf32>, tensor<1x4x?x32xf32>, tensor<1x4x?x32xf32> -> tensor<1x4x?x32xf32>
  return %o : tensor<1x4x?x32xf32>
}

// -----

func.func @sink_tokens_huge(%q: tensor<1x4x?x32xf32>) -> tensor<1x4x?x32xf32> {
  // expected-error @+1 {{mask #attn.sink_tokens<count = 9223372036854775807>: 'count' must be at most 1099511627776 (2^40)}}
  %o = attn.attention %q, %q, %q mask = [#attn.sink_tokens<count = 9223372036854775807>, #attn.sliding_window<left = 4>]
      : tensor<1x4x?x32xf32>, tensor<1x4x?x32xf32>, tensor<1x4x?x32xf32> -> tensor<1x4x?x32xf32>
  return %o : tensor<1x4x?x32xf32>
}

// -----

func.func @prefix_huge(%q: tensor<1x4x?x32xf32>) -> tensor<1x4x?x32xf32> {
  // expected-error @+1 {{mask #attn.prefix_lm<prefix = 4611686018427387904>: 'prefix' must be at most 1099511627776 (2^40)}}
  %o = attn.attention %q, %q, %q mask = [#attn.prefix_lm<prefix = 4611686018427387904>]
      : tensor<1x4x?x32xf32>, tensor<1x4x?x32xf32>, tensor<1x4x?x32xf32> -> tensor<1x4x?x32xf32>
  return %o : tensor<1x4x?x32xf32>
}

// -----

func.func @neighborhood_1d_span_past_bound(%q: tensor<1x4x?x32xf32>) -> tensor<1x4x?x32xf32> {
  // expected-error @+1 {{mask #attn.neighborhood_1d<kernel = 2097153, dilation = 1048576>: kernel * dilation must be at most 1099511627776 (2^40)}}
  %o = attn.attention %q, %q, %q mask = [#attn.neighborhood_1d<kernel = 2097153, dilation = 1048576>]
      : tensor<1x4x?x32xf32>, tensor<1x4x?x32xf32>, tensor<1x4x?x32xf32> -> tensor<1x4x?x32xf32>
  return %o : tensor<1x4x?x32xf32>
}

// -----

func.func @neighborhood_1d_kernel_huge(%q: tensor<1x4x?x32xf32>) -> tensor<1x4x?x32xf32> {
  // expected-error @+1 {{'kernel' must be at most 1099511627776 (2^40), got 9223372036854775807}}
  %o = attn.attention %q, %q, %q mask = [#attn.neighborhood_1d<kernel = 9223372036854775807>]
      : tensor<1x4x?x32xf32>, tensor<1x4x?x32xf32>, tensor<1x4x?x32xf32> -> tensor<1x4x?x32xf32>
  return %o : tensor<1x4x?x32xf32>
}

// -----

func.func @neighborhood_2d_grid_past_bound(%q: tensor<1x4x?x32xf32>) -> tensor<1x4x?x32xf32> {
  // expected-error @+1 {{height * width must be at most 1099511627776 (2^40)}}
  %o = attn.attention %q, %q, %q mask = [#attn.neighborhood_2d<height = 2097152, width = 1048577, kernel_h = 3, kernel_w = 3>]
      : tensor<1x4x?x32xf32>, tensor<1x4x?x32xf32>, tensor<1x4x?x32xf32> -> tensor<1x4x?x32xf32>
  return %o : tensor<1x4x?x32xf32>
}

// -----

func.func @document_index_huge(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'kv_segments' must be at most 1099511627776 (2^40)}}
  %o = attn.attention %q, %q, %q mask = [#attn.document<q_segments = 0, kv_segments = 9223372036854775807>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32> -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

// The bound holds in variants too; 2^40 itself is allowed.
// expected-error @+1 {{'attn.variant' op mask #attn.sliding_window<left = 1099511627776, right = 1099511627777>: 'right' must be at most 1099511627776 (2^40), got 1099511627777}}
attn.variant @window_right_past_bound mask = [#attn.sliding_window<left = 1099511627776, right = 1099511627777>]

// -----

func.func @any_of_one_mask(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{takes at least two masks, got 1}}
  %o = attn.attention %q, %q, %q mask = [#attn.any_of<[#attn.causal]>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @any_of_document(%q: tensor<1x4x16x32xf32>, %s: tensor<1x16xi32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{lists #attn.document<q_segments = 0, kv_segments = 0>; it takes positional masks only}}
  %o = attn.attention %q, %q, %q captures(%s : tensor<1x16xi32>)
      mask = [#attn.any_of<[#attn.causal, #attn.document<q_segments = 0, kv_segments = 0>]>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

func.func @any_of_bad_inner(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  // expected-error @+1 {{'left' must be at least 0}}
  %o = attn.attention %q, %q, %q mask = [#attn.any_of<[#attn.causal, #attn.sliding_window<left = -3>]>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}
