//===- SelectKernelConfig.cpp - choose #attn.kernel_config ------*- C++ -*-===//
//
// Every decision about how an op's GPU kernel is built is taken here, once,
// and recorded on the op: attn-to-nvgpu only reads it.
//
//===----------------------------------------------------------------------===//

#include "attn/Conversion/AttnToNVGPU/KernelConfig.h"

#include "attn/Conversion/AttnCommon/AttnCodegen.h"
#include "attn/Conversion/AttnCommon/ScoreModVJP.h"
#include "attn/Conversion/AttnToNVGPU/BackwardKernel.h"
#include "attn/Conversion/AttnToNVGPU/ForwardKernel.h"
#include "attn/Conversion/AttnToNVGPU/KernelContext.h"
#include "attn/Conversion/Passes.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/Regex.h"

#define DEBUG_TYPE "attn-select-kernel-config"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNSELECTKERNELCONFIGPASS
#include "attn/Conversion/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::kernel;

std::optional<std::string>
attn::validateKernelConfigRequest(const KernelConfigRequest &r) {
  if (!llvm::Regex("^sm_[0-9]+a?$").match(r.chip))
    return "option 'chip' is '" + r.chip +
           "': expected sm_<digits>[a], e.g. sm_90a or sm_80";
  if (!llvm::is_contained({"auto", "sync", "wgmma"}, r.mma))
    return "option 'mma' is '" + r.mma + "': expected auto, sync or wgmma";
  if (!llvm::is_contained({"auto", "on", "off"}, r.pipeline))
    return "option 'pipeline' is '" + r.pipeline +
           "': expected auto, on or off";
  if (!llvm::is_contained({0, 1, 2}, r.mTiles))
    return "option 'm-tiles' is " + std::to_string(r.mTiles) +
           ": expected 0 (the default), 1 or 2";
  if (r.kvTile != 0 && (r.kvTile < 16 || r.kvTile > 128 || r.kvTile % 16))
    return "option 'kv-tile' is " + std::to_string(r.kvTile) +
           ": expected 0 (the default) or a multiple of 16 from 16 to 128";
  if (!llvm::is_contained({0, 1, 2, 4, 8}, r.warps))
    return "option 'warps' is " + std::to_string(r.warps) +
           ": expected 0 (the default), 1, 2, 4 or 8";
  if (r.stages != 0 && (r.stages < 2 || r.stages > 4))
    return "option 'stages' is " + std::to_string(r.stages) +
           ": expected 0 (the default) or 2 to 4";
  if (r.mma == "wgmma" && r.chip != "sm_90a")
    return "option 'mma' is 'wgmma' with chip '" + r.chip +
           "': wgmma needs sm_90a";
  if (r.mma == "sync" && r.pipeline == "on")
    return std::string("option 'pipeline' is 'on' with mma 'sync': the "
                       "pipelined loop is wgmma's");
  return std::nullopt;
}

/// Why `warps` (0: not given) keeps a kernel from wgmma, or nullopt.
static std::optional<std::string> wgmmaWarpsRefusal(int64_t warps) {
  if (warps != 0 && warps != 4 && warps != 8)
    return "warps=" + std::to_string(warps) +
           " (wgmma needs whole warpgroups: 4 or 8)";
  return std::nullopt;
}

/// Why the options keep `op` from wgmma, or nullopt.
static std::optional<std::string>
wgmmaRefusal(AttentionOp op, const KernelConfigRequest &r) {
  if (std::optional<std::string> why = wgmmaUnsupportedReason(op))
    return why;
  if (r.mTiles == 2)
    return std::string("m-tiles=2 (a wgmma warp owns one 16-row m-tile)");
  if (std::optional<std::string> why = wgmmaWarpsRefusal(r.warps))
    return why;
  if (r.stages == 2 && r.pipeline == "on")
    return std::string("stages=2 with pipeline (the pipelined wgmma loop "
                       "prefetches two tiles ahead: 3 or 4)");
  return std::nullopt;
}

/// The largest KV tile (up to 128) whose wgmma plan fits in shared memory.
static int64_t largestFittingKVTile(AttentionOp op, int64_t blockM,
                                    int64_t stages, KeyNormPath norms) {
  int64_t n = 128;
  while (n > 16 && forwardSharedMemoryBytes(op, MmaKind::wgmma, blockM, n,
                                            stages, norms) > kMaxSharedBytes)
    n /= 2;
  return n;
}

