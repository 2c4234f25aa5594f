//===- ScoreModVJP.cpp - reverse-mode derivative of score_mod ---*- C++ -*-===//
//
// Three steps over the region's single block: an activity analysis (which
// values depend on s or a floating capture, and which of those the yielded
// score depends on), a copy of the primal computation, and one backward
// sweep that accumulates f32 adjoints op by op, in reverse order.
//
//===----------------------------------------------------------------------===//

#include "attn/Conversion/AttnCommon/ScoreModVJP.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/TypeUtilities.h"
#include "mlir/Transforms/RegionUtils.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/TypeSwitch.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;

/// s, b, h, i, j; the captures follow.
static constexpr unsigned kNumFixedArgs = 5;

//===----------------------------------------------------------------------===//
// Activity analysis
//===----------------------------------------------------------------------===//

static bool holdsFloats(Type type) {
  return isa<FloatType>(getElementTypeOrSelf(type));
}

/// `op` as a read of a floating capture of `block`, or null.
static tensor::ExtractOp getCaptureRead(Operation &op, Block &block) {
  auto read = dyn_cast<tensor::ExtractOp>(op);
  if (!read)
    return {};
  auto arg = dyn_cast<BlockArgument>(read.getTensor());
  if (!arg || arg.getOwner() != &block || arg.getArgNumber() < kNumFixedArgs ||
      !holdsFloats(arg.getType()))
    return {};
  return read;
}

namespace {
struct Activity {
  /// Values that depend on s or on a floating capture.
  DenseSet<Value> active;
  /// The active values the yielded score depends on: those that need an
  /// adjoint.
  DenseSet<Value> needed;
};
} // namespace

/// The values `op` reads: its operands and what its regions use from above
/// (so that an scf.if reading s inside its body is seen as reading s).
static SmallVector<Value> readValues(Operation &op) {
  SmallVector<Value> values(op.getOperands());
  if (op.getNumRegions() != 0) {
    llvm::SetVector<Value> above;
    getUsedValuesDefinedAbove(op.getRegions(), above);
    values.append(above.begin(), above.end());
  }
  return values;
}

static Activity analyzeActivity(Block &block) {
  Activity a;
  a.active.insert(block.getArgument(0));
  for (BlockArgument arg : block.getArguments().drop_front(kNumFixedArgs))
    if (holdsFloats(arg.getType()))
      a.active.insert(arg);
  // Forward: integer, index and i1 results never carry a gradient.
  for (Operation &op : block.without_terminator()) {
    if (llvm::none_of(readValues(op),
                      [&](Value v) { return a.active.contains(v); }))
      continue;
    for (Value result : op.getResults())
      if (holdsFloats(result.getType()))
        a.active.insert(result);
  }
  // Backward, from the yielded score.
  Value yielded = block.getTerminator()->getOperand(0);
  if (a.active.contains(yielded))
    a.needed.insert(yielded);
  for (Operation &op : llvm::reverse(block.without_terminator())) {
    if (llvm::none_of(op.getResults(),
                      [&](Value v) { return a.needed.contains(v); }))
      continue;
    for (Value v : readValues(op))
      if (a.active.contains(v))
        a.needed.insert(v);
  }
  return a;
}

/// The ops with a derivative rule below (on scalars).
static bool hasDerivativeRule(Operation &op) {
  if (!llvm::all_of(op.getResultTypes(), llvm::IsaPred<FloatType>))
    return false;
  return isa<arith::AddFOp, arith::SubFOp, arith::MulFOp, arith::DivFOp,
             arith::NegFOp, arith::MaximumFOp, arith::MinimumFOp,
             arith::MaxNumFOp, arith::MinNumFOp, arith::SelectOp, arith::ExtFOp,
             arith::TruncFOp, math::ExpOp, math::Exp2Op, math::ExpM1Op,
             math::LogOp, math::Log2Op, math::Log10Op, math::Log1pOp,
             math::TanhOp, math::SqrtOp, math::RsqrtOp, math::CbrtOp,
             math::AbsFOp, math::PowFOp, math::FPowIOp, math::ErfOp,
             math::ErfcOp, math::FmaOp, math::FloorOp, math::CeilOp,
             math::RoundOp, math::RoundEvenOp, math::TruncOp>(op);
}

/// The first op the yielded score depends on that has no derivative rule.
static Operation *findUndifferentiable(Block &block, const Activity &a) {
  for (Operation &op : block.without_terminator()) {
    bool needed = llvm::any_of(op.getResults(),
                               [&](Value v) { return a.needed.contains(v); });
    if (needed && !getCaptureRead(op, block) && !hasDerivativeRule(op))
      return &op;
  }
  return nullptr;
}

