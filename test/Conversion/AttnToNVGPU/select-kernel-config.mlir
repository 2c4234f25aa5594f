// RUN: attn-opt %s --split-input-file --attn-select-kernel-config --verify-diagnostics | FileCheck %s
// RUN: attn-opt %s --split-input-file --attn-select-kernel-config="chip=sm_80" --verify-diagnostics | FileCheck %s --check-prefix=SM80
// RUN: attn-opt %s --split-input-file --attn-select-kernel-config="mma=sync warps=8 stages=2 kv-tile=16" --verify-diagnostics | FileCheck %s --check-prefix=FORCED
// RUN: not attn-opt %s --attn-select-kernel-config="kv-tile=-16" 2>&1 | FileCheck %s --check-prefix=KVTILE
// RUN: not attn-opt %s --attn-select-kernel-config="warps=3" 2>&1 | FileCheck %s --check-prefix=WARPS
// RUN: not attn-opt %s --attn-select-kernel-config="mma=tcgen05" 2>&1 | FileCheck %s --check-prefix=MMA
// RUN: not attn-opt %s --attn-select-kernel-config="pipeline=maybe" 2>&1 | FileCheck %s --check-prefix=PIPELINE
// RUN: not attn-opt %s --attn-select-kernel-config="chip=" 2>&1 | FileCheck %s --check-prefix=CHIP
// RUN: not attn-opt %s --attn-select-kernel-config="mma=wgmma chip=sm_80" 2>&1 | FileCheck %s --check-prefix=WGCHIP

// The decision is an attribute on the op; nothing else changes.
// Plain softmax at head dim 128 on sm_90a: one CTA of two warpgroups, the
// largest KV tile whose 2-stage ring fits (128), no pipelining.
// CHECK-LABEL: func.func @softmax_d128
// CHECK: attn.attention {{.+}} {attn.kernel_config = #attn.kernel_config<mma = wgmma, warps = 8, m_tiles = 1, block_m = 128, block_n = 128, stages = 2, pipelined = false, key_norms = none, shared_memory_bytes = 163840>}
// sm_80: mma.sync, 4 warps of two m-tiles, 32-key tiles above head dim 64.
// SM80: #attn.kernel_config<mma = sync, warps = 4, m_tiles = 2, block_m = 128, block_n = 32, stages = 3, pipelined = false, key_norms = none, shared_memory_bytes = 87040>
// Forced options win.
// FORCED: #attn.kernel_config<mma = sync, warps = 8, m_tiles = 2, block_m = 256, block_n = 16, stages = 2, pipelined = false, key_norms = none
// Bad options name the option and the values it takes.
// KVTILE: error: attn-select-kernel-config: option 'kv-tile' is -16: expected 0 (the default) or a multiple of 16 from 16 to 128
// WARPS: error: attn-select-kernel-config: option 'warps' is 3: expected 0 (the default), 1, 2, 4 or 8
// MMA: error: attn-select-kernel-config: option 'mma' is 'tcgen05': expected auto, sync or wgmma
// PIPELINE: error: attn-select-kernel-config: option 'pipeline' is 'maybe': expected auto, on or off
// CHIP: error: attn-select-kernel-config: option 'chip' is '': expected sm_<digits>[a], e.g. sm_90a or sm_80
// WGCHIP: error: attn-select-kernel-config: option 'mma' is 'wgmma' with chip 'sm_80': wgmma needs sm_90a
func.func @softmax_d128(%q: tensor<?x?x?x128xbf16>, %k: tensor<?x?x?x128xbf16>, %v: tensor<?x?x?x128xbf16>) -> tensor<?x?x?x128xbf16> {
  %o = attn.attention %q, %k, %v
      : tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16> -> tensor<?x?x?x128xbf16>
  return %o : tensor<?x?x?x128xbf16>
}

// -----

// Head dim 64: the pipelined loop, 64-key tiles, 4 stages; RBF norms on the
// tensor cores (bf16, shift-invariant softmax, no score region).
// CHECK-LABEL: func.func @rbf_d64
// CHECK: #attn.kernel_config<mma = wgmma, warps = 8, m_tiles = 1, block_m = 128, block_n = 64, stages = 4, pipelined = true, key_norms = mma, shared_memory_bytes = 94208>
// SM80: #attn.kernel_config<mma = sync, warps = 4, m_tiles = 2, block_m = 128, block_n = 64, stages = 3, pipelined = false, key_norms = smem
func.func @rbf_d64(%q: tensor<?x?x?x64xbf16>, %k: tensor<?x?x?x64xbf16>, %v: tensor<?x?x?x64xbf16>) -> tensor<?x?x?x64xbf16> {
  %o = attn.attention %q, %k, %v score<rbf>
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16> -> tensor<?x?x?x64xbf16>
  return %o : tensor<?x?x?x64xbf16>
}

// -----

