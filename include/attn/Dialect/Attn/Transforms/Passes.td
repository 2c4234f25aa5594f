//===- Passes.td - attn dialect passes ---------------------*- tablegen -*-===//

#ifndef ATTN_DIALECT_ATTN_TRANSFORMS_PASSES_TD
#define ATTN_DIALECT_ATTN_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def AttnInstantiateVariantsPass
    : Pass<"attn-instantiate-variants", "::mlir::ModuleOp"> {
  let summary = "Inline the attn.variant that each attn.attention references";
  let description = [{
    Every `attn.attention` or `attn.attention_grad` that names a variant
    (`variant @v`) gets a copy of
    `@v`'s specification attributes and regions, and loses the reference.
    Afterwards no op references a variant, so every later pass sees the full
    specification on the op. With `erase-variants`, variant definitions are
    erased once nothing references them.

    Before:
    ```mlir
    attn.variant @causal mask = [#attn.causal]
    %o = attn.attention %q, %k, %v variant @causal : ...
    ```
    After:
    ```mlir
    %o = attn.attention %q, %k, %v mask = [#attn.causal] : ...
    ```
  }];
  let options = [
    Option<"eraseVariants", "erase-variants", "bool", /*default=*/"false",
           "Erase attn.variant definitions that are no longer referenced">,
  ];
}

#endif // ATTN_DIALECT_ATTN_TRANSFORMS_PASSES_TD
