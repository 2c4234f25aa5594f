//===- ForwardKernel.cpp - the forward attention kernel ---------*- C++ -*-===//
//
// Per accumulator element, (q_idx, kv_idx) come from the fragment layout
// (row = lane/4 (+8), col = 2*(lane%4) (+1), the m16n8 C layout of both
// instruction families); the score region and the mask code run there, the
// mask code only on tiles that are not fully visible; tiles the structured
// masks hide entirely are never visited.
//
//===----------------------------------------------------------------------===//

#include "attn/Conversion/AttnToNVGPU/ForwardKernel.h"

#include "attn/Conversion/AttnToNVGPU/CopyRing.h"
#include "attn/Conversion/AttnToNVGPU/FragmentSoftmax.h"
#include "attn/Conversion/AttnToNVGPU/InvisibleKeys.h"
#include "attn/Conversion/AttnToNVGPU/KernelABI.h"
#include "attn/Conversion/AttnToNVGPU/KeyNormPrologue.h"
#include "attn/Conversion/AttnToNVGPU/MmaSync.h"
#include "attn/Conversion/AttnToNVGPU/RegionPeepholes.h"
#include "attn/Conversion/AttnToNVGPU/Schedule.h"
#include "attn/Conversion/AttnToNVGPU/SegmentSpans.h"
#include "attn/Conversion/AttnToNVGPU/Wgmma.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/Support/ScopedPrinter.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::kernel;

using P = arith::CmpIPredicate;
using FP = arith::CmpFPredicate;

namespace {

const double kLog2e = 1.0 / std::log(2.0);
const double kNegInf = -std::numeric_limits<double>::infinity();

/// The facts of an op that shape its forward kernel.
struct ForwardFacts {
  Type elt;
  int64_t dqk, dv;
  Normalization norm;
  bool softmax, rbf, sinkRows, hasScoreMod;
  /// Document masks or a mask region: which keys a row block sees depends
  /// on the data (packed documents, padding), so the keys hidden inside a
  /// visited tile may hold garbage, and their V rows are zeroed there
  /// (InvisibleKeys.h). Under positional masks alone (causal, windows,
  /// chunks, prefixes, neighborhoods, sink tokens) the keys of a visited
  /// tile are real keys of the sequence, seen by other queries; they are not
  /// zeroed (it cost causal 4.5% on the H200, docs/performance.md).
  bool masked;
  /// Document masks: tiles decided from segment-id spans (SegmentSpans.h).
  bool documents;
  /// RBF with a shift-invariant normalization: -gamma |q|^2 is dropped
  /// from the scores (and added back into the LSE).
  bool dropQueryNorm;
  /// RBF scores feeding a softmax untouched by a score region are built in
  /// the exp2 domain directly: key norms stored times log2(e), then one
  /// FMA per element.
  bool rbfLog2Domain;
  double scale, gamma;

  static ForwardFacts get(AttentionOp op) {
    auto spec = cast<VariantSpecOpInterface>(op.getOperation());
    ForwardFacts f;
    f.elt = op.getQuery().getType().getElementType();
    f.dqk = op.getQuery().getType().getDimSize(3);
    f.dv = op.getValue().getType().getDimSize(3);
    f.norm = spec.getNormalizationKind();
    f.softmax = isSoftmaxFamily(f.norm);
    f.rbf = spec.getScoreKind() == ScoreKind::rbf;
    f.sinkRows = bool(op.getSinkKey());
    f.hasScoreMod = !spec.getScoreMod().empty();
    std::optional<ArrayAttr> masks = spec.getMasks();
    f.documents = masks && llvm::any_of(*masks, [](Attribute a) {
                    return isa<DocumentAttr>(a);
                  });
    f.masked = !spec.getMaskMod().empty() || f.documents;
    f.dropQueryNorm = f.rbf && isShiftInvariant(spec, bool(op.getSinkLogits()));
    f.rbfLog2Domain = f.rbf && f.softmax &&
                      f.norm != Normalization::scalable_softmax &&
                      !f.hasScoreMod;
    f.scale = getEffectiveScale(spec, f.dqk);
    f.gamma = getEffectiveGamma(spec, f.dqk);
    return f;
  }
  /// The factor of the key norms: log2(e) in the exp2 domain.
  double normScale() const { return rbfLog2Domain ? kLog2e : 1.0; }
};

/// The tiles of the forward kernel in shared memory: Q, K[stages],
/// V[stages], then the key norms (RBF) and, with masks, the flags of the
/// keys no query of the CTA sees. Rows are padded for ldmatrix, or
/// swizzled for wgmma.
struct ForwardPlan {
  SharedMemoryPlan plan;
  SmemTile *q, *k, *v;
  SmemTile *norms = nullptr;              ///< f32 per key (smem path).
  SmemTile *normsQ = nullptr, *normsK = nullptr; ///< the norm k-step.
  SmemTile *invisibleKeys = nullptr;      ///< masked ops.
  SmemTile *spanScratch = nullptr;        ///< masked ops (tile range).

