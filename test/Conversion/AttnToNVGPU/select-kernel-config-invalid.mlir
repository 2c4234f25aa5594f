// RUN: attn-opt %s --split-input-file --attn-select-kernel-config --verify-diagnostics
// RUN: not attn-opt %s --split-input-file --attn-select-kernel-config="pipeline=on chip=sm_80" 2>&1 | FileCheck %s --check-prefix=SM80PIPE
// RUN: not attn-opt %s --split-input-file --attn-select-kernel-config="kv-tile=32" 2>&1 | FileCheck %s --check-prefix=DISAGREE

// SM80PIPE: error: 'attn.attention' op cannot take pipeline=on: the pipelined loop is wgmma's, and this op gets mma.sync (chip sm_80)
// DISAGREE: error: 'attn.attention' op carries 'attn.kernel_config' with block_n = 64 but the option 'kv-tile' asks for 32: drop the attribute to choose again

func.func @given(%q: tensor<?x?x?x64xbf16>, %k: tensor<?x?x?x64xbf16>, %v: tensor<?x?x?x64xbf16>) -> tensor<?x?x?x64xbf16> {
  %o = attn.attention %q, %k, %v {attn.kernel_config = #attn.kernel_config<mma = sync, warps = 4, m_tiles = 1, block_m = 64, block_n = 64, stages = 2, pipelined = false, key_norms = none, shared_memory_bytes = 46080>}
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16> -> tensor<?x?x?x64xbf16>
  return %o : tensor<?x?x?x64xbf16>
}

// -----

// More sink rows than one KV tile holds.
func.func @many_sink_rows(%q: tensor<?x?x?x128xbf16>, %k: tensor<?x?x?x128xbf16>, %v: tensor<?x?x?x128xbf16>, %sk: tensor<2x200x128xbf16>, %sv: tensor<2x200x128xbf16>) -> tensor<?x?x?x128xbf16> {
  // expected-error @+1 {{has 200 sink rows; the GPU kernel takes at most one KV tile of them (kv-tile = 128)}}
  %o = attn.attention %q, %k, %v sink_rows(%sk, %sv : tensor<2x200x128xbf16>, tensor<2x200x128xbf16>)
      : tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16> -> tensor<?x?x?x128xbf16>
  return %o : tensor<?x?x?x128xbf16>
}

// -----

// A region reading segment ids of unknown row length from a flat buffer.
func.func @segment_bias(%q: tensor<?x?x?x64xbf16>, %k: tensor<?x?x?x64xbf16>, %v: tensor<?x?x?x64xbf16>, %seg: tensor<?x?xi32>) -> tensor<?x?x?x64xbf16> {
  // expected-error @+1 {{cannot be compiled for the GPU yet: captured operand of type tensor<?x?xi32> (sizes past the first must be static)}}
  %o = attn.attention %q, %k, %v captures(%seg : tensor<?x?xi32>) mask = [#attn.document<q_segments = 0, kv_segments = 0>]
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16> -> tensor<?x?x?x64xbf16>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index, %c: tensor<?x?xi32>):
    %id = tensor.extract %c[%b, %j] : tensor<?x?xi32>
    %f = arith.sitofp %id : i32 to f32
    %r = arith.addf %s, %f : f32
    attn.yield %r : f32
  }
  return %o : tensor<?x?x?x64xbf16>
}

// -----

func.func @given_wrong_bytes(%q: tensor<?x?x?x64xbf16>, %k: tensor<?x?x?x64xbf16>, %v: tensor<?x?x?x64xbf16>) -> tensor<?x?x?x64xbf16> {
  // expected-error @+1 {{has shared_memory_bytes = 1000 in its 'attn.kernel_config'; its plan needs 46080}}
  %o = attn.attention %q, %k, %v {attn.kernel_config = #attn.kernel_config<mma = sync, warps = 4, m_tiles = 1, block_m = 64, block_n = 64, stages = 2, pipelined = false, key_norms = none, shared_memory_bytes = 1000>}
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16> -> tensor<?x?x?x64xbf16>
  return %o : tensor<?x?x?x64xbf16>
}

// -----

func.func @given_wgmma_d80(%q: tensor<?x?x?x80xbf16>, %k: tensor<?x?x?x80xbf16>, %v: tensor<?x?x?x80xbf16>) -> tensor<?x?x?x80xbf16> {
  // expected-error @+1 {{cannot use wgmma: head dims 80 and 80 (the swizzled wgmma tiles take multiples of 64)}}
  %o = attn.attention %q, %k, %v {attn.kernel_config = #attn.kernel_config<mma = wgmma, warps = 8, m_tiles = 1, block_m = 128, block_n = 64, stages = 2, pipelined = false, key_norms = none, shared_memory_bytes = 1>}
      : tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16>, tensor<?x?x?x80xbf16> -> tensor<?x?x?x80xbf16>
  return %o : tensor<?x?x?x80xbf16>
}


// -----

// The forward's CTA rows are 16 * m_tiles * warps.
func.func @given_block_m(%q: tensor<?x?x?x64xbf16>, %k: tensor<?x?x?x64xbf16>, %v: tensor<?x?x?x64xbf16>) -> tensor<?x?x?x64xbf16> {
  // expected-error @+1 {{has block_m = 32 in its 'attn.kernel_config'; the forward kernel's CTA has 16 * m_tiles * warps = 64 rows}}
  %o = attn.attention %q, %k, %v {attn.kernel_config = #attn.kernel_config<mma = sync, warps = 4, m_tiles = 1, block_m = 32, block_n = 64, stages = 2, pipelined = false, key_norms = none, shared_memory_bytes = 46080>}
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16> -> tensor<?x?x?x64xbf16>
  return %o : tensor<?x?x?x64xbf16>
}
