// REQUIRES: ptxas
// RUN: rm -rf %t && mkdir -p %t/sync %t/sm80
// RUN: attn-opt %s --attn-to-nvvm="chip=sm_90a bundle-dir=%t toolkit=%cuda_toolkit" | FileCheck %s
// RUN: FileCheck %s --check-prefix=PTX < %t/attn.ptx
// RUN: FileCheck %s --check-prefix=JSON < %t/attn.json
// RUN: %ptxas -v -arch=sm_90a %t/attn.ptx -o %t/check.cubin 2>&1 | FileCheck %s --check-prefix=PTXAS
// RUN: %ptxas -v -arch=sm_90a %t/attn.ptx -o %t/check.cubin 2>&1 | FileCheck %s --check-prefix=SPILL
// RUN: attn-opt %s --attn-to-nvvm="chip=sm_90a mma=sync bundle-dir=%t/sync toolkit=%cuda_toolkit" -o /dev/null
// RUN: FileCheck %s --check-prefix=SYNC < %t/sync/attn.ptx
// RUN: FileCheck %s --check-prefix=SYNCJSON < %t/sync/attn.json
// RUN: %ptxas -v -arch=sm_90a %t/sync/attn.ptx -o %t/check.cubin 2>&1 | FileCheck %s --check-prefix=SYNCSPILL
// RUN: attn-opt %s --attn-to-nvvm="chip=sm_80 bundle-dir=%t/sm80 toolkit=%cuda_toolkit" | FileCheck %s --check-prefix=SM80
// RUN: FileCheck %s --check-prefix=SYNC < %t/sm80/attn.ptx
// RUN: attn-opt %s --attn-to-nvvm="chip=sm_90a toolkit=%cuda_toolkit" -o /dev/null 2>&1 | FileCheck %s --allow-empty --check-prefix=NODIAG
// RUN: attn-opt %s --attn-to-nvvm="chip=sm_90a mma=sync toolkit=%cuda_toolkit" -o /dev/null 2>&1 | FileCheck %s --allow-empty --check-prefix=NODIAG

// A successful compile prints nothing.
// NODIAG-NOT: {{error|warning}}

// attn-to-nvvm ends in a gpu.binary holding the cubin; with bundle-dir it
// also writes the bundle. Variants referenced by symbol are instantiated.
// On sm_90a (mma=auto) head dims that are multiples of 64 get the wgmma
// kernel; mma=sync and sm_80 get the mma.sync kernel.

