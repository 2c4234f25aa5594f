// RUN: attn-opt %s --split-input-file --attn-select-kernel-config --attn-to-nvgpu | FileCheck %s


// RBF (bf16): the key norms ride on the tensor cores. A prologue kernel
// writes |k|^2 / 2 of every key as three bf16 parts (8 bf16 per key, rows
// padded to whole KV tiles); the main kernel takes it as `key_norms`, copies
// a tile's parts next to the K tile, and appends one unswizzled k-step
// ([-1, -1, -1, 0...] rows for Q) to the S chain; the scores then take the
// plain softmax path. Head dim 64: pipelined, 64-key tiles, 4 stages.
// The prologue runs first: its launch precedes the main kernel's, and the
// norms are a workspace of B * Hkv * ceil(Sk / 64) * 64 rows of 8 bf16.
// CHECK: launches = [{args = ["k", "key_norms", "B", "Hkv", "Sk"], block = [64, 1, 1], grid = ["ceildiv(Sk, 64)", "Hkv", "B"], kernel = "rbf_d64_key_norms", shared_memory_bytes = 0 : i64}, {args = ["q", "k", "v", "o", "lse", "key_norms", "B", "Hq", "Hkv", "Sq", "Sk", "Ns"]{{.*}}kernel = "rbf_d64"
// CHECK-SAME: {dtype = "bf16", elements = "B * Hkv * ceildiv(Sk, 64) * 512", kind = "buffer", name = "key_norms"}
// CHECK: gpu.func @rbf_d64({{.+}}, %[[NORMS:.+]]: memref<?xbf16, 1>, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index) kernel
// The unswizzled descriptor's fixed bits: leading byte offset 128, stride
// byte offset 256, no swizzle.
// CHECK-DAG: arith.constant 68720001024 : i64
// CHECK-DAG: arith.constant -1.000000e+00 : bf16
// CHECK: nvgpu.device_async_copy %[[NORMS]]
// CHECK: nvvm.wgmma.wait.group.sync.aligned 1
// CHECK: gpu.func @rbf_d64_key_norms(%{{.+}}: memref<?xbf16, 1>, %[[OUT:.+]]: memref<?xbf16, 1>, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index) kernel
// CHECK: vector.load {{.+}} : memref<?xbf16, 1>, vector<8xbf16>
// CHECK-COUNT-3: arith.truncf {{.+}} : f32 to bf16
// CHECK: vector.store {{.+}}, %[[OUT]]{{.+}} : memref<?xbf16, 1>, vector<8xbf16>
func.func @rbf_d64(%q: tensor<?x?x?x64xbf16>, %k: tensor<?x?x?x64xbf16>, %v: tensor<?x?x?x64xbf16>) -> tensor<?x?x?x64xbf16> {
  %o = attn.attention %q, %k, %v score<rbf>
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16> -> tensor<?x?x?x64xbf16>
  return %o : tensor<?x?x?x64xbf16>
}

// -----

// RBF in f16 (norms past the f16 range): f32 norms, gamma * log2(e) * |k|^2
// per key, applied per accumulator element.
// CHECK: {dtype = "f32", elements = "B * Hkv * ceildiv(Sk, 64) * 64", kind = "buffer", name = "key_norms"}
// CHECK: gpu.func @rbf_f16({{.+}}, %[[NORMS:.+]]: memref<?xf32, 1>, %{{.+}}: index
// CHECK: gpu.func @rbf_f16_key_norms(%{{.+}}: memref<?xf16, 1>, %[[OUT:.+]]: memref<?xf32, 1>
// CHECK: memref.store {{.+}}, %[[OUT]]
func.func @rbf_f16(%q: tensor<?x?x?x64xf16>, %k: tensor<?x?x?x64xf16>, %v: tensor<?x?x?x64xf16>) -> tensor<?x?x?x64xf16> {
  %o = attn.attention %q, %k, %v score<rbf>
      : tensor<?x?x?x64xf16>, tensor<?x?x?x64xf16>, tensor<?x?x?x64xf16> -> tensor<?x?x?x64xf16>
  return %o : tensor<?x?x?x64xf16>
}


// -----

// Learned sink rows: their key norms are computed in the kernel (four
// lanes a key, two shuffles) into the f32 norm tile, then a barrier.
// CHECK-LABEL: gpu.func @rbf_sink_rows
// CHECK: scf.if
// CHECK: gpu.shuffle xor
// CHECK: memref.store {{.+}} : memref<4x64xf32, #gpu.address_space<workgroup>>
// CHECK: gpu.barrier
func.func @rbf_sink_rows(%q: tensor<?x?x?x64xbf16>, %k: tensor<?x?x?x64xbf16>, %v: tensor<?x?x?x64xbf16>, %sk: tensor<?x?x64xbf16>, %sv: tensor<?x?x64xbf16>) -> tensor<?x?x?x64xbf16> {
  %o = attn.attention %q, %k, %v sink_rows(%sk, %sv : tensor<?x?x64xbf16>, tensor<?x?x64xbf16>) score<rbf>
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16> -> tensor<?x?x?x64xbf16>
  return %o : tensor<?x?x?x64xbf16>
}
