// Every bad attn-to-cpu option is refused while the pipeline is built: one
// error that names the option and its valid values, no pass run, no IR
// printed, no location.
// RUN: not attn-opt %s --attn-to-cpu="lowering=bogus" 2>&1 | FileCheck %s --check-prefix=LOWERING
// RUN: not attn-opt %s --attn-to-cpu="lowering=" 2>&1 | FileCheck %s --check-prefix=EMPTY
// RUN: not attn-opt %s --attn-to-cpu="kv-tile=-16" 2>&1 | FileCheck %s --check-prefix=KVTILE
// RUN: not attn-opt %s --attn-to-cpu="q-tile=0" 2>&1 | FileCheck %s --check-prefix=QTILE
// RUN: not attn-opt %s --attn-to-cpu="q-tile=65537" 2>&1 | FileCheck %s --check-prefix=QTILEBIG
// RUN: not attn-opt %s --attn-to-cpu="kv-tile=abc" 2>&1 | FileCheck %s --check-prefix=NOTINT
// RUN: not attn-opt %s --pass-pipeline="builtin.module(attn-to-cpu{kv-tile=0})" 2>&1 | FileCheck %s --check-prefix=TEXTUAL
// The same parser and checks in attn-run.
// RUN: not attn-run %s --entry=f --lowering=bogus 2>&1 | FileCheck %s --check-prefix=RUNLOWERING
// RUN: not attn-run %s --entry=f --kv-tile=0 2>&1 | FileCheck %s --check-prefix=RUNKVTILE
// Good values still compile.
// RUN: attn-opt %s --attn-to-cpu="lowering=loops" -o /dev/null
// RUN: attn-opt %s --attn-to-cpu="q-tile=1 kv-tile=4096" -o /dev/null

// LOWERING: attn-opt: for the --lowering option: 'bogus' is not a valid value; valid values: flash, loops
// LOWERING-NOT: {{.}}
// EMPTY: '' is not a valid value; valid values: flash, loops
// KVTILE: attn-opt: error: attn-to-cpu: kv-tile=-16 is out of range; valid values: 1 to 65536
// KVTILE-NOT: {{.}}
// QTILE: attn-opt: error: attn-to-cpu: q-tile=0 is out of range; valid values: 1 to 65536
// QTILE-NOT: {{.}}
// QTILEBIG: attn-opt: error: attn-to-cpu: q-tile=65537 is out of range; valid values: 1 to 65536
// NOTINT: for the --kv-tile option: 'abc' value invalid
// TEXTUAL: attn-to-cpu: kv-tile=0 is out of range; valid values: 1 to 65536
// TEXTUAL-NOT: func.func
// RUNLOWERING: attn-run: error: --lowering must be 'flash' or 'loops', got 'bogus'
// RUNKVTILE: attn-run: error: attn-to-cpu: kv-tile=0 is out of range; valid values: 1 to 65536

func.func @f(%q: tensor<1x1x3x16xf32>, %k: tensor<1x1x5x16xf32>, %v: tensor<1x1x5x16xf32>) -> (tensor<1x1x3x16xf32>, tensor<1x1x3xf32>) {
  %o, %lse = attn.attention %q, %k, %v
      : tensor<1x1x3x16xf32>, tensor<1x1x5x16xf32>, tensor<1x1x5x16xf32> -> tensor<1x1x3x16xf32>, tensor<1x1x3xf32>
  return %o, %lse : tensor<1x1x3x16xf32>, tensor<1x1x3xf32>
}