/// The plan of `bytes` fits in shared memory; `kernel` names the kernel in
/// the diagnostic (" in its backward kernel", or empty), `advice` what to
/// change.
static LogicalResult checkSharedMemory(Operation *op, int64_t bytes,
                                       int64_t blockN, int64_t stages,
                                       StringRef kernel = "",
                                       StringRef advice =
                                           "use a smaller kv-tile, fewer "
                                           "stages or fewer query rows per "
                                           "CTA") {
  if (bytes <= kMaxSharedBytes)
    return success();
  return op->emitOpError() << "needs " << bytes << " bytes of shared memory"
                           << kernel << " with kv-tile=" << blockN
                           << " and stages=" << stages << " (at most "
                           << kMaxSharedBytes << "): " << advice;
}

/// A carried configuration's shared_memory_bytes is its plan's, and its KV
/// tile holds the op's sink rows.
static LogicalResult checkCarriedPlan(Operation *op, KernelConfigAttr c,
                                      int64_t bytes, Value sinkKey);

/// The sink rows of an op fit in the one tile the kernel gives them.
static LogicalResult checkSinkRows(Operation *op, Value sinkKey,
                                   int64_t blockN) {
  if (!sinkKey)
    return success();
  int64_t ns = cast<RankedTensorType>(sinkKey.getType()).getDimSize(1);
  if (ShapedType::isDynamic(ns) || ns <= blockN)
    return success();
  return op->emitOpError() << "has " << ns
                           << " sink rows; the GPU kernel takes at most one "
                              "KV tile of them (kv-tile = "
                           << blockN << ")";
}

/// The op is self-contained and the GPU kernels can take it at all.
static LogicalResult checkCompilable(AttentionOp op) {
  if (failed(verifyInstantiated(op)))
    return failure();
  if (std::optional<std::string> why = forwardUnsupportedReason(op))
    return op.emitOpError() << "cannot be compiled for the GPU yet: " << *why;
  return success();
}

FailureOr<KernelConfigAttr>
attn::selectKernelConfig(AttentionOp op, const KernelConfigRequest &r) {
  if (failed(checkCompilable(op)))
    return failure();
  std::optional<std::string> noWgmma = wgmmaRefusal(op, r);
  if (r.mma == "wgmma" && noWgmma)
    return op.emitOpError() << "cannot use wgmma (mma=wgmma): " << *noWgmma;
  const bool wg = r.mma != "sync" && r.chip == "sm_90a" && !noWgmma;
  if (r.pipeline == "on" && !wg)
    return op.emitOpError()
           << "cannot take pipeline=on: the pipelined loop is wgmma's, and "
              "this op gets mma.sync ("
           << (noWgmma ? *noWgmma : "chip " + r.chip) << ")";
  // Measured defaults (bench/NOTES.md, bench/sweep.py); the pass
  // description states them.
  auto spec = cast<VariantSpecOpInterface>(op.getOperation());
  const bool small = std::max(op.getQuery().getType().getDimSize(3),
                              op.getValue().getType().getDimSize(3)) <= 64;
  const bool heavy = !spec.getScoreMod().empty() ||
                     !isSoftmaxFamily(spec.getNormalizationKind());
  const bool twoCtas = wg && !small && heavy;
  const bool pipe = wg && (r.pipeline == "on" ||
                           (r.pipeline == "auto" && small && r.stages != 2));
  const int64_t warps = r.warps ? r.warps : (wg && !twoCtas ? 8 : 4);
  const int64_t stages = r.stages ? r.stages
                         : pipe   ? (small ? 4 : 3)
                         : wg     ? 2
                                  : 3;
  const int64_t mTiles = wg ? 1 : (r.mTiles ? r.mTiles : 2);
  const int64_t blockM = 16 * mTiles * warps;
  const MmaKind mma = wg ? MmaKind::wgmma : MmaKind::sync;
  const KeyNormPath norms = forwardKeyNormPath(op, mma);
  int64_t blockN = r.kvTile;
  if (!blockN && ((pipe && small) || (twoCtas && !pipe)))
    blockN = 64;
  if (!blockN)
    blockN = wg ? largestFittingKVTile(op, blockM, stages, norms)
                : (small ? 64 : 32);
  int64_t bytes =
      forwardSharedMemoryBytes(op, mma, blockM, blockN, stages, norms);
  if (failed(checkSharedMemory(op, bytes, blockN, stages)) ||
      failed(checkSinkRows(op, op.getSinkKey(), blockN)))
    return failure();
  return KernelConfigAttr::get(op.getContext(), mma, warps, mTiles, blockM,
                               blockN, stages, pipe, norms, bytes,
                               /*deterministic=*/false);
}