  // The tile pointers point into `plan`: not copyable.
  ForwardPlan(const ForwardPlan &) = delete;
  ForwardPlan &operator=(const ForwardPlan &) = delete;
  ForwardPlan(const ForwardFacts &f, MmaKind mma, int64_t blockM,
              int64_t blockN, int64_t stages, KeyNormPath keyNorms) {
    SmemLayout layout = mma == MmaKind::wgmma ? SmemLayout::Swizzle128
                                              : SmemLayout::Padded;
    q = &plan.add(layout, 1, blockM, f.dqk, f.elt);
    k = &plan.add(layout, stages, blockN, f.dqk, f.elt);
    v = &plan.add(layout, stages, blockN, f.dv, f.elt);
    if (keyNorms == KeyNormPath::mma) {
      normsQ = &plan.add(SmemLayout::CoreMatrix, 1, blockM, 16, f.elt);
      normsK = &plan.add(SmemLayout::CoreMatrix, stages, blockN, 16, f.elt);
    } else if (f.rbf) {
      norms = &plan.add(SmemLayout::Rows, stages, blockN, 1,
                        Float32Type::get(f.elt.getContext()));
    }
    if (f.masked)
      invisibleKeys = &addInvisibleKeyFlags(plan, blockM, f.elt.getContext());
    if (f.masked)
      spanScratch = &addMinMaxScratch(plan, f.elt.getContext());
  }
};

enum class Mode { SinkRows, Full, Masked };

/// Builds one forward kernel.
class ForwardKernelBuilder {
public:
  ForwardKernelBuilder(AttentionOp op, KernelConfigAttr config,
                       gpu::GPUModuleOp gpuModule, StringRef name)
      : op(op), spec(cast<VariantSpecOpInterface>(op.getOperation())),
        config(config), gpuModule(gpuModule), name(name.str()),
        f(ForwardFacts::get(op)),
        wgmma(config.getMma() == MmaKind::wgmma),
        normsOnTensorCores(config.getKeyNorms() == KeyNormPath::mma),
        shape{config.getMTiles(), config.getBlockN() / 8, f.dv / 8},
        plan(f, config.getMma(), config.getBlockM(), config.getBlockN(),
             config.getStages(), config.getKeyNorms()) {}

  DictionaryAttr build();

private:
  void declareSignature();
  void bindOpInfo();
  void setUpThreadIndices();
  void setUpTileRange();
  /// Document masks and mask regions: the main tiles [first, end)
  /// narrowed to the first and last that the tile verdict does not prove
  /// hidden (segment-id spans, the region's interval evaluation); the
  /// threads share the tiles.
  std::pair<Value, Value> narrowByTileVerdicts(Value first, Value end);
  void loadTile(Value u, Value stage);
  void loadRegularTile(Value u, Value stage);
  void loadSinkRows(Value stage);
  void computeRowPrologue();
  SmallVector<Value> initialState();
  SmallVector<Value> scores(Value stage);
  Value issueScores(Value stage);
  SmallVector<Value> issuePV(ArrayRef<Value> o, ArrayRef<Value> packed,
                             Value stage);
  SmallVector<Value> packAll(ArrayRef<Value> p);
  TileWeights weights(ArrayRef<Value> s, ArrayRef<Value> curM,
                      ArrayRef<Value> curL, Value u, Value stage, Mode mode);
  /// Whether row r of this thread sees key j of a masked tile (false past
  /// Sk; rows past Sq count as the last query).
  Value maskedVisible(int64_t r, Value j);
  /// Zeroes the V rows of tile u (in `stage`, a masked tile) that no query
  /// of the CTA sees, before its P.V (InvisibleKeys.h).
  void zeroInvisibleRows(Value u, Value stage);
  ScoredElement scoreElement(Value acc, int64_t r, Value col, Value j0,
                             Value stage, Mode mode, bool foldedScale,
                             bool deferScale, double scaleLog2);
  SmallVector<Value> processTile(ValueRange cur, Value u, Value stage,
                                 Mode mode);
  SmallVector<Value> dispatch(Value u, bool maySink,
                              function_ref<SmallVector<Value>(Mode)> fn);
  /// Whether regular tile u is whole (j1 <= Sk) and fully visible.
  Value fullyVisible(Value u);
  /// Whether tile u takes Mode::Masked (`maySink`: u may be the sink tile).
  Value isMaskedTile(Value u, bool maySink);
  SmallVector<Value> kvLoop(ArrayRef<Value> state);
  SmallVector<Value> pipelinedKVLoop(ArrayRef<Value> state);
  void epilogue(ArrayRef<Value> fin);
  DictionaryAttr describe();

  Value idx(int64_t v) { return kc->idx(v); }
  Value tileOf(Value u);
  Value visible(Value qi, Value j) {
    return emitVisible(kc->e, info, bIdx, h, qi, j);
  }

  AttentionOp op;
  VariantSpecOpInterface spec;
  KernelConfigAttr config;
  gpu::GPUModuleOp gpuModule;
  std::string name;
  ForwardFacts f;
  bool wgmma, normsOnTensorCores;
  FragmentShape shape;
  ForwardPlan plan;

  KernelSignature sig;
  std::unique_ptr<ImplicitLocOpBuilder> b;
  std::unique_ptr<KernelContext> kc;
  std::unique_ptr<FragmentSoftmax> softmax;
  std::unique_ptr<MmaSyncFragments> mmaSync;
  std::unique_ptr<WgmmaChains> chains;
  AttnOpInfo info;
  SmallVector<CaptureBuffer> captures;
  KVTileRing ring;

  // Thread and tile indices.
  Value lane, warp, t4, h, bIdx, hk, i0, i1, warpRow0;
  SmallVector<Value> localRow, qRow; ///< Per row r of this thread.
  Value qRowBase, kvRowBase;
  Value sinkTiles, mainFirst;
  /// Document masks: the segment-id span of the CTA's queries per capture.
  DenseMap<unsigned, SegmentSpan> querySpans;
  // Per-row values computed before the loop.
  SmallVector<SmallVector<Value>> residentQ;
  SmallVector<Value> qNorm, factor;
  // Operands of the wgmma chains in flight.
  SmallVector<Value> inFlightS, inFlightPV;
};

} // namespace

