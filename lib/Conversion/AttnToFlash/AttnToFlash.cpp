//===- AttnToFlash.cpp - the tiled online form of attention -----*- C++ -*-===//
//
// The algorithm of the GPU kernels, target-independent: per (b, h, q-tile),
// visit only the KV tiles the structured masks leave visible, apply mask code
// only on tiles that are not fully visible, and keep a running maximum and
// normalizer per query (FlashAttention's online softmax). See the pass
// description in include/attn/Conversion/Passes.td.
//
//===----------------------------------------------------------------------===//

#include "attn/Conversion/Passes.h"

#include "AttentionGradToFlash.h"
#include "attn/Conversion/AttnCommon/AttentionGradCodegen.h"
#include "attn/Conversion/AttnCommon/AttnCodegen.h"
#include "attn/Conversion/AttnCommon/OnlineSoftmax.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/Matchers.h"

#include <limits>

#define DEBUG_TYPE "attn-to-flash"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNTOFLASHPASS
#include "attn/Conversion/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

/// Where the keys of a tile come from: the regular K/V or the sink rows.
enum class KeySource { Regular, SinkRows };

/// The online state of one q-tile: running maximum, normalizer (or count for
/// mean) per row, and the unnormalized output rows.
struct TileState {
  Value max, norm, acc;
  SmallVector<Value> values() const { return {max, norm, acc}; }
  static TileState from(ValueRange v) { return {v[0], v[1], v[2]}; }
};

/// One row's view of a KV tile: per key the softmax logit (-inf where
/// masked) or the final weight (0 where masked), the largest of them, the
/// number of visible keys (mean) and, on masked tiles, per key whether the
/// row sees it (null on tiles every key of which is visible).
struct RowTile {
  Value weights, max, count, visible;
};

class FlashLowering {
public:
  FlashLowering(ImplicitLocOpBuilder &b, AttentionOp op, int64_t qTile,
                int64_t kvTile)
      : b(b), e{b}, info(AttnOpInfo::get(b, op)),
        online(e, OnlineSoftmaxOptions::get(info.spec)),
        norm(info.spec.getNormalizationKind()), qTile(qTile), kvTile(kvTile) {
    rbf = info.spec.getScoreKind() == ScoreKind::rbf;
    dropQueryNorm = rbf && isShiftInvariant(info.spec, bool(info.sinkLogits));
  }

  SmallVector<Value> emit();

private:
  SmallVector<Value> emitQueryTile(Value bIdx, Value h, Value i0,
                                   Value output, Value lse);
  /// gamma * |phi(q) - centre|^2 per row of the q-tile (RBF).
  Value emitQueryNorms();
  /// Scalable softmax: lambda * log(n) per row, n the keys the row sees.
  Value emitScalableFactors(const KVRange &range);
  TileState emitInitialState();
  /// Visits KV tiles [firstTile, endTile), each fully visible or masked.
  TileState emitTileLoop(Value firstTile, Value endTile, TileState state);
  /// Normalizes the rows and writes them and their LSE.
  SmallVector<Value> emitEpilogue(TileState state, Value output, Value lse);

  /// Processes keys [j0, j1) of `source` for rows [i0, i0 + rows).
  TileState emitKVTile(TileState state, KeySource source, Value j0, Value j1,
                       bool masked);
  /// gamma * |phi(k) - centre|^2 for keys [j0, j0 + len) (RBF).
  Value emitKeyNorms(KeySource source, Value j0, Value len);
  RowTile emitRowTile(KeySource source, Value r, Value j0, Value len,
                      Value kNorms, bool masked);
  /// Folds a row's tile into the state: maximum, normalizer, output row.
  TileState emitRowUpdate(TileState st, KeySource source, Value r, Value j0,
                          Value len, RowTile tile);
  /// Score of row `i` against key `j` (of `source`), before masking.
  Value emitScore(KeySource source, Value i, Value j, Value kNorm);
  Value rowFactor(Value r);
  /// A buffer of one value per key of a tile of `source` (f32 unless
  /// `elementType` is given): the KV tile, or all the sink rows (one tile,
  /// whatever their number).
  Value emptyKeyBuffer(KeySource source, Type elementType = {});
  Value emptyRowBuffer() {
    return tensor::EmptyOp::create(b, ArrayRef<int64_t>{qTile},
                                   b.getF32Type());
  }
  /// Element d of the RBF centring vector: phi_q of the q-tile's first query.
  Value centre(Value d) {
    return e.featureMap(e.loadF32(info.query, {bIdx, h, i0, d}),
                        info.spec.getQFeatureMap());
  }
  /// Element d of key row j of `source` through the key feature map.
  Value loadKey(KeySource source, Value j, Value d) {
    Value x = source == KeySource::SinkRows
                  ? e.loadF32(info.sinkKey, {hk, j, d})
                  : e.loadF32(info.key, {bIdx, hk, j, d});
    return e.featureMap(x, info.spec.getKFeatureMap());
  }