LogicalResult attn::verifyKernelConfig(AttentionOp op, KernelConfigAttr c,
                                       StringRef chip) {
  if (failed(checkCompilable(op)))
    return failure();
  if (c.getBlockM() != 16 * c.getMTiles() * c.getWarps())
    return op.emitOpError() << "has block_m = " << c.getBlockM() << " in its '"
                            << kKernelConfigAttrName
                            << "'; the forward kernel's CTA has 16 * m_tiles "
                               "* warps = "
                            << 16 * c.getMTiles() * c.getWarps() << " rows";
  if (c.getDeterministic())
    return op.emitOpError() << "has deterministic = true in its '"
                            << kKernelConfigAttrName
                            << "': only the backward kernels take it (the "
                               "forward kernel adds in a fixed order)";
  if (c.getMma() == MmaKind::wgmma) {
    if (std::optional<std::string> why = wgmmaUnsupportedReason(op))
      return op.emitOpError() << "cannot use wgmma: " << *why;
    if (!chip.empty() && chip != "sm_90a")
      return op.emitOpError() << "has mma = wgmma in its '"
                              << kKernelConfigAttrName
                              << "' but the chip is " << chip;
  }
  KeyNormPath norms = forwardKeyNormPath(op, c.getMma());
  if (c.getKeyNorms() != norms)
    return op.emitOpError()
           << "has key_norms = " << stringifyKeyNormPath(c.getKeyNorms())
           << " in its '" << kKernelConfigAttrName << "'; this op takes "
           << stringifyKeyNormPath(norms);
  int64_t bytes = forwardSharedMemoryBytes(op, c.getMma(), c.getBlockM(),
                                           c.getBlockN(), c.getStages(), norms);
  if (failed(checkSharedMemory(op, bytes, c.getBlockN(), c.getStages())))
    return failure();
  return checkCarriedPlan(op, c, bytes, op.getSinkKey());
}

static LogicalResult checkCarriedPlan(Operation *op, KernelConfigAttr c,
                                      int64_t bytes, Value sinkKey) {
  if (bytes != c.getSharedMemoryBytes())
    return op->emitOpError() << "has shared_memory_bytes = "
                             << c.getSharedMemoryBytes() << " in its '"
                             << kKernelConfigAttrName << "'; its plan needs "
                             << bytes;
  return checkSinkRows(op, sinkKey, c.getBlockN());
}

LogicalResult
attn::checkRequestAgainstConfig(Operation *op, KernelConfigAttr c,
                                const KernelConfigRequest &r) {
  auto differs = [&](StringRef option, std::string given,
                     std::string carried) {
    return op->emitOpError()
           << "carries '" << kKernelConfigAttrName << "' with " << carried
           << " but the option '" << option << "' asks for " << given
           << ": drop the attribute to choose again";
  };
  std::string mma = stringifyMmaKind(c.getMma()).str();
  if (r.mma != "auto" && r.mma != mma)
    return differs("mma", r.mma, "mma = " + mma);
  std::string pipelined = c.getPipelined() ? "on" : "off";
  if (r.pipeline != "auto" && r.pipeline != pipelined)
    return differs("pipeline", r.pipeline, "pipelined = " + pipelined);
  auto check = [&](StringRef option, int64_t given, int64_t carried,
                   StringRef field) -> LogicalResult {
    if (!given || given == carried)
      return success();
    return differs(option, std::to_string(given),
                   (field + " = " + std::to_string(carried)).str());
  };
  if (isa<AttentionGradOp>(op) && r.deterministic && !c.getDeterministic())
    return differs("deterministic", "true", "deterministic = false");
  if (failed(check("m-tiles", r.mTiles, c.getMTiles(), "m_tiles")) ||
      failed(check("kv-tile", r.kvTile, c.getBlockN(), "block_n")) ||
      failed(check("warps", r.warps, c.getWarps(), "warps")) ||
      failed(check("stages", r.stages, c.getStages(), "stages")))
    return failure();
  return success();
}


//===----------------------------------------------------------------------===//
// The backward kernels
//===----------------------------------------------------------------------===//

