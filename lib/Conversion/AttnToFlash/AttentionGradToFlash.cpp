//===- AttentionGradToFlash.cpp - the backward in FlashAttention-2 order --===//
//
// The tiled backward of attn.attention_grad, in the structure of the
// FlashAttention-2 backward kernel, on scalars over tensors:
//
// 1. preprocess, per query: D = rowsum(dO * O) (softmax family), the count
//    n of the keys it sees (scalable softmax, mean), the sink logit's share;
// 2. main, per (b, kv head, KV tile): dK and dV of the tile accumulate in
//    tile-sized f32 buffers while the loop visits the query heads of the
//    group and the q-tiles that can see the tile (the transposed tile
//    ranges of the forward: a q-tile whose visible KV range misses the tile
//    is skipped, mask code runs only where the block is not fully visible);
//    per query row, p is recomputed from the forward's lse, dS from D, and
//    dQ accumulates in an f32 workspace; the sink rows are one tile per kv
//    head, visited by every batch;
// 3. postprocess: the kernel's factor, the feature maps' derivatives, the
//    result types (AttentionGradCodegen::emitResults).
//
// No row of scores longer than a KV tile is ever materialized.
//
//===----------------------------------------------------------------------===//

#include "AttentionGradToFlash.h"

#include "attn/Conversion/AttnCommon/AttentionGradCodegen.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

using namespace mlir;
using namespace mlir::attn;

namespace {

/// What the loops over query tiles carry: the KV tile's dK (of phi(k),
/// before the kernel's factor) and dV, [tile, D] f32, and the op's
/// accumulators (dQ, the capture gradients).
struct TileState {
  Value dk, dv;
  GradAccumulators acc;

  SmallVector<Value> values() const {
    SmallVector<Value> v = {dk, dv};
    llvm::append_range(v, acc.values());
    return v;
  }
  TileState with(ValueRange v) const {
    return {v[0], v[1], acc.with(v.drop_front(2))};
  }
};

class FlashGradLowering {
public:
  FlashGradLowering(ImplicitLocOpBuilder &b, AttentionGradOp op,
                    int64_t qTile, int64_t kvTile)
      : b(b), e{b}, op(op), info(AttnOpInfo::get(b, op)), grad(e, info, op),
        qTile(qTile), kvTile(kvTile) {}

  SmallVector<Value> emit();

private:
  /// D, n per query into rowDelta, rowCount; the sink logits' gradient.
  GradAccumulators emitPreprocess(GradAccumulators acc);
  /// Every (b, hk, KV tile) of the regular keys.
  GradAccumulators emitKeyTiles(GradAccumulators acc);
  /// The sink rows of every hk, over all batches.
  GradAccumulators emitSinkTiles(GradAccumulators acc);
  /// Keys [j0, j0 + len) of `keys` for kv head `hk`, seen by the query
  /// heads of its group in batch `batch` (null: in every batch, for the
  /// sink rows); adds the tile's dK and dV to those of `acc` (the regular
  /// keys' or the sink rows').
  GradAccumulators emitKeyTile(const KeySet &keys, Value batch, Value j0,
                               Value len, GradAccumulators acc);
  /// The loops over the query heads of the group and the q-tiles.
  TileState emitQueryTiles(const KeySet &keys, Value j0, Value len,
                           TileState st);
  /// The q-tile [i0, i1) of (bIdx, h) against the key tile: skipped when
  /// the masks hide the tile from it, masked when not fully visible.
  TileState emitQueryTile(const KeySet &keys, Value j0, Value len,
                          TileState st);
  TileState emitQueryRows(const KeySet &keys, Value j0, Value len,
                          bool masked, TileState st);
  /// Query row i against the key tile.
  TileState emitQueryRow(const KeySet &keys, Value i, Value j0, Value len,
                         bool masked, TileState st);
  /// Row constants of query i (lse, dlse, D, the scalable factor, 1 / n).
  GradRow loadRow(Value i);
  /// `into[rows(j0 + jj)] += tile[jj]` for jj < len.
  Value emitWriteBack(const KeySet &keys, Value j0, Value len, Value tile,
                      Value into, Value dim);
  /// An f32 [rows of a tile of `keys`, cols] buffer, zero where `zero`.
  Value emitTileBuffer(const KeySet &keys, Value cols, bool zero);
  Value tileRows(const KeySet &keys) {
    return keys.sinkRows ? info.numSinkRows : e.index(kvTile);
  }
  Value loadF32At(Value tensor, ValueRange indices) {
    return tensor::ExtractOp::create(b, tensor, indices);
  }

