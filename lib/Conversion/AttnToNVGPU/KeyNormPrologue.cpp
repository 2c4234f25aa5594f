//===- KeyNormPrologue.cpp - RBF key norms ----------------------*- C++ -*-===//

#include "attn/Conversion/AttnToNVGPU/KeyNormPrologue.h"

#include "attn/Conversion/AttnToNVGPU/CopyRing.h"
#include "attn/Conversion/AttnToNVGPU/KernelABI.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::kernel;

using P = arith::CmpIPredicate;

std::string kernel::keyNormWorkspaceElements(int64_t blockN, bool parts) {
  return "B * Hkv * " + ceilDivExpr("Sk", blockN) + " * " +
         std::to_string(blockN * (parts ? 8 : 1));
}

/// factor * |k_row|^2 of the `headDim` elements of row `row` of `keys`.
static Value squaredNorm(KernelContext &k, Value keys, Value row,
                         int64_t headDim) {
  ScalarEmitter &e = k.e;
  Type f32 = k.f32Type();
  return e.forLoop(
      k.idx(0), k.idx(headDim / 8), {k.f32(0.0)},
      [&](Value c, ValueRange a) -> SmallVector<Value> {
        Value at = e.addI(e.mulI(row, k.idx(headDim)), e.mulI(c, k.idx(8)));
        Value v = vector::LoadOp::create(k.b, VectorType::get({8}, k.elt),
                                         keys, ValueRange{at}, false,
                                         llvm::MaybeAlign(16));
        Value f = arith::ExtFOp::create(k.b, VectorType::get({8}, f32), v);
        Value sq = arith::MulFOp::create(k.b, f, f);
        return {e.add(a[0], vector::ReductionOp::create(
                                k.b, vector::CombiningKind::ADD, sq))};
      })[0];
}

/// Three parts hi + mid + lo = norm to f32 precision, then zeros: one
/// 16-byte row per key.
static void storeNormParts(KernelContext &k, Value norm, Value out,
                           Value at) {
  SmallVector<Value> row;
  Value rest = norm;
  for (int i = 0; i < 3; ++i) {
    Value part = arith::TruncFOp::create(k.b, k.elt, rest);
    row.push_back(part);
    rest = k.e.sub(rest, arith::ExtFOp::create(k.b, k.f32Type(), part));
  }
  Value zeroElt =
      arith::ConstantOp::create(k.b, k.b.getFloatAttr(k.elt, 0.0));
  row.append(5, zeroElt);
  Value v = vector::FromElementsOp::create(k.b, VectorType::get({8}, k.elt),
                                           row);
  vector::StoreOp::create(k.b, v, out, ValueRange{k.e.mulI(at, k.idx(8))},
                          false, llvm::MaybeAlign(16));
}

DictionaryAttr kernel::buildKeyNormKernel(gpu::GPUModuleOp gpuModule,
                                          Location loc, StringRef name,
                                          Type elementType, int64_t headDim,
                                          int64_t blockN, double factor,
                                          bool parts) {
  MLIRContext *ctx = gpuModule.getContext();
  KernelSignature sig;
  sig.addBuffer("k", elementType);
  sig.addBuffer("key_norms", parts ? elementType : Float32Type::get(ctx));
  for (StringRef size : {"B", "Hkv", "Sk"})
    sig.addSize(size);
  std::string fnName = (name + "_key_norms").str();
  gpu::GPUFuncOp func =
      createKernel(gpuModule, loc, fnName, sig.types(ctx), blockN);
  Block &entry = func.getBody().front();
  sig.bind(entry);
  ImplicitLocOpBuilder kb(loc, ctx);
  kb.setInsertionPointToStart(&entry);
  gpu::ReturnOp::create(kb);
  kb.setInsertionPointToStart(&entry);
  KernelContext k(kb, elementType, blockN);
  ScalarEmitter &e = k.e;
  Value kvHeads = sig.lookup("Hkv"), kvLen = sig.lookup("Sk");
  Value j = e.addI(e.mulI(gpu::BlockIdOp::create(kb, gpu::Dimension::x),
                          k.idx(blockN)),
                   k.threadId());
  Value head =
      e.addI(e.mulI(gpu::BlockIdOp::create(kb, gpu::Dimension::z), kvHeads),
             gpu::BlockIdOp::create(kb, gpu::Dimension::y));
  Value padded = e.mulI(
      e.divI(e.addI(kvLen, k.idx(blockN - 1)), k.idx(blockN)), k.idx(blockN));
  Value inRange = e.cmpI(P::slt, j, kvLen);
  // Rows past Sk (the padding) get 0 from a clamped, valid row.
  Value row = e.addI(e.mulI(head, kvLen), e.minI(j, e.subI(kvLen, k.idx(1))));
  Value sum = squaredNorm(k, sig.lookup("k"), row, headDim);
  Value norm = e.select(inRange, e.mul(k.f32(factor), sum), k.f32(0.0));
  Value at = e.addI(e.mulI(head, padded), j);
  if (parts)
    storeNormParts(k, norm, sig.lookup("key_norms"), at);
  else
    memref::StoreOp::create(kb, norm, sig.lookup("key_norms"), ValueRange{at});
  return describeLaunch(
      ctx, fnName, {ceilDivExpr("Sk", blockN), "Hkv", "B"}, blockN,
      /*sharedMemoryBytes=*/0, sig);
}