//===----------------------------------------------------------------------===//
// Set-up
//===----------------------------------------------------------------------===//

void ForwardKernelBuilder::declareSignature() {
  Type f32 = Float32Type::get(op.getContext());
  sig.addBuffer("q", f.elt);
  sig.addBuffer("k", f.elt);
  sig.addBuffer("v", f.elt);
  sig.addBuffer("o", f.elt);
  sig.addBuffer("lse", f32);
  if (op.getSinkLogits())
    sig.addBuffer("sink_logits", f32);
  if (f.sinkRows) {
    sig.addBuffer("sink_key", f.elt);
    sig.addBuffer("sink_value", f.elt);
  }
  for (auto [i, c] : llvm::enumerate(op.getCaptures()))
    sig.addBuffer("capture" + std::to_string(i),
                  cast<RankedTensorType>(c.getType()).getElementType());
  // RBF: the key norms come from the prologue kernel.
  if (f.rbf)
    sig.addBuffer("key_norms", normsOnTensorCores ? f.elt : f32);
  sig.addSizes();
}

void ForwardKernelBuilder::bindOpInfo() {
  info.op = op;
  for (auto [i, c] : llvm::enumerate(op.getCaptures()))
    captures.push_back({sig.lookup("capture" + std::to_string(i)),
                        cast<RankedTensorType>(c.getType())});
  bindKernelOpInfo(*kc, spec, sig.sizes(), f.elt, f.dqk, f.dv, f.scale, f.gamma,
                   captures, info);
}

void ForwardKernelBuilder::setUpThreadIndices() {
  ScalarEmitter &e = kc->e;
  Value tid = kc->threadId();
  lane = e.remI(tid, idx(32));
  warp = e.divI(tid, idx(32));
  Value g = e.divI(lane, idx(4));
  t4 = e.remI(lane, idx(4));
  Value qTileIdx = gpu::BlockIdOp::create(*b, gpu::Dimension::x);
  h = gpu::BlockIdOp::create(*b, gpu::Dimension::y);
  bIdx = gpu::BlockIdOp::create(*b, gpu::Dimension::z);
  hk = e.divI(h, info.group);
  const int64_t blockM = config.getBlockM();
  i0 = e.mulI(qTileIdx, idx(blockM));
  i1 = e.minI(e.addI(i0, idx(blockM)), info.qLen);
  warpRow0 = e.mulI(warp, idx(16 * shape.mTiles));
  // Row r of this thread (r = 2 * mi + half): CTA-local row and query index.
  for (int64_t r = 0; r < shape.rows(); ++r) {
    localRow.push_back(
        e.addI(warpRow0, e.addI(idx((r / 2) * 16 + (r % 2) * 8), g)));
    qRow.push_back(e.addI(i0, localRow.back()));
  }
  // Offsets into the flattened tensors.
  qRowBase = e.mulI(e.addI(e.mulI(bIdx, info.qHeads), h), info.qLen);
  kvRowBase = e.mulI(e.addI(e.mulI(bIdx, info.kvHeads), hk), info.kvLen);
}

Value ForwardKernelBuilder::tileOf(Value u) {
  ScalarEmitter &e = kc->e;
  Value inSink = e.cmpI(P::slt, u, sinkTiles);
  return e.select(inSink, u, e.addI(mainFirst, e.subI(u, sinkTiles)));
}

void ForwardKernelBuilder::setUpTileRange() {
  // The KV tiles to visit: [sink tiles] ++ [main tiles], as one index u;
  // u = -1 is the tile of learned sink rows.
  ScalarEmitter &e = kc->e;
  const int64_t blockN = config.getBlockN();
  KVRange range = emitKVRange(e, info, i0, i1);
  Value blockNValue = idx(blockN);
  sinkTiles = idx(0);
  if (range.sinks)
    sinkTiles = e.divI(e.addI(range.sinks->hi, idx(blockN - 1)), blockNValue);
  mainFirst = e.maxI(e.divI(range.main.lo, blockNValue), sinkTiles);
  Value mainEnd = e.maxI(e.divI(e.addI(range.main.hi, idx(blockN - 1)), blockNValue),
                         mainFirst);
  if (f.masked)
    std::tie(mainFirst, mainEnd) = narrowByTileVerdicts(mainFirst, mainEnd);
  Value numMain = e.subI(mainEnd, mainFirst);
  ring.begin = idx(f.sinkRows ? -1 : 0);
  ring.end = e.addI(sinkTiles, numMain);
  ring.stages = config.getStages();
  ring.asyncProxy = wgmma;
  ring.load = [this](Value u, Value stage) { loadTile(u, stage); };
}

std::pair<Value, Value>
ForwardKernelBuilder::narrowByTileVerdicts(Value first, Value end) {
  ScalarEmitter &e = kc->e;
  const int64_t blockN = config.getBlockN();
  for (auto [capture, keys] : documentSegments(info))
    if (!keys)
      querySpans[capture] = warpSegmentSpan(*kc, info, capture, bIdx, i0, i1,
                                            info.qLen, config.getBlockM());
  info.segmentSpan = [&](unsigned capture, bool keys, Value p0,
                         Value p1) -> SegmentSpan {
    if (!keys)
      return querySpans.lookup(capture);
    return threadSegmentSpan(*kc, info, capture, bIdx, p0, p1, info.kvLen,
                             blockN);
  };
  auto [newFirst, newEnd] = findTileRange(
      *kc, *plan.spanScratch, first, end, config.getWarps(), [&](Value t) {
        Value j0 = e.mulI(t, idx(blockN));
        Value j1 = e.minI(e.addI(j0, idx(blockN)), info.kvLen);
        return arith::XOrIOp::create(
            *b, emitTileVerdict(e, info, bIdx, h, i0, i1, j0, j1).allFalse,
            e.i1(true));
      });
  // The steps' tiles: their keys' span, read by every warp.
  info.segmentSpan = [this](unsigned capture, bool keys, Value p0,
                            Value p1) -> SegmentSpan {
    if (!keys)
      return querySpans.lookup(capture);
    return warpSegmentSpan(*kc, info, capture, bIdx, p0, p1, info.kvLen,
                           config.getBlockN());
  };
  return {newFirst, e.maxI(newEnd, newFirst)};
}

