// RUN: attn-opt %s --attn-to-cpu | FileCheck %s --check-prefix=CPU
// RUN: attn-opt %s --attn-to-cpu="lowering=loops" | FileCheck %s --check-prefix=CPU
// RUN: attn-run %s --entry=grad | FileCheck %s --check-prefix=JIT
// RUN: attn-run %s --entry=grad --lowering=loops | FileCheck %s --check-prefix=JIT
// RUN: not attn-opt %s --attn-to-nvvm="chip=sm_90a" 2>&1 | FileCheck %s --check-prefix=CONFIG
// RUN: not attn-opt %s --attn-instantiate-variants --attn-to-nvgpu 2>&1 | FileCheck %s --check-prefix=NVGPU

// attn.attention_grad lowers through attn-to-cpu with both lowerings (after
// attn-instantiate-variants has inlined its variant) and runs in attn-run
// (python/tests/test_cpu_backward.py checks the numbers). The GPU kernels
// refuse this f32 op for its element type, and attn-to-nvgpu one without a
// configuration.

// CPU-NOT: attn.attention_grad
// CPU: llvm.func @grad
// JIT-COUNT-3: result #{{[0-2]}}: tensor<1x2x5x8xf32> {{.+}} non-finite = 0

attn.variant @causal mask = [#attn.causal]

func.func @grad(%q: tensor<1x2x5x8xf32>, %o: tensor<1x2x5x8xf32>,
                %lse: tensor<1x2x5xf32>)
    -> (tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>) {
  // CONFIG: :[[@LINE+2]]:{{[0-9]+}}: error: 'attn.attention_grad' op cannot be compiled for the GPU yet: element type f32 (the tensor-core kernel takes f16 or bf16)
  // NVGPU: :[[@LINE+1]]:{{[0-9]+}}: error: 'attn.attention_grad' op has no 'attn.kernel_config' attribute: run attn-select-kernel-config first
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %o, %o
      lse(%lse : tensor<1x2x5xf32>) variant @causal
      : tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>,
        tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>
      -> tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>
  return %dq, %dk, %dv
      : tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>
}
