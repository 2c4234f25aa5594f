//===- Passes.h - kernel bundle passes --------------------------*- C++ -*-===//

#ifndef ATTN_TARGET_BUNDLE_PASSES_H
#define ATTN_TARGET_BUNDLE_PASSES_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::attn {

#define GEN_PASS_DECL
#include "attn/Target/Bundle/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "attn/Target/Bundle/Passes.h.inc"

} // namespace mlir::attn

#endif // ATTN_TARGET_BUNDLE_PASSES_H