/// Why the dQ product of the backward kernel cannot split the query tile
/// `blockM` over `warps` (16 queries per warp, the head dim in equal parts
/// of whole 16-column steps), or nullopt.
static std::optional<std::string>
backwardTileRefusal(AttentionGradOp op, int64_t warps, int64_t blockM) {
  int64_t mTiles = blockM / 16;
  int64_t dqk = cast<RankedTensorType>(op.getQuery().getType()).getDimSize(3);
  if (warps % mTiles)
    return "block_m = " + std::to_string(blockM) +
           " needs a multiple of " + std::to_string(mTiles) + " warps";
  int64_t parts = warps / mTiles;
  if ((dqk / 16) % parts)
    return "head dim " + std::to_string(dqk) + " does not split in " +
           std::to_string(parts) + " parts of whole 16-column steps";
  return std::nullopt;
}

/// The backward kernels can take `op` at all.
static LogicalResult checkCompilable(AttentionGradOp op) {
  if (op.getVariantAttr())
    return op.emitOpError() << "references variant " << op.getVariantAttr()
                            << "; run attn-instantiate-variants first";
  if (std::optional<std::string> why = backwardUnsupportedReason(op))
    return op.emitOpError() << "cannot be compiled for the GPU yet: " << *why;
  auto spec = cast<VariantSpecOpInterface>(op.getOperation());
  if (!spec.getScoreMod().empty() &&
      failed(checkScoreModDifferentiable(spec.getScoreMod())))
    return failure();
  return success();
}

static LogicalResult checkBackwardSharedMemory(AttentionGradOp op,
                                               int64_t bytes, int64_t blockN,
                                               int64_t stages) {
  return checkSharedMemory(op, bytes, blockN, stages,
                           " in its backward kernel",
                           "use fewer warps or stages");
}

/// Why the backward kernels cannot add every gradient of `op` in a fixed
/// order, or nullopt: dQ is ordered (OrderedTurns.h) and dK, dV are a CTA's
/// own; the gradients below are still summed by float atomics.
static std::optional<std::string> deterministicRefusal(AttentionGradOp op) {
  auto spec = cast<VariantSpecOpInterface>(op.getOperation());
  if (op.getSinkKey())
    return std::string("sink rows (their gradients are summed over the "
                       "batch by atomics)");
  // A floating capture that the score region reads gets its gradient by
  // atomics; one read only by the mask region gets none (zeros).
  Region &scoreMod = spec.getScoreMod();
  for (auto [i, c] : llvm::enumerate(op.getCaptures()))
    if (AttentionGradOp::isDifferentiableCapture(c.getType()) &&
        !scoreMod.empty() &&
        !scoreMod.front().getArgument(5 + i).use_empty())
      return "the floating capture #" + std::to_string(i) +
             " read by the score region (its gradient is summed by atomics)";
  return std::nullopt;
}

/// Why the backward kernel cannot use wgmma for `op` with the options'
/// warps, or nullopt.
static std::optional<std::string>
backwardWgmmaRefusal(AttentionGradOp op, int64_t warps) {
  if (std::optional<std::string> why = wgmmaUnsupportedReason(
          cast<RankedTensorType>(op.getQuery().getType()).getDimSize(3),
          cast<RankedTensorType>(op.getValue().getType()).getDimSize(3)))
    return why;
  return wgmmaWarpsRefusal(warps);
}

/// The backward kernel's tile of `warps`: 16 keys per warp, 64 queries.
static FailureOr<KernelConfigAttr>
backwardConfig(AttentionGradOp op, MmaKind mma, int64_t warps, int64_t stages,
               bool deterministic) {
  const int64_t blockN = 16 * warps, blockM = 64;
  if (mma == MmaKind::sync)
    if (std::optional<std::string> why =
            backwardTileRefusal(op, warps, blockM))
      return op.emitOpError() << "cannot take warps=" << warps << ": " << *why;
  if (deterministic && mma == MmaKind::sync &&
      cast<VariantSpecOpInterface>(op.getOperation()).getScoreKind() ==
          ScoreKind::rbf)
    return op.emitOpError()
           << "cannot take deterministic=true with mma.sync: RBF scores' dQ "
              "row sums are ordered in the wgmma dQ tile's padding";
  int64_t bytes = backwardSharedMemoryBytes(op, mma, blockM, blockN, stages);
  if (failed(checkBackwardSharedMemory(op, bytes, blockN, stages)) ||
      failed(checkSinkRows(op, op.getSinkKey(), blockN)))
    return failure();
  return KernelConfigAttr::get(op.getContext(), mma, warps, 1, blockM, blockN,
                               stages, false, KeyNormPath::none, bytes,
                               deterministic);
}

