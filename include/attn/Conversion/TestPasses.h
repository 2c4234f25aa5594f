//===- TestPasses.h - attn test-only passes ---------------------*- C++ -*-===//

#ifndef ATTN_CONVERSION_TESTPASSES_H
#define ATTN_CONVERSION_TESTPASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Pass/Pass.h"

namespace mlir::attn {

#define GEN_PASS_DECL
#include "attn/Conversion/TestPasses.h.inc"

#define GEN_PASS_REGISTRATION
#include "attn/Conversion/TestPasses.h.inc"

} // namespace mlir::attn

#endif // ATTN_CONVERSION_TESTPASSES_H
