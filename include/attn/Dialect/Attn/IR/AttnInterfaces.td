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
  }];
  let methods = [
    InterfaceMethod<"Whether the kind belongs to the local conjunction.",
                    "bool", "isLocal", (ins)>,
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
