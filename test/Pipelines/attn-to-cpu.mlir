// RUN: attn-opt %s --attn-to-cpu | FileCheck %s
// RUN: attn-opt %s --attn-to-cpu="lowering=loops" | FileCheck %s

// attn-to-cpu: from attn ops on tensors to the LLVM dialect. Results become
// trailing out-parameters (memref descriptors), the C interface wrapper is
// emitted, and nothing but llvm ops remains.

attn.variant @causal mask = [#attn.causal]

// CHECK-LABEL: llvm.func @f(
// CHECK-NOT: attn.
// The variant definition is erased after instantiation.
// CHECK-NOT: attn.variant
// CHECK-NOT: scf.
// CHECK-NOT: memref.
// CHECK: llvm.func @_mlir_ciface_f(%{{.+}}: !llvm.ptr, %{{.+}}: !llvm.ptr, %{{.+}}: !llvm.ptr, %{{.+}}: !llvm.ptr, %{{.+}}: !llvm.ptr)
func.func @f(%q: tensor<1x2x5x16xbf16>, %k: tensor<1x1x7x16xbf16>, %v: tensor<1x1x7x16xbf16>) -> (tensor<1x2x5x16xbf16>, tensor<1x2x5xf32>) attributes {llvm.emit_c_interface} {
  %o, %lse = attn.attention %q, %k, %v variant @causal
      : tensor<1x2x5x16xbf16>, tensor<1x1x7x16xbf16>, tensor<1x1x7x16xbf16> -> tensor<1x2x5x16xbf16>, tensor<1x2x5xf32>
  return %o, %lse : tensor<1x2x5x16xbf16>, tensor<1x2x5xf32>
}
