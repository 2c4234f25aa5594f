//===- AttnGradOps.td - attn backward operations -----------*- tablegen -*-===//
//
// The backward of attn.attention. Included at the end of AttnOps.td, so it
// shares the variant specification (Attn_VariantSpecArgs and its format).
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_DIALECT_ATTN_IR_ATTNGRADOPS_TD
#define ATTN_DIALECT_ATTN_IR_ATTNGRADOPS_TD

def Attn_AttentionGradOp : Attn_Op<"attention_grad", [
    Pure, IsolatedFromAbove, AttrSizedOperandSegments,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>,
    DeclareOpInterfaceMethods<Attn_VariantSpecOpInterface>]> {
  let summary = "the backward of attn.attention: gradients of every input";
  let description = !strconcat([{
    Given the operands of an `attn.attention` (the same `q`, `k`, `v`,
    captures, sinks and variant), its output `O` and log-sum-exp `lse`, and
    the incoming gradients `dO` (and optionally `dlse`) of a scalar loss `L`,
    computes `dL/dq`, `dL/dk`, `dL/dv` and the gradients of the variant's
    learnable operands. Per `(b, h, i)`, with the forward's visible keys `j`,
    sink rows `r`, sink logit `c`, weights `p` and scores `s` (after the score
    region; docs/semantics.md):

    ```
    dP_j   = dO_i . v_j                       (dP_r = dO_i . sink_value_r)
    D_i    = sum_j p_j dP_j = rowsum(dO_i * O_i)
    dS_j   = softmax, softmax1:  p_j (dP_j - D_i) + dlse_i p_j
             scalable_softmax:   lambda log(n_i) (the softmax dS of the
                                 scaled scores)
             sigmoid:            dP_j p_j (1 - p_j)
             relu / relu2 / none: dP_j [s_j > 0] / 2 dP_j max(s_j, 0) / dP_j
             mean:               0
    dv_j  += p_j dO_i                         (dsink_value_r += p_r dO_i)
    dc_h  += p_c,i (dlse_i - D_i),  p_c,i = exp(c_h - lse_i)
    ```

    Through the score region `s_j = f(s0_j, b, h, i, j, captures)`:
    `dS0_j = dS_j df/ds0` and, for every element `m` of a floating capture,
    `dcapture[m] += dS_j df/dcapture[m]` over every `(b, h, i, j)` that reads
    it. Through the score kernel on the feature-mapped `qf`, `kf`:
    `dot`: `dqf_i = scale sum_j dS0_j kf_j`, `dkf_j += scale dS0_j qf_i`;
    `rbf`: `dqf_i = 2 gamma sum_j dS0_j (kf_j - qf_i)`,
    `dkf_j += 2 gamma dS0_j (qf_i - kf_j)` (sink keys likewise, without the
    region); then `dq = dqf * phi_q'(q)`, `dk = dkf * phi_k'(k)`. Key and
    value gradients (sink rows included) sum over the `Hq / Hkv` query heads
    that read a kv head and over the batch for the sink rows. A query that
    sees nothing contributes exactly 0 to every gradient.

    Operands: `q`, `k`, `v`, `O` and `dO` as in `attn.attention`
    (`O`, `dO: [B, Hq, Sq, Dv]`, all of one element type), then
    `lse(%lse)`: the forward's `[B, Hq, Sq]` f32 log-sum-exp, required for
    the softmax family, also accepted under `mean`, refused otherwise;
    `grad_lse(%dlse)`: `[B, Hq, Sq]` f32, the gradient of `lse` when the loss
    uses it (merging partial results, ring attention), only with `lse`
    (under `mean`, `lse = log n` has no gradient); then `captures`,
    `sink_logits`, `sink_rows` and the variant exactly as `attn.attention`.

    Results: `dq`, `dk`, `dv` (the types of `q`, `k`, `v`), then the
    parameter gradients in this order: `d_sink_logits` (`[Hq]` f32) if the op
    has sink logits, `d_sink_key` and `d_sink_value` if it has sink rows,
    then one gradient per capture with a floating element type, of that
    capture's type (integer captures, such as document segment ids, get
    none).

    ```mlir
    %dq, %dk, %dv, %dslopes = attn.attention_grad %q, %k, %v, %o, %do
        lse(%lse : tensor<2x8x1024xf32>)
        captures(%slopes : tensor<8xf32>) variant @alibi
        : tensor<2x8x1024x64xbf16>, tensor<2x2x1024x64xbf16>,
          tensor<2x2x1024x64xbf16>, tensor<2x8x1024x64xbf16>,
          tensor<2x8x1024x64xbf16>
        -> tensor<2x8x1024x64xbf16>, tensor<2x2x1024x64xbf16>,
           tensor<2x2x1024x64xbf16>, tensor<8xf32>
    ```

  }], Attn_VariantSpecDoc);
  let arguments = !con((ins Attn_FloatTensor:$query, Attn_FloatTensor:$key,
                            Attn_FloatTensor:$value,
                            Attn_FloatTensor:$output,
                            Attn_FloatTensor:$grad_output,
                            Optional<RankedTensorOf<[F32]>>:$lse,
                            Optional<RankedTensorOf<[F32]>>:$grad_lse,
                            Variadic<AnyRankedTensor>:$captures,
                            Optional<RankedTensorOf<[F32]>>:$sink_logits,
                            Optional<Attn_FloatTensor>:$sink_key,
                            Optional<Attn_FloatTensor>:$sink_value,
                            OptionalAttr<FlatSymbolRefAttr>:$variant),
                       Attn_VariantSpecArgs);
  let results = (outs Attn_FloatTensor:$grad_query,
                      Attn_FloatTensor:$grad_key,
                      Attn_FloatTensor:$grad_value,
                      Variadic<AnyRankedTensor>:$grad_params);
  let regions = (region AnyRegion:$score_mod, AnyRegion:$mask_mod);
  let assemblyFormat = !strconcat([{
    $query `,` $key `,` $value `,` $output `,` $grad_output
    (`lse` `(` $lse^ `:` type($lse) `)`)?
    (`grad_lse` `(` $grad_lse^ `:` type($grad_lse) `)`)?
    (`captures` `(` $captures^ `:` type($captures) `)`)?
    (`sink_logits` `(` $sink_logits^ `:` type($sink_logits) `)`)?
    (`sink_rows` `(` $sink_key^ `,` $sink_value `:` type($sink_key) `,`
                      type($sink_value) `)`)?
    (`variant` $variant^)?
  }], Attn_VariantSpecFormat, [{
    attr-dict `:` type($query) `,` type($key) `,` type($value) `,`
    type($output) `,` type($grad_output)
    `->` type($grad_query) `,` type($grad_key) `,` type($grad_value)
    (`,` type($grad_params)^)?
  }], Attn_VariantSpecRegionFormat);
  let hasVerifier = 1;
  let hasRegionVerifier = 1;
  let extraClassDeclaration = [{
    /// The op's own specification, or that of the variant it references.
    VariantSpecOpInterface getSpec(::mlir::SymbolTableCollection *tables =
                                       nullptr);
    /// Whether a capture of type `type` gets a gradient: a floating element
    /// type.
    static bool isDifferentiableCapture(::mlir::Type type);
    /// The types that `grad_params` must have, in order: the sink logits',
    /// the sink rows', then each differentiable capture's.
    ::llvm::SmallVector<::mlir::Type> getExpectedParamGradTypes();
    /// The gradient of the sink logits, or null without sink logits.
    ::mlir::Value getGradSinkLogits();
    /// The gradients of the sink key / value rows, or null without them.
    ::mlir::Value getGradSinkKey();
    ::mlir::Value getGradSinkValue();
    /// The gradient of capture #`index`, or null for an integer capture.
    ::mlir::Value getGradCapture(unsigned index);
  }];
}

#endif // ATTN_DIALECT_ATTN_IR_ATTNGRADOPS_TD
