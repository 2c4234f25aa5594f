//===- MmaSync.cpp - warp-level mma.sync fragments --------------*- C++ -*-===//

#include "attn/Conversion/AttnToNVGPU/MmaSync.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::kernel;

MmaSyncFragments::MmaSyncFragments(KernelContext &k)
    : k(k),
      type(k.elt.isBF16() ? NVVM::MMATypes::bf16 : NVVM::MMATypes::f16) {}

SmallVector<Value> MmaSyncFragments::ldmatrix(Value smem, ValueRange indices,
                                              int numTiles, bool transpose) {
  auto fragType = VectorType::get({numTiles, 2}, k.elt);
  Value frag = nvgpu::LdMatrixOp::create(k.b, fragType, smem, indices,
                                         transpose, numTiles);
  SmallVector<Value> regs;
  for (int i = 0; i < numTiles; ++i)
    regs.push_back(k.fragmentRegister(
        vector::ExtractOp::create(k.b, frag, ArrayRef<int64_t>{i})));
  return regs;
}

SmallVector<Value> MmaSyncFragments::mma(ArrayRef<Value> a,
                                         ArrayRef<Value> bb,
                                         ArrayRef<Value> c) {
  Type f = k.f32Type();
  auto resType = LLVM::LLVMStructType::getLiteral(k.ctx, {f, f, f, f});
  Value d = NVVM::MmaOp::create(
      k.b, resType, a, bb, c, ArrayRef<int64_t>{16, 8, 16}, std::nullopt,
      std::nullopt, std::array<NVVM::MMATypes, 2>{type, type},
      std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                     NVVM::MMALayout::col});
  SmallVector<Value> out;
  for (int64_t i = 0; i < 4; ++i)
    out.push_back(LLVM::ExtractValueOp::create(k.b, d, i));
  return out;
}

void MmaSyncFragments::accumulatePair(MutableArrayRef<Value> acc,
                                      ArrayRef<SmallVector<Value>> aFrags,
                                      ArrayRef<Value> bFrags, int64_t tiles,
                                      int64_t first) {
  for (int64_t mi = 0, m = aFrags.size(); mi < m; ++mi) {
    for (int64_t half = 0; half < 2; ++half) {
      int64_t base = (mi * tiles + first + half) * 4;
      SmallVector<Value> c(acc.begin() + base, acc.begin() + base + 4);
      c = mma(aFrags[mi], {bFrags[2 * half], bFrags[2 * half + 1]}, c);
      std::copy(c.begin(), c.end(), acc.begin() + base);
    }
  }
}

SmallVector<Value> MmaSyncFragments::loadA(const SmemTile &a, Value warpRow0,
                                           int64_t mi, int64_t ks) {
  ScalarEmitter &e = k.e;
  Value lane = e.remI(k.threadId(), k.idx(32));
  Value row = e.addI(e.addI(warpRow0, k.idx(mi * 16)), e.remI(lane, k.idx(16)));
  Value col =
      e.addI(k.idx(ks * 16), e.mulI(e.divI(lane, k.idx(16)), k.idx(8)));
  return ldmatrix(a.view, a.index(k, k.idx(0), row, col), 4, false);
}

SmallVector<Value> MmaSyncFragments::productABt(
    function_ref<SmallVector<Value>(int64_t mi, int64_t ks)> aOf,
    const SmemTile &bTile, Value stage, int64_t mTiles, int64_t nTiles,
    int64_t kSteps) {
  ScalarEmitter &e = k.e;
  SmallVector<Value> s(mTiles * nTiles * 4, k.f32(0.0));
  Value lane = e.remI(k.threadId(), k.idx(32));
  // Matrices (nt, k-lo), (nt, k-hi), (nt+1, k-lo), (nt+1, k-hi) from lanes
  // 0-7, 8-15, 16-23, 24-31.
  Value rowInPair = e.addI(e.mulI(e.divI(lane, k.idx(16)), k.idx(8)),
                           e.remI(lane, k.idx(8)));
  Value colHalf =
      e.mulI(e.remI(e.divI(lane, k.idx(8)), k.idx(2)), k.idx(8));
  for (int64_t ks = 0; ks < kSteps; ++ks) {
    SmallVector<SmallVector<Value>> aFrags;
    for (int64_t mi = 0; mi < mTiles; ++mi)
      aFrags.push_back(aOf(mi, ks));
    Value col = e.addI(k.idx(ks * 16), colHalf);
    for (int64_t nt = 0; nt < nTiles; nt += 2) {
      Value row = e.addI(k.idx(nt * 8), rowInPair);
      SmallVector<Value> frags =
          ldmatrix(bTile.view, bTile.index(k, stage, row, col), 4, false);
      accumulatePair(s, aFrags, frags, nTiles, nt);
    }
  }
  return s;
}

void MmaSyncFragments::accumulatePV(MutableArrayRef<Value> o,
                                    ArrayRef<Value> p, const SmemTile &vTile,
                                    Value stage, int64_t mTiles,
                                    int64_t nTiles, int64_t dTiles) {
  accumulateAB(
      o,
      [&](int64_t mi, int64_t kk) {
        return packAccumulatorsAsA(k, p, nTiles, mi, kk);
      },
      vTile, stage, mTiles, nTiles / 2, dTiles);
}

void MmaSyncFragments::accumulateAB(
    MutableArrayRef<Value> o,
    function_ref<SmallVector<Value>(int64_t mi, int64_t kk)> aOf,
    const SmemTile &bTile, Value stage, int64_t mTiles, int64_t kSteps,
    int64_t dTiles, Value firstCol) {
  ScalarEmitter &e = k.e;
  Value lane = e.remI(k.threadId(), k.idx(32));
  // Matrices (k-lo, dt), (k-hi, dt), (k-lo, dt+1), (k-hi, dt+1).
  Value rowInStep = e.remI(lane, k.idx(16));
  Value colHalf = e.mulI(e.divI(lane, k.idx(16)), k.idx(8));
  if (firstCol)
    colHalf = e.addI(colHalf, firstCol);
  for (int64_t kk = 0; kk < kSteps; ++kk) {
    SmallVector<SmallVector<Value>> aFrags;
    for (int64_t mi = 0; mi < mTiles; ++mi)
      aFrags.push_back(aOf(mi, kk));
    Value row = e.addI(k.idx(kk * 16), rowInStep);
    for (int64_t dt = 0; dt < dTiles; dt += 2) {
      SmallVector<Value> frags = ldmatrix(
          bTile.view,
          bTile.index(k, stage, row, e.addI(k.idx(dt * 8), colHalf)), 4,
          true);
      accumulatePair(o, aFrags, frags, dTiles, dt);
    }
  }
}
