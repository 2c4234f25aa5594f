//===- OrderedTurns.h - adds to one buffer in a fixed CTA order -*- C++ -*-===//
//
// The deterministic backward (#attn.kernel_config<deterministic = true>):
// the CTAs of one (batch, kv head) add to each dQ tile in the order of
// their rank, whatever the schedule. An i32 counter per (batch, query head,
// query tile), zeroed by the runtime, holds the rank whose turn it is: a CTA
// waits until the counter equals its rank (an acquire load at GPU scope),
// adds, and passes the turn (a release add). A CTA that adds nothing to a
// tile still takes its turn there, so each counter ends at the number of
// CTAs. Ranks follow the launch order, so a CTA only ever waits for CTAs
// launched before it: the earliest unfinished rank always runs. (CUDA does
// not promise that blocks start in blockIdx order; the hardware dispatches
// them so, and FlashAttention-2/3's deterministic modes rely on it too.)
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_ATTNTONVGPU_ORDEREDTURNS_H
#define ATTN_CONVERSION_ATTNTONVGPU_ORDEREDTURNS_H

#include "attn/Conversion/AttnToNVGPU/KernelContext.h"

namespace mlir::attn::kernel {

/// Spins until the i32 counter `turns[index]` equals `rank` (one thread;
/// acquire at GPU scope: what earlier ranks added is visible after it).
void waitForTurn(KernelContext &k, Value turns, Value index, Value rank);

/// turns[index] += 1 with release semantics at GPU scope (one thread, after
/// this CTA's adds are complete and visible to it): a fence.acq_rel.gpu,
/// then the add.
void passTurn(KernelContext &k, Value turns, Value index);

/// Every thread: orders its earlier global writes (atomics included) before
/// what follows at GPU scope (fence.acq_rel.gpu).
void fenceGpu(KernelContext &k);

} // namespace mlir::attn::kernel

#endif // ATTN_CONVERSION_ATTNTONVGPU_ORDEREDTURNS_H
