// RUN: attn-opt %s --split-input-file --attn-select-kernel-config --verify-diagnostics
// RUN: not attn-opt %s --split-input-file --attn-select-kernel-config="warps=8" 2>&1 | FileCheck %s --check-prefix=W8

// What the backward kernels do not take yet is refused on the op, with the
// reason.

// W8: error: 'attn.attention_grad' op cannot take warps=8: head dim 80 does not split in 2 parts of whole 16-column steps
func.func @d80(%q: tensor<?x?x?x80xbf16>, %o: tensor<?x?x?x80xbf16>, %lse: tensor<?x?x?xf32>)
    -> (tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %o, %o lse(%lse : tensor<?x?x?xf32>)
      : tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>,
        tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>
      -> tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>
  return %dq, %dk, %dv : tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>
}

// -----

func.func @sink_rows(%q: tensor<?x?x?x64xbf16>, %o: tensor<?x?x?x64xbf16>, %lse: tensor<?x?x?xf32>,
                     %sk: tensor<2x200x64xbf16>)
    -> (tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<2x200x64xbf16>, tensor<2x200x64xbf16>) {
  // expected-error @+1 {{has 200 sink rows; the GPU kernel takes at most one KV tile of them (kv-tile = 128)}}
  %dq, %dk, %dv, %dsk, %dsv = attn.attention_grad %q, %q, %q, %o, %o lse(%lse : tensor<?x?x?xf32>)
      sink_rows(%sk, %sk : tensor<2x200x64xbf16>, tensor<2x200x64xbf16>)
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>,
        tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
      -> tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<2x200x64xbf16>, tensor<2x200x64xbf16>
  return %dq, %dk, %dv, %dsk, %dsv : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<2x200x64xbf16>, tensor<2x200x64xbf16>
}

// -----

func.func @bf16_capture(%q: tensor<?x?x?x64xbf16>, %o: tensor<?x?x?x64xbf16>, %lse: tensor<?x?x?xf32>, %c: tensor<8xbf16>)
    -> (tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<8xbf16>) {
  // expected-error @+1 {{cannot be compiled for the GPU yet: a floating capture of type tensor<8xbf16> (its gradient is accumulated in f32: capture f32 tensors)}}
  %dq, %dk, %dv, %dc = attn.attention_grad %q, %q, %q, %o, %o lse(%lse : tensor<?x?x?xf32>)
      captures(%c : tensor<8xbf16>)
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>,
        tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
      -> tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<8xbf16>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index, %m: tensor<8xbf16>):
    %x = tensor.extract %m[%h] : tensor<8xbf16>
    %y = arith.extf %x : bf16 to f32
    %r = arith.addf %s, %y : f32
    attn.yield %r : f32
  }
  return %dq, %dk, %dv, %dc : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<8xbf16>
}

// -----

func.func @not_differentiable(%q: tensor<?x?x?x64xbf16>, %o: tensor<?x?x?x64xbf16>, %lse: tensor<?x?x?xf32>)
    -> (tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %o, %o lse(%lse : tensor<?x?x?xf32>)
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>,
        tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
      -> tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    // expected-error @+1 {{cannot differentiate 'math.sin' in score_mod}}
    %r = math.sin %s : f32
    attn.yield %r : f32
  }
  return %dq, %dk, %dv : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
}
