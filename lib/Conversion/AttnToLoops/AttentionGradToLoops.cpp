//===- AttentionGradToLoops.cpp - the meaning of attn.attention_grad ------===//
//
// The executable definition of the backward (docs/semantics.md §6), written
// for clarity rather than speed: for every (b, h, q_idx) it materializes the
// row of scores (before and after the score region), the visibility, the
// weights p, dP = dO . v and dS of every key and sink row, then adds the
// row's shares to dq, dk, dv, the sink gradients and the captures'.
//
//===----------------------------------------------------------------------===//

#include "AttentionGradToLoops.h"

#include "attn/Conversion/AttnCommon/AttentionGradCodegen.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

using namespace mlir;
using namespace mlir::attn;

namespace {

/// One query row's view of a set of keys (the regular keys or the sink
/// rows): per key, tensor<len x f32> of the scores before (`s0`) and after
/// (`s`) the score region, the visibility (i1), the weight p, dP = dO . v
/// and dS0, the gradient of s0.
struct KeyRow {
  KeySet keys;
  Value len;
  Value s0, s, visible, count;
  Value p, dP, partialDelta;
  Value dS0;
};

class GradReferenceLowering {
public:
  GradReferenceLowering(ImplicitLocOpBuilder &b, AttentionGradOp op)
      : b(b), e{b}, info(AttnOpInfo::get(b, op)), grad(e, info, op) {}

  SmallVector<Value> emit();

private:
  /// The gradients' shares of query (bIdx, h, i).
  GradAccumulators emitQuery(GradAccumulators acc);
  /// s0, s, visible and the visible count of `keys` for the current query.
  KeyRow emitScores(const KeySet &keys, Value len);
  /// p, dP and the row's share sum p dP of D.
  void emitWeights(KeyRow &row, const GradRow &consts);
  /// dS, through the score region into dS0 (capture gradients into `acc`).
  void emitScoreGrads(KeyRow &row, const GradRow &consts,
                      GradAccumulators &acc);
  /// dq[b, h, i] += sum over the keys of both rows.
  Value emitQueryGrad(Value dq, ArrayRef<const KeyRow *> rows);
  /// dk (or the sink keys') and dv (or the sink values') of the row's keys.
  std::pair<Value, Value> emitKeyGrads(const KeyRow &row, Value dk, Value dv);
  Value emptyRow(Value len, Type type) {
    return tensor::EmptyOp::create(b, getAsOpFoldResult(ValueRange{len}),
                                   type);
  }
  Value at(Value tensor, Value j) {
    return tensor::ExtractOp::create(b, tensor, ValueRange{j});
  }