static LogicalResult checkNeededOps(Block &block, const Activity &a) {
  Operation *op = findUndifferentiable(block, a);
  if (!op)
    return success();
  return op->emitError() << "cannot differentiate '" << op->getName()
                         << "' in score_mod";
}

static LogicalResult verifyShape(Region &scoreMod, Location loc) {
  if (!scoreMod.hasOneBlock() ||
      scoreMod.front().getNumArguments() < kNumFixedArgs ||
      scoreMod.front().empty() ||
      scoreMod.front().getTerminator()->getNumOperands() != 1)
    return emitError(loc) << "expected a score_mod region of one block with "
                             "(s, b, h, i, j, captures...) arguments";
  return success();
}

Operation *mlir::attn::findUndifferentiableScoreModOp(Region &scoreMod) {
  if (!scoreMod.hasOneBlock() || scoreMod.front().empty())
    return nullptr;
  Block &block = scoreMod.front();
  return findUndifferentiable(block, analyzeActivity(block));
}

LogicalResult mlir::attn::checkScoreModDifferentiable(Region &scoreMod) {
  Location loc = scoreMod.getParentOp()->getLoc();
  if (failed(verifyShape(scoreMod, loc)))
    return failure();
  Block &block = scoreMod.front();
  return checkNeededOps(block, analyzeActivity(block));
}

//===----------------------------------------------------------------------===//
// Adjoint emission
//===----------------------------------------------------------------------===//

namespace {
/// Emits the backward sweep. Adjoints are f32 whatever the primal type
/// (f16 or bf16 reads of a capture, an f64 intermediate): the local
/// derivative is computed on the primal values widened (or narrowed) to f32.
class AdjointEmitter {
public:
  AdjointEmitter(ImplicitLocOpBuilder &b, const IRMapping &primal,
                 const DenseSet<Value> &needed)
      : b(b), primal(primal), needed(needed) {}

  void seed(Value original, Value adjoint) {
    if (needed.contains(original))
      adjoints[original] = adjoint;
  }
  /// The accumulated adjoint of `original`, or an f32 zero.
  Value adjointOrZero(Value original) {
    Value adjoint = adjoints.lookup(original);
    return adjoint ? adjoint : f32(0.0);
  }
  void differentiate(Operation &op);

private:
  Value f32(double v) {
    return arith::ConstantOp::create(b, b.getF32FloatAttr(v));
  }
  /// The primal value of `original`, as f32.
  Value p(Value original);
  Value add(Value x, Value y) { return arith::AddFOp::create(b, x, y); }
  Value mul(Value x, Value y) { return arith::MulFOp::create(b, x, y); }
  Value div(Value x, Value y) { return arith::DivFOp::create(b, x, y); }
  Value neg(Value x) { return arith::NegFOp::create(b, x); }
  /// adjoint(original) += contribution(), emitted only when `original`
  /// needs an adjoint.
  void accumulate(Value original, function_ref<Value()> contribution);
  /// The adjoint `a` goes to `x` where `cond` holds, else to `y`.
  void route(Value cond, Value x, Value y, Value a);
  void differentiateArith(Operation &op, Value a);
  void differentiateMath(Operation &op, Value a);
  void differentiatePower(Operation &op, Value a);

  ImplicitLocOpBuilder &b;
  const IRMapping &primal;
  const DenseSet<Value> &needed;
  DenseMap<Value, Value> adjoints;
};
} // namespace

Value AdjointEmitter::p(Value original) {
  Value v = primal.lookup(original);
  auto type = cast<FloatType>(v.getType());
  if (type.isF32())
    return v;
  if (type.getWidth() < 32)
    return arith::ExtFOp::create(b, b.getF32Type(), v);
  return arith::TruncFOp::create(b, b.getF32Type(), v);
}

void AdjointEmitter::accumulate(Value original,
                                function_ref<Value()> contribution) {
  if (!needed.contains(original))
    return;
  Value c = contribution();
  Value &slot = adjoints[original];
  slot = slot ? add(slot, c) : c;
}

void AdjointEmitter::route(Value cond, Value x, Value y, Value a) {
  accumulate(x, [&] { return arith::SelectOp::create(b, cond, a, f32(0)); });
  accumulate(y, [&] { return arith::SelectOp::create(b, cond, f32(0), a); });
}

void AdjointEmitter::differentiate(Operation &op) {
  if (op.getNumResults() != 1)
    return;
  // Reads of captures keep their adjoint: it is their contribution.
  Value a = adjoints.lookup(op.getResult(0));
  if (!a || !hasDerivativeRule(op))
    return;
  b.setLoc(op.getLoc());
  if (isa<math::MathDialect>(op.getDialect()))
    differentiateMath(op, a);
  else
    differentiateArith(op, a);
}

