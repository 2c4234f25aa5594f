//===- Pipelines.h - attn pass pipelines ------------------------*- C++ -*-===//

#ifndef ATTN_PIPELINES_PIPELINES_H
#define ATTN_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"

namespace mlir::attn {

/// Options of `attn-to-cpu`.
struct AttnToCPUOptions : public PassPipelineOptions<AttnToCPUOptions> {
  PassOptions::Option<std::string> lowering{
      *this, "lowering",
      llvm::cl::desc("Which lowering of attn.attention: 'loops' (the naive "
                     "reference) or 'flash' (the tiled online form)"),
      llvm::cl::init("flash")};
  PassOptions::Option<int64_t> qTile{
      *this, "q-tile", llvm::cl::desc("Query rows per tile (flash)"),
      llvm::cl::init(16)};
  PassOptions::Option<int64_t> kvTile{
      *this, "kv-tile", llvm::cl::desc("Keys per KV tile (flash)"),
      llvm::cl::init(32)};
};

/// attn-to-cpu: from attn.attention on tensors (variants may be referenced)
/// to the LLVM dialect, ready for MLIR's ExecutionEngine.
///
/// Before: a module of func.func on tensors holding attn ops.
/// After: only llvm dialect ops; every function that returned tensors takes
/// its results as trailing memref out-parameters (static shapes: the caller
/// allocates them), and functions marked `llvm.emit_c_interface` have their
/// `_mlir_ciface_` wrapper.
void buildAttnToCPUPipeline(OpPassManager &pm, const AttnToCPUOptions &options);

/// Options of `attn-to-nvvm`.
struct AttnToNVVMOptions : public PassPipelineOptions<AttnToNVVMOptions> {
  PassOptions::Option<std::string> chip{
      *this, "chip", llvm::cl::desc("GPU architecture, e.g. sm_90a, sm_80"),
      llvm::cl::init("sm_90a")};
  PassOptions::Option<std::string> features{
      *this, "features", llvm::cl::desc("PTX features"),
      llvm::cl::init("+ptx80")};
  PassOptions::Option<std::string> bundleDir{
      *this, "bundle-dir",
      llvm::cl::desc("Write the .cubin/.ptx/.json bundle here (none if "
                     "empty)"),
      llvm::cl::init("")};
  PassOptions::Option<std::string> bundleName{
      *this, "bundle-name", llvm::cl::desc("File stem of the bundle"),
      llvm::cl::init("attn")};
  PassOptions::Option<std::string> toolkit{
      *this, "toolkit", llvm::cl::desc("CUDA toolkit (ptxas, libdevice)"),
      llvm::cl::init("/usr/local/cuda")};
  PassOptions::Option<int64_t> mTiles{
      *this, "m-tiles",
      llvm::cl::desc("attn-to-nvgpu m-tiles per warp (0: default)"),
      llvm::cl::init(0)};
  PassOptions::Option<int64_t> kvTile{
      *this, "kv-tile", llvm::cl::desc("attn-to-nvgpu KV tile (0: default)"),
      llvm::cl::init(0)};
  PassOptions::Option<int64_t> warps{
      *this, "warps",
      llvm::cl::desc("attn-to-nvgpu warps per CTA (0: default)"),
      llvm::cl::init(0)};
  PassOptions::Option<int64_t> stages{
      *this, "stages",
      llvm::cl::desc("attn-to-nvgpu K/V ring depth (0: default)"),
      llvm::cl::init(0)};
  PassOptions::Option<std::string> mma{
      *this, "mma",
      llvm::cl::desc("attn-to-nvgpu tensor-core instructions: sync, wgmma "
                     "or auto (auto: wgmma where the op allows it on "
                     "sm_90a, else mma.sync)"),
      llvm::cl::init("auto")};
  PassOptions::Option<std::string> pipeline{
      *this, "pipeline",
      llvm::cl::desc("attn-to-nvgpu: software-pipelined wgmma loop (auto, "
                     "on, off)"),
      llvm::cl::init("auto")};
};

/// attn-to-nvvm: from attn.attention on tensors (variants may be referenced)
/// to a gpu.binary holding one cubin with a kernel per attention op.
///
/// Before: a module of func.func on tensors holding attn ops.
/// After: `gpu.binary @attn_kernels` (cubin for `chip`), the host functions
/// gone, the launch descriptions in the module attribute `attn.kernels`; with
/// `bundle-dir`, the bundle files written there.
void buildAttnToNVVMPipeline(OpPassManager &pm,
                             const AttnToNVVMOptions &options);

/// Registers attn-to-cpu (and, as they come, the other attn pipelines).
void registerAttnPipelines();

} // namespace mlir::attn

#endif // ATTN_PIPELINES_PIPELINES_H
