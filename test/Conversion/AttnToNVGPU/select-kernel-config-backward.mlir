// RUN: attn-opt %s --split-input-file --attn-select-kernel-config --verify-diagnostics | FileCheck %s
// RUN: attn-opt %s --split-input-file --attn-select-kernel-config="warps=4" --verify-diagnostics | FileCheck %s --check-prefix=W4
// RUN: attn-opt %s --split-input-file --attn-select-kernel-config="mma=sync" --verify-diagnostics | FileCheck %s --check-prefix=SYNC
// RUN: attn-opt %s --split-input-file --attn-select-kernel-config="chip=sm_80" --verify-diagnostics | FileCheck %s --check-prefix=SYNC
// RUN: not attn-opt %s --split-input-file --attn-select-kernel-config="mma=wgmma" 2>&1 | FileCheck %s --check-prefix=WGMMA
// RUN: not attn-opt %s --split-input-file --attn-select-kernel-config="kv-tile=32" 2>&1 | FileCheck %s --check-prefix=KVTILE
// RUN: not attn-opt %s --split-input-file --attn-select-kernel-config="pipeline=on" 2>&1 | FileCheck %s --check-prefix=PIPE

// The backward kernels' configuration: 16 keys per warp (block_n = 16
// warps), a 64-query step, two stages of the Q and dO ring. On sm_90a,
// head dims multiples of 64 take wgmma with two warpgroups (128 keys);
// else mma.sync, 8 warps where its dQ product splits the head dim in two.
// wgmma with dot-product scores and no score region takes a third stage
// where it fits.
// CHECK-LABEL: func.func @causal_d128
// CHECK: attn.attention_grad {{.+}} {attn.kernel_config = #attn.kernel_config<mma = wgmma, warps = 8, m_tiles = 1, block_m = 64, block_n = 128, stages = 3, pipelined = false, key_norms = none, shared_memory_bytes = 216640>}
// W4: #attn.kernel_config<mma = wgmma, warps = 4, m_tiles = 1, block_m = 64, block_n = 64, stages = 3, pipelined = false, key_norms = none, shared_memory_bytes = 175680>
// SYNC: #attn.kernel_config<mma = sync, warps = 8, m_tiles = 1, block_m = 64, block_n = 128, stages = 2, pipelined = false, key_norms = none, shared_memory_bytes = 157760>
// WGMMA-DAG: #attn.kernel_config<mma = wgmma, warps = 8, m_tiles = 1, block_m = 64, block_n = 128
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

// Head dim 80: no swizzled tiles, so mma.sync; it does not split in two: 4
// warps.
// CHECK-LABEL: func.func @d80
// CHECK: #attn.kernel_config<mma = sync, warps = 4, m_tiles = 1, block_m = 64, block_n = 64
// W4: #attn.kernel_config<mma = sync, warps = 4, m_tiles = 1, block_m = 64, block_n = 64
// SYNC: #attn.kernel_config<mma = sync, warps = 4, m_tiles = 1, block_m = 64, block_n = 64
// WGMMA-DAG: error: 'attn.attention_grad' op cannot use wgmma (mma=wgmma) in the backward kernel: head dims 80 and 80 (the swizzled wgmma tiles take multiples of 64)
func.func @d80(%q: tensor<?x?x?x80xbf16>, %o: tensor<?x?x?x80xbf16>, %lse: tensor<?x?x?xf32>)
    -> (tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %o, %o lse(%lse : tensor<?x?x?xf32>)
      : tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>,
        tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>
      -> tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>
  return %dq, %dk, %dv : tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>
}

// -----

// Head dim 256: no wgmma plan fits in shared memory (the f32 dQ tile alone
// is 66 KiB), nor mma.sync's with 8 warps: mma.sync with 4.
// CHECK-LABEL: func.func @causal_d256
// CHECK: #attn.kernel_config<mma = sync, warps = 4, m_tiles = 1, block_m = 64, block_n = 64
// W4: #attn.kernel_config<mma = sync, warps = 4, m_tiles = 1, block_m = 64, block_n = 64
// SYNC: #attn.kernel_config<mma = sync, warps = 4, m_tiles = 1, block_m = 64, block_n = 64
// WGMMA-DAG: error: 'attn.attention_grad' op needs 273472 bytes of shared memory in its backward kernel with kv-tile=64 and stages=2 (at most 231424): use fewer warps or stages
func.func @causal_d256(%q: tensor<?x?x?x256xbf16>, %o: tensor<?x?x?x256xbf16>, %lse: tensor<?x?x?xf32>)
    -> (tensor<?x?x?x256xbf16>, tensor<?x?x?x256xbf16>, tensor<?x?x?x256xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %o, %o lse(%lse : tensor<?x?x?xf32>)
      mask = [#attn.causal]
      : tensor<?x?x?x256xbf16>, tensor<?x?x?x256xbf16>, tensor<?x?x?x256xbf16>,
        tensor<?x?x?x256xbf16>, tensor<?x?x?x256xbf16>
      -> tensor<?x?x?x256xbf16>, tensor<?x?x?x256xbf16>, tensor<?x?x?x256xbf16>
  return %dq, %dk, %dv : tensor<?x?x?x256xbf16>, tensor<?x?x?x256xbf16>, tensor<?x?x?x256xbf16>
}

// -----

// A score region (here ALiBi) or RBF scores keep two stages: the longer
// element code is slower with three.
// CHECK-LABEL: func.func @alibi_d128
// CHECK: #attn.kernel_config<mma = wgmma, warps = 8, m_tiles = 1, block_m = 64, block_n = 128, stages = 2,
// CHECK-LABEL: func.func @rbf_d128
// CHECK: #attn.kernel_config<mma = wgmma, warps = 8, m_tiles = 1, block_m = 64, block_n = 128, stages = 2,
func.func @alibi_d128(%q: tensor<?x?x?x128xbf16>, %o: tensor<?x?x?x128xbf16>, %lse: tensor<?x?x?xf32>,
                      %slopes: tensor<?xf32>)
    -> (tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?xf32>) {
  %dq, %dk, %dv, %ds = attn.attention_grad %q, %q, %q, %o, %o lse(%lse : tensor<?x?x?xf32>)
      captures(%slopes : tensor<?xf32>)
      : tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>,
        tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>
      -> tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?xf32>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index, %m: tensor<?xf32>):
    %x = tensor.extract %m[%h] : tensor<?xf32>
    %ii = arith.index_cast %i : index to i64
    %jj = arith.index_cast %j : index to i64
    %d = arith.subi %jj, %ii : i64
    %df = arith.sitofp %d : i64 to f32
    %bias = arith.mulf %x, %df : f32
    %r = arith.addf %s, %bias : f32
    attn.yield %r : f32
  }
  return %dq, %dk, %dv, %ds : tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?xf32>
}
func.func @rbf_d128(%q: tensor<?x?x?x128xbf16>, %o: tensor<?x?x?x128xbf16>, %lse: tensor<?x?x?xf32>)
    -> (tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %o, %o lse(%lse : tensor<?x?x?xf32>)
      score<rbf>
      : tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>,
        tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>
      -> tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>
  return %dq, %dk, %dv : tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>
}