//===----------------------------------------------------------------------===//
// Loads
//===----------------------------------------------------------------------===//

void ForwardKernelBuilder::loadRegularTile(Value u, Value stage) {
  ScalarEmitter &e = kc->e;
  const int64_t blockN = config.getBlockN();
  Value blockNValue = idx(blockN);
  Value j0 = e.mulI(tileOf(u), blockNValue);
  Value rows = e.maxI(e.minI(e.subI(info.kvLen, j0), blockNValue), idx(0));
  Value firstKey = e.addI(kvRowBase, j0);
  copyTileAsync(*kc, sig.lookup("k"), *plan.k, stage,
                e.mulI(firstKey, idx(f.dqk)), rows);
  copyTileAsync(*kc, sig.lookup("v"), *plan.v, stage,
                e.mulI(firstKey, idx(f.dv)), rows);
  if (!f.rbf)
    return;
  // The key of the prologue's workspace that starts this tile.
  Value padded =
      e.mulI(e.divI(e.addI(info.kvLen, idx(blockN - 1)), blockNValue), blockNValue);
  Value normBase = e.addI(
      e.mulI(e.addI(e.mulI(bIdx, info.kvHeads), hk), padded), j0);
  loadTileKeyNorms(*kc, sig.lookup("key_norms"),
                   normsOnTensorCores ? *plan.normsK : *plan.norms, stage,
                   normBase);
}

void ForwardKernelBuilder::loadSinkRows(Value stage) {
  ScalarEmitter &e = kc->e;
  Value numSinkRows = info.numSinkRows;
  Value rows = e.minI(numSinkRows, idx(config.getBlockN()));
  Value base = e.mulI(hk, numSinkRows);
  copyTileAsync(*kc, sig.lookup("sink_key"), *plan.k, stage,
                e.mulI(base, idx(f.dqk)), rows);
  copyTileAsync(*kc, sig.lookup("sink_value"), *plan.v, stage,
                e.mulI(base, idx(f.dv)), rows);
}

void ForwardKernelBuilder::loadTile(Value u, Value stage) {
  if (!f.sinkRows)
    return loadRegularTile(u, stage);
  kc->ifElse(
      kc->e.cmpI(P::slt, u, idx(0)),
      [&]() -> SmallVector<Value> {
        loadSinkRows(stage);
        return {};
      },
      [&]() -> SmallVector<Value> {
        loadRegularTile(u, stage);
        return {};
      });
}

//===----------------------------------------------------------------------===//
// Before the loop
//===----------------------------------------------------------------------===//

void ForwardKernelBuilder::computeRowPrologue() {
  ScalarEmitter &e = kc->e;
  const int64_t rows = shape.rows();
  Value zero = kc->f32(0.0);
  // Q fragments: resident in registers with one m-tile per warp (mma.sync);
  // with two, re-read from shared memory per KV tile.
  if (!wgmma && shape.mTiles == 1)
    for (int64_t ks = 0; ks < f.dqk / 16; ++ks)
      residentQ.push_back(mmaSync->loadA(*plan.q, warpRow0, 0, ks));
  // gamma * |q|^2 per row (RBF).
  qNorm.assign(rows, zero);
  if (f.rbf) {
    for (int64_t r = 0; r < rows; ++r)
      qNorm[r] = scaledRowNorm(*kc, *plan.q, localRow[r], f.dqk, f.gamma);
  }
  // Scalable softmax: the number of keys each row sees (sink rows
  // included); each lane of the quad counts a quarter of a tile's keys.
  factor.assign(rows, kc->f32(1.0));
  if (f.norm != Normalization::scalable_softmax)
    return;
  double ls = spec.getLengthScale() ? spec.getLengthScale()->convertToDouble()
                                    : 1.0;
  const int64_t blockN = config.getBlockN();
  for (int64_t r = 0; r < rows; ++r) {
    Value qi = e.minI(qRow[r], e.subI(info.qLen, idx(1)));
    Value n = e.forLoop(
        idx(0), ring.end, {idx(0)},
        [&](Value u, ValueRange a) -> SmallVector<Value> {
          Value j0 = e.mulI(tileOf(u), idx(blockN));
          return {e.forLoop(
              idx(0), idx(blockN / 4), {a[0]},
              [&](Value jj, ValueRange s) -> SmallVector<Value> {
                Value j = e.addI(j0, e.addI(e.mulI(jj, idx(4)), t4));
                Value inb = e.cmpI(P::slt, j, info.kvLen);
                Value vis = e.andI(
                    inb, visible(qi, e.minI(j, e.subI(info.kvLen, idx(1)))));
                return {e.addI(s[0], e.select(vis, idx(1), idx(0)))};
              })[0]};
        })[0];
    Value nf = e.indexToF32(n);
    nf = e.add(nf, kc->shuffleXor(nf, 1));
    nf = e.add(nf, kc->shuffleXor(nf, 2));
    nf = e.add(nf, e.indexToF32(info.numSinkRows));
    factor[r] = e.mul(kc->f32(ls), e.log(nf));
  }
}

