// RUN: attn-opt %s --split-input-file --attn-select-kernel-config --verify-diagnostics | FileCheck %s
// RUN: attn-opt %s --split-input-file --attn-select-kernel-config="warps=4" --verify-diagnostics | FileCheck %s --check-prefix=W4
// RUN: not attn-opt %s --split-input-file --attn-select-kernel-config="mma=wgmma" 2>&1 | FileCheck %s --check-prefix=WGMMA
// RUN: not attn-opt %s --split-input-file --attn-select-kernel-config="kv-tile=32" 2>&1 | FileCheck %s --check-prefix=KVTILE
// RUN: not attn-opt %s --split-input-file --attn-select-kernel-config="pipeline=on" 2>&1 | FileCheck %s --check-prefix=PIPE

// The backward kernels' configuration: mma.sync, 16 keys per warp
// (block_n = 16 warps; 8 warps where the dQ product splits the head dim in
// two), a 64-query step, two stages of the Q and dO ring.
// CHECK-LABEL: func.func @causal_d128
// CHECK: attn.attention_grad {{.+}} {attn.kernel_config = #attn.kernel_config<mma = sync, warps = 8, m_tiles = 1, block_m = 64, block_n = 128, stages = 2, pipelined = false, key_norms = none, shared_memory_bytes = 156672>}
// W4: #attn.kernel_config<mma = sync, warps = 4, m_tiles = 1, block_m = 64, block_n = 64, stages = 2, pipelined = false, key_norms = none, shared_memory_bytes = 113664>
// WGMMA: error: 'attn.attention_grad' op cannot use wgmma (mma=wgmma): the backward kernel is mma.sync only
// KVTILE: error: 'attn.attention_grad' op cannot take kv-tile=32: the backward kernel takes 4 or 8 warps of 16 keys (kv-tile 64 or 128)
// PIPE: error: 'attn.attention_grad' op cannot take pipeline=on: the backward kernel has no pipelined loop
func.func @causal_d128(%q: tensor<?x?x?x128xbf16>, %o: tensor<?x?x?x128xbf16>, %lse: tensor<?x?x?xf32>)
    -> (tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %o, %o lse(%lse : tensor<?x?x?xf32>)
      mask = [#attn.causal]
      : tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>,
        tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>
      -> tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>
  return %dq, %dk, %dv : tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>
}

// -----

// Head dim 80 does not split in two: 4 warps.
// CHECK-LABEL: func.func @d80
// CHECK: #attn.kernel_config<mma = sync, warps = 4, m_tiles = 1, block_m = 64, block_n = 64
func.func @d80(%q: tensor<?x?x?x80xbf16>, %o: tensor<?x?x?x80xbf16>, %lse: tensor<?x?x?xf32>)
    -> (tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %o, %o lse(%lse : tensor<?x?x?xf32>)
      : tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>,
        tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>
      -> tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>
  return %dq, %dk, %dv : tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>
}
