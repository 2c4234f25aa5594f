//===- BackwardKernel.cpp - the main backward attention kernel --*- C++ -*-===//
//
// One CTA per (KV tile, kv head, batch), 16 keys per warp. Per accumulator
// element of S^T = K.Q^T (rows: keys; columns: queries, the m16n8 C layout:
// row = lane/4 (+8), column = 2*(lane%4) (+1)) the kernel recomputes the
// score, the weight p and dS from dP^T = V.dO^T, with the mask code only on
// tiles that are not fully visible. Query tiles no query of which sees the
// KV tile (by the structured masks) are never visited. The accumulators of
// wgmma (m64nN per warpgroup) have the same per-warp layout as mma.sync's,
// so the element code, the epilogue and the RBF sums are shared; only the
// products and the way dQ reaches the workspace differ.
//
//===----------------------------------------------------------------------===//

#include "attn/Conversion/AttnToNVGPU/BackwardKernel.h"

#include "attn/Conversion/AttnToNVGPU/CopyRing.h"
#include "attn/Conversion/AttnToNVGPU/KernelABI.h"
#include "attn/Conversion/AttnToNVGPU/OrderedTurns.h"
#include "attn/Conversion/AttnToNVGPU/KeyNormPrologue.h"
#include "attn/Conversion/AttnToNVGPU/MmaSync.h"
#include "attn/Conversion/AttnToNVGPU/RegionPeepholes.h"
#include "attn/Conversion/AttnToNVGPU/Schedule.h"
#include "attn/Conversion/AttnToNVGPU/SegmentSpans.h"
#include "attn/Conversion/AttnToNVGPU/Wgmma.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/Support/ScopedPrinter.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::kernel;

using P = arith::CmpIPredicate;

namespace {

const double kLog2e = 1.0 / std::log(2.0);

/// wgmma with two warpgroups (128 keys): they split dQ = dS.K by keys (each
/// its own 64, with a dQ tile of its own) where the head dim is not an even
/// number of 64-column panels, else by columns.
bool dqSplitsKeys(int64_t blockN, int64_t dqk) {
  return blockN == 128 && dqk % 128 != 0;
}

/// The tiles of the main kernel: K and V of the CTA's keys, the query-side
/// rings (Q, dO), and dS for the dQ product; rows padded for ldmatrix
/// (mma.sync), or in wgmma's 128-byte swizzle.
struct BackwardPlan {
  SharedMemoryPlan plan;
  SmemTile *k, *v, *q, *dO, *dS;
  /// Per query of the ring's tiles: lse and delta (softmax family),
  /// gamma |q|^2 (RBF); null where the op has none.
  SmemTile *lse = nullptr, *delta = nullptr, *qNorm = nullptr;
  /// The row factor of mean and scalable softmax (BackwardFacts::countsKeys).
  SmemTile *rowFactor = nullptr;
  /// wgmma: the f32 dQ of the query tile, rows padded, on its way to the
  /// workspace by bulk reductions.
  SmemTile *dQ = nullptr;
  /// The CTA's reduction of the query-tile range (setUpTileRange); ops
  /// with structured masks only.
  SmemTile *tileRange = nullptr;

  BackwardPlan(const BackwardPlan &) = delete;
  BackwardPlan &operator=(const BackwardPlan &) = delete;
  BackwardPlan(const BackwardFacts &f, MmaKind mma, int64_t blockM,
               int64_t blockN, int64_t stages) {
    SmemLayout l = mma == MmaKind::wgmma ? SmemLayout::Swizzle128
                                         : SmemLayout::Padded;
    k = &plan.add(l, 1, blockN, f.dqk, f.elt);
    v = &plan.add(l, 1, blockN, f.dv, f.elt);
    q = &plan.add(l, stages, blockM, f.dqk, f.elt);
    dO = &plan.add(l, stages, blockM, f.dv, f.elt);
    dS = &plan.add(l, 1, blockM, blockN, f.elt);
    Type f32 = Float32Type::get(f.elt.getContext());
    if (f.softmax) {
      lse = &plan.add(SmemLayout::Rows, stages, blockM, 1, f32);
      delta = &plan.add(SmemLayout::Rows, stages, blockM, 1, f32);
    }
    if (f.rbf)
      qNorm = &plan.add(SmemLayout::Rows, stages, blockM, 1, f32);
    if (f.countsKeys)
      rowFactor = &plan.add(SmemLayout::Rows, stages, blockM, 1, f32);
    // One stage per warpgroup where the two split the keys of dQ = dS.K.
    if (mma == MmaKind::wgmma)
      dQ = &plan.add(SmemLayout::Padded, dqSplitsKeys(blockN, f.dqk) ? 2 : 1,
                     blockM, f.dqk, f32);
    // The CTA's reductions of the query-tile range and key segments.
    if (f.searchesTiles)
      tileRange = &addMinMaxScratch(plan, f.elt.getContext());
  }
};

enum class Mode { Full, Masked, SinkRows };

/// A capture read by the score region whose index depends only on the
/// batch and the head: its gradient is summed in registers over a tile and
/// added once per warp.
struct UniformRead {
  bool uniform;
  unsigned captureIndex;
};

/// What the element code of one query tile yields.
struct TileGrads {
  SmallVector<Value> p, ds; ///< P^T and kernelFactor * dS0^T, per element.
  /// Per uniform capture read: the sum of its contributions, then its
  /// indices.
  SmallVector<Value> uniformSums;
  SmallVector<SmallVector<Value>> uniformIndices;
};

/// One element of the tile between the two halves of the element code.
struct ElementWeight {
  int64_t col = 0;
  Value s;       ///< The score after the region.
  Value p;       ///< Its weight, before the mask.
  Value visible; ///< Null on fully visible tiles.
  ScoreModVJP vjp;
};

/// The count of the spec's sink tokens (0 without).
static int64_t sinkTokenCount(VariantSpecOpInterface spec) {
  if (std::optional<ArrayAttr> masks = spec.getMasks())
    for (Attribute a : *masks)
      if (auto s = dyn_cast<SinkTokensAttr>(a))
        return s.getCount();
  return 0;
}

/// Builds the main backward kernel.
class BackwardKernelBuilder {
public:
  BackwardKernelBuilder(AttentionGradOp op, KernelConfigAttr config,
                        gpu::GPUModuleOp gpuModule, StringRef name)
      : op(op), spec(cast<VariantSpecOpInterface>(op.getOperation())),
        config(config), gpuModule(gpuModule), name(name.str()),
        f(BackwardFacts::get(op)), blockM(config.getBlockM()),
        blockN(config.getBlockN()), nTiles(blockM / 8),
        wgmma(config.getMma() == MmaKind::wgmma),
        deterministic(config.getDeterministic()),
        plan(f, config.getMma(), blockM, blockN, config.getStages()),
        sinkRows(bool(op.getSinkKey())) {}

