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

#include "attn/Conversion/AttnCommon/AttnCodegen.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

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

class FlashLowering {
public:
  FlashLowering(ImplicitLocOpBuilder &b, AttentionOp op, int64_t qTile,
                int64_t kvTile)
      : b(b), e{b}, info(AttnOpInfo::get(b, op)),
        norm(info.spec.getNormalizationKind()), qTile(qTile), kvTile(kvTile) {
    rbf = info.spec.getScoreKind() == ScoreKind::rbf;
    dropQueryNorm = rbf && isShiftInvariant(info.spec, bool(info.sinkLogits));
  }

  SmallVector<Value> emit();

private:
  SmallVector<Value> emitQueryTile(Value bIdx, Value h, Value i0,
                                   Value output, Value lse);
  /// Processes keys [j0, j1) of `source` for rows [i0, i0 + rows).
  TileState emitKVTile(TileState state, KeySource source, Value j0, Value j1,
                       bool masked);
  /// Score of row `i` against key `j` (of `source`), before masking.
  Value emitScore(KeySource source, Value i, Value j, Value kNorm);
  Value rowFactor(Value r);
  /// Element d of the RBF centring vector: phi_q of the q-tile's first query.
  Value centre(Value d) {
    return e.featureMap(e.loadF32(info.query, {bIdx, h, i0, d}),
                        info.spec.getQFeatureMap());
  }

  ImplicitLocOpBuilder &b;
  ScalarEmitter e;
  AttnOpInfo info;
  Normalization norm;
  int64_t qTile, kvTile;
  bool rbf, dropQueryNorm;

