// RUN: not attn-opt %s --attn-write-bundle="dir=%t" 2>&1 | FileCheck %s

// A gpu.module without a target cannot be serialized.
// CHECK: error: attn-write-bundle needs exactly one GPU target attached (nvvm-attach-target)
module attributes {gpu.container_module} {
  gpu.module @attn_kernels {
  }
}
