// attn-run refuses arguments and results bigger than --memory-limit (8192
// MiB by default) before it allocates them, where it used to end in "LLVM
// ERROR: out of memory"; a shape whose size overflows 64 bits is refused too.
// RUN: not attn-run %s --entry=huge 2>&1 | FileCheck %s --check-prefix=HUGE
// RUN: not attn-run %s --entry=small --memory-limit=1 2>&1 | FileCheck %s --check-prefix=LIMIT
// RUN: not attn-run %s --entry=overflow 2>&1 | FileCheck %s --check-prefix=OVERFLOW
// RUN: attn-run %s --entry=small | FileCheck %s --check-prefix=SMALL
// RUN: attn-run %s --entry=small --memory-limit=0 | FileCheck %s --check-prefix=SMALL

// HUGE: attn-run: error: @huge needs 32784.1 MiB for its arguments and results (the largest, tensor<1x8x4194304x128xf32>, 16384.0 MiB), more than --memory-limit=8192 MiB; raise the limit (0: none) or use smaller shapes
// HUGE-NOT: LLVM ERROR
// LIMIT: attn-run: error: @small needs 2.0 MiB for its arguments and results (the largest, tensor<1x1x512x512xf32>, 1.0 MiB), more than --memory-limit=1 MiB
// OVERFLOW: attn-run: error: @overflow takes or returns tensor<4611686018427387904x4xf32>, more bytes than fit in 64 bits
// SMALL: result #0: tensor<1x1x512x512xf32>

func.func @huge(%q: tensor<1x8x2048x128xf32>, %k: tensor<1x8x4194304x128xf32>, %v: tensor<1x8x4194304x128xf32>) -> (tensor<1x8x2048x128xf32>, tensor<1x8x2048xf32>) {
  %o, %lse = attn.attention %q, %k, %v
      : tensor<1x8x2048x128xf32>, tensor<1x8x4194304x128xf32>, tensor<1x8x4194304x128xf32> -> tensor<1x8x2048x128xf32>, tensor<1x8x2048xf32>
  return %o, %lse : tensor<1x8x2048x128xf32>, tensor<1x8x2048xf32>
}

func.func @small(%x: tensor<1x1x512x512xf32>) -> tensor<1x1x512x512xf32> {
  return %x : tensor<1x1x512x512xf32>
}

func.func @overflow(%x: tensor<4611686018427387904x4xf32>) -> tensor<4611686018427387904x4xf32> {
  return %x : tensor<4611686018427387904x4xf32>
}
