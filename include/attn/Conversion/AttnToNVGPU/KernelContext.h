//===- KernelContext.h - the builder every kernel piece shares --*- C++ -*-===//
//
// A GPU kernel is assembled from pieces (shared-memory plan, copy ring, MMA
// families, fragment softmax, schedules, prologues), each a file of its own
// under lib/Conversion/AttnToNVGPU. They all emit through one KernelContext:
// the kernel's builder, its scalar emitter, the element type and the small
// instructions every piece needs (shuffles, ex2, packing, structured ifs).
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_ATTNTONVGPU_KERNELCONTEXT_H
#define ATTN_CONVERSION_ATTNTONVGPU_KERNELCONTEXT_H

#include "attn/Conversion/AttnCommon/AttnCodegen.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"

namespace mlir::attn::kernel {

/// NVVM address spaces of the kernels' memrefs.
constexpr unsigned kGlobalSpace = 1;
constexpr unsigned kSharedSpace = 3;
/// Dynamic shared memory a CTA's plan may use on sm_90: the 227 KiB
/// opt-in limit counts static shared memory too, and the lowering declares
/// a static byte (the dynamic-memory symbol) before the 1024-byte aligned
/// dynamic region; a plan of the whole 227 KiB fails to launch
/// (CUDA_ERROR_INVALID_VALUE, measured on the H200). So 1 KiB is kept free.
constexpr int64_t kMaxSharedBytes = 232448 - 1024;

/// The builder of one kernel body and the instructions its pieces share.
class KernelContext {
public:
  KernelContext(ImplicitLocOpBuilder &b, Type elementType, int64_t threads)
      : b(b), e{b}, ctx(b.getContext()), elt(elementType), threads(threads) {}

  ImplicitLocOpBuilder &b;
  ScalarEmitter e;
  MLIRContext *ctx;
  Type elt;        ///< f16 or bf16: the type of the tensor-core operands.
  int64_t threads; ///< Threads per CTA.

  Value idx(int64_t v) { return e.index(v); }
  Value f32(double v) { return e.f32(v); }
  Type f32Type() { return b.getF32Type(); }
  /// gpu.thread_id x (created at the insertion point; CSE merges copies).
  Value threadId();
  Value shuffleXor(Value x, int32_t offset);
  /// 2^x on the special-function unit (ex2.approx.ftz: exp2(-inf) = 0).
  Value exp2(Value x);
  /// 1/x on the special-function unit (rcp.approx.ftz).
  Value rcp(Value x);
  /// `index * scale + offset` as an i64 (byte offsets of descriptors).
  Value bytes(Value index, int64_t scale, int64_t offset);
  /// An inline-PTX statement with side effects (for the instructions MLIR
  /// has no op for); `resultType` null for none.
  Operation *inlineAsm(Type resultType, ValueRange operands, StringRef text,
                       StringRef constraints);
  /// The i64 address of the first element of a global or shared memref.
  Value address(Value memref);

  /// scf.if without results; `body` builds the then-region.
  void ifThen(Value cond, function_ref<void()> body);
  /// scf.if yielding what the branches return (same types).
  SmallVector<Value> ifElse(Value cond,
                            function_ref<SmallVector<Value>()> thenFn,
                            function_ref<SmallVector<Value>()> elseFn);

  /// The operand register of an mma from a vector<2 x elt> pair (f16 pairs
  /// stay vectors, bf16 pairs travel as i32).
  Value fragmentRegister(Value pair);
  /// Rounds two f32 into one operand register (cvt.rn.{bf16x2,f16x2}.f32).
  Value packPair(Value lo, Value hi);
  /// The f32 values of an accumulator struct.
  SmallVector<Value> unpack(Value accStruct);
  /// An LLVM struct of `n` f32 (an accumulator).
  Type accumulatorType(int64_t n);
};

/// Accumulators of m16n8 tiles hold 4 f32 per thread: rows lane/4 (+8),
/// columns 2*(lane%4) (+1). The accumulators of n-tiles 2kk and 2kk+1 of
/// m-tile `mi` are the A operand (m16k16) of k-step kk; `p` is laid out as
/// p[(mi * nTiles + nt) * 4 + k].
SmallVector<Value> packAccumulatorsAsA(KernelContext &k, ArrayRef<Value> p,
                                       int64_t nTiles, int64_t mi,
                                       int64_t kk);

/// An empty kernel at the end of `gpuModule`, with its block size known.
gpu::GPUFuncOp createKernel(gpu::GPUModuleOp gpuModule, Location loc,
                            StringRef name, ArrayRef<Type> argTypes,
                            int64_t blockThreads);

/// Lets the backend contract the float multiplies and adds of `func` into
/// FMAs (scaled scores minus the running maximum, rescales): they are
/// otherwise emitted as separately rounded mul.rn/add.rn.
void allowContraction(gpu::GPUFuncOp func);

} // namespace mlir::attn::kernel

#endif // ATTN_CONVERSION_ATTNTONVGPU_KERNELCONTEXT_H
