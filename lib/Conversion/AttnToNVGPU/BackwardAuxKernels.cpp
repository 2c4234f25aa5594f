//===- BackwardAuxKernels.cpp - around the main backward kernel -*- C++ -*-===//
//
// The preprocess kernel (one warp per query row: delta = rowsum(dO * O) -
// dlse, gamma |q|^2 for RBF scores, the sink logits' gradient, the count of
// visible keys of mean and scalable softmax), the
// postprocess kernel (dQ from its f32 workspace, less RBF's row-sum term),
// and the op's entry of the launch description: inputs, results (those
// accumulated by atomics zero-filled by the runtime), workspaces and the
// three launches in order.
//
//===----------------------------------------------------------------------===//

#include "attn/Conversion/AttnToNVGPU/BackwardKernel.h"

#include "attn/Conversion/AttnToNVGPU/KernelABI.h"
#include "attn/Conversion/AttnToNVGPU/KernelContext.h"
#include "attn/Conversion/AttnToNVGPU/RegionPeepholes.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "llvm/Support/ScopedPrinter.h"

#include <cmath>
#include <tuple>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::kernel;

using P = arith::CmpIPredicate;

namespace {

constexpr int64_t kRowsPerPreprocessBlock = 4;
constexpr int64_t kPostprocessThreads = 256;

/// A kernel under construction: its signature, builder and context.
struct AuxKernel {
  KernelSignature sig;
  std::unique_ptr<ImplicitLocOpBuilder> b;
  std::unique_ptr<KernelContext> kc;

  /// Creates the kernel from `sig` and sets the builders at its entry.
  void begin(gpu::GPUModuleOp gpuModule, Location loc, StringRef name,
             Type elt, int64_t threads) {
    KernelBody body = openKernel(gpuModule, loc, name, sig, elt, threads);
    b = std::move(body.b);
    kc = std::move(body.kc);
  }
  Value load(StringRef buffer, Value index) {
    Value x = memref::LoadOp::create(*b, sig.lookup(buffer), ValueRange{index});
    if (!x.getType().isF32())
      x = arith::ExtFOp::create(*b, b->getF32Type(), x);
    return x;
  }
  /// blockIdx.x * threads + threadIdx.x: one element per thread.
  Value globalThread() {
    return kc->e.addI(
        kc->e.mulI(gpu::BlockIdOp::create(*b, gpu::Dimension::x),
                   kc->idx(kc->threads)),
        kc->threadId());
  }
  /// sum over the warp of f(d) for d = lane, lane + 32, ... < n.
  Value warpSum(Value lane, int64_t n, function_ref<Value(Value d)> f) {
    return warpSum(lane, kc->idx(0), kc->idx(n), f);
  }
  /// sum over the warp of f(d) for d = lo + lane, lo + lane + 32, ... < hi:
  /// `partials` sums per lane, each of every partials-th of its elements
  /// (independent loads in flight), added pairwise, then the xor shuffles;
  /// a fixed order whatever the schedule.
  Value warpSum(Value lane, Value lo, Value hi, function_ref<Value(Value d)> f,
                int64_t partials = 1) {
    ScalarEmitter &e = kc->e;
    SmallVector<Value> init(partials, kc->f32(0.0));
    auto loop = scf::ForOp::create(*b, e.addI(lo, lane), hi,
                                   kc->idx(32 * partials), init);
    {
      OpBuilder::InsertionGuard guard(*b);
      b->setInsertionPointToStart(loop.getBody());
      SmallVector<Value> next;
      for (int64_t p = 0; p < partials; ++p) {
        Value d = loop.getInductionVar(), x;
        if (p == 0) {
          x = f(d);
        } else {
          d = e.addI(d, kc->idx(32 * p));
          x = e.select(e.cmpI(P::slt, d, hi),
                       f(e.minI(d, e.subI(hi, kc->idx(1)))), kc->f32(0.0));
        }
        next.push_back(e.add(loop.getRegionIterArgs()[p], x));
      }
      scf::YieldOp::create(*b, next);
    }
    SmallVector<Value> sums(loop.getResults());
    while (sums.size() > 1) {
      SmallVector<Value> pairs;
      for (size_t i = 0; i + 1 < sums.size(); i += 2)
        pairs.push_back(e.add(sums[i], sums[i + 1]));
      if (sums.size() % 2)
        pairs.push_back(sums.back());
      sums = pairs;
    }
    Value sum = sums.front();
    for (int32_t off : {16, 8, 4, 2, 1})
      sum = e.add(sum, kc->shuffleXor(sum, off));
    return sum;
  }
};

} // namespace

