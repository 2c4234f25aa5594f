//===- AttnDialect.td - attn dialect definition ------------*- tablegen -*-===//
//
// The attn dialect: attention variants as declarative IR.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_DIALECT_ATTN_IR_ATTNDIALECT_TD
#define ATTN_DIALECT_ATTN_IR_ATTNDIALECT_TD

include "mlir/IR/OpBase.td"

def Attn_Dialect : Dialect {
  let name = "attn";
  let cppNamespace = "::mlir::attn";
  let summary = "Declarative attention variants and their compilation.";
  let description = [{
    The `attn` dialect says what an attention computation is, stage by stage,
    so that the compiler can reason about it structurally:

    ```
    O[b, h, i, :] = sum_j P(S)[b, h, i, j] * V[b, hk, j, :]
    S[b, h, i, j] = mod(kernel(phi_q(Q[b, h, i]), phi_k(K[b, hk, j])), b, h, i, j)
    ```

    with `hk = h / (Hq / Hkv)`. The score `kernel` is a scaled dot product or
    a negative squared distance (RBF), `mod` is an optional pointwise score
    region, structured masks and an optional mask region say which `(i, j)`
    are visible, and `P` is one of the built-in normalizations (softmax and
    its relatives, sigmoid, relu, relu^2, none, mean). Sinks come as per-head
    sink logits, learned sink key/value rows, or sink tokens in the mask.

    `attn.variant` names such a specification so that a library of variants
    can be kept and referenced by symbol from `attn.attention`.
  }];
  let useDefaultAttributePrinterParser = 1;
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::tensor::TensorDialect"];
}

/// Base class of every attn op.
class Attn_Op<string mnemonic, list<Trait> traits = []>
    : Op<Attn_Dialect, mnemonic, traits>;

#endif // ATTN_DIALECT_ATTN_IR_ATTNDIALECT_TD
