// REQUIRES: ptxas
// Every bad target option of attn-to-nvvm is refused while the pipeline is
// built, before the NVPTX backend sees it (an empty chip used to crash it, a
// PTX version below the chip's minimum was a fatal LLVM error): one error
// that names the option and its valid values, no IR printed, no location.
// The kernel configuration (m-tiles to pipeline) is checked there too, with
// the rules of attn-select-kernel-config.
// RUN: not attn-opt %s --attn-to-nvvm="kv-tile=-16" 2>&1 | FileCheck %s --check-prefix=KVTILE
// RUN: not attn-opt %s --attn-to-nvvm="chip=sm_80 mma=wgmma" 2>&1 | FileCheck %s --check-prefix=WGCHIP
// KVTILE: attn-opt: error: attn-to-nvvm: option 'kv-tile' is -16: expected 0 (the default) or a multiple of 16 from 16 to 128
// KVTILE-NOT: func.func
// WGCHIP: attn-opt: error: attn-to-nvvm: option 'mma' is 'wgmma' with chip 'sm_80': wgmma needs sm_90a
// RUN: rm -rf %t && mkdir -p %t && touch %t/file
// RUN: not attn-opt %s --attn-to-nvvm="chip=" 2>&1 | FileCheck %s --check-prefix=NOCHIP
// RUN: not attn-opt %s --attn-to-nvvm="chip=sm_70" 2>&1 | FileCheck %s --check-prefix=OLDCHIP
// RUN: not attn-opt %s --attn-to-nvvm="chip=sm_90b" 2>&1 | FileCheck %s --check-prefix=BADCHIP
// RUN: not attn-opt %s --attn-to-nvvm="chip=sm_90a,features=+ptx80" 2>&1 | FileCheck %s --check-prefix=COMMA
// RUN: not attn-opt %s --attn-to-nvvm="features=foo" 2>&1 | FileCheck %s --check-prefix=FEATURES
// RUN: not attn-opt %s --attn-to-nvvm="features=+ptx70" 2>&1 | FileCheck %s --check-prefix=OLDPTX
// RUN: not attn-opt %s --attn-to-nvvm="chip=sm_100a features=+ptx85" 2>&1 | FileCheck %s --check-prefix=CHIPPTX
// RUN: not attn-opt %s --attn-to-nvvm="toolkit=%t/none" 2>&1 | FileCheck %s --check-prefix=TOOLKIT
// RUN: not attn-opt %s --attn-to-nvvm="toolkit=%t" 2>&1 | FileCheck %s --check-prefix=LIBDEVICE
// RUN: not attn-opt %s --attn-to-nvvm="toolkit=%cuda_toolkit bundle-dir=%t/file/sub" 2>&1 | FileCheck %s --check-prefix=BUNDLEDIR
// RUN: not attn-opt %s --attn-to-nvvm="toolkit=%cuda_toolkit bundle-dir=%t/b bundle-name=a/b" 2>&1 | FileCheck %s --check-prefix=BUNDLENAME
// RUN: not attn-opt %s --attn-to-nvvm="toolkit=%cuda_toolkit bundle-name=" 2>&1 | FileCheck %s --check-prefix=NONAME
// Without features, a chip newer than PTX 8.0 gets its own minimum.
// RUN: attn-opt %s --attn-to-nvvm="chip=sm_100a toolkit=%cuda_toolkit" | FileCheck %s --check-prefix=SM100

// NOCHIP: attn-opt: error: attn-to-nvvm: chip='' is not a GPU it compiles for; valid values: sm_80, sm_86, {{.*}}sm_90, sm_90a, sm_100, sm_100a,{{.*}}
// NOCHIP-NOT: {{.}}
// OLDCHIP: attn-opt: error: attn-to-nvvm: chip='sm_70' is not a GPU it compiles for; valid values: sm_80,
// BADCHIP: chip='sm_90b' is not a GPU it compiles for; valid values: sm_80,
// COMMA: chip='sm_90a,features=+ptx80' is not a GPU it compiles for; valid values: sm_80,
// FEATURES: attn-opt: error: attn-to-nvvm: features='foo' is not a PTX version for chip='sm_90a'; valid values: empty (+ptx80), +ptx80, +ptx81,{{.*}}
// FEATURES-NOT: {{.}}
// OLDPTX: features='+ptx70' is not a PTX version for chip='sm_90a'; valid values: empty (+ptx80), +ptx80,
// CHIPPTX: features='+ptx85' is not a PTX version for chip='sm_100a'; valid values: empty (+ptx86), +ptx86, +ptx87,
// TOOLKIT: attn-opt: error: attn-to-nvvm: toolkit='{{.*}}none' is not a directory; valid values: a CUDA toolkit directory, with nvvm/libdevice/libdevice.10.bc and ptxas (in its bin/ or on PATH), e.g. /usr/local/cuda, or the site-packages/nvidia/cu13 folder that `pip install nvidia-cuda-nvcc` fills
// TOOLKIT-NOT: {{.}}
// LIBDEVICE: attn-opt: error: attn-to-nvvm: toolkit='{{.*}}' has no nvvm/libdevice/libdevice.10.bc; valid values: a CUDA toolkit directory
// BUNDLEDIR: attn-opt: error: attn-to-nvvm: bundle-dir='{{.*}}file/sub' cannot be created: {{.+}}; valid values: a writable directory, or a path where one can be created
// BUNDLEDIR-NOT: {{.}}
// BUNDLENAME: attn-opt: error: attn-to-nvvm: bundle-name='a/b' is not a file stem; valid values: a non-empty name without '/'
// NONAME: bundle-name='' is not a file stem
// SM100: #nvvm.target<O = 3, chip = "sm_100a", features = "+ptx86">

func.func @f(%q: tensor<1x1x64x64xbf16>, %k: tensor<1x1x64x64xbf16>, %v: tensor<1x1x64x64xbf16>) -> (tensor<1x1x64x64xbf16>, tensor<1x1x64xf32>) {
  %o, %lse = attn.attention %q, %k, %v
      : tensor<1x1x64x64xbf16>, tensor<1x1x64x64xbf16>, tensor<1x1x64x64xbf16> -> tensor<1x1x64x64xbf16>, tensor<1x1x64xf32>
  return %o, %lse : tensor<1x1x64x64xbf16>, tensor<1x1x64xf32>
}