  /// Builds the kernel; returns its launch (null after a diagnostic).
  FailureOr<DictionaryAttr> build();

private:
  void declareSignature();
  void bindOpInfo();
  void analyzeScoreMod();
  void setUpThreadIndices();
  /// The CTA's KV tile (numKVTiles: the sink rows), and hk and bIdx, from
  /// its place in the launch order.
  Value setUpLaunchOrder(Value numKVTiles);
  /// Whether some tiles see every query tile (launched first; not in the
  /// deterministic order, whose ranks follow blockIdx.x).
  bool heavyFirst() {
    return !deterministic && (sinkRows || sinkTokenCount(spec) > 0);
  }
  /// Deterministic: the turn counter of query tile `tile` of `head`.
  Value turnIndex(Value head, Value tile);
  /// Deterministic: this CTA's turns, adding nothing, at the query tiles
  /// [lo, hi) of every head of its group (the threads share them).
  void skipTurns(Value lo, Value hi);
  /// Deterministic with positional masks alone (causal, windows, sink
  /// tokens, chunks, prefix-LM): a query tile's adders are known from its
  /// intervals, so each CTA waits for the count of adders before it and
  /// tiles it does not add to take no turn; otherwise every CTA takes a
  /// turn at every tile (skipTurns) and waits for its rank.
  bool countsTurns();
  /// The keys the structured masks let query tile t see (emitKVRange): the
  /// range search's test and the count of a tile's adders read the same.
  KVRange queryTileKVRange(Value t);
  /// Deterministic: the counter value at which this CTA adds to `tile`.
  Value turnOf(Value tile);
  /// Deterministic: the turn counter of ring step u's query tile.
  Value stepTurn(Value u);
  /// Deterministic, wgmma: the turn of ring step u passes (thread 0), after
  /// its bulk reductions complete.
  void passStepTurn(Value u);
  void setUpTileRange();
  /// Document masks: the (min, max) segment id of the CTA's keys, per
  /// capture (keySpans), by each warp, before the tile range.
  void summarizeKeySegments();
  /// Document masks: the same for the queries of the step's tile, by each
  /// warp (querySpans); issued at the step's start.
  void summarizeQuerySegments();
  void loadQueryTile(Value u, Value stage);
  void loadKeys();
  /// `sinks()` on the CTA of the sink rows, `regular()` on the others.
  void bySinkTile(function_ref<void()> sinks, function_ref<void()> regular);
  void computeKeyNorms();
  SmallVector<Value> step(Value u, Value stage, ValueRange cur);
  /// The value of `tile` (per query of the ring's current stage) for this
  /// thread's column `col`, loaded once per element branch.
  Value column(const SmemTile *tile, int64_t col);
  /// The query of the tile in this thread's column `col`:
  /// 8 (col / 2) + 2 (lane % 4) + col % 2 (the m16n8 C layout).
  Value localQuery(int64_t col);
  /// The element code of the tile: the weights from S^T first, then
  /// `getDP()` (with wgmma, the wait for the dP^T chain, which runs
  /// meanwhile) and the gradients.
  TileGrads elements(ArrayRef<Value> s, function_ref<SmallVector<Value>()> getDP,
                     Mode mode);
  ElementWeight weigh(Value acc, int64_t r, int64_t col, Mode mode);
  void grad(TileGrads &out, const ElementWeight &w, Value dp, Mode mode);
  /// The weight of score s, and dS = dL/ds from it, by the normalization.
  Value weight(Value s, int64_t col);
  Value gradOfWeight(Value s, Value p, Value dp, int64_t col);
  void addCapture(const CaptureContribution &c, Value value);
  SmallVector<Value>
  dispatchElements(ArrayRef<Value> s, function_ref<SmallVector<Value>()> getDP);
  /// RBF: the warp's sums of kernelFactor dS0 per query (its column),
  /// added to dq_row_sums by atomics; deterministic, returned instead (for
  /// writeRowSumColumns).
  SmallVector<Value> addRowSums(ArrayRef<Value> ds);
  /// Deterministic RBF (wgmma): warp w's row sums into padding column
  /// dqk + w of the dQ tile, the other padding columns zeroed, so the
  /// tile's bulk reduction adds them in turn with dQ (the postprocess sums
  /// the columns in order).
  void writeRowSumColumns(ArrayRef<Value> sums);
  void storeDS(ArrayRef<Value> ds);
  void accumulateDQ();
  /// wgmma: the warpgroup's S^T (or dP^T) = rows.cols^T over `depth`, the
  /// rows its 64 resident keys, the columns the query tile of `stage`.
  Value issueTransposed(const SmemTile &rows, const SmemTile &cols,
                        Value stage, int64_t depth,
                        SmallVector<Value> &inFlight);
  /// The packed A fragments of the accumulators `a` (key rows), one group
  /// of 4 per 16-query k-step.
  SmallVector<Value> packKeyRows(ArrayRef<Value> a);
  /// wgmma: dS (queries x keys) from its packed fragments by stmatrix.trans,
  /// one x4 per k-step (the same rounded values the dK chain reads).
  void storeDSMatrices(ArrayRef<Value> packed);
  /// wgmma: acc += A.B with A the packed fragments `a` (packKeyRows) and
  /// B the query tile `t` of `stage`, read MN-major.
  SmallVector<Value> issueKeySide(ArrayRef<Value> acc, ArrayRef<Value> a,
                                  const SmemTile &t, Value stage,
                                  SmallVector<Value> &inFlight);
  /// wgmma: dQ = dS.K for the query tile into the workspace, after the
  /// chains of `inFlight` (dK, dV) and its own retire.
  void accumulateDQWgmma(SmallVector<Value> &inFlight,
                         MutableArrayRef<Value> keySide);
  /// dq_accum += acc for the rows (rowOfWarp + lane / 4 (+8)) and the
  /// columns from firstCol of the query tile, in the m16n8 C layout.
  void addToDQAccum(ArrayRef<Value> acc, Value rowOfWarp, Value firstCol,
                    int64_t dTiles);
  /// wgmma: the same through shared memory: the tile's dQ rows, then one
  /// bulk reduction of the valid rows per part.
  void reduceDQRows(ArrayRef<Value> acc, Value rowOfWarp, Value firstCol,
                    int64_t dTiles);
  void flushUniformCaptures(ArrayRef<Value> sums,
                            ArrayRef<SmallVector<Value>> indices);
  void epilogue(ArrayRef<Value> fin);
  void storeRows(Value buffer, ArrayRef<Value> acc, int64_t cols,
                 ArrayRef<Value> correction, const SmemTile *rows,
                 bool sinks);

  Value idx(int64_t v) { return kc->idx(v); }
  /// wgmma with a ring of three or more stages issues a step's copies
  /// (of tile u + stages - 1) after its key-side chains, measured faster
  /// (bench/results/2026-12-01-h200-backward-stages.txt); two stages
  /// issue them at the step's start, as the plain loop does.
  bool prefetchMidStep() const { return wgmma && config.getStages() >= 3; }

  AttentionGradOp op;
  VariantSpecOpInterface spec;
  KernelConfigAttr config;
  gpu::GPUModuleOp gpuModule;
  std::string name;
  BackwardFacts f;
  int64_t blockM, blockN, nTiles;
  bool wgmma;
  /// dQ added in rank order (OrderedTurns.h): rank = blockIdx.x, the KV
  /// tiles launched last first.
  bool deterministic;
  BackwardPlan plan;

  KernelSignature sig;
  std::unique_ptr<ImplicitLocOpBuilder> b;
  std::unique_ptr<KernelContext> kc;
  std::unique_ptr<MmaSyncFragments> mma;
  std::unique_ptr<WgmmaChains> chains;
  AttnOpInfo info;
  SmallVector<CaptureBuffer> captures;
  /// Per read of a floating capture in the score region (region order).
  SmallVector<UniformRead> reads;
  /// The gradient buffer of each capture (null for integer ones).
  SmallVector<Value> captureGrads;
  KVTileRing ring;
  bool failedRegion = false;
  /// The op has learned sink rows: the CTAs past the last KV tile take
  /// them as their keys (`isSinkTile`), summing over the batch by atomics.
  bool sinkRows;
  Value isSinkTile;

  // Thread and tile indices.
  Value lane, warp, g, t4, bIdx, hk, j0, j1, warpRow0, kvRowBase;
  Value tFirst, numT, numQTiles, rank;
  /// Segment-id spans per capture of the document masks.
  DenseMap<unsigned, SegmentSpan> keySpans, querySpans;
  SmallVector<Value> keyRow, key; ///< CTA-local and global key of row r.
  SmallVector<Value> keyNorm;     ///< gamma |k|^2 per row (RBF).
  // The query tile of the current step.
  Value h, i0, i1, qRowBase;
  Value stageOfStep, stepU;
  SmallVector<Value> colQuery;
  /// column()'s loads in the current element branch.
  DenseMap<std::pair<const SmemTile *, int64_t>, Value> columnCache;
};

} // namespace

BackwardFacts BackwardFacts::get(AttentionGradOp op) {
  auto spec = cast<VariantSpecOpInterface>(op.getOperation());
  auto qType = cast<RankedTensorType>(op.getQuery().getType());
  BackwardFacts f;
  f.elt = qType.getElementType();
  f.dqk = qType.getDimSize(3);
  f.dv = cast<RankedTensorType>(op.getValue().getType()).getDimSize(3);
  f.norm = spec.getNormalizationKind();
  f.softmax = isSoftmaxFamily(f.norm);
  f.rbf = spec.getScoreKind() == ScoreKind::rbf;
  f.hasScoreMod = !spec.getScoreMod().empty();
  f.sinkLogits = bool(op.getSinkLogits());
  f.gradLse = bool(op.getGradLse());
  std::optional<ArrayAttr> masks = spec.getMasks();
  f.searchesTiles = (masks && !masks->empty()) || !spec.getMaskMod().empty();
  f.countsKeys = f.norm == Normalization::mean ||
                 f.norm == Normalization::scalable_softmax;
  f.lengthScale = spec.getLengthScale()
                      ? spec.getLengthScale()->convertToDouble()
                      : 1.0;
  f.scale = getEffectiveScale(spec, f.dqk);
  f.gamma = getEffectiveGamma(spec, f.dqk);
  f.bias = spec.getBias() ? spec.getBias()->convertToDouble() : 0.0;
  return f;
}

//===----------------------------------------------------------------------===//
// Set-up
//===----------------------------------------------------------------------===//

void BackwardKernelBuilder::declareSignature() {
  Type f32 = Float32Type::get(op.getContext());
  sig.addBuffer("q", f.elt);
  sig.addBuffer("k", f.elt);
  sig.addBuffer("v", f.elt);
  sig.addBuffer("do", f.elt);
  if (f.softmax) {
    sig.addBuffer("lse", f32);
    sig.addBuffer("delta", f32);
  }
  if (f.rbf) {
    sig.addBuffer("q_norms", f32);
    sig.addBuffer("dq_row_sums", f32);
  }
  if (f.countsKeys)
    sig.addBuffer("row_factor", f32);
  for (auto [i, c] : llvm::enumerate(op.getCaptures()))
    sig.addBuffer("capture" + std::to_string(i),
                  cast<RankedTensorType>(c.getType()).getElementType());
  if (sinkRows) {
    sig.addBuffer("sink_key", f.elt);
    sig.addBuffer("sink_value", f.elt);
    sig.addBuffer("d_sink_key_accum", f32);
    sig.addBuffer("d_sink_value_accum", f32);
  }
  sig.addBuffer("dq_accum", f32);
  if (deterministic)
    sig.addBuffer("dq_turns", IntegerType::get(op.getContext(), 32));
  sig.addBuffer("dk", f.elt);
  sig.addBuffer("dv", f.elt);
  for (auto [i, c] : llvm::enumerate(op.getCaptures()))
    if (AttentionGradOp::isDifferentiableCapture(c.getType()))
      sig.addBuffer("d_capture" + std::to_string(i), f32);
  sig.addSizes();
}