// Per-element work beyond the softmax at head dim 128 (a score region):
// two one-warpgroup CTAs per SM with 64-key tiles.
// CHECK-LABEL: func.func @softcap_d128
// CHECK: #attn.kernel_config<mma = wgmma, warps = 4, m_tiles = 1, block_m = 64, block_n = 64, stages = 2, pipelined = false, key_norms = none
func.func @softcap_d128(%q: tensor<?x?x?x128xbf16>, %k: tensor<?x?x?x128xbf16>, %v: tensor<?x?x?x128xbf16>) -> tensor<?x?x?x128xbf16> {
  %o = attn.attention %q, %k, %v
      : tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16> -> tensor<?x?x?x128xbf16>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    %c = arith.constant 30.0 : f32
    %x = arith.divf %s, %c : f32
    %t = math.tanh %x : f32
    %r = arith.mulf %t, %c : f32
    attn.yield %r : f32
  }
  return %o : tensor<?x?x?x128xbf16>
}

// -----

// RBF in f16: f32 norms in shared memory.
// CHECK-LABEL: func.func @rbf_f16
// CHECK: key_norms = smem
func.func @rbf_f16(%q: tensor<?x?x?x64xf16>, %k: tensor<?x?x?x64xf16>, %v: tensor<?x?x?x64xf16>) -> tensor<?x?x?x64xf16> {
  %o = attn.attention %q, %k, %v score<rbf>
      : tensor<?x?x?x64xf16>, tensor<?x?x?x64xf16>, tensor<?x?x?x64xf16> -> tensor<?x?x?x64xf16>
  return %o : tensor<?x?x?x64xf16>
}

// -----

// Head dims that are not multiples of 64 fall back to mma.sync.
// CHECK-LABEL: func.func @d80
// CHECK: #attn.kernel_config<mma = sync, warps = 4, m_tiles = 2, block_m = 128, block_n = 32, stages = 3
func.func @d80(%q: tensor<?x?x?x80xbf16>, %k: tensor<?x?x?x80xbf16>, %v: tensor<?x?x?x80xbf16>) -> tensor<?x?x?x80xbf16> {
  %o = attn.attention %q, %k, %v
      : tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16> -> tensor<?x?x?x80xbf16>
  return %o : tensor<?x?x?x80xbf16>
}

// -----

func.func @refuse_f32(%q: tensor<1x1x64x64xf32>) -> tensor<1x1x64x64xf32> {
  // expected-error @+1 {{cannot be compiled for the GPU yet: element type f32 (the tensor-core kernel takes f16 or bf16)}}
  %o = attn.attention %q, %q, %q
      : tensor<1x1x64x64xf32>, tensor<1x1x64x64xf32>, tensor<1x1x64x64xf32> -> tensor<1x1x64x64xf32>
  return %o : tensor<1x1x64x64xf32>
}

// -----

func.func @refuse_head_dim(%q: tensor<1x1x64x72xbf16>) -> tensor<1x1x64x72xbf16> {
  // expected-error @+1 {{cannot be compiled for the GPU yet: head dims 72 and 72 (they must be multiples of 16, at most 256)}}
  %o = attn.attention %q, %q, %q
      : tensor<1x1x64x72xbf16>, tensor<1x1x64x72xbf16>, tensor<1x1x64x72xbf16> -> tensor<1x1x64x72xbf16>
  return %o : tensor<1x1x64x72xbf16>
}

// -----

func.func @refuse_feature_map(%q: tensor<1x1x64x64xbf16>) -> tensor<1x1x64x64xbf16> {
  // expected-error @+1 {{cannot be compiled for the GPU yet: feature maps q_map/k_map}}
  %o = attn.attention %q, %q, %q q_map<elu_plus_one> k_map<elu_plus_one> normalize<none>
      : tensor<1x1x64x64xbf16>, tensor<1x1x64x64xbf16>, tensor<1x1x64x64xbf16> -> tensor<1x1x64x64xbf16>
  return %o : tensor<1x1x64x64xbf16>
}

// -----

func.func @refuse_region_op(%q: tensor<1x1x64x64xbf16>, %t: tensor<4xf32>) -> tensor<1x1x64x64xbf16> {
  // expected-error @+1 {{cannot be compiled for the GPU yet: op 'tensor.dim' in a region}}
  %o = attn.attention %q, %q, %q captures(%t : tensor<4xf32>)
      : tensor<1x1x64x64xbf16>, tensor<1x1x64x64xbf16>, tensor<1x1x64x64xbf16> -> tensor<1x1x64x64xbf16>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index, %c: tensor<4xf32>):
    %c0 = arith.constant 0 : index
    %n = tensor.dim %c, %c0 : tensor<4xf32>
    %nf = arith.index_cast %n : index to i32
    %f = arith.sitofp %nf : i32 to f32
    %r = arith.addf %s, %f : f32
    attn.yield %r : f32
  }
  return %o : tensor<1x1x64x64xbf16>
}
