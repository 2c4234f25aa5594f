//===- Pipelines.h - attn pass pipelines ------------------------*- C++ -*-===//

#ifndef ATTN_PIPELINES_PIPELINES_H
#define ATTN_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"
#include "llvm/ADT/StringExtras.h"

namespace mlir::attn {

/// The parser of an enumerated pipeline option (values from `clEnumValN`): an
/// unknown value is an error that lists the valid ones, where llvm::cl alone
/// only says it cannot find it.
template <typename EnumT>
struct EnumOptionParser : public llvm::cl::parser<EnumT> {
  using llvm::cl::parser<EnumT>::parser;
  bool parse(llvm::cl::Option &opt, StringRef argName, StringRef arg,
             EnumT &value) {
    for (const auto &known : this->Values) {
      if (known.Name == arg) {
        value = known.V.getValue();
        return false;
      }
    }
    SmallVector<StringRef> names;
    for (const auto &known : this->Values)
      names.push_back(known.Name);
    return opt.error("'" + arg + "' is not a valid value; valid values: " +
                         llvm::join(names, ", "),
                     argName);
  }
};

/// The lowering of attn.attention that attn-to-cpu uses.
enum class CPULowering { Flash, Loops };
/// "flash" or "loops", as the option spells it.
StringRef stringifyCPULowering(CPULowering lowering);
llvm::raw_ostream &operator<<(llvm::raw_ostream &os, CPULowering lowering);

/// Options of `attn-to-cpu`. A lowering it does not know is refused by the
/// option's parser; q-tile and kv-tile are checked by attn-to-flash when it
/// starts (before it visits any op), so they are not checked twice.
struct AttnToCPUOptions : public PassPipelineOptions<AttnToCPUOptions> {
  PassOptions::Option<CPULowering, EnumOptionParser<CPULowering>> lowering{
      *this, "lowering", llvm::cl::desc("Which lowering of attn.attention"),
      llvm::cl::init(CPULowering::Flash),
      llvm::cl::values(
          clEnumValN(CPULowering::Flash, "flash", "the tiled online form"),
          clEnumValN(CPULowering::Loops, "loops", "the naive reference"))};
  PassOptions::Option<int64_t> qTile{
      *this, "q-tile", llvm::cl::desc("Query rows per tile (flash), 1 to 65536"),
      llvm::cl::init(16)};
  PassOptions::Option<int64_t> kvTile{
      *this, "kv-tile", llvm::cl::desc("Keys per KV tile (flash), 1 to 65536"),
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

/// The PTX version every kernel is built for at least (`+ptx80`); a chip that
/// needs a later one gets that.
constexpr unsigned kMinPTXVersion = 80;

/// Options of `attn-to-nvvm`.
struct AttnToNVVMOptions : public PassPipelineOptions<AttnToNVVMOptions> {
  PassOptions::Option<std::string> chip{
      *this, "chip",
      llvm::cl::desc("GPU architecture: sm_80 or later as LLVM's NVPTX "
                     "backend names it (sm_80, sm_86, sm_89, sm_90, sm_90a, "
                     "sm_100a, sm_120, ...)"),
      llvm::cl::init("sm_90a")};
  PassOptions::Option<std::string> features{
      *this, "features",
      llvm::cl::desc("PTX version, e.g. +ptx85 (empty: +ptx80, or the "
                     "first version that supports `chip` if later)"),
      llvm::cl::init("")};
  PassOptions::Option<std::string> bundleDir{
      *this, "bundle-dir",
      llvm::cl::desc("Write the .cubin/.ptx/.json bundle here (none if "
                     "empty); created, if missing, when the pipeline is built"),
      llvm::cl::init("")};
  PassOptions::Option<std::string> bundleName{
      *this, "bundle-name", llvm::cl::desc("File stem of the bundle"),
      llvm::cl::init("attn")};
  PassOptions::Option<std::string> toolkit{
      *this, "toolkit",
      llvm::cl::desc("CUDA toolkit directory: libdevice from its "
                     "nvvm/libdevice/, ptxas from its bin/, else from PATH "
                     "(/usr/local/cuda, or the site-packages/nvidia/cu13 of "
                     "the nvidia-cuda-nvcc wheel)"),
      llvm::cl::init("/usr/local/cuda")};
  PassOptions::Option<int64_t> mTiles{
      *this, "m-tiles",
      llvm::cl::desc("Kernel configuration (attn-select-kernel-config): m-tiles per warp (0: default)"),
      llvm::cl::init(0)};
  PassOptions::Option<int64_t> kvTile{
      *this, "kv-tile", llvm::cl::desc("Kernel configuration: keys per KV tile (0: default)"),
      llvm::cl::init(0)};
  PassOptions::Option<int64_t> warps{
      *this, "warps",
      llvm::cl::desc("Kernel configuration: warps per CTA (0: default)"),
      llvm::cl::init(0)};
  PassOptions::Option<int64_t> stages{
      *this, "stages",
      llvm::cl::desc("Kernel configuration: K/V ring depth (0: default)"),
      llvm::cl::init(0)};
  PassOptions::Option<std::string> mma{
      *this, "mma",
      llvm::cl::desc("Kernel configuration: tensor-core instructions: sync, wgmma "
                     "or auto (auto: wgmma where the op allows it on "
                     "sm_90a, else mma.sync)"),
      llvm::cl::init("auto")};
  PassOptions::Option<std::string> pipeline{
      *this, "pipeline",
      llvm::cl::desc("Kernel configuration: software-pipelined wgmma loop (auto, "
                     "on, off)"),
      llvm::cl::init("auto")};
  PassOptions::Option<bool> deterministic{
      *this, "deterministic",
      llvm::cl::desc("Kernel configuration: backward kernels that add dQ in "
                     "a fixed CTA order (bitwise-reproducible gradients)"),
      llvm::cl::init(false)};
};

/// Checks the target options of attn-to-nvvm before anything is built: the
/// chip (one the NVPTX backend knows, sm_80 or later), the PTX features
/// (versions it knows, none below what the chip needs), that the toolkit has
/// libdevice and a ptxas, that bundle-name is a file stem, and that
/// bundle-dir is a writable directory (it is created here if missing). Each error names the option
/// and its valid values. The kernel configuration (m-tiles, kv-tile, warps,
/// stages, mma, pipeline) is checked by the pass that consumes it.
LogicalResult
verifyAttnToNVVMOptions(const AttnToNVVMOptions &options,
                        function_ref<LogicalResult(const Twine &)> emitError);

/// attn-to-nvvm: from attn.attention on tensors (variants may be referenced)
/// to a gpu.binary holding one cubin with a kernel per attention op.
///
/// Before: a module of func.func on tensors holding attn ops; `options` have
/// passed verifyAttnToNVVMOptions.
/// After: `gpu.binary @attn_kernels` (cubin for `chip`), the host functions
/// gone, the launch descriptions in the module attribute `attn.kernels`; with
/// `bundle-dir`, the bundle files written there.
void buildAttnToNVVMPipeline(OpPassManager &pm,
                             const AttnToNVVMOptions &options);

/// Registers attn-to-cpu and attn-to-nvvm; the target options of
/// attn-to-nvvm are verified when the pipeline is built, so a bad one fails
/// before any pass runs.
void registerAttnPipelines();

} // namespace mlir::attn

#endif // ATTN_PIPELINES_PIPELINES_H