SmallVector<Value> ForwardKernelBuilder::initialState() {
  // O accumulators [mi][dt][4], then m[r], then l[r]. m and l start from
  // the logits that carry no value (sink logits, softmax1's +1).
  SmallVector<Value> state(shape.oElements(), kc->f32(0.0));
  Value sinkLogit;
  if (Value sinkLogits = sig.lookup("sink_logits"); sinkLogits && f.softmax)
    sinkLogit = memref::LoadOp::create(*b, sinkLogits, ValueRange{h});
  auto [m0, l0] = softmax->initialState(sinkLogit);
  state.append(shape.rows(), m0);
  state.append(shape.rows(), l0);
  return state;
}

//===----------------------------------------------------------------------===//
// One KV tile
//===----------------------------------------------------------------------===//

SmallVector<Value> ForwardKernelBuilder::scores(Value stage) {
  if (wgmma)
    return chains->waitForAccumulator(issueScores(stage), 0, inFlightS);
  return mmaSync->productABt(
      [&](int64_t mi, int64_t ks) {
        return residentQ.empty() ? mmaSync->loadA(*plan.q, warpRow0, mi, ks)
                                 : residentQ[ks];
      },
      *plan.k, stage, shape.mTiles, shape.nTiles, f.dqk / 16);
}

Value ForwardKernelBuilder::issueScores(Value stage) {
  // S (64 x blockN per warpgroup) = Q.K^T, both operands K-major in
  // swizzled shared memory; the accumulator layout per warp is the m16n8 C
  // layout of n-tiles 0..nTiles-1, as with mma.sync.
  Value wg = kc->e.divI(warp, idx(4));
  SmallVector<Value> descsA, descsB;
  for (int64_t ks = 0; ks < f.dqk / 16; ++ks) {
    descsA.push_back(chains->descriptor(plan.q->kStepOfRowGroup(*kc, wg, ks),
                                        plan.q->kMajorLayout()));
    descsB.push_back(chains->descriptor(plan.k->kStepOfStage(*kc, stage, ks),
                                        plan.k->kMajorLayout()));
  }
  if (normsOnTensorCores) {
    // The norm k-step: [-1, -1, -1, 0...] x [hi, mid, lo, 0...], so the
    // accumulator holds q.k - |k|^2 / 2.
    descsA.push_back(
        chains->descriptor(plan.normsQ->coreMatrixBase(*kc, wg, true),
                           plan.normsQ->coreMatrixLayout()));
    descsB.push_back(
        chains->descriptor(plan.normsK->coreMatrixBase(*kc, stage, false),
                           plan.normsK->coreMatrixLayout()));
  }
  return chains->issueShared(descsA, descsB, config.getBlockN(), inFlightS);
}

SmallVector<Value> ForwardKernelBuilder::issuePV(ArrayRef<Value> o,
                                                 ArrayRef<Value> packed,
                                                 Value stage) {
  // P from registers (the packed A fragments), V MN-major in swizzled
  // shared memory.
  SmallVector<Value> descs;
  for (int64_t kk = 0; kk < config.getBlockN() / 16; ++kk)
    descs.push_back(chains->descriptor(plan.v->rowStepOfStage(*kc, stage, kk),
                                       plan.v->mnMajorLayout()));
  return chains->issueRegisterA(o, packed, descs, /*transposeB=*/true,
                                inFlightPV);
}

SmallVector<Value> ForwardKernelBuilder::packAll(ArrayRef<Value> p) {
  SmallVector<Value> packed;
  for (int64_t kk = 0; kk < config.getBlockN() / 16; ++kk)
    packed.append(packAccumulatorsAsA(*kc, p, shape.nTiles, 0, kk));
  return packed;
}

ScoredElement ForwardKernelBuilder::scoreElement(Value acc, int64_t r,
                                                 Value col, Value j0,
                                                 Value stage, Mode mode,
                                                 bool foldedScale,
                                                 bool deferScale,
                                                 double scaleLog2) {
  ScalarEmitter &e = kc->e;
  Value j = e.addI(j0, col);
  Value x = acc;
  if (foldedScale) {
    if (!deferScale)
      x = e.mul(x, kc->f32(scaleLog2));
  } else if (f.rbf) {
    Value kn = memref::LoadOp::create(*b, plan.norms->view,
                                      ValueRange{stage, col});
    x = e.sub(e.mul(kc->f32(2.0 * f.gamma * f.normScale()), x), kn);
    if (!f.dropQueryNorm)
      x = e.sub(x, e.mul(qNorm[r], kc->f32(f.normScale())));
  } else {
    x = e.mul(kc->f32(f.scale), x);
  }
  if (mode == Mode::SinkRows)
    return {x, e.cmpI(P::slt, col, info.numSinkRows)};
  x = emitScoreMod(e, info, x, bIdx, h, qRow[r], j);
  if (mode == Mode::Full)
    return {x, e.i1(true)};
  return {x, maskedVisible(r, j)};
}

Value ForwardKernelBuilder::maskedVisible(int64_t r, Value j) {
  ScalarEmitter &e = kc->e;
  Value inb = e.cmpI(P::slt, j, info.kvLen);
  Value jc = e.minI(j, e.subI(info.kvLen, idx(1)));
  Value qc = e.minI(qRow[r], e.subI(info.qLen, idx(1)));
  return e.andI(inb, visible(qc, jc));
}