/// Whether `op` needs the preprocess kernel: delta for the softmax family,
/// |q|^2 for RBF scores, the visible-key counts of mean and scalable
/// softmax.
static bool needsPreprocess(const BackwardFacts &f) {
  return f.softmax || f.rbf || f.countsKeys;
}

/// The keys query (b, h, i) sees, sink rows included, summed over the warp
/// (an f32, exact below 2^24): the lanes split the keys of emitKVRange's
/// intervals and evaluate the masks on each.
static Value countVisibleKeys(AuxKernel &k, const AttnOpInfo &info, Value b,
                              Value h, Value i, Value lane) {
  ScalarEmitter &e = k.kc->e;
  KVRange range = emitKVRange(e, info, i, e.addI(i, k.kc->idx(1)));
  if (masksAreIntervals(info.spec)) {
    // The intervals are the query's visible keys: |main| + |sinks \ main|.
    auto length = [&](Value lo, Value hi) {
      return e.maxI(e.subI(hi, lo), k.kc->idx(0));
    };
    Value n = length(range.main.lo, range.main.hi);
    if (range.sinks)
      n = e.addI(n, e.subI(length(range.sinks->lo, range.sinks->hi),
                           length(e.maxI(range.main.lo, range.sinks->lo),
                                  e.minI(range.main.hi, range.sinks->hi))));
    return e.add(e.indexToF32(info.numSinkRows), e.indexToF32(n));
  }
  auto count = [&](Value lo, Value hi) {
    return k.warpSum(lane, lo, hi, [&](Value j) {
      return e.select(emitVisible(e, info, b, h, i, j), k.kc->f32(1.0),
                      k.kc->f32(0.0));
    });
  };
  Value n = e.indexToF32(info.numSinkRows);
  Value mainLo = range.main.lo;
  if (range.sinks) {
    n = e.add(n, count(k.kc->idx(0), range.sinks->hi));
    mainLo = e.maxI(mainLo, range.sinks->hi);
  }
  return e.add(n, count(mainLo, range.main.hi));
}

/// The row factor of mean (1 / n) or scalable softmax (length_scale *
/// log n) from the count n; 0 for a row that sees nothing.
static Value rowFactorOf(ScalarEmitter &e, const BackwardFacts &f, Value n) {
  Value zero = e.f32(0.0);
  Value factor = f.norm == Normalization::mean
                     ? e.div(e.f32(1.0), n)
                     : e.mul(e.f32(f.lengthScale), e.log(n));
  return e.select(e.cmpF(arith::CmpFPredicate::OGT, n, zero), factor, zero);
}

