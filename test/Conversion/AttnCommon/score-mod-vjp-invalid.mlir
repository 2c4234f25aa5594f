// RUN: attn-opt %s --split-input-file --verify-diagnostics --attn-test-score-mod-vjp

// An op without a derivative rule on the path from s to the score.
attn.variant @sine score_mod {
^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
  // expected-error @+1 {{cannot differentiate 'math.sin' in score_mod}}
  %r = math.sin %s : f32
  attn.yield %r : f32
}

// -----

// ... on the path from a floating capture.
attn.variant @atan_bias score_mod {
^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index,
     %bias: tensor<?xf32>):
  %x = tensor.extract %bias[%h] : tensor<?xf32>
  // expected-error @+1 {{cannot differentiate 'math.atan' in score_mod}}
  %a = math.atan %x : f32
  %r = arith.addf %s, %a : f32
  attn.yield %r : f32
}

// -----

// The first offending op is named, wherever the score depends on it.
attn.variant @remainder score_mod {
^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
  %c = arith.constant 2.0 : f32
  %e = math.exp %s : f32
  // expected-error @+1 {{cannot differentiate 'arith.remf' in score_mod}}
  %m = arith.remf %e, %c : f32
  %r = math.cos %m : f32
  attn.yield %r : f32
}

// -----

// An op with a region that reads s inside: refused, not silently constant.
attn.variant @branchy score_mod {
^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
  %z = arith.constant 0.0 : f32
  %p = arith.cmpf ogt, %s, %z : f32
  // expected-error @+1 {{cannot differentiate 'scf.if' in score_mod}}
  %r = scf.if %p -> f32 {
    scf.yield %s : f32
  } else {
    scf.yield %z : f32
  }
  attn.yield %r : f32
}

// -----

// A floating capture used other than by tensor.extract.
attn.variant @sliced score_mod {
^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index,
     %bias: tensor<8xf32>):
  // expected-error @+1 {{cannot differentiate 'tensor.extract_slice' in score_mod}}
  %t = tensor.extract_slice %bias[0] [4] [1] : tensor<8xf32> to tensor<4xf32>
  %x = tensor.extract %t[%h] : tensor<4xf32>
  %r = arith.addf %s, %x : f32
  attn.yield %r : f32
}

// -----

// The inline region of an attn.attention is checked the same way.
func.func @f(%q: tensor<1x1x4x8xf32>, %k: tensor<1x1x4x8xf32>,
             %v: tensor<1x1x4x8xf32>) -> tensor<1x1x4x8xf32> {
  %o = attn.attention %q, %k, %v
      : tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>
      -> tensor<1x1x4x8xf32>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    // expected-error @+1 {{cannot differentiate 'math.sinh' in score_mod}}
    %r = math.sinh %s : f32
    attn.yield %r : f32
  }
  return %o : tensor<1x1x4x8xf32>
}