  ImplicitLocOpBuilder &b;
  ScalarEmitter e;
  AttnOpInfo info;
  OnlineSoftmax online;
  Normalization norm;
  int64_t qTile, kvTile;
  bool rbf, dropQueryNorm;

  // Per query tile.
  Value bIdx, h, hk, i0, i1, rows;
  Value qNorms;  ///< tensor<qTile x f32>: gamma * |phi(q)|^2 (RBF only).
  Value factors; ///< tensor<qTile x f32>: scalable-softmax factors.
};

SmallVector<Value> FlashLowering::emit() {
  Value tq = e.index(qTile);
  Value numQTiles = e.divI(e.addI(info.qLen, e.index(qTile - 1)), tq);
  return emitOutputLoopNest(
      e, info, numQTiles,
      [&](Value bi, Value hi, Value t, Value output, Value lse) {
        return emitQueryTile(bi, hi, e.mulI(t, tq), output, lse);
      });
}

Value FlashLowering::rowFactor(Value r) {
  if (norm != Normalization::scalable_softmax)
    return e.f32(1.0);
  return e.loadF32(factors, {r});
}

Value FlashLowering::emptyKeyBuffer(KeySource source, Type elementType) {
  Type f32 = elementType ? elementType : b.getF32Type();
  if (source == KeySource::Regular)
    return tensor::EmptyOp::create(b, ArrayRef<int64_t>{kvTile}, f32);
  int64_t numSinkRows =
      cast<RankedTensorType>(info.sinkKey.getType()).getDimSize(1);
  if (!ShapedType::isDynamic(numSinkRows))
    return tensor::EmptyOp::create(b, ArrayRef<int64_t>{numSinkRows}, f32);
  return tensor::EmptyOp::create(
      b, getAsOpFoldResult(ValueRange{info.numSinkRows}), f32);
}

Value FlashLowering::emitScore(KeySource source, Value i, Value j,
                               Value kNorm) {
  bool sink = source == KeySource::SinkRows;
  Value keys = sink ? info.sinkKey : info.key;
  SmallVector<Value> keyRow =
      sink ? SmallVector<Value>{hk, j} : SmallVector<Value>{bIdx, hk, j};
  Value s;
  if (!rbf) {
    s = emitKernelScore(e, info, bIdx, h, i, keys, keyRow);
  } else {
    // -gamma|q - k|^2 = 2 gamma q.k - gamma |k|^2 - gamma |q|^2, with the
    // key norm from the tile and the query norm from the q-tile; q and k are
    // centred on the q-tile's first query (the distance does not change), so
    // that a large offset common to q and k does not cancel.
    FeatureMap qMap = info.spec.getQFeatureMap();
    Value dot = e.forLoop(
        e.index(0), info.headDimQK, {e.f32(0.0)},
        [&](Value d, ValueRange a) -> SmallVector<Value> {
          Value c = centre(d);
          Value qx = e.sub(
              e.featureMap(e.loadF32(info.query, {bIdx, h, i, d}), qMap), c);
          Value kx = e.sub(loadKey(source, j, d), c);
          return {e.add(a[0], e.mul(qx, kx))};
        })[0];
    Value gamma = emitGamma(e, info);
    s = e.sub(e.mul(e.mul(e.f32(2.0), gamma), dot), kNorm);
    if (!dropQueryNorm)
      s = e.sub(s, e.loadF32(qNorms, {e.subI(i, i0)}));
  }
  if (!sink)
    s = emitScoreMod(e, info, s, bIdx, h, i, j);
  return s;
}

Value FlashLowering::emitKeyNorms(KeySource source, Value j0, Value len) {
  return e.forLoop(
      e.index(0), len, {emptyKeyBuffer(source)},
      [&](Value jj, ValueRange a) -> SmallVector<Value> {
        Value j = e.addI(j0, jj);
        Value sq = e.forLoop(
            e.index(0), info.headDimQK, {e.f32(0.0)},
            [&](Value d, ValueRange s) -> SmallVector<Value> {
              Value x = e.sub(loadKey(source, j, d), centre(d));
              return {e.add(s[0], e.mul(x, x))};
            })[0];
        Value n = e.mul(emitGamma(e, info), sq);
        return {tensor::InsertOp::create(b, n, a[0], jj)};
      })[0];
}

