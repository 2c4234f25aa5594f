//===- AttnEnums.h - attn enums ---------------------------------*- C++ -*-===//

#ifndef ATTN_DIALECT_ATTN_IR_ATTNENUMS_H
#define ATTN_DIALECT_ATTN_IR_ATTNENUMS_H

#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinAttributes.h"

#include "attn/Dialect/Attn/IR/AttnEnums.h.inc"

#endif // ATTN_DIALECT_ATTN_IR_ATTNENUMS_H
