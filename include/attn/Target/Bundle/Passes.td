//===- Passes.td - kernel bundle passes --------------------*- tablegen -*-===//

#ifndef ATTN_TARGET_BUNDLE_PASSES_TD
#define ATTN_TARGET_BUNDLE_PASSES_TD

include "mlir/Pass/PassBase.td"

def AttnWriteBundlePass : Pass<"attn-write-bundle", "::mlir::ModuleOp"> {
  let summary = "Write the kernel bundle: .cubin, .ptx and the launch .json";
  let description = [{
    Runs on a module whose `gpu.module @attn_kernels` is lowered to the NVVM
    dialect and carries an NVVM target: serializes it with the target to PTX
    and to a cubin (through the CUDA toolkit's ptxas) and writes
    `<dir>/<name>.ptx`, `<dir>/<name>.cubin` and `<dir>/<name>.json`, the
    last holding the target and, per kernel, the launch description that
    `attn-to-nvgpu` recorded. The IR is left unchanged.
  }];
  let options = [
    Option<"dir", "dir", "std::string", /*default=*/"\".\"",
           "Directory to write the bundle into">,
    Option<"bundleName", "name", "std::string", /*default=*/"\"attn\"",
           "File stem of the bundle">,
    Option<"toolkitPath", "toolkit", "std::string",
           /*default=*/"\"/usr/local/cuda\"",
           "CUDA toolkit (ptxas, libdevice)">,
  ];
}

#endif // ATTN_TARGET_BUNDLE_PASSES_TD