void AdjointEmitter::differentiateArith(Operation &op, Value a) {
  auto in = [&](unsigned k) { return op.getOperand(k); };
  auto is = [&](Value v) { return [v] { return v; }; };
  using P = arith::CmpFPredicate;
  llvm::TypeSwitch<Operation *>(&op)
      .Case<arith::AddFOp>([&](auto) {
        accumulate(in(0), is(a));
        accumulate(in(1), is(a));
      })
      .Case<arith::SubFOp>([&](auto) {
        accumulate(in(0), is(a));
        accumulate(in(1), [&] { return neg(a); });
      })
      .Case<arith::MulFOp>([&](auto) {
        accumulate(in(0), [&] { return mul(a, p(in(1))); });
        accumulate(in(1), [&] { return mul(a, p(in(0))); });
      })
      .Case<arith::DivFOp>([&](auto) {
        // d(x/y)/dy = -(x/y)/y.
        accumulate(in(0), [&] { return div(a, p(in(1))); });
        accumulate(in(1), [&] {
          Value ar = mul(a, p(op.getResult(0)));
          return neg(div(ar, p(in(1))));
        });
      })
      .Case<arith::NegFOp>(
          [&](auto) { accumulate(in(0), [&] { return neg(a); }); })
      // Subgradients: the operand that was taken; ties go to the first.
      .Case<arith::MaximumFOp, arith::MaxNumFOp>([&](auto) {
        Value x = p(in(0)), y = p(in(1));
        Value c = arith::CmpFOp::create(b, P::OGE, x, y);
        route(c, in(0), in(1), a);
      })
      .Case<arith::MinimumFOp, arith::MinNumFOp>([&](auto) {
        Value x = p(in(0)), y = p(in(1));
        Value c = arith::CmpFOp::create(b, P::OLE, x, y);
        route(c, in(0), in(1), a);
      })
      .Case<arith::SelectOp>([&](arith::SelectOp select) {
        route(primal.lookup(select.getCondition()), select.getTrueValue(),
              select.getFalseValue(), a);
      })
      .Case<arith::ExtFOp, arith::TruncFOp>(
          [&](auto) { accumulate(in(0), is(a)); });
}

void AdjointEmitter::differentiateMath(Operation &op, Value a) {
  // Operands are emitted one statement at a time: C++ leaves the order of
  // evaluation of call arguments open, the IR's order must not be.
  auto x = [&] { return p(op.getOperand(0)); };
  auto r = [&] { return p(op.getResult(0)); };
  auto times = [&](Value u, double c) { return mul(u, f32(c)); };
  auto over = [&](double c, Value u) {
    Value k = f32(c);
    return div(k, u);
  };
  // a * d/dx for a one-operand op, from x and r = op(x).
  auto unary = [&](function_ref<Value()> derivative) {
    accumulate(op.getOperand(0), [&] { return mul(a, derivative()); });
  };
  using P = arith::CmpFPredicate;
  llvm::TypeSwitch<Operation *>(&op)
      .Case<math::ExpOp>([&](auto) { unary(r); })
      .Case<math::Exp2Op>(
          [&](auto) { unary([&] { return times(r(), M_LN2); }); })
      .Case<math::ExpM1Op>([&](auto) {
        unary([&] {
          Value t = r();
          return add(t, f32(1));
        });
      })
      .Case<math::LogOp>([&](auto) { unary([&] { return over(1, x()); }); })
      .Case<math::Log2Op>(
          [&](auto) { unary([&] { return over(1.0 / M_LN2, x()); }); })
      .Case<math::Log10Op>(
          [&](auto) { unary([&] { return over(1.0 / M_LN10, x()); }); })
      .Case<math::Log1pOp>([&](auto) {
        unary([&] {
          Value t = x();
          return over(1, add(f32(1), t));
        });
      })
      .Case<math::TanhOp>([&](auto) {
        unary([&] {
          Value t = r();
          Value t2 = mul(t, t);
          return arith::SubFOp::create(b, f32(1), t2);
        });
      })
      .Case<math::SqrtOp>([&](auto) { unary([&] { return over(0.5, r()); }); })
      .Case<math::RsqrtOp>([&](auto) {
        // d x^(-1/2) = -1/2 x^(-3/2) = -r^3 / 2.
        unary([&] {
          Value t = r();
          return times(mul(t, mul(t, t)), -0.5);
        });
      })
      .Case<math::CbrtOp>([&](auto) {
        unary([&] {
          Value t = r();
          return over(1.0 / 3.0, mul(t, t));
        });
      })
      .Case<math::AbsFOp>([&](auto) {
        accumulate(op.getOperand(0), [&] {
          Value t = x();
          Value negative = arith::CmpFOp::create(b, P::OLT, t, f32(0));
          return arith::SelectOp::create(b, negative, neg(a), a);
        });
      })
      .Case<math::ErfOp, math::ErfcOp>([&](auto) {
        double sign = isa<math::ErfOp>(op) ? 1.0 : -1.0;
        unary([&] {
          Value t = x();
          Value e = math::ExpOp::create(b, neg(mul(t, t)));
          return times(e, sign * M_2_SQRTPI);
        });
      })
      .Case<math::PowFOp, math::FPowIOp, math::FmaOp>(
          [&](auto) { differentiatePower(op, a); });
  // floor, ceil, round, roundeven, trunc: zero almost everywhere.
}