  // Per query tile.
  Value bIdx, h, hk, i0, rows;
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
    FeatureMap qMap = info.spec.getQFeatureMap(), kMap = info.spec.getKFeatureMap();
    Value dot = e.forLoop(
        e.index(0), info.headDimQK, {e.f32(0.0)},
        [&](Value d, ValueRange a) -> SmallVector<Value> {
          Value c = centre(d);
          Value qx = e.sub(
              e.featureMap(e.loadF32(info.query, {bIdx, h, i, d}), qMap), c);
          SmallVector<Value> kIdx = keyRow;
          kIdx.push_back(d);
          Value kx = e.sub(e.featureMap(e.loadF32(keys, kIdx), kMap), c);
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

TileState FlashLowering::emitKVTile(TileState state, KeySource source,
                                    Value j0, Value j1, bool masked) {
  using FP = arith::CmpFPredicate;
  bool sink = source == KeySource::SinkRows;
  Type f32 = b.getF32Type();
  Value zero = e.f32(0.0), negInf = e.f32(kNegInf);
  Value len = e.subI(j1, j0);
  // gamma * |phi(k)|^2 for the keys of the tile, once per tile.
  Value kNorms;
  if (rbf) {
    Value keys = sink ? info.sinkKey : info.key;
    Value init = tensor::EmptyOp::create(b, ArrayRef<int64_t>{kvTile}, f32);
    kNorms = e.forLoop(
        e.index(0), len, {init},
        [&](Value jj, ValueRange a) -> SmallVector<Value> {
          Value j = e.addI(j0, jj);
          Value sq = e.forLoop(
              e.index(0), info.headDimQK, {zero},
              [&](Value d, ValueRange s) -> SmallVector<Value> {
                Value x = e.sub(e.featureMap(
                                    sink ? e.loadF32(keys, {hk, j, d})
                                         : e.loadF32(keys, {bIdx, hk, j, d}),
                                    info.spec.getKFeatureMap()),
                                centre(d));
                return {e.add(s[0], e.mul(x, x))};
              })[0];
          Value n = e.mul(emitGamma(e, info), sq);
          return {tensor::InsertOp::create(b, n, a[0], jj)};
        })[0];
  }
  ValueRange updated = e.forLoop(
      e.index(0), rows, state.values(),
      [&](Value r, ValueRange a) -> SmallVector<Value> {
        TileState st = TileState::from(a);
        Value i = e.addI(i0, r);
        Value factor = rowFactor(r);
        // Per-key weights of this row (softmax family: the scaled score, or
        // -inf where masked; the others: the final weight, 0 where masked).
        Value init =
            tensor::EmptyOp::create(b, ArrayRef<int64_t>{kvTile}, f32);
        ValueRange w = e.forLoop(
            e.index(0), len, {init, negInf, zero},
            [&](Value jj, ValueRange s) -> SmallVector<Value> {
              Value j = e.addI(j0, jj);
              Value kn = rbf ? e.loadF32(kNorms, {jj}) : Value();
              Value score = emitScore(source, i, j, kn);
              Value vis = masked ? emitVisible(e, info, bIdx, h, i, j)
                                 : e.i1(true);
              Value value, count = s[2];
              switch (norm) {
              case Normalization::softmax:
              case Normalization::softmax1:
              case Normalization::scalable_softmax:
                value = e.select(vis, e.mul(score, factor), negInf);
                break;
              case Normalization::sigmoid: {
                double bias = info.spec.getBias()
                                  ? info.spec.getBias()->convertToDouble()
                                  : 0.0;
                Value x = e.add(score, e.f32(bias));
                Value sig = e.div(e.f32(1.0),
                                  e.add(e.f32(1.0), e.exp(e.sub(zero, x))));
                value = e.select(vis, sig, zero);
                break;
              }
              case Normalization::relu:
                value = e.select(vis, e.maxF(score, zero), zero);
                break;
              case Normalization::relu2: {
                Value rl = e.maxF(score, zero);
                value = e.select(vis, e.mul(rl, rl), zero);
                break;
              }
              case Normalization::none:
                value = e.select(vis, score, zero);
                break;
              case Normalization::mean:
                value = e.select(vis, e.f32(1.0), zero);
                count = e.add(count, value);
                break;
              }
              Value tile = tensor::InsertOp::create(b, value, s[0], jj);
              return {tile, e.maxF(s[1], value), count};
            });
        Value weights = w[0], tileMax = w[1];

        Value alpha = e.f32(1.0), shift = zero;
        Value rowNorm = e.loadF32(st.norm, {r});
        if (isSoftmaxFamily(norm)) {
          Value mOld = e.loadF32(st.max, {r});
          Value mNew = e.maxF(mOld, tileMax);
          shift = e.select(e.cmpF(FP::OEQ, mNew, negInf), zero, mNew);
          alpha = e.exp(e.sub(mOld, shift));
          Value sum = e.forLoop(
              e.index(0), len, {zero},
              [&](Value jj, ValueRange s) -> SmallVector<Value> {
                Value p = e.exp(e.sub(e.loadF32(weights, {jj}), shift));
                return {e.add(s[0], p)};
              })[0];
          rowNorm = e.add(e.mul(rowNorm, alpha), sum);
          st.max = tensor::InsertOp::create(b, mNew, st.max, r);
        } else if (norm == Normalization::mean) {
          rowNorm = e.add(rowNorm, w[2]);
        }
        st.norm = tensor::InsertOp::create(b, rowNorm, st.norm, r);

        Value values = sink ? info.sinkValue : info.value;
        st.acc = e.forLoop(
            e.index(0), info.headDimV, {st.acc},
            [&](Value d, ValueRange s) -> SmallVector<Value> {
              Value acc = e.mul(e.loadF32(s[0], {r, d}), alpha);
              acc = e.forLoop(
                  e.index(0), len, {acc},
                  [&](Value jj, ValueRange t) -> SmallVector<Value> {
                    Value p = e.loadF32(weights, {jj});
                    if (isSoftmaxFamily(norm))
                      p = e.exp(e.sub(p, shift));
                    Value j = e.addI(j0, jj);
                    Value x = sink ? e.loadF32(values, {hk, j, d})
                                   : e.loadF32(values, {bIdx, hk, j, d});
                    return {e.add(t[0], e.mul(p, x))};
                  })[0];
              return {tensor::InsertOp::create(b, acc, s[0],
                                               ValueRange{r, d})};
            })[0];
        return st.values();
      });
  return TileState::from(updated);
}

SmallVector<Value> FlashLowering::emitQueryTile(Value bi, Value hi,
                                                Value first, Value output,
                                                Value lse) {
  using FP = arith::CmpFPredicate;
  Type f32 = b.getF32Type();
  bIdx = bi;
  h = hi;
  hk = e.divI(h, info.group);
  i0 = first;
  Value i1 = e.minI(e.addI(i0, e.index(qTile)), info.qLen);
  rows = e.subI(i1, i0);
  Value zero = e.f32(0.0), negInf = e.f32(kNegInf);
  Value tk = e.index(kvTile);

  KVRange range = emitKVRange(e, info, i0, i1);
  Value sinkTiles = e.index(0);
  if (range.sinks)
    sinkTiles = e.divI(e.addI(range.sinks->hi, e.index(kvTile - 1)), tk);
  Value mainFirst = e.maxI(e.divI(range.main.lo, tk), sinkTiles);
  Value mainEnd = e.divI(e.addI(range.main.hi, e.index(kvTile - 1)), tk);

  // gamma * |phi(q)|^2 per row, when the RBF expansion keeps it.
  if (rbf) {
    Value init = tensor::EmptyOp::create(b, ArrayRef<int64_t>{qTile}, f32);
    qNorms = e.forLoop(
        e.index(0), rows, {init},
        [&](Value r, ValueRange a) -> SmallVector<Value> {
          Value sq = e.forLoop(
              e.index(0), info.headDimQK, {zero},
              [&](Value d, ValueRange s) -> SmallVector<Value> {
                Value x = e.sub(
                    e.featureMap(
                        e.loadF32(info.query, {bIdx, h, e.addI(i0, r), d}),
                        info.spec.getQFeatureMap()),
                    centre(d));
                return {e.add(s[0], e.mul(x, x))};
              })[0];
          return {tensor::InsertOp::create(
              b, e.mul(emitGamma(e, info), sq), a[0], r)};
        })[0];
  }

  // Scalable softmax: n = keys the row sees, counted over the visited range.
  if (norm == Normalization::scalable_softmax) {
    double ls = info.spec.getLengthScale()
                    ? info.spec.getLengthScale()->convertToDouble()
                    : 1.0;
    Value init = tensor::EmptyOp::create(b, ArrayRef<int64_t>{qTile}, f32);
    factors = e.forLoop(
        e.index(0), rows, {init},
        [&](Value r, ValueRange a) -> SmallVector<Value> {
          Value i = e.addI(i0, r);
          auto countIn = [&](Value lo, Value hi, Value n) {
            return e.forLoop(lo, hi, {n},
                             [&](Value j, ValueRange s) -> SmallVector<Value> {
                               Value vis = emitVisible(e, info, bIdx, h, i, j);
                               return {e.addI(s[0], e.select(vis, e.index(1),
                                                            e.index(0)))};
                             })[0];
          };
          Value n = info.numSinkRows;
          Value mainLo = range.main.lo;
          if (range.sinks) {
            n = countIn(e.index(0), range.sinks->hi, n);
            mainLo = e.maxI(mainLo, range.sinks->hi);
          }
          n = countIn(mainLo, range.main.hi, n);
          Value f = e.mul(e.f32(ls), e.log(e.indexToF32(n)));
          return {tensor::InsertOp::create(b, f, a[0], r)};
        })[0];
  }

  // Initial state: sink logits and softmax1's +1 are logits with no value.
  Value maxInit = tensor::EmptyOp::create(b, ArrayRef<int64_t>{qTile}, f32);
  Value normInit = tensor::EmptyOp::create(b, ArrayRef<int64_t>{qTile}, f32);
  Value accInit = tensor::EmptyOp::create(
      b, getAsOpFoldResult(ValueRange{e.index(qTile), info.headDimV}), f32);
  ValueRange init = e.forLoop(
      e.index(0), rows, {maxInit, normInit, accInit},
      [&](Value r, ValueRange a) -> SmallVector<Value> {
        SmallVector<Value> extra;
        if (isSoftmaxFamily(norm) && info.sinkLogits)
          extra.push_back(e.loadF32(info.sinkLogits, {h}));
        if (norm == Normalization::softmax1)
          extra.push_back(zero);
        Value m = negInf;
        for (Value c : extra)
          m = e.maxF(m, c);
        Value shift = e.select(e.cmpF(FP::OEQ, m, negInf), zero, m);
        Value l = zero;
        for (Value c : extra)
          l = e.add(l, e.exp(e.sub(c, shift)));
        Value acc = e.forLoop(e.index(0), info.headDimV, {a[2]},
                              [&](Value d, ValueRange s) -> SmallVector<Value> {
                                return {tensor::InsertOp::create(
                                    b, zero, s[0], ValueRange{r, d})};
                              })[0];
        return {tensor::InsertOp::create(b, m, a[0], r),
                tensor::InsertOp::create(b, l, a[1], r), acc};
      });
  TileState state = TileState::from(init);

  // Sink rows: one tile, never masked.
  if (info.sinkKey)
    state = emitKVTile(state, KeySource::SinkRows, e.index(0),
                       info.numSinkRows, /*masked=*/false);

  bool anyMask = hasAnyMask(info);
  auto visitTiles = [&](Value firstTile, Value endTile, TileState st) {
    return TileState::from(e.forLoop(
        firstTile, endTile, st.values(),
        [&](Value t, ValueRange a) -> SmallVector<Value> {
          TileState cur = TileState::from(a);
          Value j0 = e.mulI(t, tk);
          Value j1 = e.minI(e.addI(j0, tk), info.kvLen);
          if (!anyMask)
            return emitKVTile(cur, KeySource::Regular, j0, j1, false)
                .values();
          Value full = emitBlockFullyVisible(e, info, i0, i1, j0, j1);
          auto ifOp = scf::IfOp::create(
              b, full,
              [&](OpBuilder &nb, Location) {
                OpBuilder::InsertionGuard g(b);
                b.setInsertionPoint(nb.getInsertionBlock(),
                                    nb.getInsertionPoint());
                scf::YieldOp::create(
                    b, emitKVTile(cur, KeySource::Regular, j0, j1, false)
                           .values());
              },
              [&](OpBuilder &nb, Location) {
                OpBuilder::InsertionGuard g(b);
                b.setInsertionPoint(nb.getInsertionBlock(),
                                    nb.getInsertionPoint());
                scf::YieldOp::create(
                    b, emitKVTile(cur, KeySource::Regular, j0, j1, true)
                           .values());
              });
          return llvm::to_vector_of<Value>(ifOp.getResults());
        }));
  };
  if (range.sinks)
    state = visitTiles(e.index(0), sinkTiles, state);
  state = visitTiles(mainFirst, mainEnd, state);

  // Epilogue: normalize and write O and the LSE.
  ValueRange written = e.forLoop(
      e.index(0), rows, {output, lse},
      [&](Value r, ValueRange a) -> SmallVector<Value> {
        Value i = e.addI(i0, r);
        Value l = e.loadF32(state.norm, {r});
        Value inv = e.f32(1.0), rowLse = zero;
        if (isSoftmaxFamily(norm) || norm == Normalization::mean) {
          inv = e.select(e.cmpF(FP::OGT, l, zero), e.div(e.f32(1.0), l), zero);
          if (norm == Normalization::mean) {
            rowLse = e.log(l);
          } else {
            Value m = e.loadF32(state.max, {r});
            Value shift = e.select(e.cmpF(FP::OEQ, m, negInf), zero, m);
            rowLse = e.add(shift, e.log(l));
            // Add back the dropped -gamma|q|^2 (scaled like the scores),
            // except on rows that saw nothing (log(0) = -inf stays).
            if (dropQueryNorm)
              rowLse = e.select(
                  e.cmpF(FP::OGT, l, zero),
                  e.sub(rowLse, e.mul(e.loadF32(qNorms, {r}), rowFactor(r))),
                  rowLse);
          }
        }
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

struct AttnToFlashPass final
    : attn::impl::AttnToFlashPassBase<AttnToFlashPass> {
  using Base::Base;

  void runOnOperation() override {
    if (qTile < 1 || kvTile < 1) {
      getOperation()->emitError("attn-to-flash: q-tile and kv-tile must be "
                                "positive");
      return signalPassFailure();
    }
    if (failed(replaceAttentionOps(
            getOperation(), [&](ImplicitLocOpBuilder &b, AttentionOp op) {
              return FlashLowering(b, op, qTile, kvTile).emit();
            })))
      signalPassFailure();
  }
};

} // namespace