TileWeights ForwardKernelBuilder::weights(ArrayRef<Value> s,
                                          ArrayRef<Value> curM,
                                          ArrayRef<Value> curL, Value u,
                                          Value stage, Mode mode) {
  ScalarEmitter &e = kc->e;
  Value j0 = mode == Mode::SinkRows
                 ? idx(0)
                 : e.mulI(tileOf(u), idx(config.getBlockN()));
  if (f.rbf && mode == Mode::SinkRows)
    computeTileKeyNorms(*kc, *plan.k, *plan.norms, stage,
                        f.gamma * f.normScale());
  // Plain softmax of a dot product (or RBF with the norm k-step): scores go
  // to the exp2 domain with one multiply, which with a positive factor is
  // deferred past the row maximum and folded into the exponent's FMA.
  const bool scalable = f.norm == Normalization::scalable_softmax;
  const bool foldedScale =
      (f.softmax && !f.rbf && !scalable &&
       (mode == Mode::SinkRows || !f.hasScoreMod)) ||
      normsOnTensorCores;
  // The factor from x to the exp2 domain: the folded scale for raw dot
  // products, 1 for RBF scores already built in that domain, log2(e) for
  // scores in natural units (after a score region).
  const double scaleLog2 =
      foldedScale ? (normsOnTensorCores ? 2.0 * f.gamma * kLog2e
                                        : f.scale * kLog2e)
      : f.rbfLog2Domain ? 1.0
                        : kLog2e;
  const bool deferScale = f.softmax && !scalable && scaleLog2 > 0;
  SmallVector<Value> rowFactors;
  if (scalable)
    for (Value fr : factor)
      rowFactors.push_back(e.mul(fr, kc->f32(kLog2e)));
  Exp2Scale scale{deferScale ? scaleLog2 : 1.0, rowFactors};
  return softmax->weights(
      [&](int64_t mi, int64_t nt, int64_t i) {
        Value col = e.addI(idx(nt * 8 + (i % 2)), e.mulI(t4, idx(2)));
        Value acc = s[(mi * shape.nTiles + nt) * 4 + i];
        return scoreElement(acc, FragmentShape::rowOf(mi, i), col, j0, stage,
                            mode, foldedScale, deferScale, scaleLog2);
      },
      curM, curL, scale);
}

void ForwardKernelBuilder::zeroInvisibleRows(Value u, Value stage) {
  // The visibility of the thread's elements is evaluated once more here,
  // apart from the scores: interleaved with them, its predicates would
  // raise the register peak of the whole kernel.
  Value j0 = kc->e.mulI(tileOf(u), idx(config.getBlockN()));
  Value columns = visibleColumnBits(*kc, shape, [&](int64_t r, Value col) {
    return maskedVisible(r, kc->e.addI(j0, col));
  });
  zeroInvisibleValueRows(*kc, shape, columns, *plan.invisibleKeys, *plan.v,
                         stage, wgmma);
}

SmallVector<Value> ForwardKernelBuilder::processTile(ValueRange cur, Value u,
                                                     Value stage, Mode mode) {
  // One KV tile start to end (mma.sync, or wgmma without pipelining).
  SmallVector<Value> curV(cur.begin(), cur.end());
  ArrayRef<Value> c(curV);
  const int64_t nO = shape.oElements(), rows = shape.rows();
  // A masked key's weight is 0, but its V row meets the tensor cores
  // (0 * NaN = NaN): on masked tiles the rows no query of the CTA sees are
  // zeroed first, before S while few registers are live. Fully visible
  // tiles, and ops without masks (whose only invisible keys, past Sk, the
  // copies zero-fill), skip this.
  if (mode == Mode::Masked && f.masked)
    zeroInvisibleRows(u, stage);
  SmallVector<Value> s = scores(stage);
  TileWeights w =
      weights(s, c.slice(nO, rows), c.slice(nO + rows, rows), u, stage, mode);
  SmallVector<Value> o = softmax->rescale(c.take_front(nO), w.alpha, w.changed);
  if (wgmma) {
    o = issuePV(o, packAll(w.p), stage);
    o = chains->retire(o, inFlightPV);
  } else {
    mmaSync->accumulatePV(o, w.p, *plan.v, stage, shape.mTiles, shape.nTiles,
                          shape.dTiles);
  }
  o.append(w.nextM);
  o.append(w.nextL);
  return o;
}

SmallVector<Value>
ForwardKernelBuilder::dispatch(Value u, bool maySink,
                               function_ref<SmallVector<Value>(Mode)> fn) {
  // The mode of tile u (uniform across the CTA): the learned sink rows, or
  // a tile fully visible (no mask code) or not.
  ScalarEmitter &e = kc->e;
  auto regular = [&]() {
    return kc->ifElse(
        fullyVisible(u), [&]() { return fn(Mode::Full); },
        [&]() { return fn(Mode::Masked); });
  };
  if (f.sinkRows && maySink)
    return kc->ifElse(
        e.cmpI(P::slt, u, idx(0)), [&]() { return fn(Mode::SinkRows); },
        regular);
  return regular();
}

Value ForwardKernelBuilder::fullyVisible(Value u) {
  ScalarEmitter &e = kc->e;
  Value j0 = e.mulI(tileOf(u), idx(config.getBlockN()));
  Value j1 = e.addI(j0, idx(config.getBlockN()));
  return e.andI(e.cmpI(P::sle, j1, info.kvLen),
                emitTileVerdict(e, info, bIdx, h, i0, i1, j0, j1).allTrue);
}

Value ForwardKernelBuilder::isMaskedTile(Value u, bool maySink) {
  ScalarEmitter &e = kc->e;
  Value masked = e.cmpI(P::eq, fullyVisible(u), e.i1(false));
  if (f.sinkRows && maySink)
    masked = e.andI(masked, e.cmpI(P::sge, u, idx(0)));
  return masked;
}