attn.variant @streaming mask = [#attn.causal, #attn.sink_tokens<count = 4>, #attn.sliding_window<left = 255>]

// CHECK: module attributes {attn.kernels = [{{.+}}kernel = "streaming_d64"{{.+}}kernel = "softcap_d64"
// CHECK-NOT: func.func
// CHECK: gpu.binary @attn_kernels [#gpu.object<#nvvm.target<O = 3, chip = "sm_90a", features = "+ptx80">{{.+}}bin = "\7FELF
// SM80: gpu.binary @attn_kernels [#gpu.object<#nvvm.target<O = 3, chip = "sm_80"

// The wgmma kernel: cp.async into swizzled tiles published to the async
// proxy, S = Q.K^T from shared memory, P.V with P from registers (m64n64:
// 64-key tiles and Dv = 64), one MUFU op per exponential. At head dim 64 the
// loop is pipelined: the wait for S of the next tile leaves P.V in flight.
// PTX: .target sm_90a
// PTX-DAG: .entry streaming_d64(
// PTX-DAG: .entry softcap_d64(
// PTX-DAG: .entry distance_d64(
// PTX-DAG: .entry rbf_d64(
// PTX-DAG: .entry rbf_d64_key_norms(
// PTX-DAG: .entry rbf_sinks_d64(
// PTX-DAG: .entry rbf_sinks_d64_key_norms(
// PTX-DAG: cp.async.cg.shared.global
// PTX-DAG: fence.proxy.async.shared::cta
// PTX-DAG: wgmma.fence.sync.aligned
// PTX-DAG: wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {{.+}}, {{%rd[0-9]+}}, {{%rd[0-9]+}}, p, 1, 1, 0, 0;
// PTX-DAG: wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {{.+}}, {{{%r[0-9]+}}, {{%r[0-9]+}}, {{%r[0-9]+}}, {{%r[0-9]+}}}, {{%rd[0-9]+}}, p, 1, 1, 1;
// PTX-DAG: wgmma.commit_group.sync.aligned
// PTX-DAG: wgmma.wait_group.sync.aligned 1
// PTX-DAG: wgmma.wait_group.sync.aligned 0
// PTX-DAG: ex2.approx.ftz.f32
// PTX-DAG: rcp.approx
// PTX-DAG: cvt.rn.bf16x2.f32
// PTX-DAG: vote.sync.any.pred
// PTX-NOT: mma.sync

// SYNC-DAG: cp.async.cg.shared.global
// SYNC-DAG: ldmatrix.sync.aligned.m8n8.x4.shared.b16
// SYNC-DAG: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// SYNC-DAG: ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16
// SYNC-DAG: ex2.approx.ftz.f32
// SYNC-DAG: cvt.rn.bf16x2.f32
// SYNC-DAG: vote.sync.any.pred
// SYNC-NOT: wgmma

// Two warpgroups of 64 rows, 64-key tiles, a 4-stage ring:
// 16 KiB of Q + 4 x (8 KiB K + 8 KiB V).
// JSON: "cubin": "attn.cubin"
// JSON: "format": "attn-bundle-v2"
// JSON: "config": {
// JSON-NEXT: "block_m": 128,
// JSON-NEXT: "block_n": 64,
// JSON-NEXT: "deterministic": false,
// JSON-NEXT: "key_norms": "none",
// JSON-NEXT: "m_tiles": 1,
// JSON-NEXT: "mma": "wgmma",
// JSON-NEXT: "pipelined": true,
// JSON-NEXT: "shared_memory_bytes": 81920,
// JSON-NEXT: "stages": 4,
// JSON-NEXT: "warps": 8
// JSON: "launches": [
// JSON: "block": [
// JSON-NEXT: 256,
// JSON: "grid": [
// JSON-NEXT: "ceildiv(Sq, 128)",
// JSON: "kernel": "streaming_d64",
// JSON-NEXT: "shared_memory_bytes": 81920
// JSON: "variant": "streaming"

// SYNCJSON: "mma": "sync",
// SYNCJSON: "stages": 3,
// SYNCJSON: "block": [
// SYNCJSON-NEXT: 128,
// SYNCJSON: "kernel": "streaming_d64",
// SYNCJSON-NEXT: "shared_memory_bytes": 73728

// The default configurations at head dim 64 spill nothing; with mma.sync
// the three softmax-family kernels spill nothing either (the mma.sync RBF
// kernel does: 40 bytes, see docs/performance.md).
// SYNCSPILL: Compiling entry function 'distance_d64' for 'sm_90a'
// SYNCSPILL-NEXT: Function properties for distance_d64
// SYNCSPILL-NEXT: 0 bytes spill stores, 0 bytes spill loads
// SYNCSPILL: Compiling entry function 'softcap_d64' for 'sm_90a'
// SYNCSPILL-NEXT: Function properties for softcap_d64
// SYNCSPILL-NEXT: 0 bytes spill stores, 0 bytes spill loads
// SYNCSPILL: Compiling entry function 'streaming_d64' for 'sm_90a'
// SYNCSPILL-NEXT: Function properties for streaming_d64
// SYNCSPILL-NEXT: 0 bytes spill stores, 0 bytes spill loads
// PTXAS-DAG: Compiling entry function 'streaming_d64' for 'sm_90a'
// PTXAS-DAG: Compiling entry function 'softcap_d64' for 'sm_90a'
// SPILL-COUNT-7: 0 bytes spill stores, 0 bytes spill loads
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

// RBF: the key-norm prologue kernel goes into the same cubin.
// JSON: "kernel": "rbf_d64_key_norms"
func.func @rbf_d64(%q: tensor<?x?x?x64xbf16>, %k: tensor<?x?x?x64xbf16>, %v: tensor<?x?x?x64xbf16>) -> tensor<?x?x?x64xbf16> {
  %o = attn.attention %q, %k, %v score<rbf>
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16> -> tensor<?x?x?x64xbf16>
  return %o : tensor<?x?x?x64xbf16>
}

// RBF with learned sink rows: their norms are computed in the kernel.
func.func @rbf_sinks_d64(%q: tensor<?x?x?x64xbf16>, %k: tensor<?x?x?x64xbf16>, %v: tensor<?x?x?x64xbf16>, %sk: tensor<?x?x64xbf16>, %sv: tensor<?x?x64xbf16>) -> tensor<?x?x?x64xbf16> {
  %o = attn.attention %q, %k, %v sink_rows(%sk, %sv : tensor<?x?x64xbf16>, tensor<?x?x64xbf16>) score<rbf> mask = [#attn.causal]
      : tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16>, tensor<?x?x?x64xbf16> -> tensor<?x?x?x64xbf16>
  return %o : tensor<?x?x?x64xbf16>
}
