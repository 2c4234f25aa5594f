// RUN: attn-opt %s --split-input-file --verify-diagnostics --attn-lower-to-loops
// RUN: attn-opt %s --split-input-file --verify-diagnostics --attn-to-flash

// What the CPU lowerings of attn.attention_grad refuse (verifyLowerableGrad):
// a diagnostic on the op, naming what is at fault, and nothing rewritten.

func.func @sine(%q: tensor<1x1x4x8xf32>, %lse: tensor<1x1x4xf32>)
    -> (tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>) {
  // expected-error @+1 {{'attn.attention_grad' op cannot be lowered: its score_mod computes the score through 'math.sin', which the backward cannot differentiate}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %q
      lse(%lse : tensor<1x1x4xf32>)
      : tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>,
        tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>
      -> tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    // expected-note @+1 {{the 'math.sin' is here}}
    %r = math.sin %s : f32
    attn.yield %r : f32
  }
  return %dq, %dk, %dv
      : tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>
}

// -----

// The score's path through a capture counts too.
func.func @atan_bias(%q: tensor<1x2x4x8xf32>, %lse: tensor<1x2x4xf32>,
                     %bias: tensor<2xf32>)
    -> (tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32>,
        tensor<2xf32>) {
  // expected-error @+1 {{cannot be lowered: its score_mod computes the score through 'math.atan'}}
  %dq, %dk, %dv, %db = attn.attention_grad %q, %q, %q, %q, %q
      lse(%lse : tensor<1x2x4xf32>) captures(%bias : tensor<2xf32>)
      : tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32>,
        tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32>
      -> tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32>,
         tensor<2xf32>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index,
       %c: tensor<?xf32>):
    %x = tensor.extract %c[%h] : tensor<?xf32>
    // expected-note @+1 {{the 'math.atan' is here}}
    %a = math.atan %x : f32
    %r = arith.addf %s, %a : f32
    attn.yield %r : f32
  }
  return %dq, %dk, %dv, %db : tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32>,
      tensor<1x2x4x8xf32>, tensor<2xf32>
}

// -----

attn.variant @causal mask = [#attn.causal]

func.func @needs_instantiation(%q: tensor<1x1x4x8xf32>, %lse: tensor<1x1x4xf32>)
    -> (tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>) {
  // expected-error @+1 {{references variant @causal; run attn-instantiate-variants first}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %q
      lse(%lse : tensor<1x1x4xf32>) variant @causal
      : tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>,
        tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>
      -> tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>
  return %dq, %dk, %dv
      : tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>
}