void BackwardKernelBuilder::bindOpInfo() {
  for (auto [i, c] : llvm::enumerate(op.getCaptures())) {
    captures.push_back({sig.lookup("capture" + std::to_string(i)),
                        cast<RankedTensorType>(c.getType())});
    captureGrads.push_back(sig.lookup("d_capture" + std::to_string(i)));
  }
  bindKernelOpInfo(*kc, spec, sig.sizes(), f.elt, f.dqk, f.dv, f.scale, f.gamma,
                   captures, info);
}

/// Whether `v`, computed in a score region, depends on its batch and head
/// arguments (#1, #2) and constants only.
static bool dependsOnBatchAndHeadOnly(Value v) {
  if (auto arg = dyn_cast<BlockArgument>(v))
    return arg.getArgNumber() == 1 || arg.getArgNumber() == 2;
  Operation *def = v.getDefiningOp();
  if (!def || def->getNumRegions() || isa<tensor::ExtractOp>(def))
    return false;
  StringRef ns = def->getDialect()->getNamespace();
  if (ns != "arith" && ns != "math")
    return false;
  return llvm::all_of(def->getOperands(), dependsOnBatchAndHeadOnly);
}

void BackwardKernelBuilder::analyzeScoreMod() {
  // The reads of floating captures, in the order emitScoreModVJP reports
  // them.
  if (!f.hasScoreMod)
    return;
  Block &block = spec.getScoreMod().front();
  for (Operation &inner : block.without_terminator()) {
    auto read = dyn_cast<tensor::ExtractOp>(inner);
    auto arg = read ? dyn_cast<BlockArgument>(read.getTensor()) : nullptr;
    if (!arg || arg.getOwner() != &block || arg.getArgNumber() < 5 ||
        !isa<FloatType>(read.getType()))
      continue;
    reads.push_back(
        {llvm::all_of(read.getIndices(), dependsOnBatchAndHeadOnly),
         arg.getArgNumber() - 5});
  }
}

Value BackwardKernelBuilder::setUpLaunchOrder(Value numKVTiles) {
  // With tiles that every query tile sees (the sink rows' tile, the key
  // tiles of sink tokens), a one-dimensional grid puts them first, for
  // every (batch, kv head): one of them runs as long as the tile's whole
  // column of queries, and started last it outlasts the others
  // (StreamingLLM at 16k: 1.8x from this order). The other tiles follow
  // head by head, so the CTAs resident together read the same heads'
  // queries from L2 (an order of all heads per tile was 30% slower on
  // dense masks). Without such tiles the grid stays (tiles, Hkv, B): the
  // same order as a one-dimensional grid, yet that was 12-16% slower on
  // causal masks (bench/results/2026-12-01-h200-backward-grid-order.txt).
  ScalarEmitter &e = kc->e;
  int64_t sinkTokens = sinkTokenCount(spec);
  if (deterministic) {
    // The CTAs of a (batch, kv head) launch in blockIdx.x order, and take
    // their turns in it: the last KV tile first, so that under causal and
    // banded masks a query tile's first adder is the CTA whose diagonal it
    // is, and the turns pass along with the CTAs' own steps.
    hk = gpu::BlockIdOp::create(*b, gpu::Dimension::y);
    bIdx = gpu::BlockIdOp::create(*b, gpu::Dimension::z);
    rank = gpu::BlockIdOp::create(*b, gpu::Dimension::x);
    return e.subI(e.subI(numKVTiles, idx(1)), rank);
  }
  if (!heavyFirst()) {
    hk = gpu::BlockIdOp::create(*b, gpu::Dimension::y);
    bIdx = gpu::BlockIdOp::create(*b, gpu::Dimension::z);
    return gpu::BlockIdOp::create(*b, gpu::Dimension::x);
  }
  Value tokenTiles =
      e.minI(idx((sinkTokens + blockN - 1) / blockN), numKVTiles);
  Value heavy = sinkRows ? e.addI(tokenTiles, idx(1)) : tokenTiles;
  Value tiles = sinkRows ? e.addI(numKVTiles, idx(1)) : numKVTiles;
  Value heads = e.mulI(info.kvHeads, info.batch);
  Value linear = gpu::BlockIdOp::create(*b, gpu::Dimension::x);
  Value heavyCTAs = e.mulI(heavy, heads);
  Value isHeavy = e.cmpI(P::slt, linear, heavyCTAs);
  // Heavy: slot s of (batch, head) linear / heavy; the sink rows first.
  Value safeHeavy = e.maxI(heavy, idx(1));
  Value slot = e.remI(linear, safeHeavy);
  Value heavyTile =
      sinkRows ? e.select(e.cmpI(P::eq, slot, idx(0)), numKVTiles,
                          e.subI(slot, idx(1)))
               : slot;
  // The others: tiles [tokenTiles, numKVTiles), head by head.
  Value rest = e.subI(linear, heavyCTAs);
  Value light = e.maxI(e.subI(tiles, heavy), idx(1));
  Value head = e.select(isHeavy, e.divI(linear, safeHeavy),
                        e.divI(rest, light));
  Value kvTile = e.select(isHeavy, heavyTile,
                          e.addI(tokenTiles, e.remI(rest, light)));
  hk = e.remI(head, info.kvHeads);
  bIdx = e.divI(head, info.kvHeads);
  return kvTile;
}

void BackwardKernelBuilder::setUpThreadIndices() {
  ScalarEmitter &e = kc->e;
  Value tid = kc->threadId();
  lane = e.remI(tid, idx(32));
  warp = e.divI(tid, idx(32));
  g = e.divI(lane, idx(4));
  t4 = e.remI(lane, idx(4));
  Value numKVTiles = e.divI(e.addI(info.kvLen, idx(blockN - 1)), idx(blockN));
  Value kvTile = setUpLaunchOrder(numKVTiles);
  isSinkTile = e.cmpI(P::eq, kvTile, numKVTiles);
  // The sink tile's keys are its rows [0, Ns).
  j0 = e.select(isSinkTile, idx(0), e.mulI(kvTile, idx(blockN)));
  j1 = e.select(isSinkTile, info.numSinkRows,
                e.minI(e.addI(j0, idx(blockN)), info.kvLen));
  warpRow0 = e.mulI(warp, idx(16));
  for (int64_t r = 0; r < 2; ++r) {
    keyRow.push_back(e.addI(warpRow0, e.addI(idx(8 * r), g)));
    key.push_back(e.addI(j0, keyRow.back()));
  }
  kvRowBase = e.mulI(e.addI(e.mulI(bIdx, info.kvHeads), hk), info.kvLen);
}

void BackwardKernelBuilder::summarizeKeySegments() {
  // Every warp reads the ids of the CTA's keys (the sink rows' CTA reads
  // those of keys [0, Ns); it takes its own path, which uses no span).
  for (auto [capture, keys] : documentSegments(info))
    if (keys && !keySpans.count(capture))
      keySpans[capture] = warpSegmentSpan(*kc, info, capture, bIdx, j0, j1,
                                          info.kvLen, blockN);
}

void BackwardKernelBuilder::summarizeQuerySegments() {
  querySpans.clear();
  for (auto [capture, keys] : documentSegments(info))
    if (!keys && !querySpans.count(capture))
      querySpans[capture] = warpSegmentSpan(*kc, info, capture, bIdx, i0, i1,
                                            info.qLen, blockM);
}

