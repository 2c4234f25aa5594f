//===- InstantiateVariants.cpp - inline attn.variant references -*- C++ -*-===//

#include "attn/Dialect/Attn/Transforms/Passes.h"

#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"

#define DEBUG_TYPE "attn-instantiate-variants"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNINSTANTIATEVARIANTSPASS
#include "attn/Dialect/Attn/Transforms/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

/// Copies the specification of `variant` onto `op` (an attn.attention or
/// attn.attention_grad) and drops the reference.
template <typename OpT> void instantiate(OpT op, VariantOp variant) {
  op.setScoreAttr(variant.getScoreAttr());
  op.setScaleAttr(variant.getScaleAttr());
  op.setGammaAttr(variant.getGammaAttr());
  op.setQMapAttr(variant.getQMapAttr());
  op.setKMapAttr(variant.getKMapAttr());
  op.setMasksAttr(variant.getMasksAttr());
  op.setNormalizationAttr(variant.getNormalizationAttr());
  op.setBiasAttr(variant.getBiasAttr());
  op.setLengthScaleAttr(variant.getLengthScaleAttr());
  IRMapping mapping;
  variant.getScoreMod().cloneInto(&op.getScoreMod(), mapping);
  variant.getMaskMod().cloneInto(&op.getMaskMod(), mapping);
  op.removeVariantAttr();
  // Provenance for the kernel bundle's description.
  op->setAttr("attn.variant_name", variant.getSymNameAttr());
}

/// Instantiates the variant of every `OpT` in `module` that references one.
template <typename OpT>
LogicalResult instantiateAll(ModuleOp module, SymbolTableCollection &tables) {
  WalkResult result = module.walk([&](OpT op) {
    FlatSymbolRefAttr ref = op.getVariantAttr();
    if (!ref)
      return WalkResult::advance();
    auto variant =
        dyn_cast_or_null<VariantOp>(tables.lookupNearestSymbolFrom(op, ref));
    if (!variant) {
      op.emitOpError() << "'variant' references " << ref
                       << ", which is not an attn.variant in scope";
      return WalkResult::interrupt();
    }
    instantiate(op, variant);
    return WalkResult::advance();
  });
  return failure(result.wasInterrupted());
}

struct AttnInstantiateVariantsPass final
    : attn::impl::AttnInstantiateVariantsPassBase<AttnInstantiateVariantsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTableCollection tables;
    if (failed(instantiateAll<AttentionOp>(module, tables)) ||
        failed(instantiateAll<AttentionGradOp>(module, tables)))
      return signalPassFailure();
    if (!eraseVariants)
      return;
    SymbolUserMap users(tables, module);
    for (auto variant :
         llvm::make_early_inc_range(module.getOps<VariantOp>()))
      if (users.useEmpty(variant))
        variant.erase();
  }
};

} // namespace
