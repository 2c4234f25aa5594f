//===- TestPasses.td - attn test-only passes ---------------*- tablegen -*-===//
//
// Passes that expose a utility of the conversions in IR, for lit and pytest;
// no pipeline uses them.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_TESTPASSES_TD
#define ATTN_CONVERSION_TESTPASSES_TD

include "mlir/Pass/PassBase.td"

def AttnTestScoreModVJPPass
    : Pass<"attn-test-score-mod-vjp", "::mlir::ModuleOp"> {
  let summary = "Emit the derivative of every score_mod region as functions";
  let description = [{
    For every attn.variant and attn.attention with a score_mod region, adds
    to the module two functions named after the variant (or the function
    holding the attn.attention; a suffix `_<n>` keeps names unique):

    - `@<name>_score_mod(%s: f32, %b: index, %h: index, %i: index,
      %j: index, %captures...) -> f32`: the region itself;
    - `@<name>_score_mod_vjp(%s, %b, %h, %i, %j, %g: f32, %captures...)
      -> (f32, f32 x n, index x k)`: from `emitScoreModVJP`, the adjoint of
      the score `g * df/ds`, then the contributions `g * df/dc` of the n
      reads of floating captures (region order), then the index operands of
      those reads, read after read. The attribute `attn.vjp_captures` lists
      the capture number of each contribution.

    A region it cannot differentiate is an error on the op at fault.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::func::FuncDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::tensor::TensorDialect"];
}

#endif // ATTN_CONVERSION_TESTPASSES_TD