FailureOr<KernelConfigAttr>
attn::selectKernelConfig(AttentionGradOp op, const KernelConfigRequest &r) {
  if (failed(checkCompilable(op)))
    return failure();
  if (r.pipeline == "on")
    return op.emitOpError() << "cannot take pipeline=on: the backward kernel "
                               "has no pipelined loop";
  if (r.mTiles == 2)
    return op.emitOpError() << "cannot take m-tiles=2: a backward warp owns "
                               "one 16-key m-tile";
  if (r.deterministic)
    if (std::optional<std::string> why = deterministicRefusal(op))
      return op.emitOpError() << "cannot take deterministic=true: " << *why;
  int64_t warps = r.warps ? r.warps : r.kvTile / 16;
  std::optional<std::string> noWgmma = backwardWgmmaRefusal(op, warps);
  if (r.mma == "wgmma" && noWgmma)
    return op.emitOpError() << "cannot use wgmma (mma=wgmma) in the backward "
                               "kernel: "
                            << *noWgmma;
  int64_t stages = r.stages ? r.stages : 2;
  // wgmma on sm_90a with two warpgroups (128 keys), or one where two do not
  // fit in shared memory; else mma.sync, where measured
  // (bench/results/2026-12-01-h200-backward-v1*) 8 warps (128 keys) are
  // 1.1-1.3x faster than 4 where the dQ product splits the head dim.
  int64_t dqk = cast<RankedTensorType>(op.getQuery().getType()).getDimSize(3);
  bool wg = r.mma != "sync" && r.chip == "sm_90a" && !noWgmma;
  auto fitsStages = [&](MmaKind mma, int64_t w, int64_t st) {
    return backwardSharedMemoryBytes(op, mma, 64, 16 * w, st) <=
           kMaxSharedBytes;
  };
  auto fits = [&](MmaKind mma, int64_t w) {
    return fitsStages(mma, w, stages);
  };
  // Given warps that leave no room for the wgmma plan: mma.sync, unless
  // wgmma was asked for (then the plan's size is the diagnostic).
  if (wg && warps && r.mma != "wgmma" && !fits(MmaKind::wgmma, warps))
    wg = false;
  if (wg && !warps) {
    warps = fits(MmaKind::wgmma, 8)                         ? 8
            : fits(MmaKind::wgmma, 4) || r.mma == "wgmma" ? 4
                                                            : 0;
    wg = warps != 0;
  }
  if (!warps)
    warps = dqk % 32 == 0 && fits(MmaKind::sync, 8) ? 8 : 4;
  // A third stage where the element code is light (dot-product scores, no
  // score region) and it fits: measured 1.04-1.25x over two; with a score
  // region or RBF scores 5-15% slower (bench/results/
  // 2026-12-01-h200-backward-stages.txt).
  auto spec = cast<VariantSpecOpInterface>(op.getOperation());
  if (!r.stages && wg && spec.getScoreMod().empty() &&
      spec.getScoreKind() != ScoreKind::rbf &&
      fitsStages(MmaKind::wgmma, warps, 3))
    stages = 3;
  if (r.kvTile && r.kvTile != 16 * warps)
    return op.emitOpError() << "cannot take kv-tile=" << r.kvTile
                            << " with warps=" << warps
                            << ": the backward kernel's KV tile is 16 keys "
                               "per warp";
  if (!llvm::is_contained({4, 8}, warps))
    return op.emitOpError()
           << "cannot take "
           << (r.warps ? "warps=" + std::to_string(warps)
                       : "kv-tile=" + std::to_string(r.kvTile))
           << ": the backward kernel takes 4 or 8 warps of 16 keys (kv-tile "
              "64 or 128)";
  return backwardConfig(op, wg ? MmaKind::wgmma : MmaKind::sync, warps,
                        stages, r.deterministic);
}