//===----------------------------------------------------------------------===//
// The KV loop and the epilogue
//===----------------------------------------------------------------------===//

SmallVector<Value> ForwardKernelBuilder::kvLoop(ArrayRef<Value> state) {
  if (config.getPipelined())
    return pipelinedKVLoop(state);
  return emitPlainKVLoop(*kc, ring, state,
                         [&](Value u, Value stage, ValueRange cur) {
                           return dispatch(u, /*maySink=*/true, [&](Mode m) {
                             return processTile(cur, u, stage, m);
                           });
                         });
}

SmallVector<Value>
ForwardKernelBuilder::pipelinedKVLoop(ArrayRef<Value> state) {
  PipelinedSteps steps;
  steps.nO = shape.oElements();
  steps.rows = shape.rows();
  steps.nP = (config.getBlockN() / 16) * 4;
  steps.issueScores = [&](Value stage) { return issueScores(stage); };
  steps.waitScores = [&](Value acc, int64_t pending) {
    return chains->waitForAccumulator(acc, pending, inFlightS);
  };
  steps.weigh = [&](ArrayRef<Value> s, ArrayRef<Value> m, ArrayRef<Value> l,
                    Value u, bool maySink) {
    return dispatch(u, maySink, [&](Mode mode) {
      TileWeights w = weights(s, m, l, u, ring.stageOf(*kc, u), mode);
      SmallVector<Value> out(w.nextM);
      out.append(w.nextL);
      out.append(packAll(w.p));
      out.append(w.alpha);
      out.push_back(w.changed);
      return out;
    });
  };
  // The V rows of a masked tile no query of the CTA sees are zeroed once
  // no chain is in flight (a pass over shared memory amid the overlapped
  // chains would make ptxas serialise them), before its P.V.
  if (f.masked)
    steps.settle = [&](Value u) {
      kc->ifThen(isMaskedTile(u, /*maySink=*/true), [&] {
        zeroInvisibleRows(u, ring.stageOf(*kc, u));
      });
    };
  steps.rescale = [&](ArrayRef<Value> o, ArrayRef<Value> alpha,
                      Value changed) {
    return softmax->rescale(o, alpha, changed);
  };
  steps.issuePV = [&](ArrayRef<Value> o, ArrayRef<Value> p, Value stage) {
    return issuePV(o, p, stage);
  };
  steps.retirePV = [&](ArrayRef<Value> o) {
    return chains->retire(o, inFlightPV);
  };
  steps.zeroP = packAll(SmallVector<Value>(shape.nTiles * 4, kc->f32(0.0)));
  return emitPipelinedKVLoop(*kc, ring, steps, state);
}

void ForwardKernelBuilder::epilogue(ArrayRef<Value> fin) {
  // The normalizer summed over the quad; O and the LSE written.
  ScalarEmitter &e = kc->e;
  const int64_t nO = shape.oElements(), rows = shape.rows();
  Value oBuf = sig.lookup("o"), lseBuf = sig.lookup("lse");
  for (int64_t r = 0; r < rows; ++r) {
    Value l = softmax->quadSum(fin[nO + rows + r]);
    Value inv = softmax->outputScale(l);
    Value qi = qRow[r];
    int64_t mi = r / 2, first = (r % 2) * 2;
    kc->ifThen(e.cmpI(P::slt, qi, info.qLen), [&] {
      Value base = e.mulI(e.addI(qRowBase, qi), idx(f.dv));
      for (int64_t dt = 0; dt < shape.dTiles; ++dt) {
        Value col = e.addI(idx(dt * 8), e.mulI(t4, idx(2)));
        Value x0 = e.mul(fin[(mi * shape.dTiles + dt) * 4 + first], inv);
        Value x1 = e.mul(fin[(mi * shape.dTiles + dt) * 4 + first + 1], inv);
        // The two neighbouring outputs of a row go out as one 4-byte store
        // (columns come in even pairs and Dv is a multiple of 16).
        Value pair = vector::FromElementsOp::create(
            *b, VectorType::get({2}, f.elt),
            ValueRange{arith::TruncFOp::create(*b, f.elt, x0),
                       arith::TruncFOp::create(*b, f.elt, x1)});
        vector::StoreOp::create(*b, pair, oBuf, ValueRange{e.addI(base, col)},
                                /*nontemporal=*/false, llvm::MaybeAlign(4));
      }
      kc->ifThen(e.cmpI(P::eq, t4, idx(0)), [&] {
        // Add back the dropped -gamma|q|^2, except on rows that saw nothing.
        Value dropped = f.softmax && f.dropQueryNorm
                            ? e.mul(qNorm[r], factor[r])
                            : Value();
        Value lse = softmax->logSumExp(fin[nO + r], l, dropped);
        memref::StoreOp::create(*b, lse, lseBuf,
                                ValueRange{e.addI(qRowBase, qi)});
      });
    });
  }
}

//===----------------------------------------------------------------------===//
// Assembly
//===----------------------------------------------------------------------===//