RowTile FlashLowering::emitRowTile(KeySource source, Value r, Value j0,
                                   Value len, Value kNorms, bool masked) {
  Value i = e.addI(i0, r);
  Value factor = rowFactor(r);
  SmallVector<Value> init = {emptyKeyBuffer(source), e.f32(kNegInf),
                             e.f32(0.0)};
  if (masked)
    init.push_back(emptyKeyBuffer(source, b.getI1Type()));
  ValueRange w = e.forLoop(
      e.index(0), len, init,
      [&](Value jj, ValueRange s) -> SmallVector<Value> {
        Value j = e.addI(j0, jj);
        Value kn = rbf ? e.loadF32(kNorms, {jj}) : Value();
        Value score = emitScore(source, i, j, kn);
        Value vis = masked ? emitVisible(e, info, bIdx, h, i, j) : e.i1(true);
        Value value = online.tracksMax() ? e.mul(score, factor)
                                         : online.elementWeight(score);
        value = online.maskedValue(vis, value);
        Value count = s[2];
        if (norm == Normalization::mean)
          count = e.add(count, value);
        Value tile = tensor::InsertOp::create(b, value, s[0], jj);
        SmallVector<Value> next = {tile, e.maxF(s[1], value), count};
        if (masked)
          next.push_back(tensor::InsertOp::create(b, vis, s[3], jj));
        return next;
      });
  return {w[0], w[1], w[2], masked ? w[3] : Value()};
}

TileState FlashLowering::emitRowUpdate(TileState st, KeySource source,
                                       Value r, Value j0, Value len,
                                       RowTile tile) {
  bool sink = source == KeySource::SinkRows;
  Value alpha = e.f32(1.0), shift = e.f32(0.0), tileSum = tile.count;
  if (online.tracksMax()) {
    RowRescale rescale = online.rescale(e.loadF32(st.max, {r}), tile.max);
    alpha = rescale.alpha;
    shift = rescale.shift;
    tileSum = e.forLoop(
        e.index(0), len, {e.f32(0.0)},
        [&](Value jj, ValueRange s) -> SmallVector<Value> {
          Value p = online.probability(e.loadF32(tile.weights, {jj}), shift);
          return {e.add(s[0], p)};
        })[0];
    st.max = tensor::InsertOp::create(b, rescale.max, st.max, r);
  }
  Value rowNorm = online.updateNorm(e.loadF32(st.norm, {r}), alpha, tileSum);
  st.norm = tensor::InsertOp::create(b, rowNorm, st.norm, r);

  // On masked tiles, a key the row cannot see adds nothing, whatever its
  // value row holds: the term is selected away (a zero weight times a NaN
  // or infinite value would be NaN). Its logit never met the others: it
  // was replaced by -inf (or its weight by 0) before the row maximum.
  Value values = sink ? info.sinkValue : info.value;
  st.acc = e.forLoop(
      e.index(0), info.headDimV, {st.acc},
      [&](Value d, ValueRange s) -> SmallVector<Value> {
        Value acc = e.mul(e.loadF32(s[0], {r, d}), alpha);
        acc = e.forLoop(
            e.index(0), len, {acc},
            [&](Value jj, ValueRange t) -> SmallVector<Value> {
              Value p = e.loadF32(tile.weights, {jj});
              if (online.tracksMax())
                p = online.probability(p, shift);
              Value j = e.addI(j0, jj);
              Value x = sink ? e.loadF32(values, {hk, j, d})
                             : e.loadF32(values, {bIdx, hk, j, d});
              Value sum = e.add(t[0], e.mul(p, x));
              if (tile.visible)
                sum = e.select(
                    tensor::ExtractOp::create(b, tile.visible, ValueRange{jj}),
                    sum, t[0]);
              return {sum};
            })[0];
        return {tensor::InsertOp::create(b, acc, s[0], ValueRange{r, d})};
      })[0];
  return st;
}

