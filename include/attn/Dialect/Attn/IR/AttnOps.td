//===- AttnOps.td - attn operations ------------------------*- tablegen -*-===//

#ifndef ATTN_DIALECT_ATTN_IR_ATTNOPS_TD
#define ATTN_DIALECT_ATTN_IR_ATTNOPS_TD

include "attn/Dialect/Attn/IR/AttnAttrs.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/Interfaces/ControlFlowInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Attn_FloatTensor : RankedTensorOf<[F16, BF16, F32]>;

/// The variant specification, shared by attn.variant and attn.attention.
defvar Attn_VariantSpecArgs = (ins
  OptionalAttr<Attn_ScoreKindAttr>:$score,
  OptionalAttr<F64Attr>:$scale,
  OptionalAttr<F64Attr>:$gamma,
  OptionalAttr<Attn_FeatureMapAttr>:$q_map,
  OptionalAttr<Attn_FeatureMapAttr>:$k_map,
  OptionalAttr<ArrayAttr>:$masks,
  OptionalAttr<Attn_NormalizationAttr>:$normalization,
  OptionalAttr<F64Attr>:$bias,
  OptionalAttr<F64Attr>:$length_scale
);

/// The assembly of the variant specification.
defvar Attn_VariantSpecFormat = [{
  (`score` `` $score^)? (`scale` `=` $scale^)? (`gamma` `=` $gamma^)?
  (`q_map` `` $q_map^)? (`k_map` `` $k_map^)?
  (`mask` `=` $masks^)?
  (`normalize` `` $normalization^)? (`bias` `=` $bias^)?
  (`length_scale` `=` $length_scale^)?
}];

defvar Attn_VariantSpecRegionFormat = [{
  (`score_mod` $score_mod^)? (`mask_mod` $mask_mod^)?
}];

