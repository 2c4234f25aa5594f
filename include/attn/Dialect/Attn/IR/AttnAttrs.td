//===- AttnAttrs.td - attn attributes ----------------------*- tablegen -*-===//

#ifndef ATTN_DIALECT_ATTN_IR_ATTNATTRS_TD
#define ATTN_DIALECT_ATTN_IR_ATTNATTRS_TD

include "attn/Dialect/Attn/IR/AttnDialect.td"
include "attn/Dialect/Attn/IR/AttnEnums.td"
include "attn/Dialect/Attn/IR/AttnInterfaces.td"
include "mlir/IR/AttrTypeBase.td"

//===----------------------------------------------------------------------===//
// Enum attributes
//===----------------------------------------------------------------------===//

class Attn_EnumAttr<EnumAttrInfo info, string name>
    : EnumAttr<Attn_Dialect, info, name> {
  let assemblyFormat = "`<` $value `>`";
}

def Attn_ScoreKindAttr : Attn_EnumAttr<Attn_ScoreKind, "score_kind">;
def Attn_FeatureMapAttr : Attn_EnumAttr<Attn_FeatureMap, "feature_map">;
def Attn_NormalizationAttr
    : Attn_EnumAttr<Attn_Normalization, "normalization">;

//===----------------------------------------------------------------------===//
// Mask attributes
//===----------------------------------------------------------------------===//

/// A structured mask kind; its semantics (AttnMasks.cpp) implement
/// MaskAttrInterface.
class Attn_MaskAttr<string name, string attrMnemonic,
                    list<string> defaultedMethods = []>
    : AttrDef<Attn_Dialect, name,
              [DeclareAttrInterfaceMethods<Attn_MaskAttrInterface,
                                           defaultedMethods>]> {
  let mnemonic = attrMnemonic;
}

def Attn_AlignmentParameter : EnumParameter<Attn_Alignment> {
  let defaultValue = "::mlir::attn::Alignment::top_left";
}

def Attn_CausalAttr : Attn_MaskAttr<"Causal", "causal"> {
  let summary = "key j is visible to query i iff j <= pos(i)";
  let description = [{
    `pos(i)` is `i` (`top_left`) or `i + Sk - Sq` (`bottom_right`).
    ```mlir
    #attn.causal
    #attn.causal<bottom_right>
    ```
  }];
  let parameters = (ins DefaultValuedParameter<"::mlir::attn::Alignment",
      "::mlir::attn::Alignment::top_left">:$alignment);
  let assemblyFormat = "(`<` $alignment^ `>`)?";
}

def Attn_SlidingWindowAttr
    : Attn_MaskAttr<"SlidingWindow", "sliding_window"> {
  let summary = "pos(i) - left <= j <= pos(i) + right";
  let description = [{
    A band around the (aligned) diagonal. `left = 0, right = 0` keeps the
    diagonal only. Together with `#attn.causal` it is the usual causal sliding
    window; `left = 1, right = -1` is not allowed (use `right = 0` with
    causal for "previous tokens only").
    ```mlir
    #attn.sliding_window<left = 1024, right = 0>
    ```
  }];
  let parameters = (ins "int64_t":$left,
      DefaultValuedParameter<"int64_t", "0">:$right,
      DefaultValuedParameter<"::mlir::attn::Alignment",
          "::mlir::attn::Alignment::top_left">:$alignment);
  let assemblyFormat = "`<` struct(params) `>`";
}

def Attn_SinkTokensAttr : Attn_MaskAttr<"SinkTokens", "sink_tokens"> {
  let summary = "the first `count` keys stay visible through local masks";
  let description = [{
    StreamingLLM's attention sinks: keys `j < count` are visible whatever the
    local masks (window, chunk, neighborhood) say; global masks (causal,
    document, prefix-LM, the mask region) still apply.
    ```mlir
    mask = [#attn.causal, #attn.sink_tokens<count = 4>,
            #attn.sliding_window<left = 1024>]
    ```
  }];
  let parameters = (ins "int64_t":$count);
  let assemblyFormat = "`<` struct(params) `>`";
}