TileState FlashLowering::emitKVTile(TileState state, KeySource source,
                                    Value j0, Value j1, bool masked) {
  Value len = e.subI(j1, j0);
  // Key norms once per tile, for every row.
  Value kNorms = rbf ? emitKeyNorms(source, j0, len) : Value();
  ValueRange updated = e.forLoop(
      e.index(0), rows, state.values(),
      [&](Value r, ValueRange a) -> SmallVector<Value> {
        RowTile tile = emitRowTile(source, r, j0, len, kNorms, masked);
        return emitRowUpdate(TileState::from(a), source, r, j0, len, tile)
            .values();
      });
  return TileState::from(updated);
}

Value FlashLowering::emitQueryNorms() {
  return e.forLoop(
      e.index(0), rows, {emptyRowBuffer()},
      [&](Value r, ValueRange a) -> SmallVector<Value> {
        Value sq = e.forLoop(
            e.index(0), info.headDimQK, {e.f32(0.0)},
            [&](Value d, ValueRange s) -> SmallVector<Value> {
              Value x = e.sub(
                  e.featureMap(
                      e.loadF32(info.query, {bIdx, h, e.addI(i0, r), d}),
                      info.spec.getQFeatureMap()),
                  centre(d));
              return {e.add(s[0], e.mul(x, x))};
            })[0];
        return {tensor::InsertOp::create(b, e.mul(emitGamma(e, info), sq),
                                         a[0], r)};
      })[0];
}

Value FlashLowering::emitScalableFactors(const KVRange &range) {
  // n = keys the row sees, counted over the visited range, plus sink rows.
  return e.forLoop(
      e.index(0), rows, {emptyRowBuffer()},
      [&](Value r, ValueRange a) -> SmallVector<Value> {
        Value n = e.addI(
            emitVisibleCount(e, info, bIdx, h, e.addI(i0, r), range),
            info.numSinkRows);
        Value f = online.scalableFactor(e.indexToF32(n));
        return {tensor::InsertOp::create(b, f, a[0], r)};
      })[0];
}

TileState FlashLowering::emitInitialState() {
  Value maxInit = emptyRowBuffer(), normInit = emptyRowBuffer();
  Value accInit = tensor::EmptyOp::create(
      b, getAsOpFoldResult(ValueRange{e.index(qTile), info.headDimV}),
      b.getF32Type());
  ValueRange init = e.forLoop(
      e.index(0), rows, {maxInit, normInit, accInit},
      [&](Value r, ValueRange a) -> SmallVector<Value> {
        Value sinkLogit =
            info.sinkLogits ? e.loadF32(info.sinkLogits, {h}) : Value();
        RowStats stats = online.initialStats(sinkLogit);
        Value acc = e.forLoop(e.index(0), info.headDimV, {a[2]},
                              [&](Value d, ValueRange s) -> SmallVector<Value> {
                                return {tensor::InsertOp::create(
                                    b, e.f32(0.0), s[0], ValueRange{r, d})};
                              })[0];
        return {tensor::InsertOp::create(b, stats.max, a[0], r),
                tensor::InsertOp::create(b, stats.norm, a[1], r), acc};
      });
  return TileState::from(init);
}

TileState FlashLowering::emitTileLoop(Value firstTile, Value endTile,
                                      TileState state) {
  Value tk = e.index(kvTile);
  bool anyMask = hasAnyMask(info);
  // Document masks decide tiles from the segment ids' spans.
  if (hasDocumentMask(info))
    setSegmentSpanLoops(e, info, bIdx);
  return TileState::from(e.forLoop(
      firstTile, endTile, state.values(),
      [&](Value t, ValueRange a) -> SmallVector<Value> {
        TileState cur = TileState::from(a);
        Value j0 = e.mulI(t, tk);
        Value j1 = e.minI(e.addI(j0, tk), info.kvLen);
        if (!anyMask)
          return emitKVTile(cur, KeySource::Regular, j0, j1, false).values();
        // Tiles the masks hide entirely leave the state as it is; fully
        // visible ones skip the per-element mask.
        TileVerdict verdict = emitTileVerdict(e, info, bIdx, h, i0, i1, j0, j1);
        auto tile = [&](bool masked) {
          return [&, masked]() -> SmallVector<Value> {
            return emitKVTile(cur, KeySource::Regular, j0, j1, masked)
                .values();
          };
        };
        auto fullOrMasked = [&]() -> SmallVector<Value> {
          return llvm::to_vector(
              e.ifElse(verdict.allTrue, tile(false), tile(true)));
        };
        // Regions, documents and any_of masks can prove a tile hidden.
        if (matchPattern(verdict.allFalse, m_Zero()))
          return fullOrMasked();
        return llvm::to_vector(e.ifElse(
            verdict.allFalse,
            [&]() -> SmallVector<Value> { return cur.values(); },
            fullOrMasked));
      }));
}

