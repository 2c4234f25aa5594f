// RUN: not attn-opt %s --attn-to-cpu 2>&1 | FileCheck %s --check-prefix=FLASH
// RUN: attn-opt %s --attn-to-cpu="lowering=loops" | FileCheck %s --check-prefix=LOOPS
// RUN: attn-run %s --entry=grad --lowering=loops | FileCheck %s --check-prefix=JIT-LOOPS
// RUN: not attn-opt %s --attn-to-nvvm="chip=sm_90a" 2>&1 | FileCheck %s --check-prefix=CONFIG
// RUN: not attn-opt %s --attn-to-nvgpu 2>&1 | FileCheck %s --check-prefix=NVGPU
// RUN: not attn-run %s --entry=grad 2>&1 | FileCheck %s --check-prefix=JIT

// attn.attention_grad lowers through attn-to-cpu (lowering=loops) and runs
// in attn-run; the passes that have no lowering of it refuse it with a
// diagnostic on the op (after attn-instantiate-variants has inlined its
// variant), instead of leaving it behind for bufferization or the bundle
// writer.

// LOOPS-NOT: attn.attention_grad
// LOOPS: llvm.func @grad
// JIT-LOOPS-COUNT-3: result #{{[0-2]}}: tensor<1x2x5x8xf32> {{.+}} non-finite = 0

attn.variant @causal mask = [#attn.causal]

func.func @grad(%q: tensor<1x2x5x8xf32>, %o: tensor<1x2x5x8xf32>,
                %lse: tensor<1x2x5xf32>)
    -> (tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>) {
  // FLASH: :[[@LINE+4]]:{{[0-9]+}}: error: 'attn.attention_grad' op has no lowering in attn-to-flash yet; only attn.attention is lowered
  // CONFIG: :[[@LINE+3]]:{{[0-9]+}}: error: 'attn.attention_grad' op has no lowering in attn-select-kernel-config yet; only attn.attention is lowered
  // NVGPU: :[[@LINE+2]]:{{[0-9]+}}: error: 'attn.attention_grad' op has no lowering in attn-to-nvgpu yet; only attn.attention is lowered
  // JIT: error: 'attn.attention_grad' op has no lowering in attn-to-flash yet
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %o, %o
      lse(%lse : tensor<1x2x5xf32>) variant @causal
      : tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>,
        tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>
      -> tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>
  return %dq, %dk, %dv
      : tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>
}
