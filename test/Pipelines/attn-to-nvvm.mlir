// RUN: rm -rf %t && mkdir -p %t
// RUN: attn-opt %s --attn-to-nvvm="chip=sm_90a bundle-dir=%t toolkit=%cuda_toolkit" | FileCheck %s
// RUN: FileCheck %s --check-prefix=PTX < %t/attn.ptx
// RUN: FileCheck %s --check-prefix=JSON < %t/attn.json
// RUN: %ptxas -v -arch=sm_90a %t/attn.ptx -o %t/check.cubin 2>&1 | FileCheck %s --check-prefix=PTXAS
// RUN: %ptxas -v -arch=sm_90a %t/attn.ptx -o %t/check.cubin 2>&1 | FileCheck %s --check-prefix=SPILL
// RUN: attn-opt %s --attn-to-nvvm="chip=sm_80 toolkit=%cuda_toolkit" | FileCheck %s --check-prefix=SM80

// attn-to-nvvm ends in a gpu.binary holding the cubin; with bundle-dir it
// also writes the bundle. Variants referenced by symbol are instantiated.

attn.variant @streaming mask = [#attn.causal, #attn.sink_tokens<count = 4>, #attn.sliding_window<left = 255>]

// CHECK: module attributes {attn.kernels = [{{.+}}kernel = "streaming_d64"{{.+}}kernel = "softcap_d64"
// CHECK-NOT: func.func
// CHECK: gpu.binary @attn_kernels [#gpu.object<#nvvm.target<O = 3, chip = "sm_90a", features = "+ptx80">{{.+}}bin = "\7FELF
// SM80: gpu.binary @attn_kernels [#gpu.object<#nvvm.target<O = 3, chip = "sm_80"

// PTX: .target sm_90a
// PTX-DAG: .entry streaming_d64(
// PTX-DAG: .entry softcap_d64(
// PTX-DAG: .entry distance_d64(
// PTX-DAG: cp.async.cg.shared.global
// PTX-DAG: ldmatrix.sync.aligned.m8n8.x4.shared.b16
// PTX-DAG: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// PTX-DAG: ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16
// PTX-DAG: ex2.approx
// PTX-DAG: rcp.approx
// PTX-DAG: cvt.rn.bf16x2.f32
// PTX-DAG: vote.sync.any.pred

// JSON: "cubin": "attn.cubin"
// JSON: "format": "attn-bundle-v1"
// JSON: "kernel": "streaming_d64"
// JSON: "shared_memory_bytes": 73728
// JSON: "variant": "streaming"

// The default configurations at head dim 64 spill nothing.
// PTXAS-DAG: Compiling entry function 'streaming_d64' for 'sm_90a'
// PTXAS-DAG: Compiling entry function 'softcap_d64' for 'sm_90a'
// SPILL-COUNT-3: 0 bytes spill stores, 0 bytes spill loads
// SPILL-NOT: spill stores

func.func @streaming_d64(%q: tensor<?x?x?x64xbf16>, %k: tensor<?x?x?x64xbf16>, %v: tensor<?x?x?x64xbf16>) -> tensor<?x?x?x64xbf16> {
  %o = attn.attention %q, %k, %v variant @streaming
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16> -> tensor<?x?x?x64xbf16>
  return %o : tensor<?x?x?x64xbf16>
}

func.func @softcap_d64(%q: tensor<?x?x?x64xbf16>, %k: tensor<?x?x?x64xbf16>, %v: tensor<?x?x?x64xbf16>) -> tensor<?x?x?x64xbf16> {
  %o = attn.attention %q, %k, %v mask = [#attn.causal]
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16> -> tensor<?x?x?x64xbf16>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    %c = arith.constant 30.0 : f32
    %x = arith.divf %s, %c : f32
    %t = math.tanh %x : f32
    %r = arith.mulf %t, %c : f32
    attn.yield %r : f32
  }
  return %o : tensor<?x?x?x64xbf16>
}

// math.absi in a region (|i - j| distance bias) is lowered in the kernel.
// JSON: "kernel": "distance_d64"
func.func @distance_d64(%q: tensor<?x?x?x64xbf16>, %k: tensor<?x?x?x64xbf16>, %v: tensor<?x?x?x64xbf16>) -> tensor<?x?x?x64xbf16> {
  %o = attn.attention %q, %k, %v
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16> -> tensor<?x?x?x64xbf16>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    %ii = arith.index_cast %i : index to i32
    %jj = arith.index_cast %j : index to i32
    %d = arith.subi %ii, %jj : i32
    %a = math.absi %d : i32
    %af = arith.sitofp %a : i32 to f32
    %c = arith.constant -0.01 : f32
    %bias = arith.mulf %af, %c : f32
    %r = arith.addf %s, %bias : f32
    attn.yield %r : f32
  }
  return %o : tensor<?x?x?x64xbf16>
}