void BackwardKernelBuilder::setUpTileRange() {
  // The query tiles [tFirst, tFirst + numT) that see some key of the tile
  // by the structured masks, for each of the group's query heads: u =
  // head-in-group * numT + (t - tFirst). The threads share the query tiles
  // (tile t to thread t % threads) and the CTA reduces what they found: a
  // loop over every tile in each thread costs tens of microseconds at 16k
  // queries, a long time next to a sliding window's few tiles per CTA.
  ScalarEmitter &e = kc->e;
  numQTiles = e.divI(e.addI(info.qLen, idx(blockM - 1)), idx(blockM));
  SmallVector<Value> range = {idx(0), numQTiles};
  // Document masks: the ids of each of the thread's query tiles in turn.
  info.segmentSpan = [&](unsigned capture, bool keys, Value p0,
                         Value p1) -> std::pair<Value, Value> {
    if (keys)
      return keySpans.lookup(capture);
    return threadSegmentSpan(*kc, info, capture, bIdx, p0, p1, info.qLen,
                             blockM);
  };
  if (f.searchesTiles) {
    auto [lo, hi] = findTileRange(
        *kc, *plan.tileRange, idx(0), numQTiles, config.getWarps(),
        [&](Value t) {
          Value qi0 = e.mulI(t, idx(blockM));
          Value qi1 = e.minI(e.addI(qi0, idx(blockM)), info.qLen);
          KVRange kv = queryTileKVRange(t);
          auto meets = [&](KVInterval in) {
            return e.andI(e.cmpI(P::slt, in.lo, j1),
                          e.cmpI(P::sgt, in.hi, j0));
          };
          Value seen = meets(kv.main);
          if (kv.sinks)
            seen = e.orI(seen, meets(*kv.sinks));
          // Tiles proven hidden for every head of the group (the range is
          // shared by them): documents, regions, any_of. (The counted
          // turns assume the intervals alone decide: countsTurns().)
          if (!countsTurns())
            seen = e.andI(seen, arith::XOrIOp::create(
                                    *b,
                                    emitTileVerdict(e, info, bIdx, Value(),
                                                    qi0, qi1, j0, j1)
                                        .allFalse,
                                    e.i1(true)));
          return seen;
        });
    range = {lo, hi};
  }
  // The steps' tiles: the spans their warps computed.
  info.segmentSpan = [this](unsigned capture, bool keys, Value,
                            Value) -> std::pair<Value, Value> {
    return keys ? keySpans.lookup(capture) : querySpans.lookup(capture);
  };
  // Every query sees the sink rows.
  tFirst = e.select(isSinkTile, idx(0), range[0]);
  numT = e.select(isSinkTile, numQTiles,
                  e.maxI(e.subI(range[1], range[0]), idx(0)));
  ring.begin = idx(0);
  ring.end = e.mulI(info.group, numT);
  ring.stages = config.getStages();
  ring.asyncProxy = wgmma;
  ring.load = [this](Value u, Value stage) { loadQueryTile(u, stage); };
  // The tiles before the range take their turns now (the CTAs before this
  // one add there first), those after it at the end.
  if (deterministic && !countsTurns())
    skipTurns(idx(0), tFirst);
}

bool kernel::masksAreIntervals(VariantSpecOpInterface spec) {
  if (!spec.getMaskMod().empty())
    return false;
  if (std::optional<ArrayAttr> masks = spec.getMasks())
    for (Attribute a : *masks)
      if (!isa<CausalAttr, SlidingWindowAttr, SinkTokensAttr, ChunkedAttr,
               PrefixLMAttr>(a))
        return false;
  return true;
}

KVRange BackwardKernelBuilder::queryTileKVRange(Value t) {
  ScalarEmitter &e = kc->e;
  Value qi0 = e.mulI(t, idx(blockM));
  return emitKVRange(e, info, qi0, e.minI(e.addI(qi0, idx(blockM)), info.qLen));
}

bool BackwardKernelBuilder::countsTurns() {
  return deterministic && masksAreIntervals(spec);
}

Value BackwardKernelBuilder::turnOf(Value tile) {
  if (!countsTurns())
    return rank;
  // The CTAs that add to query tile `tile` are the KV tiles that meet its
  // intervals (the range search's test, whose tiles are contiguous for
  // these kinds: their bounds grow with the queries); those before this
  // one in the order are the ones with larger KV tiles.
  ScalarEmitter &e = kc->e;
  KVRange kv = queryTileKVRange(tile);
  Value numKVTiles = e.divI(e.addI(info.kvLen, idx(blockN - 1)), idx(blockN));
  Value zero = idx(0);
  // The KV tiles n with in.lo < min((n + 1) bN, Sk) and in.hi > n bN.
  auto tiles = [&](KVInterval in) -> std::pair<Value, Value> {
    Value hi = e.select(e.cmpI(P::slt, in.lo, info.kvLen),
                        e.divI(e.addI(in.hi, idx(blockN - 1)), idx(blockN)),
                        zero);
    return {e.divI(in.lo, idx(blockN)), e.minI(hi, numKVTiles)};
  };
  Value after = e.subI(numKVTiles, rank); // this CTA's KV tile + 1
  auto above = [&](Value lo, Value hi) {
    return e.maxI(e.subI(hi, e.maxI(lo, after)), zero);
  };
  auto [a1, b1] = tiles(kv.main);
  Value count = above(a1, b1);
  if (kv.sinks) {
    auto [a2, b2] = tiles(*kv.sinks);
    count = e.addI(count, e.subI(above(a2, b2),
                                 above(e.maxI(a1, a2), e.minI(b1, b2))));
  }
  return count;
}

Value BackwardKernelBuilder::turnIndex(Value head, Value tile) {
  ScalarEmitter &e = kc->e;
  return e.addI(
      e.mulI(e.addI(e.mulI(bIdx, info.qHeads), head), numQTiles), tile);
}

void BackwardKernelBuilder::skipTurns(Value lo, Value hi) {
  ScalarEmitter &e = kc->e;
  Value n = e.maxI(e.subI(hi, lo), idx(0));
  Value total = e.mulI(info.group, n);
  Value turns = sig.lookup("dq_turns");
  auto loop = scf::ForOp::create(*b, kc->threadId(), total,
                                 idx(32 * config.getWarps()));
  OpBuilder::InsertionGuard guard(*b);
  b->setInsertionPointToStart(loop.getBody());
  Value u = loop.getInductionVar();
  Value head = e.addI(e.mulI(hk, info.group), e.divI(u, n));
  Value at = turnIndex(head, e.addI(lo, e.remI(u, n)));
  waitForTurn(*kc, turns, at, turnOf(e.addI(lo, e.remI(u, n))));
  passTurn(*kc, turns, at);
}

Value BackwardKernelBuilder::stepTurn(Value u) {
  ScalarEmitter &e = kc->e;
  return turnIndex(e.addI(e.mulI(hk, info.group), e.divI(u, numT)),
                   e.addI(tFirst, e.remI(u, numT)));
}

void BackwardKernelBuilder::passStepTurn(Value u) {
  waitBulk(*kc, 0, /*readOnly=*/false);
  NVVM::FenceProxyOp::create(*b, NVVM::ProxyKind::async_global,
                             NVVM::SharedSpaceAttr());
  passTurn(*kc, sig.lookup("dq_turns"), stepTurn(u));
}

void BackwardKernelBuilder::loadQueryTile(Value u, Value stage) {
  ScalarEmitter &e = kc->e;
  Value head = e.addI(e.mulI(hk, info.group), e.divI(u, numT));
  Value first = e.mulI(e.addI(tFirst, e.remI(u, numT)), idx(blockM));
  Value rows = e.minI(e.subI(info.qLen, first), idx(blockM));
  Value row0 = e.addI(
      e.mulI(e.addI(e.mulI(bIdx, info.qHeads), head), info.qLen), first);
  copyTileAsync(*kc, sig.lookup("q"), *plan.q, stage, e.mulI(row0, idx(f.dqk)),
                rows);
  copyTileAsync(*kc, sig.lookup("do"), *plan.dO, stage,
                e.mulI(row0, idx(f.dv)), rows);
  int64_t thread = 0;
  for (auto [tile, buffer] : {std::pair(plan.lse, "lse"),
                              std::pair(plan.delta, "delta"),
                              std::pair(plan.qNorm, "q_norms"),
                              std::pair(plan.rowFactor, "row_factor")}) {
    if (!tile)
      continue;
    copyValuesAsync(*kc, sig.lookup(buffer), *tile, stage, row0, rows,
                    thread);
    thread = (thread + blockM) % (32 * config.getWarps());
  }
}

void BackwardKernelBuilder::loadKeys() {
  // The CTA's K and V rows: a KV tile, or the sink rows of its kv head.
  ScalarEmitter &e = kc->e;
  auto load = [&](StringRef k, StringRef v, Value firstRow, Value rows) {
    copyTileAsync(*kc, sig.lookup(k), *plan.k, idx(0),
                  e.mulI(firstRow, idx(f.dqk)), rows);
    copyTileAsync(*kc, sig.lookup(v), *plan.v, idx(0),
                  e.mulI(firstRow, idx(f.dv)), rows);
  };
  bySinkTile(
      [&] {
        load("sink_key", "sink_value", e.mulI(hk, info.numSinkRows),
             e.minI(info.numSinkRows, idx(blockN)));
      },
      [&] {
        load("k", "v", e.addI(kvRowBase, j0),
             e.maxI(e.minI(e.subI(info.kvLen, j0), idx(blockN)), idx(0)));
      });
}

void BackwardKernelBuilder::bySinkTile(function_ref<void()> sinks,
                                       function_ref<void()> regular) {
  if (!sinkRows)
    return regular();
  kc->ifElse(
      isSinkTile,
      [&]() -> SmallVector<Value> {
        sinks();
        return {};
      },
      [&]() -> SmallVector<Value> {
        regular();
        return {};
      });
}

void BackwardKernelBuilder::computeKeyNorms() {
  // gamma |k|^2 of this thread's two key rows, from the resident K tile.
  keyNorm.assign(2, kc->f32(0.0));
  if (!f.rbf)
    return;
  for (int64_t r = 0; r < 2; ++r)
    keyNorm[r] = scaledRowNorm(*kc, *plan.k, keyRow[r], f.dqk, f.gamma);
}

//===----------------------------------------------------------------------===//
// One query tile
//===----------------------------------------------------------------------===//

Value BackwardKernelBuilder::localQuery(int64_t col) {
  return kc->e.addI(idx((col / 2) * 8 + col % 2), kc->e.mulI(t4, idx(2)));
}