defvar Attn_VariantSpecDoc = [{
  Specification attributes (all optional):

  | attribute | meaning | default |
  |---|---|---|
  | `score` | `<dot>`: `scale * q.k`; `<rbf>`: `-gamma * |q - k|^2` | `<dot>` |
  | `scale` | dot-product scale | `1/sqrt(Dqk)` |
  | `gamma` | RBF bandwidth | `1/(2*sqrt(Dqk))` (so that the `q.k` term of `-gamma|q-k|^2` has the dot product's scale) |
  | `q_map`, `k_map` | feature map on q / k: `<identity>`, `<elu_plus_one>`, `<relu>` | `<identity>` |
  | `mask` | list of structured masks (`#attn.causal`, ...) | none |
  | `normalize` | `<softmax>`, `<softmax1>`, `<scalable_softmax>`, `<sigmoid>`, `<relu>`, `<relu2>`, `<none>`, `<mean>` | `<softmax>` |
  | `bias` | sigmoid: `P = sigmoid(S + bias)` | 0 |
  | `length_scale` | scalable softmax: `S * length_scale * log(n)`, `n` the keys the query sees | 1 |

  Regions (optional):
  - `score_mod`: `^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index,
    %captures...)` yields the modified f32 score. `%h` is the query head.
  - `mask_mod`: `^bb0(%b: index, %h: index, %i: index, %j: index,
    %captures...)` yields `i1`, true where the key is visible; it joins the
    global mask conjunction.
  Every region receives all captured operands as trailing block arguments.
}];

def Attn_VariantOp : Attn_Op<"variant", [
    Symbol, IsolatedFromAbove,
    DeclareOpInterfaceMethods<Attn_VariantSpecOpInterface>]> {
  let summary = "a named attention variant";
  let description = !strconcat([{
    Names a variant (everything about attention but the tensors) so that
    several `attn.attention` ops, or a library, can share it. Captured operand
    types appear as the trailing block arguments of the regions; dynamic
    sizes (`?`) there accept any size.

    ```mlir
    attn.variant @alibi mask = [#attn.causal] normalize<softmax>
        score_mod {
    ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index,
         %slopes: tensor<?xf32>):
      %m = tensor.extract %slopes[%h] : tensor<?xf32>
      %ii = arith.index_cast %i : index to i64
      %jj = arith.index_cast %j : index to i64
      %d = arith.subi %jj, %ii : i64
      %df = arith.sitofp %d : i64 to f32
      %bias = arith.mulf %m, %df : f32
      %r = arith.addf %s, %bias : f32
      attn.yield %r : f32
    }
    ```

  }], Attn_VariantSpecDoc);
  let arguments = !con((ins SymbolNameAttr:$sym_name,
                            OptionalAttr<StrAttr>:$sym_visibility),
                       Attn_VariantSpecArgs);
  let regions = (region AnyRegion:$score_mod, AnyRegion:$mask_mod);
  let assemblyFormat = !strconcat("($sym_visibility^)? $sym_name ",
      Attn_VariantSpecFormat, " attr-dict-with-keyword ",
      Attn_VariantSpecRegionFormat);
  let hasVerifier = 1;
  let hasRegionVerifier = 1;
}

def Attn_AttentionOp : Attn_Op<"attention", [
    Pure, IsolatedFromAbove, AttrSizedOperandSegments,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>,
    DeclareOpInterfaceMethods<Attn_VariantSpecOpInterface>]> {
  let summary = "attention: score, mask, normalize, aggregate";
  let description = !strconcat([{
    Computes, for every batch `b`, query head `h` (key/value head
    `hk = h / (Hq / Hkv)`, so MHA, GQA and MQA) and query `i`:

    ```
    S[j]  = mod(kernel(phi_q(q[b,h,i]), phi_k(k[b,hk,j])), b, h, i, j)
    P     = normalize(S over the visible keys, plus sinks)
    O[b,h,i] = sum_j P[j] * v[b,hk,j]  (+ sum_r P_sink[r] * sink_value[hk,r])
    ```

    Operands: `q: [B, Hq, Sq, Dqk]`, `k: [B, Hkv, Sk, Dqk]`,
    `v: [B, Hkv, Sk, Dv]` of one element type (f16, bf16 or f32);
    `captures`: ranked tensors handed to the regions (ALiBi slopes, bias
    tables, segment ids); `sink_logits: [Hq]` f32, per-head logits that join
    the softmax denominator only (gpt-oss); `sink_rows(sink_key, sink_value)`:
    `[Hkv, Ns, Dqk]` and `[Hkv, Ns, Dv]` learned key/value rows seen by every
    query and masked by nothing (the score kernel applies to them, the score
    region does not).

    Results: `O: [B, Hq, Sq, Dv]` in the input element type and, optionally,
    `lse: [B, Hq, Sq]` f32, the natural-log log-sum-exp of the normalizer
    (sinks included) for the softmax family and `log(n)` for `mean`. A query
    with no visible key and no sink row gets `O = 0`, and `lse = -inf` unless
    sink logits or softmax1's `+1` keep the normalizer positive (see
    docs/semantics.md).

    The variant is given inline or by reference (`variant @name`), never both;
    `attn-instantiate-variants` inlines references.

    ```mlir
    %o, %lse = attn.attention %q, %k, %v
        score<rbf> gamma = 0.0625
        mask = [#attn.causal, #attn.sink_tokens<count = 4>,
                #attn.sliding_window<left = 256>]
        : tensor<2x8x1024x64xbf16>, tensor<2x2x1024x64xbf16>,
          tensor<2x2x1024x64xbf16> -> tensor<2x8x1024x64xbf16>,
          tensor<2x8x1024xf32>
    ```

  }], Attn_VariantSpecDoc);
  let arguments = !con((ins Attn_FloatTensor:$query, Attn_FloatTensor:$key,
                            Attn_FloatTensor:$value,
                            Variadic<AnyRankedTensor>:$captures,
                            Optional<RankedTensorOf<[F32]>>:$sink_logits,
                            Optional<Attn_FloatTensor>:$sink_key,
                            Optional<Attn_FloatTensor>:$sink_value,
                            OptionalAttr<FlatSymbolRefAttr>:$variant),
                       Attn_VariantSpecArgs);
  let results = (outs Attn_FloatTensor:$output,
                      Optional<RankedTensorOf<[F32]>>:$lse);
  let regions = (region AnyRegion:$score_mod, AnyRegion:$mask_mod);
  let assemblyFormat = !strconcat([{
    $query `,` $key `,` $value
    (`captures` `(` $captures^ `:` type($captures) `)`)?
    (`sink_logits` `(` $sink_logits^ `:` type($sink_logits) `)`)?
    (`sink_rows` `(` $sink_key^ `,` $sink_value `:` type($sink_key) `,`
                      type($sink_value) `)`)?
    (`variant` $variant^)?
  }], Attn_VariantSpecFormat, [{
    attr-dict `:` type($query) `,` type($key) `,` type($value)
    `->` type($output) (`,` type($lse)^)?
  }], Attn_VariantSpecRegionFormat);
  let hasVerifier = 1;
  let hasRegionVerifier = 1;
  let extraClassDeclaration = [{
    /// The op's own specification, or that of the variant it references.
    VariantSpecOpInterface getSpec(::mlir::SymbolTableCollection *tables =
                                       nullptr);
  }];
}

def Attn_YieldOp : Attn_Op<"yield", [
    Pure, ReturnLike, Terminator,
    ParentOneOf<["AttentionOp", "AttentionGradOp", "VariantOp"]>]> {
  let summary = "yields the value of a score or mask region";
  let description = [{
    ```mlir
    attn.yield %s : f32
    ```
  }];
  let arguments = (ins AnyType:$value);
  let assemblyFormat = "$value attr-dict `:` type($value)";
}

include "attn/Dialect/Attn/IR/AttnGradOps.td"

#endif // ATTN_DIALECT_ATTN_IR_ATTNOPS_TD