SmallVector<Value> FlashLowering::emitEpilogue(TileState state, Value output,
                                               Value lse) {
  ValueRange written = e.forLoop(
      e.index(0), rows, {output, lse},
      [&](Value r, ValueRange a) -> SmallVector<Value> {
        Value i = e.addI(i0, r);
        Value l = e.loadF32(state.norm, {r});
        Value inv = online.outputScale(l);
        Value m = online.tracksMax() ? e.loadF32(state.max, {r}) : Value();
        // The dropped -gamma|q|^2, scaled like the scores, goes back in.
        Value dropped =
            dropQueryNorm && online.tracksMax()
                ? e.mul(e.loadF32(qNorms, {r}), rowFactor(r))
                : Value();
        Value rowLse = online.logSumExp(m, l, dropped);
        Value out = e.forLoop(
            e.index(0), info.headDimV, {a[0]},
            [&](Value d, ValueRange s) -> SmallVector<Value> {
              Value x = e.mul(e.loadF32(state.acc, {r, d}), inv);
              if (!info.elementType.isF32())
                x = arith::TruncFOp::create(b, info.elementType, x);
              return {tensor::InsertOp::create(b, x, s[0],
                                               ValueRange{bIdx, h, i, d})};
            })[0];
        return {out, tensor::InsertOp::create(b, rowLse, a[1],
                                              ValueRange{bIdx, h, i})};
      });
  return llvm::to_vector(written);
}

SmallVector<Value> FlashLowering::emitQueryTile(Value bi, Value hi,
                                                Value first, Value output,
                                                Value lse) {
  bIdx = bi;
  h = hi;
  hk = e.divI(h, info.group);
  i0 = first;
  i1 = e.minI(e.addI(i0, e.index(qTile)), info.qLen);
  rows = e.subI(i1, i0);
  Value tk = e.index(kvTile);

  KVRange range = emitKVRange(e, info, i0, i1);
  Value sinkTiles = e.index(0);
  if (range.sinks)
    sinkTiles = e.divI(e.addI(range.sinks->hi, e.index(kvTile - 1)), tk);
  Value mainFirst = e.maxI(e.divI(range.main.lo, tk), sinkTiles);
  Value mainEnd = e.divI(e.addI(range.main.hi, e.index(kvTile - 1)), tk);

  if (rbf)
    qNorms = emitQueryNorms();
  if (norm == Normalization::scalable_softmax)
    factors = emitScalableFactors(range);
  TileState state = emitInitialState();
  // Sink rows: one tile, never masked.
  if (info.sinkKey)
    state = emitKVTile(state, KeySource::SinkRows, e.index(0),
                       info.numSinkRows, /*masked=*/false);
  if (range.sinks)
    state = emitTileLoop(e.index(0), sinkTiles, state);
  state = emitTileLoop(mainFirst, mainEnd, state);
  return emitEpilogue(state, output, lse);
}

/// The largest tile the options accept: the per-tile state is qTile x Dv
/// floats, and the tiles are loop bounds, not sizes to search.
constexpr int64_t kMaxTile = 65536;

struct AttnToFlashPass final
    : attn::impl::AttnToFlashPassBase<AttnToFlashPass> {
  using Base::Base;

  /// Refuses bad options once, before any op is visited, at no location in
  /// the input (they are not in it).
  LogicalResult initialize(MLIRContext *ctx) override {
    for (auto [name, value] : {std::pair<StringRef, int64_t>{"q-tile", qTile},
                               {"kv-tile", kvTile}}) {
      if (value >= 1 && value <= kMaxTile)
        continue;
      return emitError(UnknownLoc::get(ctx))
             << "attn-to-flash: option '" << name
             << "' must be an integer from 1 to " << kMaxTile << ", got "
             << value;
    }
    return success();
  }

  void runOnOperation() override {
    if (failed(replaceAttentionOps(
            getOperation(),
            [&](ImplicitLocOpBuilder &b, AttentionOp op) {
              return FlashLowering(b, op, qTile, kvTile).emit();
            })) ||
        failed(replaceAttentionGradOps(
            getOperation(), [&](ImplicitLocOpBuilder &b, AttentionGradOp op) {
              return emitAttentionGradFlash(b, op, qTile, kvTile);
            })))
      signalPassFailure();
  }
};

} // namespace