void AdjointEmitter::differentiatePower(Operation &op, Value a) {
  auto in = [&](unsigned k) { return op.getOperand(k); };
  llvm::TypeSwitch<Operation *>(&op)
      .Case<math::PowFOp>([&](auto) {
        // d x^y/dx = y x^(y-1); d x^y/dy = x^y log x.
        accumulate(in(0), [&] {
          Value x = p(in(0)), y = p(in(1));
          Value ym1 = arith::SubFOp::create(b, y, f32(1));
          Value xm1 = math::PowFOp::create(b, x, ym1);
          return mul(a, mul(y, xm1));
        });
        accumulate(in(1), [&] {
          Value logX = math::LogOp::create(b, p(in(0)));
          return mul(a, mul(p(op.getResult(0)), logX));
        });
      })
      .Case<math::FPowIOp>([&](auto) {
        accumulate(in(0), [&] {
          Value x = p(in(0));
          Value n = primal.lookup(in(1));
          Value one =
              arith::ConstantOp::create(b, IntegerAttr::get(n.getType(), 1));
          Value xm1 =
              math::FPowIOp::create(b, x, arith::SubIOp::create(b, n, one));
          Value nf = arith::SIToFPOp::create(b, b.getF32Type(), n);
          return mul(a, mul(nf, xm1));
        });
      })
      .Case<math::FmaOp>([&](auto) {
        accumulate(in(0), [&] { return mul(a, p(in(1))); });
        accumulate(in(1), [&] { return mul(a, p(in(0))); });
        accumulate(in(2), [&] { return a; });
      });
}

//===----------------------------------------------------------------------===//
// Entry point
//===----------------------------------------------------------------------===//

/// Clones the body of `block` (but its terminator) on `args`.
static IRMapping clonePrimal(ImplicitLocOpBuilder &b, Block &block,
                             ValueRange args) {
  IRMapping mapping;
  for (auto [arg, value] : llvm::zip(block.getArguments(), args)) {
    Value v = value;
    if (v.getType() != arg.getType() && isa<TensorType>(v.getType()))
      v = tensor::CastOp::create(b, arg.getType(), v);
    mapping.map(arg, v);
  }
  for (Operation &op : block.without_terminator())
    b.clone(op, mapping);
  return mapping;
}

FailureOr<ScoreModVJP>
mlir::attn::emitScoreModVJP(OpBuilder &builder, Location loc, Region &scoreMod,
                            ValueRange args, Value adjoint) {
  if (failed(verifyShape(scoreMod, loc)))
    return failure();
  Block &block = scoreMod.front();
  if (args.size() != block.getNumArguments())
    return emitError(loc) << "score_mod takes " << block.getNumArguments()
                          << " arguments, got " << args.size() << " values";
  if (!adjoint.getType().isF32())
    return emitError(loc) << "the adjoint of the score must be f32, got "
                          << adjoint.getType();
  Activity activity = analyzeActivity(block);
  if (failed(checkNeededOps(block, activity)))
    return failure();

  ImplicitLocOpBuilder b(loc, builder);
  IRMapping mapping = clonePrimal(b, block, args);
  AdjointEmitter emitter(b, mapping, activity.needed);
  Value yielded = block.getTerminator()->getOperand(0);
  emitter.seed(yielded, adjoint);
  for (Operation &op : llvm::reverse(block.without_terminator()))
    emitter.differentiate(op);

  b.setLoc(loc);
  ScoreModVJP vjp;
  vjp.value = mapping.lookup(yielded);
  vjp.ds = emitter.adjointOrZero(block.getArgument(0));
  for (Operation &op : block.without_terminator()) {
    tensor::ExtractOp read = getCaptureRead(op, block);
    if (!read)
      continue;
    auto arg = cast<BlockArgument>(read.getTensor());
    CaptureContribution c;
    c.captureIndex = arg.getArgNumber() - kNumFixedArgs;
    for (Value index : read.getIndices())
      c.indices.push_back(mapping.lookup(index));
    c.contribution = emitter.adjointOrZero(read.getResult());
    vjp.captures.push_back(std::move(c));
  }
  return vjp;
}