static DictionaryAttr buildPreprocessKernel(AttentionGradOp op,
                                            const BackwardFacts &f,
                                            bool deterministic,
                                            gpu::GPUModuleOp gpuModule,
                                            StringRef name) {
  Type f32 = Float32Type::get(op.getContext());
  AuxKernel k;
  if (f.softmax) {
    k.sig.addBuffer("o", f.elt);
    k.sig.addBuffer("do", f.elt);
    k.sig.addBuffer("lse", f32);
    if (f.gradLse)
      k.sig.addBuffer("dlse", f32);
    if (f.sinkLogits)
      k.sig.addBuffer("sink_logits", f32);
    k.sig.addBuffer("delta", f32);
    if (f.sinkLogits)
      k.sig.addBuffer(deterministic ? "d_sink_logit_rows" : "d_sink_logits",
                      f32);
  }
  if (f.rbf) {
    k.sig.addBuffer("q", f.elt);
    k.sig.addBuffer("q_norms", f32);
  }
  if (f.countsKeys) {
    for (auto [n, c] : llvm::enumerate(op.getCaptures()))
      k.sig.addBuffer("capture" + std::to_string(n),
                      cast<RankedTensorType>(c.getType()).getElementType());
    k.sig.addBuffer("row_factor", f32);
  }
  k.sig.addSizes();
  const int64_t threads = 32 * kRowsPerPreprocessBlock;
  k.begin(gpuModule, op.getLoc(), name, f.elt, threads);
  KernelContext &kc = *k.kc;
  ScalarEmitter &e = kc.e;
  // The masks' visibility, for the counts.
  SmallVector<CaptureBuffer> captures;
  AttnOpInfo info;
  if (f.countsKeys) {
    for (auto [n, c] : llvm::enumerate(op.getCaptures()))
      captures.push_back({k.sig.lookup("capture" + std::to_string(n)),
                          cast<RankedTensorType>(c.getType())});
    bindKernelOpInfo(kc, cast<VariantSpecOpInterface>(op.getOperation()),
                     k.sig.sizes(), f.elt, f.dqk, f.dv, f.scale, f.gamma,
                     captures, info);
  }
  Value tid = kc.threadId();
  Value lane = e.remI(tid, kc.idx(32));
  Value i = e.addI(
      e.mulI(gpu::BlockIdOp::create(*k.b, gpu::Dimension::x),
             kc.idx(kRowsPerPreprocessBlock)),
      e.divI(tid, kc.idx(32)));
  Value h = gpu::BlockIdOp::create(*k.b, gpu::Dimension::y);
  Value bIdx = gpu::BlockIdOp::create(*k.b, gpu::Dimension::z);
  Value sq = k.sig.lookup("Sq");
  kc.ifThen(e.cmpI(P::slt, i, sq), [&] {
    Value row = e.addI(
        e.mulI(e.addI(e.mulI(bIdx, k.sig.lookup("Hq")), h), sq), i);
    Value first = kc.idx(0);
    if (f.softmax) {
      Value base = e.mulI(row, kc.idx(f.dv));
      Value d = k.warpSum(lane, f.dv, [&](Value c) {
        Value at = e.addI(base, c);
        return e.mul(k.load("o", at), k.load("do", at));
      });
      Value delta = f.gradLse ? e.sub(d, k.load("dlse", row)) : d;
      kc.ifThen(e.cmpI(P::eq, lane, first), [&] {
        memref::StoreOp::create(*k.b, delta, k.sig.lookup("delta"),
                                ValueRange{row});
        if (!f.sinkLogits)
          return;
        // dc_h += p_c (dlse - D) = -p_c delta, p_c = exp(c_h - lse); a row
        // that saw nothing has p_c = 1 by its lse = c_h.
        Value lse = k.load("lse", row);
        Value c = k.load("sink_logits", h);
        Value pc = e.exp(e.sub(c, lse));
        Value term = e.sub(kc.f32(0.0), e.mul(pc, delta));
        // Deterministic: each row's term, summed in a fixed order by the
        // sink-logits kernel; else added here.
        if (deterministic)
          memref::StoreOp::create(*k.b, term,
                                  k.sig.lookup("d_sink_logit_rows"),
                                  ValueRange{row});
        else
          memref::AtomicRMWOp::create(*k.b, arith::AtomicRMWKind::addf, term,
                                      k.sig.lookup("d_sink_logits"),
                                      ValueRange{h});
      });
    }
    if (f.countsKeys) {
      Value factor =
          rowFactorOf(e, f, countVisibleKeys(k, info, bIdx, h, i, lane));
      kc.ifThen(e.cmpI(P::eq, lane, first), [&] {
        memref::StoreOp::create(*k.b, factor, k.sig.lookup("row_factor"),
                                ValueRange{row});
      });
    }
    if (f.rbf) {
      Value base = e.mulI(row, kc.idx(f.dqk));
      Value n = k.warpSum(lane, f.dqk, [&](Value c) {
        Value x = k.load("q", e.addI(base, c));
        return e.mul(x, x);
      });
      kc.ifThen(e.cmpI(P::eq, lane, first), [&] {
        memref::StoreOp::create(*k.b, e.mul(kc.f32(f.gamma), n),
                                k.sig.lookup("q_norms"), ValueRange{row});
      });
    }
  });
  return describeLaunch(
      op.getContext(), name,
      {ceilDivExpr("Sq", kRowsPerPreprocessBlock), "Hq", "B"}, threads, 0,
      k.sig);
}