Value BackwardKernelBuilder::column(const SmemTile *tile, int64_t col) {
  Value &v = columnCache[{tile, col}];
  if (!v)
    v = memref::LoadOp::create(
        *b, tile->view,
        tile->index(*kc, stageOfStep, localQuery(col), Value()));
  return v;
}

Value BackwardKernelBuilder::weight(Value s, int64_t col) {
  ScalarEmitter &e = kc->e;
  Value zero = kc->f32(0.0), one = kc->f32(1.0);
  switch (f.norm) {
  case Normalization::softmax:
  case Normalization::softmax1: {
    Value lse2 = e.mul(column(plan.lse, col), kc->f32(kLog2e));
    return kc->exp2(e.sub(e.mul(s, kc->f32(kLog2e)), lse2));
  }
  case Normalization::scalable_softmax: {
    // softmax of s * factor (the lse is of the scaled scores).
    Value lse2 = e.mul(column(plan.lse, col), kc->f32(kLog2e));
    Value x = e.mul(s, e.mul(column(plan.rowFactor, col), kc->f32(kLog2e)));
    return kc->exp2(e.sub(x, lse2));
  }
  case Normalization::mean:
    return column(plan.rowFactor, col);
  case Normalization::sigmoid: {
    Value x = e.add(s, kc->f32(f.bias));
    return kc->rcp(e.add(one, kc->exp2(e.mul(x, kc->f32(-kLog2e)))));
  }
  case Normalization::relu:
    return e.maxF(s, zero);
  case Normalization::relu2: {
    Value r = e.maxF(s, zero);
    return e.mul(r, r);
  }
  case Normalization::none:
    return s;
  }
  llvm_unreachable("unknown normalization");
}

Value BackwardKernelBuilder::gradOfWeight(Value s, Value p, Value dp,
                                          int64_t col) {
  ScalarEmitter &e = kc->e;
  Value zero = kc->f32(0.0), one = kc->f32(1.0);
  switch (f.norm) {
  case Normalization::softmax:
  case Normalization::softmax1:
    return e.mul(p, e.sub(dp, column(plan.delta, col)));
  case Normalization::scalable_softmax:
    return e.mul(e.mul(p, e.sub(dp, column(plan.delta, col))),
                 column(plan.rowFactor, col));
  case Normalization::mean: // the weights do not depend on the scores.
    return zero;
  case Normalization::sigmoid:
    return e.mul(dp, e.mul(p, e.sub(one, p)));
  case Normalization::relu:
    return e.select(e.cmpF(arith::CmpFPredicate::OGT, s, zero), dp, zero);
  case Normalization::relu2:
    return e.mul(kc->f32(2.0), e.mul(dp, e.maxF(s, zero)));
  case Normalization::none:
    return dp;
  }
  llvm_unreachable("unknown normalization");
}

void BackwardKernelBuilder::addCapture(const CaptureContribution &c,
                                       Value value) {
  // dcapture[indices] += value, one f32 atomic (row-major flat buffer).
  Value at = captureOffset(*kc, captures[c.captureIndex], c.indices);
  memref::AtomicRMWOp::create(*b, arith::AtomicRMWKind::addf, value,
                              captureGrads[c.captureIndex], ValueRange{at});
}

ElementWeight BackwardKernelBuilder::weigh(Value acc, int64_t r, int64_t col,
                                          Mode mode) {
  ScalarEmitter &e = kc->e;
  Value qi = colQuery[col], j = key[r];
  ElementWeight w;
  w.col = col;
  if (mode == Mode::SinkRows)
    w.visible = e.andI(e.cmpI(P::slt, keyRow[r], info.numSinkRows),
                       e.cmpI(P::slt, qi, info.qLen));
  if (mode == Mode::Masked) {
    Value inb = e.andI(e.cmpI(P::slt, j, info.kvLen),
                       e.cmpI(P::slt, qi, info.qLen));
    qi = e.minI(qi, e.subI(info.qLen, idx(1)));
    j = e.minI(j, e.subI(info.kvLen, idx(1)));
    w.visible = e.andI(inb, emitVisible(e, info, bIdx, h, qi, j));
  }
  // The score before the region: scale q.k, or -gamma |q - k|^2 expanded.
  Value s0 = f.rbf ? e.sub(e.sub(e.mul(kc->f32(2.0 * f.gamma), acc),
                                 keyNorm[r]),
                           column(plan.qNorm, col))
                   : e.mul(kc->f32(f.scale), acc);
  w.s = s0;
  if (f.hasScoreMod && mode != Mode::SinkRows) {
    // The derivative for a unit adjoint: dS0 = dS df/ds0, and each capture
    // read gets dS df/dc (the VJP is linear in the adjoint).
    FailureOr<ScoreModVJP> got = emitScoreModVJPOnGPU(
        *kc, spec.getScoreMod(), {s0, bIdx, h, qi, j}, captures,
        kc->f32(1.0));
    if (failed(got)) {
      failedRegion = true;
      got = ScoreModVJP{s0, kc->f32(1.0), {}};
    }
    w.vjp = *got;
    w.s = w.vjp.value;
  }
  w.p = weight(w.s, col);
  return w;
}

void BackwardKernelBuilder::grad(TileGrads &out, const ElementWeight &w,
                                 Value dp, Mode mode) {
  ScalarEmitter &e = kc->e;
  Value p = w.p, ds = gradOfWeight(w.s, w.p, dp, w.col);
  if (w.visible) {
    Value zero = kc->f32(0.0);
    p = e.select(w.visible, p, zero);
    ds = e.select(w.visible, ds, zero);
  }
  for (auto [n, c] : llvm::enumerate(w.vjp.captures)) {
    Value share = e.mul(ds, c.contribution);
    if (!reads[n].uniform) {
      addCapture(c, share);
      continue;
    }
    out.uniformSums[n] = e.add(out.uniformSums[n], share);
    out.uniformIndices[n] = c.indices;
  }
  Value ds0 = w.vjp.ds ? e.mul(ds, w.vjp.ds) : ds;
  out.p.push_back(p);
  out.ds.push_back(e.mul(ds0, kc->f32(f.kernelFactor())));
}

TileGrads
BackwardKernelBuilder::elements(ArrayRef<Value> s,
                                function_ref<SmallVector<Value>()> getDP,
                                Mode mode) {
  TileGrads out;
  columnCache.clear();
  out.uniformSums.assign(reads.size(), kc->f32(0.0));
  out.uniformIndices.resize(reads.size());
  // Sink rows have no score region: their uniform sums stay 0, at index 0.
  for (auto [n, read] : llvm::enumerate(reads))
    if (read.uniform)
      out.uniformIndices[n].assign(
          captures[read.captureIndex].type.getRank(), idx(0));
  // Element (nt, k) of the m16n8 layout: key row k / 2, column k % 2.
  SmallVector<ElementWeight> weights;
  for (int64_t nt = 0; nt < nTiles; ++nt)
    for (int64_t k = 0; k < 4; ++k)
      weights.push_back(weigh(s[nt * 4 + k], k / 2, 2 * nt + (k % 2), mode));
  SmallVector<Value> dp = getDP();
  for (auto [w, d] : llvm::zip_equal(weights, dp))
    grad(out, w, d, mode);
  return out;
}

SmallVector<Value> BackwardKernelBuilder::dispatchElements(
    ArrayRef<Value> s, function_ref<SmallVector<Value>()> getDP) {
  // p ++ ds ++ uniform sums ++ their indices, from the branch of the tile's
  // mode (uniform across the CTA).
  ScalarEmitter &e = kc->e;
  Value full = e.andI(
      e.andI(e.cmpI(P::sle, e.addI(i0, idx(blockM)), info.qLen),
             e.cmpI(P::sle, e.addI(j0, idx(blockN)), info.kvLen)),
      emitTileVerdict(e, info, bIdx, h, i0, i1, j0, j1).allTrue);
  auto branch = [&](Mode mode) {
    TileGrads t = elements(s, getDP, mode);
    SmallVector<Value> out(t.p);
    out.append(t.ds);
    out.append(t.uniformSums);
    for (ArrayRef<Value> indices : t.uniformIndices)
      out.append(indices.begin(), indices.end());
    return out;
  };
  auto regular = [&]() {
    return kc->ifElse(
        full, [&]() { return branch(Mode::Full); },
        [&]() { return branch(Mode::Masked); });
  };
  if (!sinkRows)
    return regular();
  return kc->ifElse(
      isSinkTile, [&]() { return branch(Mode::SinkRows); }, regular);
}

SmallVector<Value> BackwardKernelBuilder::addRowSums(ArrayRef<Value> ds) {
  // RBF: sum_j kernelFactor dS0_ij per query, over the warp's 16 keys (the
  // two rows of a thread, then the 8 lanes of a column), one atomic per
  // warp and query.
  ScalarEmitter &e = kc->e;
  Value buffer = sig.lookup("dq_row_sums");
  SmallVector<Value> sums;
  for (int64_t col = 0; col < 2 * nTiles; ++col) {
    int64_t nt = col / 2, c = col % 2;
    Value sum = e.add(ds[nt * 4 + c], ds[nt * 4 + 2 + c]);
    for (int32_t off : {4, 8, 16})
      sum = e.add(sum, kc->shuffleXor(sum, off));
    if (deterministic) {
      sums.push_back(sum);
      continue;
    }
    kc->ifThen(e.andI(e.cmpI(P::eq, g, idx(0)),
                      e.cmpI(P::slt, colQuery[col], info.qLen)),
               [&] {
                 memref::AtomicRMWOp::create(
                     *b, arith::AtomicRMWKind::addf, sum, buffer,
                     ValueRange{e.addI(qRowBase, colQuery[col])});
               });
  }
  return sums;
}