  ImplicitLocOpBuilder &b;
  ScalarEmitter e;
  AttnOpInfo info;
  AttentionGradCodegen grad;
  // The current query.
  Value bIdx, h, hk, i;
};

SmallVector<Value> GradReferenceLowering::emit() {
  GradAccumulators init = grad.emitZeroAccumulators();
  auto loop = [&](Value ub, ValueRange acc, auto body) {
    return llvm::to_vector(e.forLoop(e.index(0), ub, acc, body));
  };
  SmallVector<Value> final = loop(
      info.batch, init.values(), [&](Value bi, ValueRange a) {
        return loop(info.qHeads, a, [&](Value hi, ValueRange a) {
          return loop(info.qLen, a, [&](Value ii, ValueRange a) {
            bIdx = bi;
            h = hi;
            hk = e.divI(h, info.group);
            i = ii;
            return emitQuery(init.with(a)).values();
          });
        });
      });
  return grad.emitResults(init.with(final));
}

KeyRow GradReferenceLowering::emitScores(const KeySet &keys, Value len) {
  Type f32 = b.getF32Type();
  ValueRange r = e.forLoop(
      e.index(0), len,
      {emptyRow(len, f32), emptyRow(len, f32), emptyRow(len, b.getI1Type()),
       e.index(0)},
      [&](Value j, ValueRange a) -> SmallVector<Value> {
        Value s0 = emitKernelScore(e, info, bIdx, h, i, keys.keys,
                                   keys.row(bIdx, hk, j));
        Value s = s0, vis = e.i1(true);
        if (!keys.sinkRows) {
          s = emitScoreMod(e, info, s0, bIdx, h, i, j);
          vis = emitVisible(e, info, bIdx, h, i, j);
        }
        Value count = e.addI(a[3], e.select(vis, e.index(1), e.index(0)));
        return {tensor::InsertOp::create(b, s0, a[0], j),
                tensor::InsertOp::create(b, s, a[1], j),
                tensor::InsertOp::create(b, vis, a[2], j), count};
      });
  KeyRow row;
  row.keys = keys;
  row.len = len;
  row.s0 = r[0];
  row.s = r[1];
  row.visible = r[2];
  row.count = r[3];
  return row;
}

void GradReferenceLowering::emitWeights(KeyRow &row, const GradRow &consts) {
  Type f32 = b.getF32Type();
  Value zero = e.f32(0.0);
  ValueRange r = e.forLoop(
      e.index(0), row.len,
      {emptyRow(row.len, f32), emptyRow(row.len, f32), zero},
      [&](Value j, ValueRange a) -> SmallVector<Value> {
        Value vis = at(row.visible, j);
        Value p = grad.weight(at(row.s, j), vis, consts);
        Value dP = grad.emitGradOutputDot(bIdx, h, i, row.keys,
                                          row.keys.row(bIdx, hk, j));
        dP = e.select(vis, dP, zero);
        return {tensor::InsertOp::create(b, p, a[0], j),
                tensor::InsertOp::create(b, dP, a[1], j),
                e.add(a[2], e.mul(p, dP))};
      });
  row.p = r[0];
  row.dP = r[1];
  row.partialDelta = r[2];
}

void GradReferenceLowering::emitScoreGrads(KeyRow &row, const GradRow &consts,
                                           GradAccumulators &acc) {
  SmallVector<Value> inits = {emptyRow(row.len, b.getF32Type())};
  llvm::append_range(inits, acc.values());
  ValueRange r = e.forLoop(
      e.index(0), row.len, inits,
      [&](Value j, ValueRange a) -> SmallVector<Value> {
        GradAccumulators cur = acc.with(a.drop_front());
        Value vis = at(row.visible, j);
        Value dS = grad.scoreGrad(at(row.s, j), at(row.p, j), at(row.dP, j),
                                  vis, consts);
        Value dS0 = dS;
        if (!row.keys.sinkRows)
          dS0 = grad.emitScoreModGrad(dS, at(row.s0, j), bIdx, h, i, j, vis,
                                      cur);
        SmallVector<Value> next = {tensor::InsertOp::create(b, dS0, a[0], j)};
        llvm::append_range(next, cur.values());
        return next;
      });
  row.dS0 = r[0];
  acc = acc.with(r.drop_front());
}

Value GradReferenceLowering::emitQueryGrad(Value dq,
                                           ArrayRef<const KeyRow *> rows) {
  return e.forLoop(
      e.index(0), info.headDimQK, {dq},
      [&](Value d, ValueRange a) -> SmallVector<Value> {
        Value qf = grad.loadQueryFeature(bIdx, h, i, d);
        Value sum = e.f32(0.0);
        for (const KeyRow *row : rows)
          sum = e.forLoop(
              e.index(0), row->len, {sum},
              [&](Value j, ValueRange s) -> SmallVector<Value> {
                Value kf = grad.loadKeyFeature(
                    row->keys, row->keys.row(bIdx, hk, j), d);
                return {e.add(s[0],
                              grad.kernelGradTerm(at(row->dS0, j), qf, kf))};
              })[0];
        return {grad.accumulate(a[0], {bIdx, h, i, d}, sum)};
      })[0];
}

std::pair<Value, Value>
GradReferenceLowering::emitKeyGrads(const KeyRow &row, Value dk, Value dv) {
  ValueRange r = e.forLoop(
      e.index(0), row.len, {dk, dv},
      [&](Value j, ValueRange a) -> SmallVector<Value> {
        SmallVector<Value> keyRow = row.keys.row(bIdx, hk, j);
        auto index = [&](Value d) {
          SmallVector<Value> idx(keyRow);
          idx.push_back(d);
          return idx;
        };
        Value dS0 = at(row.dS0, j), p = at(row.p, j);
        Value dkNext = e.forLoop(
            e.index(0), info.headDimQK, {a[0]},
            [&](Value d, ValueRange t) -> SmallVector<Value> {
              Value kf = grad.loadKeyFeature(row.keys, keyRow, d);
              Value qf = grad.loadQueryFeature(bIdx, h, i, d);
              return {grad.accumulate(t[0], index(d),
                                      grad.kernelGradTerm(dS0, kf, qf))};
            })[0];
        Value dvNext = e.forLoop(
            e.index(0), info.headDimV, {a[1]},
            [&](Value d, ValueRange t) -> SmallVector<Value> {
              Value dO = grad.loadGradOutput(bIdx, h, i, d);
              return {grad.accumulate(t[0], index(d), e.mul(p, dO))};
            })[0];
        return {dkNext, dvNext};
      });
  return {r[0], r[1]};
}

GradAccumulators GradReferenceLowering::emitQuery(GradAccumulators acc) {
  KeyRow regular = emitScores(grad.regularKeys(), info.kvLen);
  std::optional<KeyRow> sinks;
  if (info.sinkKey)
    sinks = emitScores(grad.sinkRows(), info.numSinkRows);

  GradRow consts = grad.emitRow(
      bIdx, h, i, e.indexToF32(e.addI(regular.count, info.numSinkRows)));
  emitWeights(regular, consts);
  consts.delta = regular.partialDelta;
  if (sinks) {
    emitWeights(*sinks, consts);
    consts.delta = e.add(consts.delta, sinks->partialDelta);
  }
  emitScoreGrads(regular, consts, acc);
  if (sinks)
    emitScoreGrads(*sinks, consts, acc);
  if (info.sinkLogits)
    acc.dSinkLogits =
        grad.accumulate(acc.dSinkLogits, {h}, grad.sinkLogitGrad(h, consts));

  SmallVector<const KeyRow *> rows = {&regular};
  if (sinks)
    rows.push_back(&*sinks);
  acc.dq = emitQueryGrad(acc.dq, rows);
  std::tie(acc.dk, acc.dv) = emitKeyGrads(regular, acc.dk, acc.dv);
  if (sinks)
    std::tie(acc.dSinkKey, acc.dSinkValue) =
        emitKeyGrads(*sinks, acc.dSinkKey, acc.dSinkValue);
  return acc;
}

} // namespace

SmallVector<Value> mlir::attn::emitAttentionGradLoops(ImplicitLocOpBuilder &b,
                                                      AttentionGradOp op) {
  return GradReferenceLowering(b, op).emit();
}