static DictionaryAttr buildPostprocessKernel(AttentionGradOp op,
                                             const BackwardFacts &f,
                                             KernelConfigAttr config,
                                             int64_t dqRow,
                                             gpu::GPUModuleOp gpuModule,
                                             StringRef name) {
  // Deterministic RBF: the row sums are in the workspace rows' padding
  // columns dqk .. dqk + warps (one per warp of the main kernel).
  const bool sumsInPadding = f.rbf && config.getDeterministic();
  Type f32 = Float32Type::get(op.getContext());
  AuxKernel k;
  k.sig.addBuffer("dq_accum", f32);
  if (f.rbf) {
    k.sig.addBuffer("q", f.elt);
    if (!sumsInPadding)
      k.sig.addBuffer("dq_row_sums", f32);
  }
  k.sig.addBuffer("dq", f.elt);
  k.sig.addSizes();
  k.begin(gpuModule, op.getLoc(), name, f.elt, kPostprocessThreads);
  KernelContext &kc = *k.kc;
  ScalarEmitter &e = kc.e;
  Value n = e.mulI(
      e.mulI(e.mulI(k.sig.lookup("B"), k.sig.lookup("Hq")), k.sig.lookup("Sq")),
      kc.idx(f.dqk));
  Value at = k.globalThread();
  kc.ifThen(e.cmpI(P::slt, at, n), [&] {
    // The workspace's rows are dqRow elements apart (padded past dqk).
    Value row = e.divI(at, kc.idx(f.dqk));
    Value from = dqRow == f.dqk
                     ? at
                     : e.addI(e.mulI(row, kc.idx(dqRow)),
                              e.remI(at, kc.idx(f.dqk)));
    Value x = k.load("dq_accum", from);
    if (f.rbf) {
      // dq_i = sum_j 2 gamma dS0_ij k_j - q_i sum_j 2 gamma dS0_ij.
      Value qx = k.load("q", at), sum;
      if (sumsInPadding) {
        // In the warps' order, as the main kernel's columns.
        sum = kc.f32(0.0);
        Value base = e.addI(e.mulI(row, kc.idx(dqRow)), kc.idx(f.dqk));
        for (int64_t w = 0; w < config.getWarps(); ++w)
          sum = e.add(sum, k.load("dq_accum", e.addI(base, kc.idx(w))));
      } else {
        sum = k.load("dq_row_sums", row);
      }
      x = e.sub(x, e.mul(sum, qx));
    }
    memref::StoreOp::create(*k.b, arith::TruncFOp::create(*k.b, f.elt, x),
                            k.sig.lookup("dq"), ValueRange{at});
  });
  return describeLaunch(
      op.getContext(), name,
      {ceilDivExpr("B * Hq * Sq * " + std::to_string(f.dqk),
                   kPostprocessThreads),
       "1", "1"},
      kPostprocessThreads, 0, k.sig);
}

/// Deterministic: the sink logits' gradient of head h (blockIdx.x), the
/// sum of the rows' terms over (b, i) in a fixed order (one warp,
/// AuxKernel::warpSum with four partial sums per lane).
static DictionaryAttr buildSinkLogitsKernel(AttentionGradOp op,
                                            const BackwardFacts &f,
                                            gpu::GPUModuleOp gpuModule,
                                            StringRef name) {
  Type f32 = Float32Type::get(op.getContext());
  AuxKernel k;
  k.sig.addBuffer("d_sink_logit_rows", f32);
  k.sig.addBuffer("d_sink_logits", f32);
  k.sig.addSizes();
  k.begin(gpuModule, op.getLoc(), name, f.elt, 32);
  KernelContext &kc = *k.kc;
  ScalarEmitter &e = kc.e;
  Value h = gpu::BlockIdOp::create(*k.b, gpu::Dimension::x);
  Value lane = kc.threadId();
  Value sq = k.sig.lookup("Sq"), hq = k.sig.lookup("Hq");
  // Row (b, h, i) of the [B, Hq, Sq] terms for r = b Sq + i.
  Value sum = k.warpSum(
      lane, kc.idx(0), e.mulI(k.sig.lookup("B"), sq),
      [&](Value r) {
        Value row = e.addI(e.mulI(e.addI(e.mulI(e.divI(r, sq), hq), h), sq),
                           e.remI(r, sq));
        return k.load("d_sink_logit_rows", row);
      },
      /*partials=*/4);
  kc.ifThen(e.cmpI(P::eq, lane, kc.idx(0)), [&] {
    memref::StoreOp::create(*k.b, sum, k.sig.lookup("d_sink_logits"),
                            ValueRange{h});
  });
  return describeLaunch(op.getContext(), name, {"Hq", "1", "1"}, 32, 0,
                        k.sig);
}

