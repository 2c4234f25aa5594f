//===- AttentionGradToFlash.h - the backward, FlashAttention-2 order -*- C++ -*-//
//
// The tiled lowering of the backward, used by attn-to-flash.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOFLASH_ATTENTIONGRADTOFLASH_H
#define ATTN_LIB_CONVERSION_ATTNTOFLASH_ATTENTIONGRADTOFLASH_H

#include "attn/Dialect/Attn/IR/AttnOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace mlir::attn {

/// Emits at `b` the backward `op` in the FlashAttention-2 order (a
/// preprocess for D, KV tiles of `kvTile` keys outer, q-tiles of `qTile`
/// rows inner, P recomputed from the lse; see AttentionGradToFlash.cpp).
/// Returns one value per result of `op`. `op` must pass
/// verifyLowerableGrad.
SmallVector<Value> emitAttentionGradFlash(ImplicitLocOpBuilder &b,
                                          AttentionGradOp op, int64_t qTile,
                                          int64_t kvTile);

} // namespace mlir::attn

#endif // ATTN_LIB_CONVERSION_ATTNTOFLASH_ATTENTIONGRADTOFLASH_H
