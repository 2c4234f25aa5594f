// RUN: not attn-opt %s --attn-to-cpu 2>&1 | FileCheck %s --check-prefix=FLASH
// RUN: not attn-opt %s --attn-to-cpu="lowering=loops" 2>&1 | FileCheck %s --check-prefix=LOOPS
// RUN: not attn-opt %s --attn-to-nvvm="chip=sm_90a" 2>&1 | FileCheck %s --check-prefix=CONFIG
// RUN: not attn-opt %s --attn-instantiate-variants --attn-to-nvgpu 2>&1 | FileCheck %s --check-prefix=NVGPU
// RUN: not attn-run %s --entry=grad 2>&1 | FileCheck %s --check-prefix=JIT

// attn.attention_grad has no CPU lowering yet: those passes refuse it with a
// diagnostic on the op (after attn-instantiate-variants has inlined its
// variant), instead of leaving it behind for bufferization. The GPU kernels
// refuse this f32 op for its element type, and attn-to-nvgpu one without a
// configuration.

attn.variant @causal mask = [#attn.causal]

func.func @grad(%q: tensor<1x2x5x8xf32>, %o: tensor<1x2x5x8xf32>,
                %lse: tensor<1x2x5xf32>)
    -> (tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>) {
  // FLASH: :[[@LINE+5]]:{{[0-9]+}}: error: 'attn.attention_grad' op has no lowering in attn-to-flash yet; only attn.attention is lowered
  // LOOPS: :[[@LINE+4]]:{{[0-9]+}}: error: 'attn.attention_grad' op has no lowering in attn-lower-to-loops yet; only attn.attention is lowered
  // CONFIG: :[[@LINE+3]]:{{[0-9]+}}: error: 'attn.attention_grad' op cannot be compiled for the GPU yet: element type f32 (the tensor-core kernel takes f16 or bf16)
  // NVGPU: :[[@LINE+2]]:{{[0-9]+}}: error: 'attn.attention_grad' op has no 'attn.kernel_config' attribute: run attn-select-kernel-config first
  // JIT: error: 'attn.attention_grad' op has no lowering in attn-to-flash yet
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %o, %o
      lse(%lse : tensor<1x2x5xf32>) variant @causal
      : tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>,
        tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>
      -> tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>
  return %dq, %dk, %dv
      : tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>
}