/// The sink rows' gradients from their f32 sums over the batch.
static DictionaryAttr buildSinkRowsKernel(AttentionGradOp op,
                                          const BackwardFacts &f,
                                          gpu::GPUModuleOp gpuModule,
                                          StringRef name) {
  Type f32 = Float32Type::get(op.getContext());
  AuxKernel k;
  k.sig.addBuffer("d_sink_key_accum", f32);
  k.sig.addBuffer("d_sink_value_accum", f32);
  k.sig.addBuffer("d_sink_key", f.elt);
  k.sig.addBuffer("d_sink_value", f.elt);
  k.sig.addSizes();
  k.begin(gpuModule, op.getLoc(), name, f.elt, kPostprocessThreads);
  KernelContext &kc = *k.kc;
  ScalarEmitter &e = kc.e;
  Value rows = e.mulI(k.sig.lookup("Hkv"), k.sig.lookup("Ns"));
  Value at = k.globalThread();
  for (auto [from, to, d] :
       {std::tuple("d_sink_key_accum", "d_sink_key", f.dqk),
        std::tuple("d_sink_value_accum", "d_sink_value", f.dv)})
    kc.ifThen(e.cmpI(P::slt, at, e.mulI(rows, kc.idx(d))), [&] {
      memref::StoreOp::create(
          *k.b, arith::TruncFOp::create(*k.b, f.elt, k.load(from, at)),
          k.sig.lookup(to), ValueRange{at});
    });
  return describeLaunch(
      op.getContext(), name,
      {ceilDivExpr("Hkv * Ns * " + std::to_string(std::max(f.dqk, f.dv)),
                   kPostprocessThreads),
       "1", "1"},
      kPostprocessThreads, 0, k.sig);
}

/// The buffers of the entry: inputs, then results (op order), then
/// workspaces; results and workspaces accumulated by atomics are zeroed.
/// The dQ workspace has rows of `dqRow` elements.
static void describeBuffers(AttentionGradOp op, const BackwardFacts &f,
                            KernelConfigAttr config, int64_t dqRow,
                            SmallVector<Attribute> &params,
                            SmallVector<Attribute> &results,
                            SmallVector<Attribute> &workspaces) {
  MLIRContext *ctx = op.getContext();
  Builder bd(ctx);
  Type f32 = bd.getF32Type();
  auto withZero = [&](DictionaryAttr d, bool zero) {
    SmallVector<NamedAttribute> entries(d.getValue());
    entries.push_back(bd.getNamedAttr("zero", bd.getBoolAttr(zero)));
    return DictionaryAttr::get(ctx, entries);
  };
  auto param = [&](StringRef n, Type t) {
    params.push_back(describeBuffer(ctx, n, t));
  };
  auto result = [&](StringRef n, Type t, StringRef like, bool zero) {
    SmallVector<NamedAttribute> entries(
        withZero(describeBuffer(ctx, n, t), zero).getValue());
    entries.push_back(bd.getNamedAttr("like", bd.getStringAttr(like)));
    results.push_back(DictionaryAttr::get(ctx, entries));
  };
  auto workspace = [&](StringRef n, StringRef elements, bool zero,
                       Type t = Type()) {
    workspaces.push_back(
        withZero(describeBuffer(ctx, n, t ? t : f32, elements), zero));
  };
  for (StringRef n : {"q", "k", "v", "o", "do"})
    param(n, f.elt);
  if (op.getLse())
    param("lse", f32);
  if (op.getGradLse())
    param("dlse", f32);
  if (f.sinkLogits)
    param("sink_logits", f32);
  if (op.getSinkKey()) {
    param("sink_key", f.elt);
    param("sink_value", f.elt);
  }
  for (auto [i, c] : llvm::enumerate(op.getCaptures()))
    params.push_back(describeCapture(ctx, "capture" + std::to_string(i),
                                     cast<RankedTensorType>(c.getType())));
  result("dq", f.elt, "q", false);
  result("dk", f.elt, "k", false);
  result("dv", f.elt, "v", false);
  if (f.sinkLogits)
    result("d_sink_logits", f32, "sink_logits", true);
  if (op.getSinkKey()) {
    result("d_sink_key", f.elt, "sink_key", false);
    result("d_sink_value", f.elt, "sink_value", false);
  }
  for (auto [i, c] : llvm::enumerate(op.getCaptures()))
    if (AttentionGradOp::isDifferentiableCapture(c.getType()))
      result("d_capture" + std::to_string(i), f32,
             "capture" + std::to_string(i), true);
  std::string rows = "B * Hq * Sq";
  workspace("dq_accum", rows + " * " + std::to_string(dqRow), true);
  if (f.softmax)
    workspace("delta", rows, false);
  if (f.sinkLogits && config.getDeterministic())
    workspace("d_sink_logit_rows", rows, false);
  if (f.rbf) {
    workspace("q_norms", rows, false);
    workspace("dq_row_sums", rows, true);
  }
  if (f.countsKeys)
    workspace("row_factor", rows, false);
  // The deterministic order's turn counters, one per query tile.
  if (config.getDeterministic())
    workspace("dq_turns",
              "B * Hq * " + ceilDivExpr("Sq", config.getBlockM()), true,
              bd.getI32Type());
  if (op.getSinkKey()) {
    workspace("d_sink_key_accum", "Hkv * Ns * " + std::to_string(f.dqk),
              true);
    workspace("d_sink_value_accum", "Hkv * Ns * " + std::to_string(f.dv),
              true);
  }
}

