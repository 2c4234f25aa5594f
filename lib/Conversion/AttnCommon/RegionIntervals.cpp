//===- RegionIntervals.cpp - a mask region's verdict on a tile --*- C++ -*-===//
//
// The abstract evaluation of RegionIntervals.h: one walk over the region's
// ops in order, emitting index arithmetic on the bounds.
//
//===----------------------------------------------------------------------===//

#include "attn/Conversion/AttnCommon/RegionIntervals.h"

#include "attn/Dialect/Attn/IR/AttnOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Matchers.h"

using namespace mlir;
using namespace mlir::attn;

using P = arith::CmpIPredicate;

namespace {

/// Inclusive bounds of an integer value (index-typed), valid where `valid`
/// holds; `point`: statically one value per (b, h) (built from b, h and
/// constants only).
struct Interval {
  Value lo, hi, valid;
  bool point = false;
};

class Evaluator {
public:
  Evaluator(ScalarEmitter &e, const CaptureReader &read) : e(e), read(read) {}

  void bind(Value arg, Interval in) { ints[arg] = in; }
  TileVerdict run(Block &block);

private:
  Interval unknown() { return {e.index(0), e.index(0), e.i1(false)}; }
  TileVerdict unknownTruth() { return {e.i1(false), e.i1(false)}; }
  Interval intervalOf(Value v) {
    auto it = ints.find(v);
    return it == ints.end() ? unknown() : it->second;
  }
  TileVerdict truthOf(Value v) {
    auto it = truths.find(v);
    return it == truths.end() ? unknownTruth() : it->second;
  }
  Value nonNegative(const Interval &x) {
    return e.cmpI(P::sge, x.lo, e.index(0));
  }
  /// x's validity once its bounds must also fit `type` (as signed values).
  Value fits(const Interval &x, Type type) {
    unsigned width = type.isIndex() ? 64 : type.getIntOrFloatBitWidth();
    if (width >= 64)
      return x.valid;
    int64_t max = (int64_t(1) << (width - 1)) - 1;
    return e.andI(x.valid, e.andI(e.cmpI(P::sge, x.lo, e.index(-max - 1)),
                                  e.cmpI(P::sle, x.hi, e.index(max))));
  }
  static std::optional<int64_t> constantOf(Value v) {
    APInt c;
    if (matchPattern(v, m_ConstantInt(&c)))
      return c.getSExtValue();
    return std::nullopt;
  }

  void visit(Operation &op);
  void visitInteger(Operation &op);
  void visitPredicate(Operation &op);
  Interval combine(Operation &op, const Interval &x, const Interval &y);
  TileVerdict compare(P pred, const Interval &x, const Interval &y);

  ScalarEmitter &e;
  const CaptureReader &read;
  DenseMap<Value, Interval> ints;
  DenseMap<Value, TileVerdict> truths;
};

} // namespace

TileVerdict Evaluator::compare(P pred, const Interval &x, const Interval &y) {
  Value valid = e.andI(x.valid, y.valid);
  switch (pred) {
  case P::ult:
  case P::ule:
  case P::ugt:
  case P::uge:
    // Unsigned order is the signed one on non-negative values.
    valid = e.andI(valid, e.andI(nonNegative(x), nonNegative(y)));
    break;
  default:
    break;
  }
  auto lt = [&](Value a, Value b) { return e.cmpI(P::slt, a, b); };
  auto le = [&](Value a, Value b) { return e.cmpI(P::sle, a, b); };
  Value t, f;
  switch (pred) {
  case P::slt:
  case P::ult:
  case P::sle:
  case P::ule:
  case P::sgt:
  case P::ugt:
  case P::sge:
  case P::uge: {
    // a < b (or a <= b) with a, b the operands in that order.
    bool swap = pred == P::sgt || pred == P::ugt || pred == P::sge ||
                pred == P::uge;
    bool strict = pred == P::slt || pred == P::ult || pred == P::sgt ||
                  pred == P::ugt;
    const Interval &a = swap ? y : x, &b = swap ? x : y;
    t = strict ? lt(a.hi, b.lo) : le(a.hi, b.lo);
    f = strict ? le(b.hi, a.lo) : lt(b.hi, a.lo);
    break;
  }
  case P::eq:
  case P::ne: {
    Value same = e.andI(e.andI(e.cmpI(P::eq, x.lo, x.hi),
                               e.cmpI(P::eq, y.lo, y.hi)),
                        e.cmpI(P::eq, x.lo, y.lo));
    Value apart = e.orI(lt(x.hi, y.lo), lt(y.hi, x.lo));
    t = pred == P::eq ? same : apart;
    f = pred == P::eq ? apart : same;
    break;
  }
  }
  return {e.andI(valid, t), e.andI(valid, f)};
}