void BackwardKernelBuilder::writeRowSumColumns(ArrayRef<Value> sums) {
  ScalarEmitter &e = kc->e;
  const int64_t warps = config.getWarps();
  const int64_t pad = plan.dQ->rowElements() - f.dqk;
  assert(pad >= warps && "a padding column per warp");
  Value zero = kc->f32(0.0);
  kc->ifThen(e.cmpI(P::eq, g, idx(0)), [&] {
    for (int64_t col = 0; col < 2 * nTiles; ++col) {
      Value q = localQuery(col);
      auto put = [&](int64_t part, Value c, Value x) {
        memref::StoreOp::create(
            *b, x, plan.dQ->view,
            plan.dQ->index(*kc, idx(part), q, e.addI(idx(f.dqk), c)));
      };
      put(0, warp, sums[col]);
      // Warp w zeroes the columns c = w + k warps past the warps' (part
      // 0) and all of the other part's.
      for (int64_t part = 0; part < plan.dQ->stages; ++part)
        for (int64_t k = part == 0 ? 1 : 0; k * warps < pad; ++k) {
          Value c = e.addI(warp, idx(k * warps));
          kc->ifThen(e.cmpI(P::slt, c, idx(pad)), [&] { put(part, c, zero); });
        }
    }
  });
}

void BackwardKernelBuilder::storeDS(ArrayRef<Value> ds) {
  // dS (queries x keys) for the dQ product: element (key row, column) of
  // the thread goes to dS[column][key row].
  for (int64_t nt = 0; nt < nTiles; ++nt)
    for (int64_t k = 0; k < 4; ++k) {
      Value localQ = localQuery(2 * nt + k % 2);
      Value x = arith::TruncFOp::create(*b, f.elt, ds[nt * 4 + k]);
      memref::StoreOp::create(
          *b, x, plan.dS->view,
          plan.dS->index(*kc, idx(0), localQ, keyRow[k / 2]));
    }
}

void BackwardKernelBuilder::accumulateDQ() {
  // dQ = dS.K over the CTA's keys for the query tile, added to the f32
  // workspace: each warp takes 16 queries (m-tile warp % mTiles) and a
  // share of the head dim (part warp / mTiles of the warps / mTiles).
  ScalarEmitter &e = kc->e;
  const int64_t mTiles = blockM / 16;
  const int64_t parts = std::max<int64_t>(config.getWarps() / mTiles, 1);
  const int64_t dTiles = f.dqk / 8 / parts;
  Value rowOfWarp = e.mulI(e.remI(warp, idx(mTiles)), idx(16));
  Value firstCol = e.mulI(e.divI(warp, idx(mTiles)), idx(dTiles * 8));
  SmallVector<Value> acc(dTiles * 4, kc->f32(0.0));
  mma->accumulateAB(
      acc,
      [&](int64_t, int64_t kk) {
        return mma->loadA(*plan.dS, rowOfWarp, 0, kk);
      },
      *plan.k, idx(0), 1, blockN / 16, dTiles, firstCol);
  if (!deterministic) {
    addToDQAccum(acc, rowOfWarp, firstCol, dTiles);
    return;
  }
  // In turn: each element of the tile has one adder in the CTA; its adds
  // are fenced at GPU scope before the turn passes.
  Value first = e.cmpI(P::eq, kc->threadId(), idx(0));
  Value turns = sig.lookup("dq_turns");
  kc->ifThen(first, [&] {
    waitForTurn(*kc, turns, stepTurn(stepU), turnOf(e.divI(i0, idx(blockM))));
  });
  gpu::BarrierOp::create(*b);
  addToDQAccum(acc, rowOfWarp, firstCol, dTiles);
  fenceGpu(*kc);
  gpu::BarrierOp::create(*b);
  kc->ifThen(first, [&] { passTurn(*kc, turns, stepTurn(stepU)); });
}

void BackwardKernelBuilder::addToDQAccum(ArrayRef<Value> acc, Value rowOfWarp,
                                         Value firstCol, int64_t dTiles) {
  ScalarEmitter &e = kc->e;
  Value buffer = sig.lookup("dq_accum");
  for (int64_t half = 0; half < 2; ++half) {
    Value qi = e.addI(i0, e.addI(rowOfWarp, e.addI(idx(8 * half), g)));
    kc->ifThen(e.cmpI(P::slt, qi, info.qLen), [&] {
      Value base = e.addI(
          e.mulI(e.addI(qRowBase, qi),
                 idx(dqAccumRowElements(f, MmaKind::sync))),
          firstCol);
      for (int64_t dt = 0; dt < dTiles; ++dt)
        for (int64_t c = 0; c < 2; ++c) {
          Value col = e.addI(idx(dt * 8 + c), e.mulI(t4, idx(2)));
          memref::AtomicRMWOp::create(*b, arith::AtomicRMWKind::addf,
                                      acc[dt * 4 + half * 2 + c], buffer,
                                      ValueRange{e.addI(base, col)});
        }
    });
  }
}

Value BackwardKernelBuilder::issueTransposed(const SmemTile &rows,
                                             const SmemTile &cols, Value stage,
                                             int64_t depth,
                                             SmallVector<Value> &inFlight) {
  // Both operands K-major; warpgroup wg takes row group wg (its 64 keys).
  // The accumulator layout per warp is the m16n8 C layout of the query
  // tile's n-tiles, as with mma.sync.
  Value wg = kc->e.divI(warp, idx(4));
  SmallVector<Value> descsA, descsB;
  for (int64_t ks = 0; ks < depth / 16; ++ks) {
    descsA.push_back(chains->descriptor(rows.kStepOfRowGroup(*kc, wg, ks),
                                        rows.kMajorLayout()));
    descsB.push_back(chains->descriptor(cols.kStepOfStage(*kc, stage, ks),
                                        cols.kMajorLayout()));
  }
  return chains->issueShared(descsA, descsB, blockM, inFlight);
}

SmallVector<Value> BackwardKernelBuilder::packKeyRows(ArrayRef<Value> a) {
  SmallVector<Value> packed;
  for (int64_t kk = 0; kk < blockM / 16; ++kk)
    packed.append(packAccumulatorsAsA(*kc, a, nTiles, 0, kk));
  return packed;
}

void BackwardKernelBuilder::storeDSMatrices(ArrayRef<Value> packed) {
  // Register j of k-step kk holds the 8x8 block (keys warpRow0 + 8 (j % 2),
  // queries 8 (2 kk + j / 2)) in the m16n8 C layout; stored transposed,
  // row c of block j is query 8 (2 kk + j / 2) + c of dS, its 8 keys one
  // 16-byte chunk of the swizzled tile, addressed by lane 8 j + c.
  ScalarEmitter &e = kc->e;
  Value j = e.divI(lane, idx(8)), c = e.remI(lane, idx(8));
  Value key = e.addI(warpRow0, e.mulI(e.remI(j, idx(2)), idx(8)));
  auto ptrType = LLVM::LLVMPointerType::get(kc->ctx, kSharedSpace);
  Type i32 = b->getI32Type();
  for (int64_t kk = 0; kk < blockM / 16; ++kk) {
    Value query = e.addI(e.mulI(e.addI(idx(2 * kk), e.divI(j, idx(2))),
                                idx(8)),
                         c);
    Value at = arith::AddIOp::create(
        *b, plan.plan.address(), plan.dS->byteOffset(*kc, query, key));
    SmallVector<Value> regs;
    for (Value r : packed.slice(4 * kk, 4))
      regs.push_back(isa<VectorType>(r.getType())
                         ? vector::ExtractOp::create(
                               *b,
                               vector::BitCastOp::create(
                                   *b, VectorType::get({1}, i32), r),
                               ArrayRef<int64_t>{0})
                               .getResult()
                         : r);
    NVVM::StMatrixOp::create(
        *b, LLVM::IntToPtrOp::create(*b, ptrType, at), regs,
        NVVM::MMALayout::col, NVVM::LdStMatrixShapeAttr::get(kc->ctx, 8, 8),
        NVVM::LdStMatrixEltType::B16);
  }
}

SmallVector<Value> BackwardKernelBuilder::issueKeySide(
    ArrayRef<Value> acc, ArrayRef<Value> a, const SmemTile &t, Value stage,
    SmallVector<Value> &inFlight) {
  SmallVector<Value> descs, in;
  for (int64_t kk = 0; kk < blockM / 16; ++kk)
    descs.push_back(chains->descriptor(t.rowStepOfStage(*kc, stage, kk),
                                       t.mnMajorLayout()));
  SmallVector<Value> out =
      chains->issueRegisterA(acc, a, descs, /*transposeB=*/true, in);
  inFlight.append(in);
  return out;
}