  ImplicitLocOpBuilder &b;
  ScalarEmitter e;
  AttentionGradOp op;
  AttnOpInfo info;
  AttentionGradCodegen grad;
  int64_t qTile, kvTile;

  /// [B, Hq, Sq] f32: D (softmax family) and n (scalable softmax, mean), or
  /// null where the normalization needs none.
  Value rowDelta, rowCount;
  // The current kv head, batch, query head and q-tile.
  Value hk, bIdx, h, i0, i1;
};

SmallVector<Value> FlashGradLowering::emit() {
  GradAccumulators acc = grad.emitZeroAccumulators();
  acc = emitPreprocess(acc);
  acc = emitKeyTiles(acc);
  if (info.sinkKey)
    acc = emitSinkTiles(acc);
  return grad.emitResults(acc);
}

//===----------------------------------------------------------------------===//
// Preprocess
//===----------------------------------------------------------------------===//

GradAccumulators FlashGradLowering::emitPreprocess(GradAccumulators acc) {
  Normalization norm = grad.norm();
  bool needDelta = isSoftmaxFamily(norm);
  bool needCount =
      norm == Normalization::scalable_softmax || norm == Normalization::mean;
  auto perQuery = [&] {
    return tensor::EmptyOp::create(
        b, getAsOpFoldResult(ValueRange{info.batch, info.qHeads, info.qLen}),
        b.getF32Type());
  };
  SmallVector<Value> init;
  if (needDelta)
    init.push_back(perQuery());
  if (needCount)
    init.push_back(perQuery());
  if (init.empty() && !info.sinkLogits)
    return acc;
  unsigned numRows = init.size();
  llvm::append_range(init, acc.values());
  auto body = [&](Value bi, Value hi, Value i, ValueRange a) {
    SmallVector<Value> next(a.take_front(numRows));
    GradAccumulators cur = acc.with(a.drop_front(numRows));
    Value delta;
    if (needDelta)
      delta = e.forLoop(
          e.index(0), info.headDimV, {e.f32(0.0)},
          [&](Value d, ValueRange s) -> SmallVector<Value> {
            Value o = e.loadF32(op.getOutput(), {bi, hi, i, d});
            return {
                e.add(s[0], e.mul(o, grad.loadGradOutput(bi, hi, i, d)))};
          })[0];
    Value count = e.f32(0.0);
    if (needCount) {
      KVRange range = emitKVRange(e, info, i, e.addI(i, e.index(1)));
      count = e.indexToF32(e.addI(
          emitVisibleCount(e, info, bi, hi, i, range), info.numSinkRows));
    }
    unsigned slot = 0;
    for (Value x : {delta, needCount ? count : Value()})
      if (x) {
        next[slot] = tensor::InsertOp::create(b, x, next[slot],
                                              ValueRange{bi, hi, i});
        ++slot;
      }
    if (info.sinkLogits) {
      GradRow row = grad.emitRow(bi, hi, i, count);
      row.delta = delta;
      cur.dSinkLogits = grad.accumulate(cur.dSinkLogits, {hi},
                                        grad.sinkLogitGrad(hi, row));
    }
    llvm::append_range(next, cur.values());
    return next;
  };
  SmallVector<Value> out = llvm::to_vector(e.forLoop(
      e.index(0), info.batch, init,
      [&](Value bi, ValueRange a) -> SmallVector<Value> {
        return llvm::to_vector(e.forLoop(
            e.index(0), info.qHeads, a,
            [&](Value hi, ValueRange a) -> SmallVector<Value> {
              return llvm::to_vector(e.forLoop(
                  e.index(0), info.qLen, a,
                  [&](Value i, ValueRange a) -> SmallVector<Value> {
                    return body(bi, hi, i, a);
                  }));
            }));
      }));
  if (needDelta)
    rowDelta = out[0];
  if (needCount)
    rowCount = out[needDelta ? 1 : 0];
  return acc.with(ArrayRef<Value>(out).drop_front(numRows));
}

GradRow FlashGradLowering::loadRow(Value i) {
  Value count = rowCount ? loadF32At(rowCount, {bIdx, h, i}) : e.f32(0.0);
  GradRow row = grad.emitRow(bIdx, h, i, count);
  if (rowDelta)
    row.delta = loadF32At(rowDelta, {bIdx, h, i});
  return row;
}

//===----------------------------------------------------------------------===//
// Key tiles
//===----------------------------------------------------------------------===//

Value FlashGradLowering::emitTileBuffer(const KeySet &keys, Value cols,
                                        bool zero) {
  SmallVector<Value> dims = {tileRows(keys)};
  if (cols)
    dims.push_back(cols);
  if (!zero)
    return tensor::EmptyOp::create(b, getAsOpFoldResult(dims),
                                   b.getF32Type());
  SmallVector<int64_t> shape;
  for (Value d : dims)
    shape.push_back(getConstantIntValue(d).value_or(ShapedType::kDynamic));
  Value z = e.f32(0.0);
  return grad.emitTensor(RankedTensorType::get(shape, b.getF32Type()), dims,
                         [&](ValueRange) { return z; });
}

GradAccumulators FlashGradLowering::emitKeyTiles(GradAccumulators acc) {
  Value tk = e.index(kvTile);
  Value numTiles = e.divI(e.addI(info.kvLen, e.index(kvTile - 1)), tk);
  KeySet keys = grad.regularKeys();
  return acc.with(e.forLoop(
      e.index(0), info.batch, acc.values(),
      [&](Value bi, ValueRange a) -> SmallVector<Value> {
        return llvm::to_vector(e.forLoop(
            e.index(0), info.kvHeads, a,
            [&](Value hki, ValueRange a) -> SmallVector<Value> {
              return llvm::to_vector(e.forLoop(
                  e.index(0), numTiles, a,
                  [&](Value t, ValueRange a) -> SmallVector<Value> {
                    hk = hki;
                    Value j0 = e.mulI(t, tk);
                    Value len = e.subI(e.minI(e.addI(j0, tk), info.kvLen), j0);
                    return emitKeyTile(keys, bi, j0, len, acc.with(a))
                        .values();
                  }));
            }));
      }));
}

GradAccumulators FlashGradLowering::emitSinkTiles(GradAccumulators acc) {
  return acc.with(e.forLoop(
      e.index(0), info.kvHeads, acc.values(),
      [&](Value hki, ValueRange a) -> SmallVector<Value> {
        hk = hki;
        return emitKeyTile(grad.sinkRows(), Value(), e.index(0),
                           info.numSinkRows, acc.with(a))
            .values();
      }));
}

GradAccumulators FlashGradLowering::emitKeyTile(const KeySet &keys,
                                                Value batch, Value j0,
                                                Value len,
                                                GradAccumulators acc) {
  TileState st{emitTileBuffer(keys, info.headDimQK, true),
               emitTileBuffer(keys, info.headDimV, true), acc};
  if (batch) {
    bIdx = batch;
    st = emitQueryTiles(keys, j0, len, st);
  } else {
    st = st.with(e.forLoop(e.index(0), info.batch, st.values(),
                           [&](Value bi, ValueRange a) -> SmallVector<Value> {
                             bIdx = bi;
                             return emitQueryTiles(keys, j0, len, st.with(a))
                                 .values();
                           }));
  }
  // The write-back's batch: the tile's own (sink rows have none).
  bIdx = batch;
  Value &dk = keys.sinkRows ? st.acc.dSinkKey : st.acc.dk;
  Value &dv = keys.sinkRows ? st.acc.dSinkValue : st.acc.dv;
  dk = emitWriteBack(keys, j0, len, st.dk, dk, info.headDimQK);
  dv = emitWriteBack(keys, j0, len, st.dv, dv, info.headDimV);
  return st.acc;
}

TileState FlashGradLowering::emitQueryTiles(const KeySet &keys, Value j0,
                                            Value len, TileState st) {
  Value tq = e.index(qTile);
  Value numQTiles = e.divI(e.addI(info.qLen, e.index(qTile - 1)), tq);
  Value batch = bIdx;
  return st.with(e.forLoop(
      e.index(0), info.group, st.values(),
      [&](Value g, ValueRange a) -> SmallVector<Value> {
        return llvm::to_vector(e.forLoop(
            e.index(0), numQTiles, a,
            [&](Value t, ValueRange a) -> SmallVector<Value> {
              bIdx = batch;
              h = e.addI(e.mulI(hk, info.group), g);
              i0 = e.mulI(t, tq);
              i1 = e.minI(e.addI(i0, tq), info.qLen);
              return emitQueryTile(keys, j0, len, st.with(a)).values();
            }));
      }));
}

Value FlashGradLowering::emitWriteBack(const KeySet &keys, Value j0,
                                       Value len, Value tile, Value into,
                                       Value dim) {
  return e.forLoop(
      e.index(0), len, {into},
      [&](Value jj, ValueRange a) -> SmallVector<Value> {
        SmallVector<Value> row = keys.row(bIdx, hk, e.addI(j0, jj));
        return {e.forLoop(e.index(0), dim, {a[0]},
                          [&](Value d, ValueRange t) -> SmallVector<Value> {
                            SmallVector<Value> idx(row);
                            idx.push_back(d);
                            return {grad.accumulate(
                                t[0], idx, loadF32At(tile, {jj, d}))};
                          })[0]};
      })[0];
}

//===----------------------------------------------------------------------===//
// Query tiles and rows
//===----------------------------------------------------------------------===//

TileState FlashGradLowering::emitQueryTile(const KeySet &keys, Value j0,
                                           Value len, TileState st) {
  if (keys.sinkRows || !hasAnyMask(info))
    return emitQueryRows(keys, j0, len, /*masked=*/false, st);
  // The q-tile reaches the key tile when its visible KV range (or the
  // sink-token prefix) meets [j0, j1).
  Value j1 = e.addI(j0, len);
  KVRange range = emitKVRange(e, info, i0, i1);
  auto meets = [&](const KVInterval &v) {
    return e.andI(e.cmpI(arith::CmpIPredicate::slt, v.lo, j1),
                  e.cmpI(arith::CmpIPredicate::sgt, v.hi, j0));
  };
  Value sees = meets(range.main);
  if (range.sinks)
    sees = e.orI(sees, meets(*range.sinks));
  // Document masks and mask regions decide the tile as the forward does
  // (segment-id spans, interval evaluation of the region).
  if (hasDocumentMask(info))
    setSegmentSpanLoops(e, info, bIdx);
  TileVerdict verdict = emitTileVerdict(e, info, bIdx, h, i0, i1, j0, j1);
  sees = e.andI(sees, arith::XOrIOp::create(b, verdict.allFalse, e.i1(true)));
  return st.with(e.ifElse(
      sees,
      [&]() -> SmallVector<Value> {
        return llvm::to_vector(e.ifElse(
            verdict.allTrue,
            [&] { return emitQueryRows(keys, j0, len, false, st).values(); },
            [&] { return emitQueryRows(keys, j0, len, true, st).values(); }));
      },
      [&] { return st.values(); }));
}

TileState FlashGradLowering::emitQueryRows(const KeySet &keys, Value j0,
                                           Value len, bool masked,
                                           TileState st) {
  return st.with(e.forLoop(
      i0, i1, st.values(), [&](Value i, ValueRange a) -> SmallVector<Value> {
        return emitQueryRow(keys, i, j0, len, masked, st.with(a)).values();
      }));
}

TileState FlashGradLowering::emitQueryRow(const KeySet &keys, Value i,
                                          Value j0, Value len, bool masked,
                                          TileState st) {
  GradRow row = loadRow(i);
  Value zero = e.f32(0.0);
  // p and dS0 of the tile's keys, for this row only.
  SmallVector<Value> init = {emitTileBuffer(keys, {}, false),
                             emitTileBuffer(keys, {}, false)};
  llvm::append_range(init, st.acc.values());
  ValueRange perKey = e.forLoop(
      e.index(0), len, init,
      [&](Value jj, ValueRange a) -> SmallVector<Value> {
        GradAccumulators cur = st.acc.with(a.drop_front(2));
        Value j = e.addI(j0, jj);
        SmallVector<Value> keyRow = keys.row(bIdx, hk, j);
        Value s0 = emitKernelScore(e, info, bIdx, h, i, keys.keys, keyRow);
        Value s = keys.sinkRows ? s0 : emitScoreMod(e, info, s0, bIdx, h, i, j);
        Value vis = masked ? emitVisible(e, info, bIdx, h, i, j) : e.i1(true);
        Value p = grad.weight(s, vis, row);
        Value dP = e.select(
            vis, grad.emitGradOutputDot(bIdx, h, i, keys, keyRow), zero);
        Value dS = grad.scoreGrad(s, p, dP, vis, row);
        Value dS0 = keys.sinkRows ? dS
                                  : grad.emitScoreModGrad(dS, s0, bIdx, h, i,
                                                          j, vis, cur);
        SmallVector<Value> next = {tensor::InsertOp::create(b, p, a[0], jj),
                                   tensor::InsertOp::create(b, dS0, a[1], jj)};
        llvm::append_range(next, cur.values());
        return next;
      });
  Value p = perKey[0], dS0 = perKey[1];
  st.acc = st.acc.with(perKey.drop_front(2));

  // dV += p^T dO_i, dK += dS0^T phi(q_i), dQ_i += dS0 phi(K).
  auto tileLoop = [&](Value tile, Value dim,
                      function_ref<Value(Value jj, Value d)> term) {
    return e.forLoop(
        e.index(0), len, {tile},
        [&](Value jj, ValueRange a) -> SmallVector<Value> {
          return {e.forLoop(e.index(0), dim, {a[0]},
                            [&](Value d, ValueRange t) -> SmallVector<Value> {
                              return {grad.accumulate(t[0], {jj, d},
                                                      term(jj, d))};
                            })[0]};
        })[0];
  };
  auto keyFeature = [&](Value jj, Value d) {
    return grad.loadKeyFeature(keys, keys.row(bIdx, hk, e.addI(j0, jj)), d);
  };
  st.dv = tileLoop(st.dv, info.headDimV, [&](Value jj, Value d) {
    return e.mul(loadF32At(p, {jj}), grad.loadGradOutput(bIdx, h, i, d));
  });
  st.dk = tileLoop(st.dk, info.headDimQK, [&](Value jj, Value d) {
    return grad.kernelGradTerm(loadF32At(dS0, {jj}), keyFeature(jj, d),
                               grad.loadQueryFeature(bIdx, h, i, d));
  });
  st.acc.dq = e.forLoop(
      e.index(0), info.headDimQK, {st.acc.dq},
      [&](Value d, ValueRange a) -> SmallVector<Value> {
        Value qf = grad.loadQueryFeature(bIdx, h, i, d);
        Value sum = e.forLoop(
            e.index(0), len, {zero},
            [&](Value jj, ValueRange s) -> SmallVector<Value> {
              return {e.add(s[0], grad.kernelGradTerm(loadF32At(dS0, {jj}),
                                                      qf, keyFeature(jj, d)))};
            })[0];
        return {grad.accumulate(a[0], {bIdx, h, i, d}, sum)};
      })[0];
  return st;
}

} // namespace

SmallVector<Value> mlir::attn::emitAttentionGradFlash(ImplicitLocOpBuilder &b,
                                                      AttentionGradOp op,
                                                      int64_t qTile,
                                                      int64_t kvTile) {
  return FlashGradLowering(b, op, qTile, kvTile).emit();
}
