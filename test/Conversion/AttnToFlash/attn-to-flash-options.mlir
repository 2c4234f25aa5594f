// Options out of range are refused before any op is visited: one error that
// names the option and its valid values, at no location of the input, and
// no dump of the module.
// RUN: not attn-opt %s --attn-to-flash="kv-tile=-16" 2>&1 | FileCheck %s --check-prefix=KV
// RUN: not attn-opt %s --attn-to-flash="q-tile=0" 2>&1 | FileCheck %s --check-prefix=Q
// RUN: not attn-opt %s --attn-to-flash="q-tile=4 kv-tile=1000000" 2>&1 | FileCheck %s --check-prefix=BIG
// RUN: not attn-opt %s --attn-to-cpu="kv-tile=-16" 2>&1 | FileCheck %s --check-prefix=KV
// RUN: attn-opt %s --attn-to-flash="q-tile=65536 kv-tile=1" | FileCheck %s --check-prefix=EDGE

// KV: <unknown>:0: error: attn-to-flash: option 'kv-tile' must be an integer from 1 to 65536, got -16
// KV-NOT: error
// KV-NOT: see current operation
// KV-NOT: builtin.module

// Q: error: attn-to-flash: option 'q-tile' must be an integer from 1 to 65536, got 0
// Q-NOT: see current operation

// BIG: error: attn-to-flash: option 'kv-tile' must be an integer from 1 to 65536, got 1000000
// BIG-NOT: see current operation

// EDGE-LABEL: func.func @f
// EDGE-NOT: attn.attention
func.func @f(%q: tensor<1x1x3x16xf32>) -> tensor<1x1x3x16xf32> {
  %o = attn.attention %q, %q, %q mask = [#attn.causal]
      : tensor<1x1x3x16xf32>, tensor<1x1x3x16xf32>, tensor<1x1x3x16xf32> -> tensor<1x1x3x16xf32>
  return %o : tensor<1x1x3x16xf32>
}