void BackwardKernelBuilder::accumulateDQWgmma(SmallVector<Value> &inFlight,
                                              MutableArrayRef<Value> keySide) {
  // dQ (the 64 queries of the tile) = dS.K, dS K-major from shared memory,
  // K read MN-major. Two warpgroups split the head dim in 64-column panels
  // where it has an even number of them, else the keys (panel wg of dS and
  // row group wg of K each), both adding to the workspace.
  ScalarEmitter &e = kc->e;
  Value wg = e.divI(warp, idx(4));
  const bool two = blockN == 128;
  const bool splitCols = two && !dqSplitsKeys(blockN, f.dqk);
  const int64_t cols = splitCols ? f.dqk / 2 : f.dqk;
  const int64_t kSteps = splitCols ? blockN / 16 : 4;
  Value zero = idx(0);
  Value aShift = splitCols || !two ? kc->bytes(zero, 0, 0)
                                   : kc->bytes(wg, blockM * 128, 0);
  Value bShift = !two ? kc->bytes(zero, 0, 0)
                 : splitCols ? kc->bytes(wg, blockN * 128, 0)
                             : kc->bytes(wg, 64 * 128, 0);
  SmallVector<Value> descsA, descsB;
  for (int64_t ks = 0; ks < kSteps; ++ks) {
    descsA.push_back(chains->descriptor(
        arith::AddIOp::create(*b, plan.dS->kStepOfStage(*kc, zero, ks),
                              aShift),
        plan.dS->kMajorLayout()));
    descsB.push_back(chains->descriptor(
        arith::AddIOp::create(*b, plan.k->rowStepOfStage(*kc, zero, ks),
                              bShift),
        plan.k->mnMajorLayout()));
  }
  SmallVector<Value> in;
  Value acc = chains->issueShared(descsA, descsB, cols, in,
                                  /*transposeB=*/true);
  inFlight.append(in);
  SmallVector<Value> dq = chains->waitForAccumulator(acc, 0, inFlight);
  SmallVector<Value> pinned = chains->fenceRegisters(keySide);
  llvm::copy(pinned, keySide.begin());
  Value rowOfWarp = e.mulI(e.remI(warp, idx(4)), idx(16));
  Value firstCol = splitCols ? e.mulI(wg, idx(cols)) : zero;
  reduceDQRows(dq, rowOfWarp, firstCol, cols / 8);
}

void BackwardKernelBuilder::reduceDQRows(ArrayRef<Value> acc, Value rowOfWarp,
                                         Value firstCol, int64_t dTiles) {
  // The warpgroups' parts land in one tile (split columns) or one stage
  // each (split keys), published to the async proxy, then go to the
  // workspace by bulk reductions. The previous tile's reductions finished
  // reading the tile before the barrier after storeDS.
  ScalarEmitter &e = kc->e;
  const int64_t parts = plan.dQ->stages;
  Value part = parts == 1 ? idx(0) : e.divI(warp, idx(4));
  auto rowOf = [&](int64_t half) {
    return e.addI(rowOfWarp, e.addI(idx(8 * half), g));
  };
  auto colOf = [&](int64_t dt) {
    return e.addI(firstCol, e.addI(idx(dt * 8), e.mulI(t4, idx(2))));
  };
  auto store = [&]() {
    for (int64_t half = 0; half < 2; ++half)
      for (int64_t dt = 0; dt < dTiles; ++dt) {
        SmallVector<Value> at =
            plan.dQ->index(*kc, part, rowOf(half), colOf(dt));
        auto vt = VectorType::get({2}, kc->f32Type());
        Value v = vector::FromElementsOp::create(
            *b, vt,
            ValueRange{acc[dt * 4 + half * 2], acc[dt * 4 + half * 2 + 1]});
        vector::StoreOp::create(*b, v, plan.dQ->view, at);
      }
  };
  store();
  publishCopies(*kc, /*asyncProxy=*/true);
  // Thread 0 adds the valid rows of each part, contiguous in shared memory
  // and in the workspace (whose rows carry the tile's padding), by one bulk
  // reduction.
  const int64_t row = plan.dQ->rowElements();
  assert(row == dqAccumRowElements(f, MmaKind::wgmma) &&
         "the workspace rows are the tile's");
  Value rows = e.minI(e.subI(info.qLen, i0), idx(blockM));
  kc->ifThen(e.cmpI(P::eq, kc->threadId(), idx(0)), [&] {
    // Deterministic: this step's turn, then its parts one after the other
    // (two reductions in flight may add in either order). The turn passes
    // in the next step, after its element code (step()), and the last
    // step's after the loop.
    if (deterministic) {
      waitForTurn(*kc, sig.lookup("dq_turns"), stepTurn(stepU),
                  turnOf(e.divI(i0, idx(blockM))));
      NVVM::FenceProxyOp::create(*b, NVVM::ProxyKind::async_global,
                                 NVVM::SharedSpaceAttr());
    }
    for (int64_t p = 0; p < parts; ++p) {
      Value from = arith::AddIOp::create(
          *b, plan.plan.address(),
          kc->bytes(idx(p), plan.dQ->stageBytes(), plan.dQ->offset));
      reduceAddBulkAsync(*kc, sig.lookup("dq_accum"),
                         e.mulI(e.addI(qRowBase, i0), idx(row)), from,
                         e.mulI(rows, idx(row * 4)));
      if (deterministic && p + 1 < parts) {
        commitBulk(*kc);
        waitBulk(*kc, 0, /*readOnly=*/false);
      }
    }
    commitBulk(*kc);
  });
}

void BackwardKernelBuilder::flushUniformCaptures(
    ArrayRef<Value> sums, ArrayRef<SmallVector<Value>> indices) {
  ScalarEmitter &e = kc->e;
  for (auto [n, sum] : llvm::enumerate(sums)) {
    if (!reads[n].uniform)
      continue;
    Value total = sum;
    for (int32_t off : {16, 8, 4, 2, 1})
      total = e.add(total, kc->shuffleXor(total, off));
    kc->ifThen(e.cmpI(P::eq, lane, idx(0)), [&] {
      addCapture({reads[n].captureIndex, indices[n], total}, total);
    });
  }
}

SmallVector<Value> BackwardKernelBuilder::step(Value u, Value stage,
                                               ValueRange cur) {
  // Query tile u: its head and rows, S^T and dP^T, the elements, then
  // dV += P^T.dO, dK += dS^T.Q and dQ += dS.K.
  ScalarEmitter &e = kc->e;
  h = e.addI(e.mulI(hk, info.group), e.divI(u, numT));
  i0 = e.mulI(e.addI(tFirst, e.remI(u, numT)), idx(blockM));
  i1 = e.minI(e.addI(i0, idx(blockM)), info.qLen);
  qRowBase = e.mulI(e.addI(e.mulI(bIdx, info.qHeads), h), info.qLen);
  colQuery.clear();
  for (int64_t col = 0; col < 2 * nTiles; ++col)
    colQuery.push_back(e.addI(i0, localQuery(col)));
  stageOfStep = stage;
  stepU = u;
  summarizeQuerySegments();

  auto fromSmem = [&](const SmemTile &tile) {
    return [&](int64_t, int64_t ks) {
      return mma->loadA(tile, warpRow0, 0, ks);
    };
  };
  // With wgmma the weights are computed while the dP^T chain runs.
  SmallVector<Value> s, dp, inDP;
  Value accDP;
  if (wgmma) {
    SmallVector<Value> inS;
    Value accS = issueTransposed(*plan.k, *plan.q, stage, f.dqk, inS);
    accDP = issueTransposed(*plan.v, *plan.dO, stage, f.dv, inDP);
    s = chains->waitForAccumulator(accS, 1, inS);
  } else {
    s = mma->productABt(fromSmem(*plan.k), *plan.q, stage, 1, nTiles,
                        f.dqk / 16);
    dp = mma->productABt(fromSmem(*plan.v), *plan.dO, stage, 1, nTiles,
                         f.dv / 16);
  }
  SmallVector<Value> out = dispatchElements(s, [&]() {
    return dp.empty() ? chains->waitForAccumulator(accDP, 0, inDP) : dp;
  });
  const int64_t n = 4 * nTiles;
  ArrayRef<Value> all(out);
  ArrayRef<Value> p = all.take_front(n), ds = all.slice(n, n);
  ArrayRef<Value> sums = all.slice(2 * n, reads.size());
  SmallVector<SmallVector<Value>> indices(reads.size());
  size_t pos = 2 * n + reads.size();
  for (auto [m, read] : llvm::enumerate(reads)) {
    if (!read.uniform)
      continue;
    int64_t rank = captures[read.captureIndex].type.getRank();
    indices[m].assign(all.begin() + pos, all.begin() + pos + rank);
    pos += rank;
  }

  const int64_t nK = f.dqk / 2, nV = f.dv / 2; // 4 * (d / 8)
  SmallVector<Value> dK(cur.begin(), cur.begin() + nK);
  SmallVector<Value> dV(cur.begin() + nK, cur.begin() + nK + nV);
  SmallVector<Value> inFlight, packedDS;
  // Deterministic: the previous step's reductions ran during this step's
  // products and element code; its turn passes here (before, thread 0
  // would wait for them; at the step's end, the next CTA would wait a whole
  // step longer).
  if (deterministic && wgmma)
    kc->ifThen(e.andI(e.cmpI(P::eq, kc->threadId(), idx(0)),
                      e.cmpI(P::sgt, u, idx(0))),
               [&] { passStepTurn(e.subI(u, idx(1))); });
  if (wgmma) {
    // The key-side chains run while dS goes to shared memory; they retire
    // with the dQ chain.
    packedDS = packKeyRows(ds);
    dV = issueKeySide(dV, packKeyRows(p), *plan.dO, stage, inFlight);
    dK = issueKeySide(dK, packedDS, *plan.q, stage, inFlight);
    // A ring of three or more stages takes the copies of tile
    // u + stages - 1 here, while the key-side chains run.
    if (prefetchMidStep())
      ring.prefetch(*kc, e.addI(u, idx(ring.stages - 1)));
  } else {
    mma->accumulatePV(dV, p, *plan.dO, stage, 1, nTiles, f.dv / 8);
    mma->accumulatePV(dK, ds, *plan.q, stage, 1, nTiles, f.dqk / 8);
  }
  SmallVector<Value> rbfSums, rowSums;
  if (f.rbf) {
    // The key-side sums of kernelFactor dS0, per row of this thread.
    for (int64_t r = 0; r < 2; ++r) {
      Value sum = cur[nK + nV + r];
      for (int64_t nt = 0; nt < nTiles; ++nt)
        for (int64_t c = 0; c < 2; ++c)
          sum = e.add(sum, ds[nt * 4 + 2 * r + c]);
      rbfSums.push_back(sum);
    }
    rowSums = addRowSums(ds);
  }
  if (wgmma) {
    storeDSMatrices(packedDS);
    waitBulk(*kc, 0, /*readOnly=*/true);
  } else {
    storeDS(ds);
  }
  // dS is written through the generic proxy; wgmma reads it through the
  // async proxy.
  publishCopies(*kc, wgmma);
  // After the barrier: the previous tile's reductions have read the dQ
  // tile (thread 0 waited for them before it).
  if (wgmma && deterministic && f.rbf)
    writeRowSumColumns(rowSums);
  SmallVector<Value> keySide(dK);
  keySide.append(dV);
  if (wgmma)
    accumulateDQWgmma(inFlight, keySide);
  else
    accumulateDQ();
  SmallVector<Value> next(keySide);
  next.append(rbfSums);
  flushUniformCaptures(sums, indices);
  return next;
}

