//===- AttnEnums.td - attn enums ---------------------------*- tablegen -*-===//

#ifndef ATTN_DIALECT_ATTN_IR_ATTNENUMS_TD
#define ATTN_DIALECT_ATTN_IR_ATTNENUMS_TD

include "mlir/IR/EnumAttr.td"

def Attn_ScoreKind : I32EnumAttr<"ScoreKind", "score kernel", [
    I32EnumAttrCase<"dot", 0>,
    I32EnumAttrCase<"rbf", 1>]> {
  let cppNamespace = "::mlir::attn";
  let genSpecializedAttr = 0;
  let description = [{
    `dot`: `scale * <phi_q(q), phi_k(k)>`.
    `rbf`: `-gamma * |phi_q(q) - phi_k(k)|^2`.
  }];
}

def Attn_FeatureMap : I32EnumAttr<"FeatureMap", "elementwise feature map", [
    I32EnumAttrCase<"identity", 0>,
    I32EnumAttrCase<"elu_plus_one", 1>,
    I32EnumAttrCase<"relu", 2>]> {
  let cppNamespace = "::mlir::attn";
  let genSpecializedAttr = 0;
}

def Attn_Normalization : I32EnumAttr<"Normalization",
    "how scores become weights", [
    I32EnumAttrCase<"softmax", 0>,
    I32EnumAttrCase<"softmax1", 1>,
    I32EnumAttrCase<"scalable_softmax", 2>,
    I32EnumAttrCase<"sigmoid", 3>,
    I32EnumAttrCase<"relu", 4>,
    I32EnumAttrCase<"relu2", 5>,
    I32EnumAttrCase<"none", 6>,
    I32EnumAttrCase<"mean", 7>]> {
  let cppNamespace = "::mlir::attn";
  let genSpecializedAttr = 0;
}

def Attn_Alignment : I32EnumAttr<"Alignment",
    "where query i sits among the keys when Sq != Sk", [
    I32EnumAttrCase<"top_left", 0>,
    I32EnumAttrCase<"bottom_right", 1>]> {
  let cppNamespace = "::mlir::attn";
  let genSpecializedAttr = 0;
  let description = [{
    `top_left`: query `i` is at key position `i`.
    `bottom_right`: query `i` is at key position `i + Sk - Sq` (the last query
    is aligned with the last key, as in decoding with a KV cache).
  }];
}

def Attn_MmaKind : I32EnumAttr<"MmaKind",
    "tensor-core instruction family of a GPU kernel", [
    I32EnumAttrCase<"sync", 0>,
    I32EnumAttrCase<"wgmma", 1>]> {
  let cppNamespace = "::mlir::attn";
  let genSpecializedAttr = 0;
  let description = [{
    `sync`: warp-level `mma.sync.m16n8k16` with `ldmatrix` (sm_80 and later).
    `wgmma`: Hopper's warpgroup `wgmma.mma_async` from shared-memory
    descriptors (sm_90a).
  }];
}

def Attn_KeyNormPath : I32EnumAttr<"KeyNormPath",
    "where a GPU kernel gets the RBF key norms", [
    I32EnumAttrCase<"none", 0>,
    I32EnumAttrCase<"smem", 1>,
    I32EnumAttrCase<"mma", 2>]> {
  let cppNamespace = "::mlir::attn";
  let genSpecializedAttr = 0;
  let description = [{
    `none`: no key norms (dot-product scores).
    `smem`: f32 norms from the prologue kernel, per KV tile in shared memory,
    subtracted per accumulator element.
    `mma`: three bf16 parts of `|k|^2 / 2` from the prologue kernel, fed to
    the tensor cores as one extra k-step of the S chain (wgmma, bf16).
  }];
}

#endif // ATTN_DIALECT_ATTN_IR_ATTNENUMS_TD