LogicalResult attn::verifyKernelConfig(AttentionGradOp op, KernelConfigAttr c,
                                       StringRef chip) {
  if (failed(checkCompilable(op)))
    return failure();
  const bool wg = c.getMma() == MmaKind::wgmma;
  auto refuse = [&](StringRef what) {
    return op.emitOpError()
           << "has " << what << " in its '" << kKernelConfigAttrName
           << "'; the backward kernel takes m_tiles = 1, block_n = 16 * "
              "warps, block_m a multiple of 16 up to 128 (64 with wgmma, 4 "
              "or 8 warps), no pipelining and key_norms = none";
  };
  if (wg) {
    if (std::optional<std::string> why = backwardWgmmaRefusal(op, c.getWarps()))
      return op.emitOpError() << "cannot use wgmma in the backward kernel: "
                              << *why;
    if (!chip.empty() && chip != "sm_90a")
      return op.emitOpError() << "has mma = wgmma in its '"
                              << kKernelConfigAttrName
                              << "' but the chip is " << chip;
  }
  if (c.getMTiles() != 1)
    return refuse("m_tiles = " + std::to_string(c.getMTiles()));
  if (c.getBlockN() != 16 * c.getWarps())
    return refuse("block_n = " + std::to_string(c.getBlockN()));
  if (c.getBlockM() % 16 || c.getBlockM() > 128 ||
      (wg ? c.getBlockM() != 64
          : bool(backwardTileRefusal(op, c.getWarps(), c.getBlockM()))))
    return refuse("block_m = " + std::to_string(c.getBlockM()) +
                  " with warps = " + std::to_string(c.getWarps()));
  if (c.getPipelined())
    return refuse("pipelined = true");
  if (c.getDeterministic()) {
    std::optional<std::string> why = deterministicRefusal(op);
    if (!why && !wg &&
        cast<VariantSpecOpInterface>(op.getOperation()).getScoreKind() ==
            ScoreKind::rbf)
      why = "RBF scores with mma = sync (their dQ row sums are ordered in the "
            "wgmma dQ tile's padding)";
    if (why)
      return op.emitOpError() << "has deterministic = true in its '"
                              << kKernelConfigAttrName << "': " << *why;
  }
  if (c.getKeyNorms() != KeyNormPath::none)
    return refuse("key_norms = " +
                  stringifyKeyNormPath(c.getKeyNorms()).str());
  int64_t bytes = backwardSharedMemoryBytes(op, c.getMma(), c.getBlockM(),
                                            c.getBlockN(), c.getStages());
  if (failed(checkBackwardSharedMemory(op, bytes, c.getBlockN(),
                                       c.getStages())))
    return failure();
  return checkCarriedPlan(op, c, bytes, op.getSinkKey());
}

namespace {

struct AttnSelectKernelConfigPass final
    : attn::impl::AttnSelectKernelConfigPassBase<AttnSelectKernelConfigPass> {
  using Base::Base;

  KernelConfigRequest request() const {
    return {chip, mma, mTiles, kvTile, warps, stages, pipeline,
            deterministic};
  }

  LogicalResult initializeOptions(
      StringRef options,
      function_ref<LogicalResult(const Twine &)> errorHandler) override {
    if (failed(Pass::initializeOptions(options, errorHandler)))
      return failure();
    if (std::optional<std::string> why = validateKernelConfigRequest(request()))
      return errorHandler("attn-select-kernel-config: " + *why);
    return success();
  }

  void runOnOperation() override {
    if (std::optional<std::string> why =
            validateKernelConfigRequest(request())) {
      emitError(UnknownLoc::get(&getContext()))
          << "attn-select-kernel-config: " << *why;
      return signalPassFailure();
    }
    auto configure = [&](auto op) {
      if (auto given = op->template getAttrOfType<KernelConfigAttr>(
              kKernelConfigAttrName))
        return failed(verifyKernelConfig(op, given, chip)) ||
                       failed(checkRequestAgainstConfig(op, given,
                                                        request()))
                   ? WalkResult::interrupt()
                   : WalkResult::advance();
      FailureOr<KernelConfigAttr> config = selectKernelConfig(op, request());
      if (failed(config))
        return WalkResult::interrupt();
      op->setAttr(kKernelConfigAttrName, *config);
      return WalkResult::advance();
    };
    WalkResult walk = getOperation().walk([&](Operation *op) {
      if (auto fwd = dyn_cast<AttentionOp>(op))
        return configure(fwd);
      if (auto bwd = dyn_cast<AttentionGradOp>(op))
        return configure(bwd);
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      signalPassFailure();
  }
};

} // namespace