//===----------------------------------------------------------------------===//
// The epilogue and the assembly
//===----------------------------------------------------------------------===//

void BackwardKernelBuilder::storeRows(Value buffer, ArrayRef<Value> acc,
                                      int64_t cols,
                                      ArrayRef<Value> correction,
                                      const SmemTile *rows, bool sinks) {
  // Row r of the thread (key j0 + keyRow[r]) of a [B, Hkv, Sk, cols] result,
  // or added to sink row keyRow[r] of an f32 [Hkv, Ns, cols] sum:
  // acc - correction[r] * rows[keyRow[r]] (RBF's dK) when given.
  ScalarEmitter &e = kc->e;
  for (int64_t r = 0; r < 2; ++r) {
    Value limit = sinks ? info.numSinkRows : info.kvLen;
    kc->ifThen(e.cmpI(P::slt, key[r], limit), [&] {
      Value row = sinks ? e.addI(e.mulI(hk, info.numSinkRows), keyRow[r])
                        : e.addI(kvRowBase, key[r]);
      Value base = e.mulI(row, idx(cols));
      for (int64_t dt = 0; dt < cols / 8; ++dt) {
        Value col = e.addI(idx(dt * 8), e.mulI(t4, idx(2)));
        SmallVector<Value> pair;
        for (int64_t c = 0; c < 2; ++c) {
          Value x = acc[dt * 4 + 2 * r + c];
          if (rows) {
            Value kx = memref::LoadOp::create(
                *b, rows->view,
                rows->index(*kc, idx(0), keyRow[r], e.addI(col, idx(c))));
            kx = arith::ExtFOp::create(*b, kc->f32Type(), kx);
            x = e.sub(x, e.mul(correction[r], kx));
          }
          if (sinks)
            memref::AtomicRMWOp::create(
                *b, arith::AtomicRMWKind::addf, x, buffer,
                ValueRange{e.addI(base, e.addI(col, idx(c)))});
          else
            pair.push_back(arith::TruncFOp::create(*b, f.elt, x));
        }
        if (sinks)
          continue;
        Value v = vector::FromElementsOp::create(
            *b, VectorType::get({2}, f.elt), pair);
        vector::StoreOp::create(*b, v, buffer, ValueRange{e.addI(base, col)},
                                /*nontemporal=*/false, llvm::MaybeAlign(4));
      }
    });
  }
}

void BackwardKernelBuilder::epilogue(ArrayRef<Value> fin) {
  const int64_t nK = f.dqk / 2, nV = f.dv / 2;
  SmallVector<Value> colSums;
  if (f.rbf) {
    // dk_j = sum_i kernelFactor dS0_ij q_i - k_j sum_i kernelFactor dS0_ij.
    for (int64_t r = 0; r < 2; ++r) {
      Value sum = fin[nK + nV + r];
      for (int32_t off : {1, 2})
        sum = kc->e.add(sum, kc->shuffleXor(sum, off));
      colSums.push_back(sum);
    }
  }
  auto store = [&](StringRef dk, StringRef dv, bool sinks) {
    storeRows(sig.lookup(dk), fin.take_front(nK), f.dqk, colSums,
              f.rbf ? plan.k : nullptr, sinks);
    storeRows(sig.lookup(dv), fin.slice(nK, nV), f.dv, {}, nullptr, sinks);
  };
  bySinkTile([&] { store("d_sink_key_accum", "d_sink_value_accum", true); },
             [&] { store("dk", "dv", false); });
}

FailureOr<DictionaryAttr> BackwardKernelBuilder::build() {
  declareSignature();
  const int64_t threads = 32 * config.getWarps();
  KernelBody body =
      openKernel(gpuModule, op.getLoc(), name, sig, f.elt, threads);
  gpu::GPUFuncOp func = body.func;
  b = std::move(body.b);
  kc = std::move(body.kc);
  mma = std::make_unique<MmaSyncFragments>(*kc);
  bindOpInfo();
  analyzeScoreMod();
  plan.plan.materialize(*kc);
  if (wgmma)
    chains = std::make_unique<WgmmaChains>(*kc, plan.plan.address());
  setUpThreadIndices();

  // K and V of the CTA's keys are the oldest group; then the first query
  // tiles.
  loadKeys();
  commitCopies(*kc);
  summarizeKeySegments();
  setUpTileRange();
  ring.prime(*kc);
  ring.waitAndPublish(*kc, ring.stages - 1);
  computeKeyNorms();

  SmallVector<Value> state((f.dqk + f.dv) / 2, kc->f32(0.0));
  if (f.rbf)
    state.append(2, kc->f32(0.0));
  SmallVector<Value> fin = emitPlainKVLoop(
      *kc, ring, state,
      [&](Value u, Value stage, ValueRange cur) { return step(u, stage, cur); },
      /*bodyPrefetches=*/prefetchMidStep());
  if (wgmma)
    waitBulk(*kc, 0, /*readOnly=*/false);
  if (deterministic && wgmma)
    kc->ifThen(kc->e.andI(kc->e.cmpI(P::eq, kc->threadId(), idx(0)),
                          kc->e.cmpI(P::sgt, ring.end, idx(0))),
               [&] { passStepTurn(kc->e.subI(ring.end, idx(1))); });
  if (deterministic && !countsTurns())
    skipTurns(kc->e.addI(tFirst, numT), numQTiles);
  epilogue(fin);
  allowContraction(func);
  if (failedRegion)
    return failure();
  // One more CTA column for the sink rows.
  std::string tiles = ceilDivExpr("Sk", blockN) + (sinkRows ? " + 1" : "");
  SmallVector<std::string> grid = {tiles, "Hkv", "B"};
  if (heavyFirst())
    grid = {"(" + tiles + ") * Hkv * B", "1", "1"};
  return describeLaunch(op.getContext(), name, grid, threads,
                        plan.plan.bytes(), sig);
}

int64_t kernel::dqAccumRowElements(const BackwardFacts &f, MmaKind mma) {
  if (mma != MmaKind::wgmma)
    return f.dqk;
  return SmemTile{SmemLayout::Padded, 1, 1, f.dqk,
                  Float32Type::get(f.elt.getContext())}
      .rowElements();
}

int64_t kernel::backwardSharedMemoryBytes(AttentionGradOp op, MmaKind mma,
                                          int64_t blockM, int64_t blockN,
                                          int64_t stages) {
  return BackwardPlan(BackwardFacts::get(op), mma, blockM, blockN, stages)
      .plan.bytes();
}

FailureOr<DictionaryAttr>
kernel::buildBackwardMainKernel(AttentionGradOp op, KernelConfigAttr config,
                                gpu::GPUModuleOp gpuModule, StringRef name) {
  return BackwardKernelBuilder(op, config, gpuModule, name).build();
}