Interval Evaluator::combine(Operation &op, const Interval &x,
                            const Interval &y) {
  Interval out{Value(), Value(), e.andI(x.valid, y.valid),
               x.point && y.point};
  std::optional<int64_t> c =
      op.getNumOperands() == 2 ? constantOf(op.getOperand(1)) : std::nullopt;
  auto monotone = [&](auto f) {
    out.lo = f(x.lo), out.hi = f(x.hi);
    return out;
  };
  auto divide = [&](Value v, bool ceil) {
    // Floor (or ceil) of v / c for c > 0: monotone non-decreasing.
    Value cc = e.index(*c);
    Value q = e.divI(v, cc), r = e.remI(v, cc);
    Value zero = e.index(0);
    if (ceil)
      return e.select(e.cmpI(P::sgt, r, zero), e.addI(q, e.index(1)), q);
    return e.select(e.cmpI(P::slt, r, zero), e.subI(q, e.index(1)), q);
  };
  if (isa<arith::AddIOp>(op))
    return out.lo = e.addI(x.lo, y.lo), out.hi = e.addI(x.hi, y.hi), out;
  if (isa<arith::SubIOp>(op))
    return out.lo = e.subI(x.lo, y.hi), out.hi = e.subI(x.hi, y.lo), out;
  if (isa<arith::MulIOp>(op)) {
    Value a = e.mulI(x.lo, y.lo), b = e.mulI(x.lo, y.hi);
    Value d = e.mulI(x.hi, y.lo), f = e.mulI(x.hi, y.hi);
    out.lo = e.minI(e.minI(a, b), e.minI(d, f));
    out.hi = e.maxI(e.maxI(a, b), e.maxI(d, f));
    return out;
  }
  if (isa<arith::MaxSIOp, arith::MinSIOp, arith::MaxUIOp, arith::MinUIOp>(
          op)) {
    bool max = isa<arith::MaxSIOp, arith::MaxUIOp>(op);
    if (isa<arith::MaxUIOp, arith::MinUIOp>(op))
      out.valid = e.andI(out.valid, e.andI(nonNegative(x), nonNegative(y)));
    auto pick = [&](Value a, Value b) {
      return max ? e.maxI(a, b) : e.minI(a, b);
    };
    return out.lo = pick(x.lo, y.lo), out.hi = pick(x.hi, y.hi), out;
  }
  // The rest take a positive constant right-hand side.
  if (!c || *c <= 0)
    return unknown();
  if (isa<arith::DivUIOp, arith::RemUIOp, arith::ShRUIOp>(op))
    out.valid = e.andI(out.valid, nonNegative(x));
  if (isa<arith::DivSIOp, arith::DivUIOp>(op))
    // Truncation toward zero is monotone too.
    return monotone([&](Value v) { return e.divI(v, e.index(*c)); });
  if (isa<arith::FloorDivSIOp>(op))
    return monotone([&](Value v) { return divide(v, false); });
  if (isa<arith::CeilDivSIOp, arith::CeilDivUIOp>(op)) {
    if (isa<arith::CeilDivUIOp>(op))
      out.valid = e.andI(out.valid, nonNegative(x));
    return monotone([&](Value v) { return divide(v, true); });
  }
  if (isa<arith::RemSIOp, arith::RemUIOp>(op)) {
    // On non-negative values: the remainders of one period, else all.
    out.valid = e.andI(out.valid, nonNegative(x));
    Value cc = e.index(*c);
    Value onePeriod = e.cmpI(P::eq, e.divI(x.lo, cc), e.divI(x.hi, cc));
    out.lo = e.select(onePeriod, e.remI(x.lo, cc), e.index(0));
    out.hi = e.select(onePeriod, e.remI(x.hi, cc), e.index(*c - 1));
    return out;
  }
  if (*c >= 62)
    return unknown();
  if (isa<arith::ShLIOp>(op))
    return monotone([&](Value v) { return e.mulI(v, e.index(1LL << *c)); });
  if (isa<arith::ShRSIOp, arith::ShRUIOp>(op))
    return monotone([&](Value v) {
      Value cc = e.index(1LL << *c);
      Value q = e.divI(v, cc);
      return e.select(e.cmpI(P::slt, e.remI(v, cc), e.index(0)),
                      e.subI(q, e.index(1)), q);
    });
  if (isa<arith::AndIOp>(op)) {
    // x & m for a non-negative mask on non-negative x: within [0, min(hi, m)].
    out.valid = e.andI(out.valid, nonNegative(x));
    out.lo = e.index(0);
    out.hi = e.minI(x.hi, e.index(*c));
    return out;
  }
  return unknown();
}

