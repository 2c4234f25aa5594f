// RUN: attn-opt %s --split-input-file --attn-select-kernel-config --verify-diagnostics
// RUN: not attn-opt %s --split-input-file --attn-select-kernel-config="chip=sm_80" 2>&1 | FileCheck %s --check-prefix=SM80

// Carried backward configurations are checked against what the backward
// kernels take.

func.func @wgmma_block_m(%q: tensor<?x?x?x128xbf16>, %o: tensor<?x?x?x128xbf16>, %lse: tensor<?x?x?xf32>)
    -> (tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>) {
  // expected-error @+1 {{has block_m = 128 with warps = 8 in its 'attn.kernel_config'; the backward kernel takes m_tiles = 1, block_n = 16 * warps, block_m a multiple of 16 up to 128 (64 with wgmma, 4 or 8 warps), no pipelining and key_norms = none}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %o, %o lse(%lse : tensor<?x?x?xf32>)
      {attn.kernel_config = #attn.kernel_config<mma = wgmma, warps = 8, m_tiles = 1, block_m = 128, block_n = 128, stages = 2, pipelined = false, key_norms = none, shared_memory_bytes = 183296>}
      : tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>,
        tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>
      -> tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>
  return %dq, %dk, %dv : tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>
}

// -----

func.func @wgmma_d80(%q: tensor<?x?x?x80xbf16>, %o: tensor<?x?x?x80xbf16>, %lse: tensor<?x?x?xf32>)
    -> (tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>) {
  // expected-error @+1 {{cannot use wgmma in the backward kernel: head dims 80 and 80 (the swizzled wgmma tiles take multiples of 64)}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %o, %o lse(%lse : tensor<?x?x?xf32>)
      {attn.kernel_config = #attn.kernel_config<mma = wgmma, warps = 4, m_tiles = 1, block_m = 64, block_n = 64, stages = 2, pipelined = false, key_norms = none, shared_memory_bytes = 77824>}
      : tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>,
        tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>
      -> tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>
  return %dq, %dk, %dv : tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>
}

// -----

// A wgmma configuration is kept on sm_90a and refused for another chip.
// SM80: :[[# @LINE + 3]]:19: error: 'attn.attention_grad' op has mma = wgmma in its 'attn.kernel_config' but the chip is sm_80
func.func @wgmma_kept(%q: tensor<?x?x?x128xbf16>, %o: tensor<?x?x?x128xbf16>, %lse: tensor<?x?x?xf32>)
    -> (tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %o, %o lse(%lse : tensor<?x?x?xf32>)
      {attn.kernel_config = #attn.kernel_config<mma = wgmma, warps = 8, m_tiles = 1, block_m = 64, block_n = 128, stages = 2, pipelined = false, key_norms = none, shared_memory_bytes = 183296>}
      : tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>,
        tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>
      -> tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>
  return %dq, %dk, %dv : tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>
}
