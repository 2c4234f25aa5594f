// RUN: attn-opt %s --split-input-file --attn-select-kernel-config --attn-to-nvgpu | FileCheck %s

// Document masks decide whole tiles from segment-id spans (SegmentSpans.h).
// Forward: each warp reduces the span of the CTA's queries by shuffles;
// then the threads share the key tiles, each reading one tile's ids in
// turn, and the CTA reduces the first and end tile that can meet them
// (through a 16 x i32 scratch, between barriers) before the ring starts.
// CHECK-LABEL: gpu.func @doc_fwd
// CHECK: gpu.shuffle  xor %{{.+}}, %c1_i32{{.*}} : i32
// CHECK: scf.for {{.+}} -> (index, index)
// CHECK: memref.store {{.+}} : memref<1x16xi32, #gpu.address_space<workgroup>>
// CHECK: gpu.barrier
// CHECK: memref.load {{.+}} : memref<1x16xi32, #gpu.address_space<workgroup>>
// CHECK: gpu.barrier
func.func @doc_fwd(%q: tensor<?x?x?x64xbf16>, %k: tensor<?x?x?x64xbf16>,
                   %v: tensor<?x?x?x64xbf16>, %seg: tensor<?x?xi32>)
    -> tensor<?x?x?x64xbf16> {
  %o = attn.attention %q, %k, %v captures(%seg : tensor<?x?xi32>)
      mask = [#attn.document<q_segments = 0, kv_segments = 0>]
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
      -> tensor<?x?x?x64xbf16>
  return %o : tensor<?x?x?x64xbf16>
}

// -----

// Positional masks alone keep the plan as it was: no scratch.
// CHECK-LABEL: gpu.func @causal_fwd
// CHECK-NOT: xi32, #gpu.address_space<workgroup>
// CHECK: gpu.return
func.func @causal_fwd(%q: tensor<?x?x?x64xbf16>, %k: tensor<?x?x?x64xbf16>,
                      %v: tensor<?x?x?x64xbf16>) -> tensor<?x?x?x64xbf16> {
  %o = attn.attention %q, %k, %v mask = [#attn.causal]
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
      -> tensor<?x?x?x64xbf16>
  return %o : tensor<?x?x?x64xbf16>
}

// -----

// Backward: each warp reduces the span of the CTA's key ids by shuffles;
// the query tiles' range then leaves out tiles whose span cannot meet it
// (each thread reads its tiles' ids; the CTA reduces the range between
// barriers); in the loop, each warp reduces the step's query span.
// CHECK-LABEL: gpu.func @doc_bwd(
// CHECK: gpu.shuffle  xor %{{.+}}, %c1_i32{{.*}} : i32
// CHECK-NOT: gpu.barrier
// CHECK: scf.for {{.+}} -> (index, index)
// CHECK: arith.cmpi slt, {{.+}} : i32
// CHECK: gpu.barrier
// CHECK: scf.for
// CHECK: gpu.shuffle  xor %{{.+}}, %c1_i32{{.*}} : i32
func.func @doc_bwd(%q: tensor<?x?x?x64xbf16>, %o: tensor<?x?x?x64xbf16>,
                   %lse: tensor<?x?x?xf32>, %seg: tensor<?x?xi32>)
    -> (tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %o, %o lse(%lse : tensor<?x?x?xf32>)
      captures(%seg : tensor<?x?xi32>)
      mask = [#attn.document<q_segments = 0, kv_segments = 0>]
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>,
        tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
      -> tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
  return %dq, %dk, %dv : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>
}