def Attn_ChunkedAttr : Attn_MaskAttr<"Chunked", "chunked"> {
  let summary = "pos(i) / size == j / size";
  let description = [{
    Chunked (block-local) attention as in Llama 4: queries see the keys of
    their own chunk of `size` positions. `pos(i)` follows the alignment as
    for `causal` (`bottom_right`: `i + Sk - Sq`, the queries being the last
    positions of the keys' sequence, as in decoding); a negative `pos(i)`
    sees nothing.
    ```mlir
    #attn.chunked<size = 8192>
    #attn.chunked<size = 8192, alignment = bottom_right>
    ```
  }];
  let parameters = (ins "int64_t":$size,
      DefaultValuedParameter<"::mlir::attn::Alignment",
          "::mlir::attn::Alignment::top_left">:$alignment);
  let assemblyFormat = "`<` struct(params) `>`";
}

def Attn_Neighborhood1DAttr
    : Attn_MaskAttr<"Neighborhood1D", "neighborhood_1d"> {
  let summary = "1-D neighborhood attention (NATTEN) with dilation";
  let description = [{
    Positions split into `dilation` interleaved groups (`i mod dilation`).
    Inside its group, query `i` sees the `kernel` group members centred on it,
    the window shifted inward at the sequence ends so that every query sees
    exactly `kernel` keys. `kernel` is odd; requires `Sq == Sk` and
    `kernel * dilation <= Sk`.
    ```mlir
    #attn.neighborhood_1d<kernel = 7, dilation = 2>
    ```
  }];
  let parameters = (ins "int64_t":$kernel,
                        DefaultValuedParameter<"int64_t", "1">:$dilation);
  let assemblyFormat = "`<` struct(params) `>`";
}

def Attn_Neighborhood2DAttr
    : Attn_MaskAttr<"Neighborhood2D", "neighborhood_2d"> {
  let summary = "2-D neighborhood attention over a row-major token grid";
  let description = [{
    Tokens are the cells of a `height x width` grid in row-major order
    (`Sq == Sk == height * width`). Query `(r, c)` sees key `(r', c')` iff
    `r'` is in the 1-D neighborhood of `r` (kernel `kernel_h`, dilation
    `dilation_h`, over `height`) and `c'` in that of `c` (over `width`).
    ```mlir
    #attn.neighborhood_2d<height = 16, width = 16, kernel_h = 5,
                          kernel_w = 5, dilation_h = 2, dilation_w = 2>
    ```
  }];
  let parameters = (ins "int64_t":$height, "int64_t":$width,
      "int64_t":$kernel_h, "int64_t":$kernel_w,
      DefaultValuedParameter<"int64_t", "1">:$dilation_h,
      DefaultValuedParameter<"int64_t", "1">:$dilation_w);
  let assemblyFormat = "`<` struct(params) `>`";
}

def Attn_DocumentAttr : Attn_MaskAttr<"Document", "document",
                                     ["emitBlockHidden"]> {
  let summary = "document masking from captured segment ids";
  let description = [{
    Key `j` is visible to query `i` iff
    `captures[q_segments][b, i] == captures[kv_segments][b, j]`; the captures
    are `tensor<B x Sq x i32>` and `tensor<B x Sk x i32>` (one capture serves
    both when `Sq == Sk`).
    ```mlir
    #attn.document<q_segments = 0, kv_segments = 0>
    ```
  }];
  let parameters = (ins "int64_t":$q_segments, "int64_t":$kv_segments);
  let assemblyFormat = "`<` struct(params) `>`";
}

def Attn_AnyOfAttr : Attn_MaskAttr<"AnyOf", "any_of", ["emitBlockHidden"]> {
  let summary = "a key visible by any of the listed positional masks";
  let description = [{
    The OR of its masks' predicates, as one global kind (it ANDs with the
    op's other masks). Its masks are positional kinds (causal, prefix_lm,
    sliding_window, chunked, the neighborhoods), at least two; a KV tile
    range is the hull of theirs, a block is fully visible when one of them
    sees all of it and hidden when every one hides it.
    ```mlir
    // A causal window of 256 keys, plus 64 global keys at the start
    #attn.any_of<[#attn.sliding_window<left = 255>,
                  #attn.prefix_lm<prefix = 64>]>
    ```
  }];
  let parameters = (ins "::mlir::ArrayAttr":$masks);
  let assemblyFormat = "`<` $masks `>`";
}

def Attn_PrefixLMAttr : Attn_MaskAttr<"PrefixLM", "prefix_lm"> {
  let summary = "bidirectional prefix, causal after it";
  let description = [{
    Key `j` is visible to query `i` iff `j < prefix` or `j <= pos(i)`.
    It implies causality past the prefix, so it does not combine with
    `#attn.causal`.
    ```mlir
    #attn.prefix_lm<prefix = 64>
    ```
  }];
  let parameters = (ins "int64_t":$prefix,
      DefaultValuedParameter<"::mlir::attn::Alignment",
          "::mlir::attn::Alignment::top_left">:$alignment);
  let assemblyFormat = "`<` struct(params) `>`";
}

//===----------------------------------------------------------------------===//
// GPU kernel configuration
//===----------------------------------------------------------------------===//

def Attn_KernelConfigAttr : AttrDef<Attn_Dialect, "KernelConfig"> {
  let mnemonic = "kernel_config";
  let summary = "how the GPU kernel of an attn.attention is built";
  let description = [{
    Chosen once per op by `attn-select-kernel-config` (from the measured
    defaults, or the options that force them) and read, unchanged, by
    `attn-to-nvgpu`: nothing downstream re-decides.

    - `mma`: the tensor-core instruction family;
    - `warps`: warps per CTA; `m_tiles`: 16-row m-tiles per warp (1 with
      wgmma); `block_m` = 16 * m_tiles * warps query rows per CTA;
    - `block_n`: keys per KV tile; `stages`: depth of the K/V shared-memory
      ring;
    - `pipelined`: the software-pipelined KV loop (wgmma only: S of the next
      tile on the tensor cores while the warps weight this one);
    - `key_norms`: where RBF key norms come from (`none` for dot products);
    - `shared_memory_bytes`: the dynamic shared memory of the plan;
    - `deterministic` (attn.attention_grad only; default false, then not
      printed): the CTAs add to each dQ tile in a fixed order (one turn
      counter per query tile, OrderedTurns.h), so gradients are bitwise
      equal from run to run.

    ```mlir
    #attn.kernel_config<mma = wgmma, warps = 8, m_tiles = 1, block_m = 128,
      block_n = 128, stages = 2, pipelined = false, key_norms = none,
      shared_memory_bytes = 163840>
    ```
  }];
  let parameters = (ins EnumParameter<Attn_MmaKind>:$mma, "int64_t":$warps,
      "int64_t":$m_tiles, "int64_t":$block_m, "int64_t":$block_n,
      "int64_t":$stages, "bool":$pipelined,
      EnumParameter<Attn_KeyNormPath>:$key_norms,
      "int64_t":$shared_memory_bytes,
      DefaultValuedParameter<"bool", "false">:$deterministic);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

#endif // ATTN_DIALECT_ATTN_IR_ATTNATTRS_TD
