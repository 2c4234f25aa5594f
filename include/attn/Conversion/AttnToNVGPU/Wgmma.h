//===- Wgmma.h - Hopper warpgroup MMA chains --------------------*- C++ -*-===//
//
// The sm_90a instruction family: wgmma.mma_async on shared-memory matrix
// descriptors (nvvm.wgmma.mma_async), the register-A form for which MLIR
// has no op (the project's one inline-PTX instruction), commit groups and
// waits, and the register pins that keep the operands of an asynchronous
// chain alive and untouched until the wait that retires it.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_ATTNTONVGPU_WGMMA_H
#define ATTN_CONVERSION_ATTNTONVGPU_WGMMA_H

#include "attn/Conversion/AttnToNVGPU/SharedMemoryPlan.h"

namespace mlir::attn::kernel {

class WgmmaChains {
public:
  /// `smemAddress`: the i64 shared-window address of dynamic shared memory
  /// (SharedMemoryPlan::address).
  WgmmaChains(KernelContext &k, Value smemAddress)
      : k(k), smemAddress(smemAddress) {}

  /// The matrix descriptor of the tile at byte `offset` (i64) of dynamic
  /// shared memory, walked as `layout` says.
  Value descriptor(Value offset, DescriptorLayout layout);
  /// Pins `values` (f32, i32, i64 or vector<2 x f16/bf16>) at this point of
  /// the program with an empty asm statement: an async chain's registers
  /// are read only after its wait, its inputs are all defined before its
  /// fence, and the inputs it reads asynchronously stay live up to the wait.
  SmallVector<Value> fenceRegisters(ArrayRef<Value> values);

  /// Issues D (64 x n per warpgroup) = A.B over the k-steps of the
  /// descriptor pairs, both operands in shared memory; the first k-step
  /// ignores the accumulator. B is K-major, or MN-major (rows are the
  /// reduction) with `transposeB`. Returns the accumulator struct, valid
  /// after the wait for its commit group; the descriptors are kept in
  /// `inFlight` until then.
  Value issueShared(ArrayRef<Value> descsA, ArrayRef<Value> descsB,
                    int64_t n, SmallVector<Value> &inFlight,
                    bool transposeB = false);
  /// Issues O += A.B with A in registers (4 per k-step: the m16n8k16 A
  /// layout per warp) and B by descriptor (transposed: MN-major); returns
  /// the pinned accumulator values, valid after the wait. The descriptors
  /// and A are kept in `inFlight`.
  SmallVector<Value> issueRegisterA(ArrayRef<Value> acc, ArrayRef<Value> a,
                                    ArrayRef<Value> descsB, bool transposeB,
                                    SmallVector<Value> &inFlight);
  /// Waits until at most `pending` chains are in flight; pins the operands
  /// of the retired chain (`inFlight`) up to here.
  void wait(int64_t pending, ArrayRef<Value> inFlight);
  /// Waits for the chain of `acc` (at most `pending` others in flight) and
  /// returns its values.
  SmallVector<Value> waitForAccumulator(Value acc, int64_t pending,
                                        ArrayRef<Value> inFlight);
  /// Waits for every chain; returns the pinned `o`.
  SmallVector<Value> retire(ArrayRef<Value> o, ArrayRef<Value> inFlight);

private:
  /// One register-A wgmma (inline PTX).
  SmallVector<Value> registerA(ArrayRef<Value> acc, ArrayRef<Value> a,
                               Value descB, bool transposeB);

  KernelContext &k;
  Value smemAddress;
};

} // namespace mlir::attn::kernel

#endif // ATTN_CONVERSION_ATTNTONVGPU_WGMMA_H