void kernel::loadTileKeyNorms(KernelContext &k, Value norms,
                              const SmemTile &dst, Value stage,
                              Value firstKey) {
  ScalarEmitter &e = k.e;
  Value tid = k.threadId();
  if (dst.layout == SmemLayout::CoreMatrix) {
    // 16 bytes of parts per key, one key per thread.
    for (int64_t first = 0; first < dst.rows; first += k.threads) {
      Value key = e.addI(tid, k.idx(first));
      k.ifThen(e.cmpI(P::slt, key, k.idx(dst.rows)), [&] {
        copyChunkAsync(k, norms, e.mulI(e.addI(firstKey, key), k.idx(8)),
                       dst.view, {stage, dst.coreMatrixOffset(k, key, 0)}, 8);
      });
    }
    return;
  }
  // f32 norms: 16 bytes (4 keys) per thread.
  k.ifThen(e.cmpI(P::slt, tid, k.idx(dst.rows / 4)), [&] {
    Value col = e.mulI(tid, k.idx(4));
    copyChunkAsync(k, norms, e.addI(firstKey, col), dst.view, {stage, col},
                   4);
  });
}

void kernel::writeNormKStepConstants(KernelContext &k, const SmemTile &normsQ,
                                     const SmemTile &normsK) {
  // Scalar stores: vector stores to workgroup memrefs trip a spurious
  // memory-space diagnostic in convert-nvgpu-to-nvvm.
  ScalarEmitter &e = k.e;
  auto eltConst = [&](double v) {
    return arith::ConstantOp::create(k.b, k.b.getFloatAttr(k.elt, v))
        .getResult();
  };
  Value minusOne = eltConst(-1.0), zeroElt = eltConst(0.0);
  auto store8 = [&](Value mem, SmallVector<Value> prefix, Value at,
                    int64_t negatives) {
    for (int64_t i = 0; i < 8; ++i) {
      SmallVector<Value> indices(prefix);
      indices.push_back(e.addI(at, k.idx(i)));
      memref::StoreOp::create(k.b, i < negatives ? minusOne : zeroElt, mem,
                              indices);
    }
  };
  Value tid = k.threadId();
  auto forRows = [&](int64_t rows, function_ref<void(Value)> fn) {
    for (int64_t first = 0; first < rows; first += k.threads) {
      Value row = e.addI(tid, k.idx(first));
      k.ifThen(e.cmpI(P::slt, row, k.idx(rows)), [&] { fn(row); });
    }
  };
  forRows(normsQ.rows, [&](Value row) {
    store8(normsQ.view, {}, normsQ.coreMatrixOffset(k, row, 0), 3);
    store8(normsQ.view, {}, normsQ.coreMatrixOffset(k, row, 1), 0);
  });
  forRows(normsK.rows, [&](Value row) {
    for (int64_t st = 0; st < normsK.stages; ++st)
      store8(normsK.view, {k.idx(st)}, normsK.coreMatrixOffset(k, row, 1), 0);
  });
}

void kernel::computeTileKeyNorms(KernelContext &k, const SmemTile &keys,
                                 const SmemTile &dst, Value stage,
                                 double factor) {
  ScalarEmitter &e = k.e;
  Type f32 = k.f32Type();
  Value tid = k.threadId();
  const int64_t rows = keys.rows, quarter = keys.cols / 4;
  for (int64_t first = 0; first < rows; first += k.threads / 4) {
    Value key = e.addI(k.idx(first), e.divI(tid, k.idx(4)));
    // With more lanes than keys in the last round, the surplus lanes read a
    // valid row (the last) and store nothing.
    Value row = e.minI(key, k.idx(rows - 1));
    Value part = e.remI(tid, k.idx(4));
    // Scalar loads (once per kernel, for the sink tile; vector loads from
    // workgroup memrefs trip a spurious memory-space diagnostic in
    // convert-nvgpu-to-nvvm).
    Value sq = e.forLoop(
        k.idx(0), k.idx(quarter), {k.f32(0.0)},
        [&](Value c, ValueRange a) -> SmallVector<Value> {
          Value col = e.addI(e.mulI(part, k.idx(quarter)), c);
          Value x = memref::LoadOp::create(k.b, keys.view,
                                           keys.index(k, stage, row, col));
          x = arith::ExtFOp::create(k.b, f32, x);
          return {e.add(a[0], e.mul(x, x))};
        })[0];
    sq = e.add(sq, k.shuffleXor(sq, 1));
    sq = e.add(sq, k.shuffleXor(sq, 2));
    Value store = e.cmpI(P::eq, part, k.idx(0));
    if (first + k.threads / 4 > rows)
      store = e.andI(store, e.cmpI(P::slt, key, k.idx(rows)));
    k.ifThen(store, [&] {
      memref::StoreOp::create(k.b, e.mul(k.f32(factor), sq), dst.view,
                              ValueRange{stage, key});
    });
  }
  gpu::BarrierOp::create(k.b);
}

Value kernel::scaledRowNorm(KernelContext &k, const SmemTile &tile, Value row,
                            int64_t cols, double factor) {
  ScalarEmitter &e = k.e;
  Value sq = e.forLoop(k.idx(0), k.idx(cols), {k.f32(0.0)},
                       [&](Value d, ValueRange a) -> SmallVector<Value> {
                         Value x = memref::LoadOp::create(
                             k.b, tile.view, tile.index(k, k.idx(0), row, d));
                         x = arith::ExtFOp::create(k.b, k.f32Type(), x);
                         return {e.add(a[0], e.mul(x, x))};
                       })[0];
  return e.mul(k.f32(factor), sq);
}
