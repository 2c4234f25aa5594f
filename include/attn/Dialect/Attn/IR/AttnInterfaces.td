//===- AttnInterfaces.td - attn interfaces -----------------*- tablegen -*-===//

#ifndef ATTN_DIALECT_ATTN_IR_ATTNINTERFACES_TD
#define ATTN_DIALECT_ATTN_IR_ATTNINTERFACES_TD

include "mlir/IR/OpBase.td"

def Attn_MaskAttrInterface : AttrInterface<"MaskAttrInterface"> {
  let cppNamespace = "::mlir::attn";
  let description = [{
    A structured mask kind. Masks compose as

    ```
    visible(i, j) = global(i, j) && (local(i, j) || sink(j))
    ```

    where `global` is the conjunction of the global kinds (causal, document,
    prefix-LM, the mask region), `local` the conjunction of the local kinds
    (sliding window, chunked, neighborhoods; true when there are none) and
    `sink(j)` is `j < n` for `#attn.sink_tokens<count = n>` (false when
    absent). So sink tokens re-admit keys that a local mask hides, but never
    keys that causality hides.

    Each kind writes its semantics once, through the methods below: its
    parameter rules, whether key `j` is visible to query `i`, the keys a
    block of queries can see, and whether a block of queries x keys is fully
    visible. The emitting methods build arith IR at `ctx.b`; the lowerings
    compose the results per the formula above (AttnCodegen.h).
  }];
  let methods = [
    InterfaceMethod<"Which term of the composition the kind belongs to.",
                    "::mlir::attn::MaskRole", "getRole", (ins)>,
    InterfaceMethod<"Whether the kind belongs to the local conjunction.",
                    "bool", "isLocal", (ins), [{}], [{
      return $_attr.getRole() == ::mlir::attn::MaskRole::local;
    }]>,
    InterfaceMethod<[{
        Checks the parameters, whatever the op's shapes; the diagnostics
        come from `emitError` (the op's, so they name the op).
      }], "::llvm::LogicalResult", "verifyParameters",
      (ins "::llvm::function_ref<::mlir::InFlightDiagnostic()>":$emitError)>,
    InterfaceMethod<[{
        Checks the parameters against the sizes and captures of the op
        (dynamic sizes pass).
      }], "::llvm::LogicalResult", "verifyShapes",
      (ins "::llvm::function_ref<::mlir::InFlightDiagnostic()>":$emitError,
           "const ::mlir::attn::MaskShapes &":$shapes)>,
    InterfaceMethod<[{
        The kind's own predicate for key `j` and query `i` of batch `b`
        (an i1): for sink tokens, whether `j` is a sink token.
      }], "::mlir::Value", "emitVisible",
      (ins "::mlir::attn::MaskEmitContext &":$ctx, "::mlir::Value":$b,
           "::mlir::Value":$i, "::mlir::Value":$j)>,
    InterfaceMethod<[{
        The keys that queries [i0, i1) (non-empty) can see by this kind
        alone, as an interval that contains them all (null bounds: none);
        for sink tokens, the sink tokens [0, count). Not clipped to [0, Sk).
      }], "::mlir::attn::KVBounds", "emitKVBounds",
      (ins "::mlir::attn::MaskEmitContext &":$ctx, "::mlir::Value":$i0,
           "::mlir::Value":$i1)>,
    InterfaceMethod<[{
        Whether the kind's predicate holds for every pair of the non-empty
        block [i0, i1) x [j0, j1) (an i1), or std::nullopt when the kind
        cannot decide it in closed form.
      }], "std::optional<::mlir::Value>", "emitBlockFullyVisible",
      (ins "::mlir::attn::MaskEmitContext &":$ctx, "::mlir::Value":$i0,
           "::mlir::Value":$i1, "::mlir::Value":$j0, "::mlir::Value":$j1)>,
    InterfaceMethod<[{
        Whether the kind's predicate fails for every pair of the non-empty
        block [i0, i1) x [j0, j1) (an i1; true only where that is proven),
        or std::nullopt when the kind does not decide it here (the kinds
        whose keys follow from positions say it through emitKVBounds).
      }], "std::optional<::mlir::Value>", "emitBlockHidden",
      (ins "::mlir::attn::MaskEmitContext &":$ctx, "::mlir::Value":$i0,
           "::mlir::Value":$i1, "::mlir::Value":$j0, "::mlir::Value":$j1),
      [{}], [{ return std::nullopt; }]>,
  ];
}

def Attn_VariantSpecOpInterface : OpInterface<"VariantSpecOpInterface"> {
  let cppNamespace = "::mlir::attn";
  let description = [{
    The specification of an attention variant, shared by `attn.variant` and
    `attn.attention`: score kernel and its parameters, feature maps, masks,
    normalization and its parameters, and the score and mask regions.
  }];
  let methods = [
    InterfaceMethod<"", "::mlir::attn::ScoreKind", "getScoreKind", (ins),
                    [{}], [{
      return $_op.getScore().value_or(::mlir::attn::ScoreKind::dot);
    }]>,
    InterfaceMethod<"", "std::optional<::llvm::APFloat>", "getScale", (ins),
                    [{}], [{ return $_op.getScale(); }]>,
    InterfaceMethod<"", "std::optional<::llvm::APFloat>", "getGamma", (ins),
                    [{}], [{ return $_op.getGamma(); }]>,
    InterfaceMethod<"", "::mlir::attn::FeatureMap", "getQFeatureMap", (ins),
                    [{}], [{
      return $_op.getQMap().value_or(::mlir::attn::FeatureMap::identity);
    }]>,
    InterfaceMethod<"", "::mlir::attn::FeatureMap", "getKFeatureMap", (ins),
                    [{}], [{
      return $_op.getKMap().value_or(::mlir::attn::FeatureMap::identity);
    }]>,
    InterfaceMethod<"", "::std::optional<::mlir::ArrayAttr>", "getMasks",
                    (ins), [{}], [{ return $_op.getMasks(); }]>,
    InterfaceMethod<"", "::mlir::attn::Normalization",
                    "getNormalizationKind", (ins), [{}], [{
      return $_op.getNormalization().value_or(
          ::mlir::attn::Normalization::softmax);
    }]>,
    InterfaceMethod<"", "std::optional<::llvm::APFloat>", "getBias", (ins),
                    [{}], [{ return $_op.getBias(); }]>,
    InterfaceMethod<"", "std::optional<::llvm::APFloat>", "getLengthScale",
                    (ins), [{}], [{ return $_op.getLengthScale(); }]>,
    InterfaceMethod<"", "::mlir::Region &", "getScoreMod", (ins),
                    [{}], [{ return $_op.getScoreMod(); }]>,
    InterfaceMethod<"", "::mlir::Region &", "getMaskMod", (ins),
                    [{}], [{ return $_op.getMaskMod(); }]>,
  ];
}

#endif // ATTN_DIALECT_ATTN_IR_ATTNINTERFACES_TD
