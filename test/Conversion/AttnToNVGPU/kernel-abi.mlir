// RUN: attn-opt %s --split-input-file --attn-select-kernel-config --attn-to-nvgpu --verify-diagnostics | FileCheck %s

// The kernel's parameters (1-D global memrefs, then the sizes) and the
// launch description on the module: what the caller passes (params), what
// the runtime allocates (workspaces: the LSE when the op has no LSE
// result), and the ordered launches with grids over the sizes. The host
// function is gone.
// CHECK: module attributes {attn.kernels = [{config = {block_m = 64 : i64, block_n = 64 : i64, deterministic = false, key_norms = "none", m_tiles = 1 : i64, mma = "wgmma", pipelined = false, shared_memory_bytes = 81920 : i64, stages = 2 : i64, warps = 4 : i64}, dtype = "bf16", has_lse_result = false, head_dim_qk = 128 : i64, head_dim_v = 128 : i64
// CHECK-SAME: launches = [{args = ["q", "k", "v", "o", "lse", "sink_logits", "capture0", "B", "Hq", "Hkv", "Sq", "Sk", "Ns"], block = [128, 1, 1], grid = ["ceildiv(Sq, 64)", "Hq", "B"], kernel = "abi", shared_memory_bytes = 81920 : i64}]
// CHECK-SAME: name = "abi", params = [{dtype = "bf16", kind = "buffer", name = "q"}, {dtype = "bf16", kind = "buffer", name = "k"}, {dtype = "bf16", kind = "buffer", name = "v"}, {dtype = "bf16", kind = "buffer", name = "o"}, {dtype = "f32", kind = "buffer", name = "sink_logits"}, {dtype = "f32", kind = "buffer", name = "capture0", shape = [-1]}]
// CHECK-SAME: variant = "abi", workspaces = [{dtype = "f32", elements = "B * Hq * Sq", kind = "buffer", name = "lse"}]
// CHECK-NOT: func.func @abi
// CHECK: gpu.module @attn_kernels
// CHECK: gpu.func @abi(%{{.+}}: memref<?xbf16, 1>, %{{.+}}: memref<?xbf16, 1>, %{{.+}}: memref<?xbf16, 1>, %{{.+}}: memref<?xbf16, 1>, %{{.+}}: memref<?xf32, 1>, %{{.+}}: memref<?xf32, 1>, %{{.+}}: memref<?xf32, 1>, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index) kernel
// CHECK-SAME: known_block_size = array<i32: 128, 1, 1>
func.func @abi(%q: tensor<?x?x?x128xbf16>, %k: tensor<?x?x?x128xbf16>, %v: tensor<?x?x?x128xbf16>, %s: tensor<?xf32>, %slopes: tensor<?xf32>) -> tensor<?x?x?x128xbf16> {
  %o = attn.attention %q, %k, %v captures(%slopes : tensor<?xf32>) sink_logits(%s : tensor<?xf32>)
      : tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16>, tensor<?x?x?x128xbf16> -> tensor<?x?x?x128xbf16>
      score_mod {
  ^bb0(%x: f32, %b: index, %h: index, %i: index, %j: index, %m: tensor<?xf32>):
    %slope = tensor.extract %m[%h] : tensor<?xf32>
    %r = arith.addf %x, %slope : f32
    attn.yield %r : f32
  }
  return %o : tensor<?x?x?x128xbf16>
}

// -----

// Two ops in one function: two kernels, named f and f_1, one entry each.
// CHECK: kernel = "two"
// CHECK: kernel = "two_1"
// CHECK: gpu.func @two(
// CHECK: gpu.func @two_1(
func.func @two(%q: tensor<?x?x?x64xbf16>, %k: tensor<?x?x?x64xbf16>, %v: tensor<?x?x?x64xbf16>) -> (tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>) {
  %o1 = attn.attention %q, %k, %v
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16> -> tensor<?x?x?x64xbf16>
  %o2 = attn.attention %q, %k, %v mask = [#attn.causal]
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16> -> tensor<?x?x?x64xbf16>
  return %o1, %o2 : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
}

// -----

// Differential attention: the subtraction would be silently dropped by a
// bundle that runs only the attention kernels, so it is refused.
func.func @differential(%q: tensor<?x?x?x64xbf16>, %k: tensor<?x?x?x64xbf16>, %v: tensor<?x?x?x64xbf16>) -> tensor<?x?x?x64xbf16> {
  %o1 = attn.attention %q, %k, %v
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16> -> tensor<?x?x?x64xbf16>
  %o2 = attn.attention %q, %k, %v mask = [#attn.causal]
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16> -> tensor<?x?x?x64xbf16>
  // expected-error @+1 {{'arith.subf' op cannot be compiled into the GPU bundle: the bundle runs only the attn.attention ops of 'differential', so this op would be dropped}}
  %d = arith.subf %o1, %o2 : tensor<?x?x?x64xbf16>
  return %d : tensor<?x?x?x64xbf16>
}

// -----

// An operand computed inside the function would be replaced by the
// caller's raw tensor: refused.
func.func @computed_query(%x: tensor<1x1x64x64xbf16>) -> tensor<1x1x64x64xbf16> {
  %q = arith.addf %x, %x : tensor<1x1x64x64xbf16>
  // expected-error @+1 {{operand #0 is computed inside 'computed_query'}}
  %o = attn.attention %q, %x, %x
      : tensor<1x1x64x64xbf16>, tensor<1x1x64x64xbf16>, tensor<1x1x64x64xbf16> -> tensor<1x1x64x64xbf16>
  return %o : tensor<1x1x64x64xbf16>
}

// -----

// A pass that skips the configuration step is told so.
func.func @no_config(%q: tensor<1x1x64x64xbf16>) -> tensor<1x1x64x64xbf16> {
  %o = attn.attention %q, %q, %q
      : tensor<1x1x64x64xbf16>, tensor<1x1x64x64xbf16>, tensor<1x1x64x64xbf16> -> tensor<1x1x64x64xbf16>
  return %o : tensor<1x1x64x64xbf16>
}

// -----

// attn-to-nvgpu checks a configuration the op carries against the op: a
// hand-written wgmma configuration on head dim 80 is refused.
func.func @given_wgmma_d80(%q: tensor<1x1x64x80xbf16>) -> tensor<1x1x64x80xbf16> {
  // expected-error @+1 {{cannot use wgmma: head dims 80 and 80 (the swizzled wgmma tiles take multiples of 64)}}
  %o = attn.attention %q, %q, %q {attn.kernel_config = #attn.kernel_config<mma = wgmma, warps = 4, m_tiles = 1, block_m = 64, block_n = 64, stages = 2, pipelined = false, key_norms = none, shared_memory_bytes = 1>}
      : tensor<1x1x64x80xbf16>, tensor<1x1x64x80xbf16>, tensor<1x1x64x80xbf16> -> tensor<1x1x64x80xbf16>
  return %o : tensor<1x1x64x80xbf16>
}
