//===- OnlineSoftmax.h - the online normalization, written once -*- C++ -*-===//
//
// The per-row arithmetic of the tiled online algorithm (FlashAttention's
// online softmax and its relatives), for every normalization kind: the
// initial state from sink logits and softmax1's +1, the weight of one
// visible element, the update of the running maximum and normalizer when a
// tile arrives, the output scale and the LSE. Each lowering calls it on its
// own values: AttnToFlash on scalars (natural exp), the GPU kernels on the
// accumulator elements of a thread (exp2 domain, ex2.approx). Reductions
// over a tile (the tile's maximum and sum), the layout of the state and the
// loops stay with the caller. AttnToLoops is the literal definition and
// does not use it.
//
// Domains: with `log2Domain` the row maxima, shifts and softmax logits are
// in log2 units (a natural-unit logit x enters as x * log2(e)) and
// exponentials are exp2; the LSE is converted back to natural units. The
// weights of the other kinds take natural-unit scores in both domains.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_ATTNCOMMON_ONLINESOFTMAX_H
#define ATTN_CONVERSION_ATTNCOMMON_ONLINESOFTMAX_H

#include "attn/Conversion/AttnCommon/AttnCodegen.h"

#include <functional>

namespace mlir::attn {

/// The elementary functions the builder emits, as f32 -> f32 callbacks.
/// Empty members default to math.exp, math.exp2, math.log and `1 / x`
/// (arith.divf). `rcp` is used per element (sigmoid's denominator); the
/// once-per-row output scale is always an exact division.
struct OnlineSoftmaxMath {
  std::function<Value(Value)> exp, exp2, log, rcp;
};

/// What the builder needs of the normalization.
struct OnlineSoftmaxOptions {
  Normalization kind = Normalization::softmax;
  double sigmoidBias = 0.0; ///< `bias` of normalize<sigmoid>.
  double lengthScale = 1.0; ///< lambda of scalable softmax (lambda log n).
  /// Maxima, shifts and softmax logits in log2 units; exponentials exp2.
  bool log2Domain = false;
  OnlineSoftmaxMath math;

  /// The kind and parameters of `spec` (natural domain, default math).
  static OnlineSoftmaxOptions get(VariantSpecOpInterface spec);
};

/// The running statistics of one row: maximum logit m and normalizer l
/// (for mean, the count of visible keys).
struct RowStats {
  Value max, norm;
};

/// A row's maximum after a tile: the new maximum, the shift the tile's
/// logits are exponentiated against (the maximum, or 0 while it is -inf, so
/// that exp(-inf - shift) = 0 rather than NaN) and alpha = exp(mOld - shift),
/// the factor of the old normalizer and output row.
struct RowRescale {
  Value max, shift, alpha;
};

class OnlineSoftmax {
public:
  OnlineSoftmax(ScalarEmitter &e, OnlineSoftmaxOptions options);

  Normalization kind() const { return options.kind; }
  /// Softmax family: a running maximum, logits exponentiated against it.
  bool tracksMax() const;
  /// Softmax family and mean: the output row is divided by the normalizer.
  bool dividesOutput() const;

  /// A natural-unit logit in the builder's domain (x * log2(e) or x).
  Value toDomain(Value x);
  /// e^x in the builder's domain: exp(x), or exp2(x) for x in log2 units.
  Value expInDomain(Value x);

  /// (m0, l0) of a row before any key: m = -inf, l = 0, plus, for the
  /// softmax family, the logits that carry no value: `sinkLogit` (natural
  /// units; null when the op has none) and softmax1's +1 (a logit of 0).
  RowStats initialStats(Value sinkLogit);

  /// The weight of a visible element with (natural-unit) score `x`, for the
  /// kinds other than the softmax family: sigmoid(x + bias), relu(x),
  /// relu(x)^2, x (none), 1 (mean).
  Value elementWeight(Value x);
  /// What a tile holds for an element: `value` where `visible`, else -inf
  /// (a softmax logit) or 0 (a weight or a count).
  Value maskedValue(Value visible, Value value);

  /// The rescale of a row whose maximum was `mOld` and whose tile's largest
  /// logit is `tileMax` (softmax family).
  RowRescale rescale(Value mOld, Value tileMax);
  /// The unnormalized weight exp(logit - shift) of a logit of the tile.
  Value probability(Value logit, Value shift);
  /// The normalizer after a tile: l * alpha + tileSum (softmax family, with
  /// tileSum the sum of the tile's probabilities), l + tileSum (mean, the
  /// tile's visible count), else l.
  Value updateNorm(Value l, Value alpha, Value tileSum);

  /// The factor of the output row: 1 / l where l > 0 and 0 elsewhere (rows
  /// that saw nothing) when dividesOutput(), else 1.
  Value outputScale(Value l);
  /// The row's log-sum-exp in natural units from its final (m, l): shift(m)
  /// + log(l) for the softmax family (-inf on rows that saw nothing), with
  /// `droppedLogit` (a per-row constant the caller left out of every logit,
  /// natural units; may be null) subtracted on rows with l > 0; log(l) for
  /// mean; 0 otherwise.
  Value logSumExp(Value m, Value l, Value droppedLogit = Value());
  /// Scalable softmax's factor of the scores, lambda * log(n), for a row
  /// that sees `count` keys (f32).
  Value scalableFactor(Value count);

private:
  Value exp(Value x);
  Value exp2(Value x);
  Value log(Value x);
  Value rcp(Value x);
  /// 0 where m = -inf, else m.
  Value guardedShift(Value m);

  ScalarEmitter &e;
  OnlineSoftmaxOptions options;
};

} // namespace mlir::attn

#endif // ATTN_CONVERSION_ATTNCOMMON_ONLINESOFTMAX_H