void Evaluator::visitInteger(Operation &op) {
  Value result = op.getResult(0);
  Type type = result.getType();
  Interval out = unknown();
  if (auto c = constantOf(result)) {
    out = {e.index(*c), e.index(*c), e.i1(true), true};
  } else if (isa<arith::IndexCastOp, arith::IndexCastUIOp, arith::ExtSIOp,
                 arith::ExtUIOp, arith::TruncIOp>(op)) {
    out = intervalOf(op.getOperand(0));
    if (isa<arith::IndexCastUIOp, arith::ExtUIOp>(op))
      out.valid = e.andI(out.valid, nonNegative(out));
  } else if (op.getNumOperands() == 2 &&
             op.getDialect()->getNamespace() == "arith" &&
             !isa<arith::SelectOp>(op)) {
    out = combine(op, intervalOf(op.getOperand(0)),
                  intervalOf(op.getOperand(1)));
  } else if (auto sel = dyn_cast<arith::SelectOp>(op)) {
    Interval x = intervalOf(sel.getTrueValue());
    Interval y = intervalOf(sel.getFalseValue());
    out = {e.minI(x.lo, y.lo), e.maxI(x.hi, y.hi), e.andI(x.valid, y.valid),
           false};
  } else if (auto ex = dyn_cast<tensor::ExtractOp>(op)) {
    auto arg = dyn_cast<BlockArgument>(ex.getTensor());
    SmallVector<Value> at;
    bool points = arg && read;
    for (Value index : ex.getIndices()) {
      Interval in = intervalOf(index);
      points = points && in.point;
      at.push_back(in.lo);
    }
    Value v = points ? read(arg.getArgNumber() - 4, at) : Value();
    if (v) {
      if (!v.getType().isIndex())
        v = arith::IndexCastOp::create(e.b, e.b.getIndexType(), v);
      out = {v, v, e.i1(true), true};
      for (Value index : ex.getIndices())
        out.valid = e.andI(out.valid, intervalOf(index).valid);
    }
  }
  // Narrow results must not have wrapped.
  out.valid = fits(out, type);
  ints[result] = out;
}

void Evaluator::visitPredicate(Operation &op) {
  Value result = op.getResult(0);
  TileVerdict out = unknownTruth();
  if (auto c = constantOf(result)) {
    out = {e.i1(*c != 0), e.i1(*c == 0)};
  } else if (auto cmp = dyn_cast<arith::CmpIOp>(op)) {
    if (!cmp.getLhs().getType().isInteger(1))
      out = compare(cmp.getPredicate(), intervalOf(cmp.getLhs()),
                    intervalOf(cmp.getRhs()));
  } else if (isa<arith::AndIOp, arith::OrIOp, arith::XOrIOp>(op)) {
    TileVerdict x = truthOf(op.getOperand(0)), y = truthOf(op.getOperand(1));
    if (isa<arith::AndIOp>(op))
      out = {e.andI(x.allTrue, y.allTrue), e.orI(x.allFalse, y.allFalse)};
    else if (isa<arith::OrIOp>(op))
      out = {e.orI(x.allTrue, y.allTrue), e.andI(x.allFalse, y.allFalse)};
    else
      out = {e.orI(e.andI(x.allTrue, y.allFalse), e.andI(x.allFalse, y.allTrue)),
             e.orI(e.andI(x.allTrue, y.allTrue),
                   e.andI(x.allFalse, y.allFalse))};
  } else if (auto sel = dyn_cast<arith::SelectOp>(op)) {
    TileVerdict c = truthOf(sel.getCondition());
    TileVerdict x = truthOf(sel.getTrueValue());
    TileVerdict y = truthOf(sel.getFalseValue());
    auto pick = [&](Value cx, Value cy, Value both) {
      return e.orI(e.orI(e.andI(c.allTrue, cx), e.andI(c.allFalse, cy)),
                   both);
    };
    out = {pick(x.allTrue, y.allTrue, e.andI(x.allTrue, y.allTrue)),
           pick(x.allFalse, y.allFalse, e.andI(x.allFalse, y.allFalse))};
  }
  truths[result] = out;
}

void Evaluator::visit(Operation &op) {
  if (op.getNumResults() != 1)
    return;
  Type type = op.getResult(0).getType();
  if (type.isInteger(1))
    return visitPredicate(op);
  if (type.isIntOrIndex())
    return visitInteger(op);
}

TileVerdict Evaluator::run(Block &block) {
  for (Operation &op : block.without_terminator())
    visit(op);
  auto yield = cast<YieldOp>(block.getTerminator());
  return truthOf(yield.getValue());
}

TileVerdict mlir::attn::emitRegionTileVerdict(ScalarEmitter &e,
                                              Region &region, Value b,
                                              Value h, Value i0, Value i1,
                                              Value j0, Value j1,
                                              const CaptureReader &read) {
  Block &block = region.front();
  Evaluator eval(e, read);
  Value yes = e.i1(true);
  auto point = [&](Value v) {
    return v ? Interval{v, v, yes, true}
             : Interval{e.index(0), e.index(0), e.i1(false)};
  };
  eval.bind(block.getArgument(0), point(b));
  eval.bind(block.getArgument(1), point(h));
  eval.bind(block.getArgument(2),
            Interval{i0, e.subI(i1, e.index(1)), yes});
  eval.bind(block.getArgument(3),
            Interval{j0, e.subI(j1, e.index(1)), yes});
  return eval.run(block);
}
