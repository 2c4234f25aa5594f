// Forced wgmma options the kernel cannot honour are diagnostics on the op.
// RUN: not attn-opt %s --attn-select-kernel-config="mma=wgmma warps=2" 2>&1 | FileCheck %s --check-prefix=WARPS
// RUN: not attn-opt %s --attn-select-kernel-config="mma=wgmma m-tiles=2" 2>&1 | FileCheck %s --check-prefix=MTILES
// RUN: not attn-opt %s --attn-select-kernel-config="mma=wgmma pipeline=on stages=2" 2>&1 | FileCheck %s --check-prefix=PIPE2
// RUN: not attn-opt %s --attn-select-kernel-config="mma=wgmma kv-tile=128 stages=4" 2>&1 | FileCheck %s --check-prefix=SMEM
// RUN: not attn-opt %s --attn-select-kernel-config="mma=sync pipeline=on" 2>&1 | FileCheck %s --check-prefix=SYNCPIPE
// RUN: attn-opt %s --attn-select-kernel-config="mma=wgmma pipeline=on" | FileCheck %s --check-prefix=PIPE

// WARPS: error: 'attn.attention' op cannot use wgmma (mma=wgmma): warps=2 (wgmma needs whole warpgroups: 4 or 8)
// MTILES: error: 'attn.attention' op cannot use wgmma (mma=wgmma): m-tiles=2 (a wgmma warp owns one 16-row m-tile)
// PIPE2: error: 'attn.attention' op cannot use wgmma (mma=wgmma): stages=2 with pipeline (the pipelined wgmma loop prefetches two tiles ahead: 3 or 4)
// SMEM: error: 'attn.attention' op needs 294912 bytes of shared memory with kv-tile=128 and stages=4 (at most 231424): use a smaller kv-tile, fewer stages or fewer query rows per CTA
// SYNCPIPE: error: attn-select-kernel-config: option 'pipeline' is 'on' with mma 'sync': the pipelined loop is wgmma's
// PIPE: #attn.kernel_config<mma = wgmma, warps = 8, m_tiles = 1, block_m = 128, block_n = 128, stages = 3, pipelined = true, key_norms = none, shared_memory_bytes = 229376>
func.func @softmax_d128(%q: tensor<?x?x?x128xbf16>, %k: tensor<?x?x?x128xbf16>, %v: tensor<?x?x?x128xbf16>) -> tensor<?x?x?x128xbf16> {
  %o = attn.attention %q, %k, %v
      : tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16> -> tensor<?x?x?x128xbf16>
  return %o : tensor<?x?x?x128xbf16>
}
