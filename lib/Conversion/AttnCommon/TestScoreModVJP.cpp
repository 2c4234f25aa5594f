//===- TestScoreModVJP.cpp - score_mod derivatives as functions -*- C++ -*-===//
//
// attn-test-score-mod-vjp: makes what emitScoreModVJP emits visible in IR and
// runnable (attn-run, through a wrapper over tensors; see
// python/tests/test_score_mod_vjp.py).
//
//===----------------------------------------------------------------------===//

#include "attn/Conversion/AttnCommon/ScoreModVJP.h"
#include "attn/Conversion/TestPasses.h"
#include "attn/Dialect/Attn/IR/AttnOps.h"

#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"

#define DEBUG_TYPE "attn-test-score-mod-vjp"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNTESTSCOREMODVJPPASS
#include "attn/Conversion/TestPasses.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

/// A score_mod region and the name its functions are derived from.
struct ScoreModSite {
  Region *region;
  std::string name;
};

SmallVector<ScoreModSite> collectSites(ModuleOp module) {
  SmallVector<ScoreModSite> sites;
  module.walk([&](Operation *op) {
    if (auto variant = dyn_cast<VariantOp>(op)) {
      if (!variant.getScoreMod().empty())
        sites.push_back({&variant.getScoreMod(), variant.getSymName().str()});
    } else if (auto attention = dyn_cast<AttentionOp>(op)) {
      auto func = attention->getParentOfType<func::FuncOp>();
      if (!attention.getScoreMod().empty())
        sites.push_back({&attention.getScoreMod(),
                         func ? func.getSymName().str() : "attention"});
    }
  });
  return sites;
}

/// `name`, or `name_<n>` with the smallest n that makes both function names
/// free.
std::string uniqueBase(SymbolTable &symbols, StringRef name) {
  auto isFree = [&](const std::string &base) {
    return !symbols.lookup(base + "_score_mod") &&
           !symbols.lookup(base + "_score_mod_vjp");
  };
  std::string base = name.str();
  for (unsigned n = 1; !isFree(base); ++n)
    base = (name + "_" + Twine(n)).str();
  return base;
}

/// An empty public function with the given arguments; `b` at its entry.
func::FuncOp createFunc(OpBuilder &b, Location loc, StringRef name,
                        TypeRange inputs) {
  auto func = func::FuncOp::create(b, loc, name,
                                   b.getFunctionType(inputs, TypeRange{}));
  Block *entry = func.addEntryBlock();
  b.setInsertionPointToStart(entry);
  return func;
}

/// Sets the function's results to `values` and returns them.
void finishFunc(OpBuilder &b, Location loc, func::FuncOp func,
                ValueRange values) {
  func::ReturnOp::create(b, loc, values);
  func.setFunctionType(b.getFunctionType(func.getArgumentTypes(),
                                         ValueRange(values).getTypes()));
}

void emitForward(OpBuilder &b, Region &region, StringRef name) {
  Block &block = region.front();
  Location loc = region.getParentOp()->getLoc();
  func::FuncOp func = createFunc(b, loc, name, block.getArgumentTypes());
  IRMapping mapping;
  mapping.map(block.getArguments(), func.getArguments());
  for (Operation &op : block.without_terminator())
    b.clone(op, mapping);
  finishFunc(b, loc, func,
             mapping.lookup(block.getTerminator()->getOperand(0)));
}

/// (s, b, h, i, j, g, captures...): the region's arguments with g after j.
LogicalResult emitVJP(OpBuilder &b, Region &region, StringRef name) {
  Block &block = region.front();
  Location loc = region.getParentOp()->getLoc();
  SmallVector<Type> inputs(block.getArgumentTypes());
  inputs.insert(inputs.begin() + 5, b.getF32Type());
  func::FuncOp func = createFunc(b, loc, name, inputs);
  Value g = func.getArgument(5);
  SmallVector<Value> args;
  for (BlockArgument arg : func.getArguments())
    if (arg != g)
      args.push_back(arg);
  FailureOr<ScoreModVJP> vjp = emitScoreModVJP(b, loc, region, args, g);
  if (failed(vjp)) {
    func.erase();
    return failure();
  }
  SmallVector<Value> results = {vjp->ds};
  SmallVector<int64_t> captures;
  for (const CaptureContribution &c : vjp->captures) {
    results.push_back(c.contribution);
    captures.push_back(c.captureIndex);
  }
  for (const CaptureContribution &c : vjp->captures)
    llvm::append_range(results, c.indices);
  finishFunc(b, loc, func, results);
  func->setAttr("attn.vjp_captures", b.getDenseI64ArrayAttr(captures));
  return success();
}

struct AttnTestScoreModVJPPass final
    : attn::impl::AttnTestScoreModVJPPassBase<AttnTestScoreModVJPPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<ScoreModSite> sites = collectSites(module);
    // Refuse before adding anything.
    for (const ScoreModSite &site : sites)
      if (failed(checkScoreModDifferentiable(*site.region)))
        return signalPassFailure();
    SymbolTable symbols(module);
    OpBuilder b(module.getContext());
    for (const ScoreModSite &site : sites) {
      std::string base = uniqueBase(symbols, site.name);
      b.setInsertionPointToEnd(module.getBody());
      emitForward(b, *site.region, base + "_score_mod");
      symbols.insert(&module.getBody()->back());
      b.setInsertionPointToEnd(module.getBody());
      if (failed(emitVJP(b, *site.region, base + "_score_mod_vjp")))
        return signalPassFailure();
      symbols.insert(&module.getBody()->back());
    }
  }
};

} // namespace
