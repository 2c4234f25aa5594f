// RUN: attn-opt %s --split-input-file --attn-select-kernel-config="deterministic=true" --verify-diagnostics

// Gradients still summed by float atomics are refused under
// deterministic=true, with the reason, rather than given out of order (RBF
// scores' row sums are ordered with wgmma only: head dim 80 takes mma.sync).
func.func @rbf(%q: tensor<?x?x?x80xbf16>, %o: tensor<?x?x?x80xbf16>, %lse: tensor<?x?x?xf32>)
    -> (tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>) {
  // expected-error @+1 {{cannot take deterministic=true with mma.sync: RBF scores' dQ row sums are ordered in the wgmma dQ tile's padding}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %o, %o lse(%lse : tensor<?x?x?xf32>) score<rbf>
      : tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>,
        tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>
      -> tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>
  return %dq, %dk, %dv : tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>
}

// -----

func.func @slopes(%q: tensor<?x?x?x64xbf16>, %o: tensor<?x?x?x64xbf16>, %lse: tensor<?x?x?xf32>,
                  %m: tensor<?xf32>)
    -> (tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?xf32>) {
  // expected-error @+1 {{cannot take deterministic=true: the floating capture #0 read by the score region (its gradient is summed by atomics)}}
  %dq, %dk, %dv, %dm = attn.attention_grad %q, %q, %q, %o, %o lse(%lse : tensor<?x?x?xf32>)
      captures(%m : tensor<?xf32>)
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>,
        tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
      -> tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?xf32>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index, %mm: tensor<?xf32>):
    %x = tensor.extract %mm[%h] : tensor<?xf32>
    %r = arith.addf %s, %x : f32
    attn.yield %r : f32
  }
  return %dq, %dk, %dv, %dm : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?xf32>
}

// -----

// A configuration written by hand is checked the same way, and the forward
// kernel does not take the field.
func.func @carried(%q: tensor<?x?x?x64xbf16>) -> tensor<?x?x?x64xbf16> {
  // expected-error @+1 {{has deterministic = true in its 'attn.kernel_config': only the backward kernels take it}}
  %o = attn.attention %q, %q, %q {attn.kernel_config = #attn.kernel_config<mma = wgmma, warps = 4, m_tiles = 1, block_m = 64, block_n = 64, stages = 2, pipelined = false, key_norms = none, shared_memory_bytes = 49152, deterministic = true>}
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
      -> tensor<?x?x?x64xbf16>
  return %o : tensor<?x?x?x64xbf16>
}