FailureOr<DictionaryAttr>
kernel::buildBackwardKernels(AttentionGradOp op, KernelConfigAttr config,
                             gpu::GPUModuleOp gpuModule, StringRef name) {
  BackwardFacts f = BackwardFacts::get(op);
  SmallVector<Attribute> launches;
  if (needsPreprocess(f))
    launches.push_back(buildPreprocessKernel(op, f,
                                             config.getDeterministic(),
                                             gpuModule,
                                             (name + "_pre").str()));
  FailureOr<DictionaryAttr> main =
      buildBackwardMainKernel(op, config, gpuModule, name);
  if (failed(main))
    return failure();
  launches.push_back(*main);
  if (f.sinkLogits && config.getDeterministic())
    launches.push_back(buildSinkLogitsKernel(op, f, gpuModule,
                                             (name + "_sink_logits").str()));
  launches.push_back(
      buildPostprocessKernel(op, f, config,
                             dqAccumRowElements(f, config.getMma()),
                             gpuModule, (name + "_post").str()));
  if (op.getSinkKey())
    launches.push_back(
        buildSinkRowsKernel(op, f, gpuModule, (name + "_sinks").str()));

  MLIRContext *ctx = op.getContext();
  Builder bd(ctx);
  SmallVector<Attribute> params, results, workspaces;
  describeBuffers(op, f, config, dqAccumRowElements(f, config.getMma()),
                  params,
                  results, workspaces);
  // The runtime reads every buffer a launch names from params, results or
  // workspaces: results are listed among the params too.
  params.append(results.begin(), results.end());
  SmallVector<Attribute> resultNames;
  for (Attribute r : results)
    resultNames.push_back(cast<DictionaryAttr>(r).get("name"));
  return bd.getDictionaryAttr({
      bd.getNamedAttr("name", bd.getStringAttr(name)),
      bd.getNamedAttr("kind", bd.getStringAttr("backward")),
      bd.getNamedAttr("dtype", bd.getStringAttr(llvm::to_string(f.elt))),
      bd.getNamedAttr("head_dim_qk", bd.getI64IntegerAttr(f.dqk)),
      bd.getNamedAttr("head_dim_v", bd.getI64IntegerAttr(f.dv)),
      bd.getNamedAttr("has_lse_result", bd.getBoolAttr(false)),
      bd.getNamedAttr("config", describeKernelConfig(config)),
      bd.getNamedAttr("params", bd.getArrayAttr(params)),
      bd.getNamedAttr("results", bd.getArrayAttr(resultNames)),
      bd.getNamedAttr("workspaces", bd.getArrayAttr(workspaces)),
      bd.getNamedAttr("launches", bd.getArrayAttr(launches)),
  });
}
