// Bad attn-to-cpu options are refused before any op is visited: one error
// that names the option and its valid values, and no dump of the module. The
// lowering is checked by its option's parser (it used to fall back to flash
// silently); the tiles by attn-to-flash when it starts
// (test/Conversion/AttnToFlash/attn-to-flash-options.mlir).
// RUN: not attn-opt %s --attn-to-cpu="lowering=bogus" 2>&1 | FileCheck %s --check-prefix=LOWERING
// RUN: not attn-opt %s --attn-to-cpu="lowering=" 2>&1 | FileCheck %s --check-prefix=EMPTY
// RUN: not attn-opt %s --pass-pipeline="builtin.module(attn-to-cpu{lowering=x})" 2>&1 | FileCheck %s --check-prefix=TEXTUAL
// RUN: not attn-opt %s --attn-to-cpu="q-tile=0" 2>&1 | FileCheck %s --check-prefix=QTILE
// RUN: not attn-opt %s --attn-to-cpu="kv-tile=abc" 2>&1 | FileCheck %s --check-prefix=NOTINT
// RUN: not attn-run %s --entry=f --lowering=bogus 2>&1 | FileCheck %s --check-prefix=RUNLOWERING
// Good values still compile.
// RUN: attn-opt %s --attn-to-cpu="lowering=loops" -o /dev/null
// RUN: attn-opt %s --attn-to-cpu="lowering=flash q-tile=1 kv-tile=65536" -o /dev/null

// LOWERING: attn-opt: for the --lowering option: 'bogus' is not a valid value; valid values: flash, loops
// LOWERING-NOT: {{.}}
// EMPTY: '' is not a valid value; valid values: flash, loops
// TEXTUAL: 'x' is not a valid value; valid values: flash, loops
// TEXTUAL-NOT: func.func
// QTILE: error: attn-to-flash: option 'q-tile' must be an integer from 1 to 65536, got 0
// QTILE-NOT: see current operation
// QTILE-NOT: func.func
// NOTINT: for the --kv-tile option: 'abc' value invalid
// RUNLOWERING: attn-run: error: --lowering must be 'flash' or 'loops', got 'bogus'

func.func @f(%q: tensor<1x1x3x16xf32>, %k: tensor<1x1x5x16xf32>, %v: tensor<1x1x5x16xf32>) -> (tensor<1x1x3x16xf32>, tensor<1x1x3xf32>) {
  %o, %lse = attn.attention %q, %k, %v
      : tensor<1x1x3x16xf32>, tensor<1x1x5x16xf32>, tensor<1x1x5x16xf32> -> tensor<1x1x3x16xf32>, tensor<1x1x3xf32>
  return %o, %lse : tensor<1x1x3x16xf32>, tensor<1x1x3xf32>
}
