//===- RegionPeepholes.h - score and mask regions on the GPU ----*- C++ -*-===//
//
// A score or mask region is cloned per accumulator element. On the GPU its
// captured tensors are global buffers, and a few ops have faster forms
// than their generic lowering: conversions of small integers through i32,
// tanh on the special-function unit, |x| of integers as a select, division
// by a constant as a multiply.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_ATTNTONVGPU_REGIONPEEPHOLES_H
#define ATTN_CONVERSION_ATTNTONVGPU_REGIONPEEPHOLES_H

#include "attn/Conversion/AttnCommon/ScoreModVJP.h"
#include "attn/Conversion/AttnToNVGPU/KernelContext.h"

namespace mlir::attn::kernel {

/// A captured tensor as the kernel sees it: a flat row-major buffer.
struct CaptureBuffer {
  Value buffer;
  RankedTensorType type;
};

/// Fills `info` for a kernel of `spec` whose sizes B, Hq, Hkv, Sq, Sk, Ns
/// are the kernel arguments `sizes` (in that order) and whose captures are
/// `captures` (flat buffers): the score and mask regions are inlined with
/// their capture reads as loads (inlineRegionOnGPU), document segment ids
/// ([B, Sq] or [B, Sk]) read from their buffers. `k` and `captures` must
/// outlive `info`.
void bindKernelOpInfo(KernelContext &k, VariantSpecOpInterface spec,
                      ArrayRef<Value> sizes, Type elementType, int64_t dqk,
                      int64_t dv, double scale, double gamma,
                      ArrayRef<CaptureBuffer> captures, AttnOpInfo &info);

/// The flat row-major offset of element `indices` of `capture`.
Value captureOffset(KernelContext &k, const CaptureBuffer &capture,
                    ValueRange indices);

/// Clones `region` at the insertion point with its leading arguments bound
/// to `args` and its trailing (capture) arguments read from `captures`;
/// returns the yielded value.
Value inlineRegionOnGPU(KernelContext &k, Region &region, ValueRange args,
                        ArrayRef<CaptureBuffer> captures);

/// The score region's value and derivative (emitScoreModVJP) at the
/// insertion point, for the adjoint `adjoint`, with its leading arguments
/// bound to `args` and its capture reads loads from `captures`.
FailureOr<ScoreModVJP> emitScoreModVJPOnGPU(KernelContext &k, Region &region,
                                            ValueRange args,
                                            ArrayRef<CaptureBuffer> captures,
                                            Value adjoint);

} // namespace mlir::attn::kernel

#endif // ATTN_CONVERSION_ATTNTONVGPU_REGIONPEEPHOLES_H
