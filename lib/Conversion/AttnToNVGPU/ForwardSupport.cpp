//===- ForwardSupport.cpp - what the forward kernels take -------*- C++ -*-===//
//
// The ops the GPU kernels cannot compile yet, each refused with the reason,
// before any decision about how to build them.
//
//===----------------------------------------------------------------------===//

#include "attn/Conversion/AttnToNVGPU/BackwardKernel.h"
#include "attn/Conversion/AttnToNVGPU/ForwardKernel.h"

#include "llvm/ADT/DenseSet.h"
#include "llvm/Support/ScopedPrinter.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::kernel;

/// Why a region's ops cannot run in the kernel, or nullopt.
static std::optional<std::string> regionUnsupportedReason(Region &r) {
  if (r.empty())
    return std::nullopt;
  for (Operation &inner : r.front().without_terminator()) {
    // Integer math ops have no NVVM lowering in the kernel pipeline.
    if (isa<math::IPowIOp, math::FPowIOp, math::CountLeadingZerosOp,
            math::CountTrailingZerosOp, math::CtPopOp>(inner))
      return "op '" + inner.getName().getStringRef().str() +
             "' in a region (integer math has no GPU lowering here)";
    if (isa<tensor::ExtractOp>(inner) ||
        inner.getDialect()->getNamespace() == "arith" ||
        inner.getDialect()->getNamespace() == "math")
      continue;
    return "op '" + inner.getName().getStringRef().str() +
           "' in a region (the kernel takes arith, math and "
           "tensor.extract of captures)";
  }
  return std::nullopt;
}

/// Whether a score or mask region uses capture `index`.
static bool regionReadsCapture(VariantSpecOpInterface spec, unsigned index) {
  auto reads = [&](Region &r, unsigned leading) {
    return !r.empty() && !r.front().getArgument(leading + index).use_empty();
  };
  return reads(spec.getScoreMod(), 5) || reads(spec.getMaskMod(), 4);
}

/// Why the GPU kernels cannot take an op of `spec` with these operand types
/// (forward or backward), or nullopt.
static std::optional<std::string>
kernelUnsupportedReason(VariantSpecOpInterface spec, RankedTensorType qType,
                        RankedTensorType vType, ValueRange captureValues) {
  Type elt = qType.getElementType();
  if (!elt.isF16() && !elt.isBF16())
    return "element type " + llvm::to_string(elt) +
           " (the tensor-core kernel takes f16 or bf16)";
  int64_t dqk = qType.getDimSize(3);
  int64_t dv = vType.getDimSize(3);
  if (ShapedType::isDynamic(dqk) || ShapedType::isDynamic(dv))
    return std::string("dynamic head dims (they are compile-time in the "
                       "kernel)");
  if (dqk % 16 || dv % 16 || dqk > 256 || dv > 256)
    return "head dims " + std::to_string(dqk) + " and " + std::to_string(dv) +
           " (they must be multiples of 16, at most 256)";
  if (spec.getQFeatureMap() != FeatureMap::identity ||
      spec.getKFeatureMap() != FeatureMap::identity)
    return std::string("feature maps q_map/k_map");
  // Captures are read row-major from flat buffers: the sizes past the first
  // must be static, except for document segment ids ([B, S], S from Sq/Sk).
  llvm::SmallDenseSet<int64_t> segmentCaptures;
  if (std::optional<ArrayAttr> masks = spec.getMasks())
    for (Attribute a : *masks)
      if (auto d = dyn_cast<DocumentAttr>(a)) {
        segmentCaptures.insert(d.getQSegments());
        segmentCaptures.insert(d.getKvSegments());
      }
  for (auto [i, c] : llvm::enumerate(captureValues)) {
    auto t = cast<RankedTensorType>(c.getType());
    if (!llvm::any_of(t.getShape().drop_front(), ShapedType::isDynamic))
      continue;
    // Segment ids are read by the mask with Sq/Sk as their row length; a
    // region cannot index a flat buffer of unknown row length.
    if (segmentCaptures.contains(i) && !regionReadsCapture(spec, i))
      continue;
    return "captured operand of type " + llvm::to_string(t) +
           " (sizes past the first must be static)";
  }
  if (auto r = regionUnsupportedReason(spec.getScoreMod()))
    return r;
  return regionUnsupportedReason(spec.getMaskMod());
}

std::optional<std::string> kernel::forwardUnsupportedReason(AttentionOp op) {
  return kernelUnsupportedReason(cast<VariantSpecOpInterface>(op.getOperation()),
                                 op.getQuery().getType(),
                                 op.getValue().getType(), op.getCaptures());
}

std::optional<std::string>
kernel::backwardUnsupportedReason(AttentionGradOp op) {
  auto spec = cast<VariantSpecOpInterface>(op.getOperation());
  if (auto why = kernelUnsupportedReason(
          spec, cast<RankedTensorType>(op.getQuery().getType()),
          cast<RankedTensorType>(op.getValue().getType()), op.getCaptures()))
    return why;
  for (Value c : op.getCaptures()) {
    auto t = cast<RankedTensorType>(c.getType());
    if (AttentionGradOp::isDifferentiableCapture(t) &&
        !t.getElementType().isF32())
      return "a floating capture of type " + llvm::to_string(t) +
             " (its gradient is accumulated in f32: capture f32 tensors)";
  }
  return std::nullopt;
}

std::optional<std::string> kernel::wgmmaUnsupportedReason(AttentionOp op) {
  return wgmmaUnsupportedReason(op.getQuery().getType().getDimSize(3),
                                op.getValue().getType().getDimSize(3));
}

std::optional<std::string> kernel::wgmmaUnsupportedReason(int64_t dqk,
                                                          int64_t dv) {
  if (dqk % 64 || dv % 64)
    return "head dims " + std::to_string(dqk) + " and " + std::to_string(dv) +
           " (the swizzled wgmma tiles take multiples of 64)";
  return std::nullopt;
}