DictionaryAttr ForwardKernelBuilder::build() {
  declareSignature();
  const int64_t threads = 32 * config.getWarps();
  KernelBody body =
      openKernel(gpuModule, op.getLoc(), name, sig, f.elt, threads);
  gpu::GPUFuncOp func = body.func;
  b = std::move(body.b);
  kc = std::move(body.kc);
  softmax = std::make_unique<FragmentSoftmax>(*kc, shape, spec);
  mmaSync = std::make_unique<MmaSyncFragments>(*kc);
  bindOpInfo();

  plan.plan.materialize(*kc);
  if (wgmma)
    chains = std::make_unique<WgmmaChains>(*kc, plan.plan.address());
  setUpThreadIndices();
  if (normsOnTensorCores)
    writeNormKStepConstants(*kc, *plan.normsQ, *plan.normsK);

  // Prologue: Q and the first KV tiles in flight. Q is the oldest group
  // (the pipelined loop also needs the first KV tile).
  copyTileAsync(*kc, sig.lookup("q"), *plan.q, idx(0),
                kc->e.mulI(kc->e.addI(qRowBase, i0), idx(f.dqk)),
                kc->e.subI(i1, i0));
  commitCopies(*kc);
  setUpTileRange();
  ring.prime(*kc);
  ring.waitAndPublish(*kc, config.getPipelined() ? ring.stages - 2
                                                 : ring.stages - 1);
  computeRowPrologue();
  SmallVector<Value> fin = kvLoop(initialState());
  epilogue(fin);
  allowContraction(func);
  return describe();
}

DictionaryAttr ForwardKernelBuilder::describe() {
  MLIRContext *ctx = op.getContext();
  Builder bd(ctx);
  SmallVector<Attribute> params, workspaces, launches;
  auto param = [&](StringRef n) {
    Value v = sig.lookup(n);
    params.push_back(describeBuffer(
        ctx, n, cast<MemRefType>(v.getType()).getElementType()));
  };
  for (StringRef n : {"q", "k", "v", "o"})
    param(n);
  if (op.getLse())
    param("lse");
  else
    workspaces.push_back(describeBuffer(ctx, "lse", bd.getF32Type(),
                                        "B * Hq * Sq"));
  for (StringRef n : {"sink_logits", "sink_key", "sink_value"})
    if (sig.lookup(n))
      param(n);
  for (auto [i, c] : llvm::enumerate(op.getCaptures()))
    params.push_back(describeCapture(ctx, "capture" + std::to_string(i),
                                     cast<RankedTensorType>(c.getType())));
  const int64_t blockN = config.getBlockN();
  if (f.rbf) {
    // The prologue fills the key norms before the main kernel runs.
    workspaces.push_back(describeBuffer(
        ctx, "key_norms",
        cast<MemRefType>(sig.lookup("key_norms").getType()).getElementType(),
        keyNormWorkspaceElements(blockN, normsOnTensorCores)));
    launches.push_back(buildKeyNormKernel(
        gpuModule, op.getLoc(), name, f.elt, f.dqk, blockN,
        normsOnTensorCores ? 0.5 : f.gamma * f.normScale(),
        normsOnTensorCores));
  }
  launches.push_back(describeLaunch(
      ctx, name, {ceilDivExpr("Sq", config.getBlockM()), "Hq", "B"},
      32 * config.getWarps(), plan.plan.bytes(), sig));
  SmallVector<NamedAttribute> fields;
  // What keys a query cannot see may still do to its output (docs:
  // semantics.md, "Keys a query cannot see"): with masks, V rows no query
  // of the CTA's row block sees are zeroed; a non-finite V row of a key
  // masked for one query but seen by another of its block still reaches
  // the first as 0 * NaN.
  if (f.masked)
    fields.push_back(bd.getNamedAttr("invisible_keys",
                                     bd.getStringAttr("zeroed_per_cta")));
  fields.append({
      bd.getNamedAttr("name", bd.getStringAttr(name)),
      bd.getNamedAttr("dtype", bd.getStringAttr(llvm::to_string(f.elt))),
      bd.getNamedAttr("head_dim_qk", bd.getI64IntegerAttr(f.dqk)),
      bd.getNamedAttr("head_dim_v", bd.getI64IntegerAttr(f.dv)),
      bd.getNamedAttr("has_lse_result", bd.getBoolAttr(bool(op.getLse()))),
      bd.getNamedAttr("config", describeKernelConfig(config)),
      bd.getNamedAttr("params", bd.getArrayAttr(params)),
      bd.getNamedAttr("workspaces", bd.getArrayAttr(workspaces)),
      bd.getNamedAttr("launches", bd.getArrayAttr(launches)),
  });
  return bd.getDictionaryAttr(fields);
}

//===----------------------------------------------------------------------===//
// Entry points
//===----------------------------------------------------------------------===//

KeyNormPath kernel::forwardKeyNormPath(AttentionOp op, MmaKind mma) {
  ForwardFacts f = ForwardFacts::get(op);
  if (!f.rbf)
    return KeyNormPath::none;
  // bf16 wgmma: the key norms ride on the tensor cores. One extra k-step
  // of 16 appends [-1, -1, -1, 0...] to every query row and [hi, mid, lo,
  // 0...] = |k|^2 / 2 (three bf16 parts: f32 precision) to every key row,
  // so the scores take the plain softmax path. f16 cannot hold large
  // norms; sink rows and the |q|^2 term (not shift-invariant cases) keep
  // the per-element path.
  if (mma == MmaKind::wgmma && f.elt.isBF16() && f.rbfLog2Domain &&
      f.dropQueryNorm && !f.sinkRows && f.gamma > 0)
    return KeyNormPath::mma;
  return KeyNormPath::smem;
}

int64_t kernel::forwardSharedMemoryBytes(AttentionOp op, MmaKind mma,
                                         int64_t blockM, int64_t blockN,
                                         int64_t stages,
                                         KeyNormPath keyNorms) {
  return ForwardPlan(ForwardFacts::get(op), mma, blockM, blockN, stages,
                     keyNorms)
      .plan.bytes();
}

DictionaryAttr kernel::buildForwardKernel(AttentionOp op,
                                          KernelConfigAttr config,
                                          gpu::GPUModuleOp gpuModule,
                                          StringRef name) {
  return ForwardKernelBuilder(op, config, gpuModule, name).build();
}
