// RUN: attn-opt %s | attn-opt | FileCheck %s
// RUN: attn-opt %s --mlir-print-op-generic | attn-opt | FileCheck %s
// RUN: attn-opt %s --verify-roundtrip

// Round trip of every attn kind in the pretty form. The specification prints
// in a fixed order: score, scale, gamma, q_map, k_map, mask, normalize, bias,
// length_scale, attr-dict, types, then the score_mod / mask_mod regions.
// Specification attributes print only when given: an explicit default
// (score<dot>, q_map<identity>, normalize<softmax>) is kept, so that it is
// never confused with "not given" next to a variant reference.

//===----------------------------------------------------------------------===//
// Variants
//===----------------------------------------------------------------------===//

// CHECK-LABEL: attn.variant @causal_public mask = [#attn.causal]{{$}}
attn.variant @causal_public mask = [#attn.causal]

// CHECK-LABEL: attn.variant "private" @sigmoid_private
// CHECK-SAME: score<rbf> gamma = 2.500000e-01 q_map<relu> k_map<elu_plus_one>
// CHECK-SAME: mask = [#attn.sliding_window<left = 64, right = 64>]
// CHECK-SAME: normalize<sigmoid> bias = -2.000000e+00{{$}}
attn.variant "private" @sigmoid_private score<rbf> gamma = 0.25
    q_map<relu> k_map<elu_plus_one>
    mask = [#attn.sliding_window<left = 64, right = 64>]
    normalize<sigmoid> bias = -2.0

// CHECK-LABEL: attn.variant @alibi mask = [#attn.causal] score_mod {
// CHECK-NEXT: ^bb0(%[[S:.+]]: f32, %{{.+}}: index, %[[H:.+]]: index, %[[I:.+]]: index, %[[J:.+]]: index, %[[SLOPES:.+]]: tensor<?xf32>):
// CHECK-NEXT:   %[[M:.+]] = tensor.extract %[[SLOPES]][%[[H]]] : tensor<?xf32>
// CHECK-NEXT:   %[[II:.+]] = arith.index_cast %[[I]] : index to i64
// CHECK-NEXT:   %[[JJ:.+]] = arith.index_cast %[[J]] : index to i64
// CHECK-NEXT:   %[[D:.+]] = arith.subi %[[JJ]], %[[II]] : i64
// CHECK-NEXT:   %[[DF:.+]] = arith.sitofp %[[D]] : i64 to f32
// CHECK-NEXT:   %[[B:.+]] = arith.mulf %[[M]], %[[DF]] : f32
// CHECK-NEXT:   %[[R:.+]] = arith.addf %[[S]], %[[B]] : f32
// CHECK-NEXT:   attn.yield %[[R]] : f32
// CHECK-NEXT: }
attn.variant @alibi mask = [#attn.causal] score_mod {
^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index,
     %slopes: tensor<?xf32>):
  %m = tensor.extract %slopes[%h] : tensor<?xf32>
  %ii = arith.index_cast %i : index to i64
  %jj = arith.index_cast %j : index to i64
  %d = arith.subi %jj, %ii : i64
  %df = arith.sitofp %d : i64 to f32
  %bias = arith.mulf %m, %df : f32
  %r = arith.addf %s, %bias : f32
  attn.yield %r : f32
}

// CHECK-LABEL: attn.variant @even_keys
// CHECK-SAME: normalize<relu> mask_mod {
// CHECK-NEXT: ^bb0(%{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %[[J:.+]]: index):
// CHECK:        %[[P:.+]] = arith.cmpi eq
// CHECK-NEXT:   attn.yield %[[P]] : i1
// CHECK-NEXT: }
attn.variant @even_keys normalize<relu> mask_mod {
^bb0(%b: index, %h: index, %i: index, %j: index):
  %c2 = arith.constant 2 : index
  %c0 = arith.constant 0 : index
  %r = arith.remui %j, %c2 : index
  %p = arith.cmpi eq, %r, %c0 : index
  attn.yield %p : i1
}

//===----------------------------------------------------------------------===//
// Score kernels and feature maps
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @score_dot_scale
// CHECK-SAME: (%[[Q:.+]]: tensor<1x4x16x32xf32>, %[[K:.+]]: tensor<1x4x16x32xf32>, %[[V:.+]]: tensor<1x4x16x32xf32>)
// CHECK: attn.attention %[[Q]], %[[K]], %[[V]] score<dot> scale = 1.250000e-01 :
// CHECK-SAME: tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32> -> tensor<1x4x16x32xf32>{{$}}
func.func @score_dot_scale(%q: tensor<1x4x16x32xf32>, %k: tensor<1x4x16x32xf32>,
                           %v: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  %o = attn.attention %q, %k, %v score<dot> scale = 0.125
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// CHECK-LABEL: func.func @score_rbf_gamma
// CHECK: attn.attention %{{.+}}, %{{.+}}, %{{.+}} score<rbf> gamma = 6.250000e-02 :
func.func @score_rbf_gamma(%q: tensor<1x4x16x32xf32>, %k: tensor<1x4x16x32xf32>,
                           %v: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  %o = attn.attention %q, %k, %v score<rbf> gamma = 0.0625
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// CHECK-LABEL: func.func @score_rbf_default_gamma
// CHECK: attn.attention %{{.+}}, %{{.+}}, %{{.+}} score<rbf> :
func.func @score_rbf_default_gamma(%q: tensor<1x4x16x32xf32>, %k: tensor<1x4x16x32xf32>,
                                   %v: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  %o = attn.attention %q, %k, %v score<rbf>
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// Linear attention: feature maps, no normalization.
// CHECK-LABEL: func.func @feature_maps
// CHECK: attn.attention %{{.+}}, %{{.+}}, %{{.+}} q_map<elu_plus_one> k_map<relu> normalize<none> :
func.func @feature_maps(%q: tensor<1x4x16x32xf32>, %k: tensor<1x4x16x32xf32>,
                        %v: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  %o = attn.attention %q, %k, %v q_map<elu_plus_one> k_map<relu>
      normalize<none>
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// Every spec attribute that can be given together, in the printed order.
// CHECK-LABEL: func.func @spec_order
// CHECK: attn.attention %{{.+}}, %{{.+}}, %{{.+}} scale = 5.000000e-01 q_map<relu> k_map<elu_plus_one>
// CHECK-SAME: mask = [#attn.causal] normalize<scalable_softmax> length_scale = 2.000000e+00 {note = "kept"} :
func.func @spec_order(%q: tensor<1x4x16x32xf32>, %k: tensor<1x4x16x32xf32>,
                      %v: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  %o = attn.attention %q, %k, %v scale = 0.5 q_map<relu> k_map<elu_plus_one>
      mask = [#attn.causal] normalize<scalable_softmax> length_scale = 2.0
      {note = "kept"}
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

//===----------------------------------------------------------------------===//
// Masks
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @mask_causal
// CHECK: attn.attention %{{.+}}, %{{.+}}, %{{.+}} mask = [#attn.causal] :
func.func @mask_causal(%q: tensor<1x4x16x32xf32>, %k: tensor<1x4x16x32xf32>,
                       %v: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  %o = attn.attention %q, %k, %v mask = [#attn.causal]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// Decoding: one query against a KV cache, Sq != Sk.
// CHECK-LABEL: func.func @mask_causal_bottom_right
// CHECK: attn.attention %{{.+}}, %{{.+}}, %{{.+}} mask = [#attn.causal<bottom_right>] :
// CHECK-SAME: tensor<1x4x1x32xf16>, tensor<1x4x128x32xf16>, tensor<1x4x128x32xf16> -> tensor<1x4x1x32xf16>{{$}}
func.func @mask_causal_bottom_right(%q: tensor<1x4x1x32xf16>, %k: tensor<1x4x128x32xf16>,
                                    %v: tensor<1x4x128x32xf16>) -> tensor<1x4x1x32xf16> {
  %o = attn.attention %q, %k, %v mask = [#attn.causal<bottom_right>]
      : tensor<1x4x1x32xf16>, tensor<1x4x128x32xf16>, tensor<1x4x128x32xf16>
      -> tensor<1x4x1x32xf16>
  return %o : tensor<1x4x1x32xf16>
}

// CHECK-LABEL: func.func @mask_sliding_window
// CHECK: mask = [#attn.causal<bottom_right>, #attn.sliding_window<left = 32, right = 8, alignment = bottom_right>] :
func.func @mask_sliding_window(%q: tensor<1x4x8x32xf32>, %k: tensor<1x4x128x32xf32>,
                               %v: tensor<1x4x128x32xf32>) -> tensor<1x4x8x32xf32> {
  %o = attn.attention %q, %k, %v
      mask = [#attn.causal<bottom_right>,
              #attn.sliding_window<left = 32, right = 8, alignment = bottom_right>]
      : tensor<1x4x8x32xf32>, tensor<1x4x128x32xf32>, tensor<1x4x128x32xf32>
      -> tensor<1x4x8x32xf32>
  return %o : tensor<1x4x8x32xf32>
}

// The largest mask parameter the verifier accepts: 2^40.
// CHECK-LABEL: func.func @mask_parameter_bound
// CHECK: mask = [#attn.sliding_window<left = 1099511627776, right = 1099511627776>] :
func.func @mask_parameter_bound(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  %o = attn.attention %q, %q, %q
      mask = [#attn.sliding_window<left = 1099511627776, right = 1099511627776>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// Defaults of the window (right = 0, top_left) are elided.
// CHECK-LABEL: func.func @mask_sliding_window_defaults
// CHECK: mask = [#attn.sliding_window<left = 4>] :
func.func @mask_sliding_window_defaults(%q: tensor<1x4x16x32xf32>, %k: tensor<1x4x16x32xf32>,
                                        %v: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  %o = attn.attention %q, %k, %v
      mask = [#attn.sliding_window<left = 4, right = 0, alignment = top_left>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// StreamingLLM: sink tokens with a causal sliding window.
// CHECK-LABEL: func.func @mask_sink_tokens
// CHECK: mask = [#attn.causal, #attn.sink_tokens<count = 4>, #attn.sliding_window<left = 256>] :
func.func @mask_sink_tokens(%q: tensor<1x4x1024x32xbf16>, %k: tensor<1x4x1024x32xbf16>,
                            %v: tensor<1x4x1024x32xbf16>) -> tensor<1x4x1024x32xbf16> {
  %o = attn.attention %q, %k, %v
      mask = [#attn.causal, #attn.sink_tokens<count = 4>,
              #attn.sliding_window<left = 256>]
      : tensor<1x4x1024x32xbf16>, tensor<1x4x1024x32xbf16>, tensor<1x4x1024x32xbf16>
      -> tensor<1x4x1024x32xbf16>
  return %o : tensor<1x4x1024x32xbf16>
}

// CHECK-LABEL: func.func @mask_chunked
// CHECK: mask = [#attn.causal, #attn.chunked<size = 256>] :
func.func @mask_chunked(%q: tensor<1x4x1024x32xbf16>, %k: tensor<1x4x1024x32xbf16>,
                        %v: tensor<1x4x1024x32xbf16>) -> tensor<1x4x1024x32xbf16> {
  %o = attn.attention %q, %k, %v mask = [#attn.causal, #attn.chunked<size = 256>]
      : tensor<1x4x1024x32xbf16>, tensor<1x4x1024x32xbf16>, tensor<1x4x1024x32xbf16>
      -> tensor<1x4x1024x32xbf16>
  return %o : tensor<1x4x1024x32xbf16>
}

// A decode-style chunk: the queries are the last positions of the keys.
// CHECK-LABEL: func.func @mask_chunked_bottom_right
// CHECK: mask = [#attn.causal<bottom_right>, #attn.chunked<size = 256, alignment = bottom_right>] :
func.func @mask_chunked_bottom_right(%q: tensor<1x4x3x32xbf16>, %k: tensor<1x4x1024x32xbf16>,
                                     %v: tensor<1x4x1024x32xbf16>) -> tensor<1x4x3x32xbf16> {
  %o = attn.attention %q, %k, %v
      mask = [#attn.causal<bottom_right>, #attn.chunked<size = 256, alignment = bottom_right>]
      : tensor<1x4x3x32xbf16>, tensor<1x4x1024x32xbf16>, tensor<1x4x1024x32xbf16>
      -> tensor<1x4x3x32xbf16>
  return %o : tensor<1x4x3x32xbf16>
}

// An OR of positional masks: a causal window plus global keys at the start.
// CHECK-LABEL: func.func @mask_any_of
// CHECK: mask = [#attn.any_of<[#attn.sliding_window<left = 255>, #attn.prefix_lm<prefix = 64>]>] :
func.func @mask_any_of(%q: tensor<1x4x1024x32xbf16>, %k: tensor<1x4x1024x32xbf16>,
                       %v: tensor<1x4x1024x32xbf16>) -> tensor<1x4x1024x32xbf16> {
  %o = attn.attention %q, %k, %v
      mask = [#attn.any_of<[#attn.sliding_window<left = 255>, #attn.prefix_lm<prefix = 64>]>]
      : tensor<1x4x1024x32xbf16>, tensor<1x4x1024x32xbf16>, tensor<1x4x1024x32xbf16>
      -> tensor<1x4x1024x32xbf16>
  return %o : tensor<1x4x1024x32xbf16>
}

// CHECK-LABEL: func.func @mask_neighborhood_1d
// CHECK: mask = [#attn.neighborhood_1d<kernel = 7, dilation = 2>] :
func.func @mask_neighborhood_1d(%q: tensor<1x4x64x32xf32>, %k: tensor<1x4x64x32xf32>,
                                %v: tensor<1x4x64x32xf32>) -> tensor<1x4x64x32xf32> {
  %o = attn.attention %q, %k, %v mask = [#attn.neighborhood_1d<kernel = 7, dilation = 2>]
      : tensor<1x4x64x32xf32>, tensor<1x4x64x32xf32>, tensor<1x4x64x32xf32>
      -> tensor<1x4x64x32xf32>
  return %o : tensor<1x4x64x32xf32>
}

// CHECK-LABEL: func.func @mask_neighborhood_2d
// CHECK: mask = [#attn.neighborhood_2d<height = 16, width = 8, kernel_h = 5, kernel_w = 3, dilation_h = 2, dilation_w = 2>] :
func.func @mask_neighborhood_2d(%q: tensor<1x4x128x32xf32>, %k: tensor<1x4x128x32xf32>,
                                %v: tensor<1x4x128x32xf32>) -> tensor<1x4x128x32xf32> {
  %o = attn.attention %q, %k, %v
      mask = [#attn.neighborhood_2d<height = 16, width = 8, kernel_h = 5,
                                    kernel_w = 3, dilation_h = 2, dilation_w = 2>]
      : tensor<1x4x128x32xf32>, tensor<1x4x128x32xf32>, tensor<1x4x128x32xf32>
      -> tensor<1x4x128x32xf32>
  return %o : tensor<1x4x128x32xf32>
}

// Default dilations are elided.
// CHECK-LABEL: func.func @mask_neighborhood_2d_defaults
// CHECK: mask = [#attn.neighborhood_2d<height = 8, width = 8, kernel_h = 3, kernel_w = 5>] :
func.func @mask_neighborhood_2d_defaults(%q: tensor<1x4x64x32xf32>, %k: tensor<1x4x64x32xf32>,
                                         %v: tensor<1x4x64x32xf32>) -> tensor<1x4x64x32xf32> {
  %o = attn.attention %q, %k, %v
      mask = [#attn.neighborhood_2d<height = 8, width = 8, kernel_h = 3,
                                    kernel_w = 5, dilation_h = 1>]
      : tensor<1x4x64x32xf32>, tensor<1x4x64x32xf32>, tensor<1x4x64x32xf32>
      -> tensor<1x4x64x32xf32>
  return %o : tensor<1x4x64x32xf32>
}

// Document masking with separate query and key segment ids (Sq != Sk).
// CHECK-LABEL: func.func @mask_document
// CHECK-SAME: (%[[Q:.+]]: tensor<2x4x16x32xf32>, %[[K:.+]]: tensor<2x4x32x32xf32>, %[[V:.+]]: tensor<2x4x32x32xf32>, %[[QS:.+]]: tensor<2x16xi32>, %[[KS:.+]]: tensor<2x32xi32>)
// CHECK: attn.attention %[[Q]], %[[K]], %[[V]] captures(%[[QS]], %[[KS]] : tensor<2x16xi32>, tensor<2x32xi32>)
// CHECK-SAME: mask = [#attn.causal<bottom_right>, #attn.document<q_segments = 0, kv_segments = 1>] :
func.func @mask_document(%q: tensor<2x4x16x32xf32>, %k: tensor<2x4x32x32xf32>,
                         %v: tensor<2x4x32x32xf32>, %qs: tensor<2x16xi32>,
                         %ks: tensor<2x32xi32>) -> tensor<2x4x16x32xf32> {
  %o = attn.attention %q, %k, %v captures(%qs, %ks : tensor<2x16xi32>, tensor<2x32xi32>)
      mask = [#attn.causal<bottom_right>,
              #attn.document<q_segments = 0, kv_segments = 1>]
      : tensor<2x4x16x32xf32>, tensor<2x4x32x32xf32>, tensor<2x4x32x32xf32>
      -> tensor<2x4x16x32xf32>
  return %o : tensor<2x4x16x32xf32>
}

// One capture serves both sides when Sq == Sk.
// CHECK-LABEL: func.func @mask_document_shared
// CHECK: captures(%{{.+}} : tensor<2x16xi32>) mask = [#attn.document<q_segments = 0, kv_segments = 0>] :
func.func @mask_document_shared(%q: tensor<2x4x16x32xf32>, %k: tensor<2x4x16x32xf32>,
                                %v: tensor<2x4x16x32xf32>, %seg: tensor<2x16xi32>)
    -> tensor<2x4x16x32xf32> {
  %o = attn.attention %q, %k, %v captures(%seg : tensor<2x16xi32>)
      mask = [#attn.document<q_segments = 0, kv_segments = 0>]
      : tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>
      -> tensor<2x4x16x32xf32>
  return %o : tensor<2x4x16x32xf32>
}

// CHECK-LABEL: func.func @mask_prefix_lm
// CHECK: mask = [#attn.prefix_lm<prefix = 8>] :
// CHECK: mask = [#attn.prefix_lm<prefix = 0, alignment = bottom_right>] :
func.func @mask_prefix_lm(%q: tensor<1x4x16x32xf32>, %k: tensor<1x4x16x32xf32>,
                          %v: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  %o = attn.attention %q, %k, %v mask = [#attn.prefix_lm<prefix = 8>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  %o2 = attn.attention %q, %k, %v
      mask = [#attn.prefix_lm<prefix = 0, alignment = bottom_right>]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o2 : tensor<1x4x16x32xf32>
}

// An empty mask list is kept.
// CHECK-LABEL: func.func @mask_empty
// CHECK: attn.attention %{{.+}}, %{{.+}}, %{{.+}} mask = [] :
func.func @mask_empty(%q: tensor<1x4x16x32xf32>, %k: tensor<1x4x16x32xf32>,
                      %v: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  %o = attn.attention %q, %k, %v mask = []
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

//===----------------------------------------------------------------------===//
// Normalizations
//===----------------------------------------------------------------------===//

// normalize<softmax> is the default and is elided.
// CHECK-LABEL: func.func @normalize_softmax
// CHECK: attn.attention %{{.+}}, %{{.+}}, %{{.+}} : tensor<1x4x16x32xf32>
func.func @normalize_softmax(%q: tensor<1x4x16x32xf32>, %k: tensor<1x4x16x32xf32>,
                             %v: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  %o = attn.attention %q, %k, %v normalize<softmax>
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// CHECK-LABEL: func.func @normalize_softmax1
// CHECK: attn.attention %{{.+}}, %{{.+}}, %{{.+}} normalize<softmax1> :
func.func @normalize_softmax1(%q: tensor<1x4x16x32xf32>, %k: tensor<1x4x16x32xf32>,
                              %v: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  %o = attn.attention %q, %k, %v normalize<softmax1>
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// CHECK-LABEL: func.func @normalize_scalable_softmax
// CHECK: attn.attention %{{.+}}, %{{.+}}, %{{.+}} normalize<scalable_softmax> length_scale = 4.000000e-01 :
func.func @normalize_scalable_softmax(%q: tensor<1x4x16x32xf32>, %k: tensor<1x4x16x32xf32>,
                                      %v: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  %o = attn.attention %q, %k, %v normalize<scalable_softmax> length_scale = 0.4
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// CHECK-LABEL: func.func @normalize_sigmoid
// CHECK: attn.attention %{{.+}}, %{{.+}}, %{{.+}} normalize<sigmoid> bias = -6.500000e+00 :
func.func @normalize_sigmoid(%q: tensor<1x4x16x32xf32>, %k: tensor<1x4x16x32xf32>,
                             %v: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  %o = attn.attention %q, %k, %v normalize<sigmoid> bias = -6.5
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// CHECK-LABEL: func.func @normalize_relu
// CHECK: attn.attention %{{.+}}, %{{.+}}, %{{.+}} normalize<relu> :
func.func @normalize_relu(%q: tensor<1x4x16x32xf32>, %k: tensor<1x4x16x32xf32>,
                          %v: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  %o = attn.attention %q, %k, %v normalize<relu>
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// CHECK-LABEL: func.func @normalize_relu2
// CHECK: attn.attention %{{.+}}, %{{.+}}, %{{.+}} normalize<relu2> :
func.func @normalize_relu2(%q: tensor<1x4x16x32xf32>, %k: tensor<1x4x16x32xf32>,
                           %v: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  %o = attn.attention %q, %k, %v normalize<relu2>
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// CHECK-LABEL: func.func @normalize_none
// CHECK: attn.attention %{{.+}}, %{{.+}}, %{{.+}} normalize<none> :
func.func @normalize_none(%q: tensor<1x4x16x32xf32>, %k: tensor<1x4x16x32xf32>,
                          %v: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  %o = attn.attention %q, %k, %v normalize<none>
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// mean also has an lse (log n).
// CHECK-LABEL: func.func @normalize_mean
// CHECK: %{{.+}}, %[[LSE:.+]] = attn.attention %{{.+}}, %{{.+}}, %{{.+}} mask = [#attn.causal] normalize<mean> :
// CHECK-SAME: -> tensor<1x4x16x32xf32>, tensor<1x4x16xf32>
// CHECK: return %[[LSE]]
func.func @normalize_mean(%q: tensor<1x4x16x32xf32>, %k: tensor<1x4x16x32xf32>,
                          %v: tensor<1x4x16x32xf32>) -> tensor<1x4x16xf32> {
  %o, %lse = attn.attention %q, %k, %v mask = [#attn.causal] normalize<mean>
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16xf32>
  return %lse : tensor<1x4x16xf32>
}

//===----------------------------------------------------------------------===//
// Results, sinks
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @lse
// CHECK: %[[O:.+]], %[[LSE:.+]] = attn.attention %{{.+}}, %{{.+}}, %{{.+}} mask = [#attn.causal] :
// CHECK-SAME: tensor<2x8x64x32xbf16>, tensor<2x8x64x32xbf16>, tensor<2x8x64x32xbf16> -> tensor<2x8x64x32xbf16>, tensor<2x8x64xf32>{{$}}
// CHECK: return %[[O]], %[[LSE]]
func.func @lse(%q: tensor<2x8x64x32xbf16>, %k: tensor<2x8x64x32xbf16>,
               %v: tensor<2x8x64x32xbf16>) -> (tensor<2x8x64x32xbf16>, tensor<2x8x64xf32>) {
  %o, %lse = attn.attention %q, %k, %v mask = [#attn.causal]
      : tensor<2x8x64x32xbf16>, tensor<2x8x64x32xbf16>, tensor<2x8x64x32xbf16>
      -> tensor<2x8x64x32xbf16>, tensor<2x8x64xf32>
  return %o, %lse : tensor<2x8x64x32xbf16>, tensor<2x8x64xf32>
}

// gpt-oss: per-head sink logits, GQA, sliding window, lse.
// CHECK-LABEL: func.func @sink_logits
// CHECK-SAME: %[[SL:[^:]+]]: tensor<8xf32>
// CHECK: attn.attention %{{.+}}, %{{.+}}, %{{.+}} sink_logits(%[[SL]] : tensor<8xf32>)
// CHECK-SAME: mask = [#attn.causal, #attn.sliding_window<left = 127>] :
// CHECK-SAME: -> tensor<1x8x256x64xbf16>, tensor<1x8x256xf32>{{$}}
func.func @sink_logits(%q: tensor<1x8x256x64xbf16>, %k: tensor<1x2x256x64xbf16>,
                       %v: tensor<1x2x256x64xbf16>, %sl: tensor<8xf32>)
    -> tensor<1x8x256x64xbf16> {
  %o, %lse = attn.attention %q, %k, %v sink_logits(%sl : tensor<8xf32>)
      mask = [#attn.causal, #attn.sliding_window<left = 127>]
      : tensor<1x8x256x64xbf16>, tensor<1x2x256x64xbf16>, tensor<1x2x256x64xbf16>
      -> tensor<1x8x256x64xbf16>, tensor<1x8x256xf32>
  return %o : tensor<1x8x256x64xbf16>
}

// CHECK-LABEL: func.func @sink_logits_softmax1
// CHECK: sink_logits(%{{.+}} : tensor<4xf32>) normalize<softmax1> :
func.func @sink_logits_softmax1(%q: tensor<1x4x16x32xf32>, %k: tensor<1x4x16x32xf32>,
                                %v: tensor<1x4x16x32xf32>, %sl: tensor<4xf32>)
    -> tensor<1x4x16x32xf32> {
  %o = attn.attention %q, %k, %v sink_logits(%sl : tensor<4xf32>) normalize<softmax1>
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// Learned sink key/value rows, Dqk != Dv.
// CHECK-LABEL: func.func @sink_rows
// CHECK-SAME: %[[SK:[^:]+]]: tensor<2x3x32xf16>, %[[SV:[^:]+]]: tensor<2x3x16xf16>
// CHECK: attn.attention %{{.+}}, %{{.+}}, %{{.+}} sink_rows(%[[SK]], %[[SV]] : tensor<2x3x32xf16>, tensor<2x3x16xf16>)
// CHECK-SAME: mask = [#attn.causal] normalize<sigmoid> :
func.func @sink_rows(%q: tensor<1x4x16x32xf16>, %k: tensor<1x2x16x32xf16>,
                     %v: tensor<1x2x16x16xf16>, %sk: tensor<2x3x32xf16>,
                     %sv: tensor<2x3x16xf16>) -> tensor<1x4x16x16xf16> {
  %o = attn.attention %q, %k, %v sink_rows(%sk, %sv : tensor<2x3x32xf16>, tensor<2x3x16xf16>)
      mask = [#attn.causal] normalize<sigmoid>
      : tensor<1x4x16x32xf16>, tensor<1x2x16x32xf16>, tensor<1x2x16x16xf16>
      -> tensor<1x4x16x16xf16>
  return %o : tensor<1x4x16x16xf16>
}

// All optional operand groups at once, in their printed order.
// CHECK-LABEL: func.func @all_operand_groups
// CHECK-SAME: (%[[Q:[^:]+]]: {{.+}}, %[[K:[^:]+]]: {{.+}}, %[[V:[^:]+]]: {{.+}}, %[[C:[^:]+]]: tensor<4xf32>, %[[SL:[^:]+]]: tensor<4xf32>, %[[SK:[^:]+]]: tensor<4x2x32xf32>, %[[SV:[^:]+]]: tensor<4x2x32xf32>)
// CHECK: attn.attention %[[Q]], %[[K]], %[[V]] captures(%[[C]] : tensor<4xf32>) sink_logits(%[[SL]] : tensor<4xf32>) sink_rows(%[[SK]], %[[SV]] : tensor<4x2x32xf32>, tensor<4x2x32xf32>) mask = [#attn.causal] :
// CHECK-SAME: score_mod {
// CHECK: attn.yield %{{.+}} : f32
func.func @all_operand_groups(%q: tensor<1x4x16x32xf32>, %k: tensor<1x4x16x32xf32>,
                              %v: tensor<1x4x16x32xf32>, %c: tensor<4xf32>,
                              %sl: tensor<4xf32>, %sk: tensor<4x2x32xf32>,
                              %sv: tensor<4x2x32xf32>) -> tensor<1x4x16x32xf32> {
  %o, %lse = attn.attention %q, %k, %v captures(%c : tensor<4xf32>)
      sink_logits(%sl : tensor<4xf32>)
      sink_rows(%sk, %sv : tensor<4x2x32xf32>, tensor<4x2x32xf32>)
      mask = [#attn.causal]
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16xf32>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index, %t: tensor<4xf32>):
    %x = tensor.extract %t[%h] : tensor<4xf32>
    %r = arith.addf %s, %x : f32
    attn.yield %r : f32
  }
  return %o : tensor<1x4x16x32xf32>
}

//===----------------------------------------------------------------------===//
// Shapes and element types
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @mha
// CHECK: : tensor<2x8x64x32xf32>, tensor<2x8x64x32xf32>, tensor<2x8x64x32xf32> -> tensor<2x8x64x32xf32>{{$}}
func.func @mha(%q: tensor<2x8x64x32xf32>, %k: tensor<2x8x64x32xf32>,
               %v: tensor<2x8x64x32xf32>) -> tensor<2x8x64x32xf32> {
  %o = attn.attention %q, %k, %v
      : tensor<2x8x64x32xf32>, tensor<2x8x64x32xf32>, tensor<2x8x64x32xf32>
      -> tensor<2x8x64x32xf32>
  return %o : tensor<2x8x64x32xf32>
}

// CHECK-LABEL: func.func @gqa
// CHECK: : tensor<2x8x64x32xf16>, tensor<2x2x64x32xf16>, tensor<2x2x64x32xf16> -> tensor<2x8x64x32xf16>{{$}}
func.func @gqa(%q: tensor<2x8x64x32xf16>, %k: tensor<2x2x64x32xf16>,
               %v: tensor<2x2x64x32xf16>) -> tensor<2x8x64x32xf16> {
  %o = attn.attention %q, %k, %v
      : tensor<2x8x64x32xf16>, tensor<2x2x64x32xf16>, tensor<2x2x64x32xf16>
      -> tensor<2x8x64x32xf16>
  return %o : tensor<2x8x64x32xf16>
}

// CHECK-LABEL: func.func @mqa
// CHECK: : tensor<2x8x64x32xbf16>, tensor<2x1x64x32xbf16>, tensor<2x1x64x32xbf16> -> tensor<2x8x64x32xbf16>{{$}}
func.func @mqa(%q: tensor<2x8x64x32xbf16>, %k: tensor<2x1x64x32xbf16>,
               %v: tensor<2x1x64x32xbf16>) -> tensor<2x8x64x32xbf16> {
  %o = attn.attention %q, %k, %v
      : tensor<2x8x64x32xbf16>, tensor<2x1x64x32xbf16>, tensor<2x1x64x32xbf16>
      -> tensor<2x8x64x32xbf16>
  return %o : tensor<2x8x64x32xbf16>
}

// MLA-like shapes: Sq != Sk and Dqk != Dv.
// CHECK-LABEL: func.func @sq_sk_dqk_dv
// CHECK: mask = [#attn.causal<bottom_right>] :
// CHECK-SAME: tensor<1x16x4x192xbf16>, tensor<1x16x512x192xbf16>, tensor<1x16x512x128xbf16> -> tensor<1x16x4x128xbf16>, tensor<1x16x4xf32>{{$}}
func.func @sq_sk_dqk_dv(%q: tensor<1x16x4x192xbf16>, %k: tensor<1x16x512x192xbf16>,
                        %v: tensor<1x16x512x128xbf16>) -> tensor<1x16x4x128xbf16> {
  %o, %lse = attn.attention %q, %k, %v mask = [#attn.causal<bottom_right>]
      : tensor<1x16x4x192xbf16>, tensor<1x16x512x192xbf16>, tensor<1x16x512x128xbf16>
      -> tensor<1x16x4x128xbf16>, tensor<1x16x4xf32>
  return %o : tensor<1x16x4x128xbf16>
}

// Dynamic dims everywhere a size may be dynamic.
// CHECK-LABEL: func.func @dynamic_dims
// CHECK: %{{.+}}, %{{.+}} = attn.attention %{{.+}}, %{{.+}}, %{{.+}} mask = [#attn.causal<bottom_right>, #attn.sliding_window<left = 16>] :
// CHECK-SAME: tensor<?x?x?x64xf16>, tensor<?x?x?x64xf16>, tensor<?x?x?x?xf16> -> tensor<?x?x?x?xf16>, tensor<?x?x?xf32>{{$}}
func.func @dynamic_dims(%q: tensor<?x?x?x64xf16>, %k: tensor<?x?x?x64xf16>,
                        %v: tensor<?x?x?x?xf16>) -> tensor<?x?x?x?xf16> {
  %o, %lse = attn.attention %q, %k, %v
      mask = [#attn.causal<bottom_right>, #attn.sliding_window<left = 16>]
      : tensor<?x?x?x64xf16>, tensor<?x?x?x64xf16>, tensor<?x?x?x?xf16>
      -> tensor<?x?x?x?xf16>, tensor<?x?x?xf32>
  return %o : tensor<?x?x?x?xf16>
}

// Dynamic sequence lengths with a neighborhood mask (Sq == Sk unknown).
// CHECK-LABEL: func.func @dynamic_neighborhood
// CHECK: mask = [#attn.neighborhood_1d<kernel = 9>] :
// CHECK-SAME: tensor<1x4x?x32xf32>, tensor<1x4x?x32xf32>, tensor<1x4x?x32xf32> -> tensor<1x4x?x32xf32>{{$}}
func.func @dynamic_neighborhood(%q: tensor<1x4x?x32xf32>, %k: tensor<1x4x?x32xf32>,
                                %v: tensor<1x4x?x32xf32>) -> tensor<1x4x?x32xf32> {
  %o = attn.attention %q, %k, %v mask = [#attn.neighborhood_1d<kernel = 9, dilation = 1>]
      : tensor<1x4x?x32xf32>, tensor<1x4x?x32xf32>, tensor<1x4x?x32xf32>
      -> tensor<1x4x?x32xf32>
  return %o : tensor<1x4x?x32xf32>
}

//===----------------------------------------------------------------------===//
// Regions
//===----------------------------------------------------------------------===//

// ALiBi inline, with the slopes captured (a dynamic size in the region
// accepts the static capture).
// CHECK-LABEL: func.func @score_mod_alibi
// CHECK-SAME: %[[SLOPES:[^:]+]]: tensor<8xf32>
// CHECK: %[[O:.+]] = attn.attention %{{.+}}, %{{.+}}, %{{.+}} captures(%[[SLOPES]] : tensor<8xf32>) mask = [#attn.causal] :
// CHECK-SAME: -> tensor<1x8x64x32xf32> score_mod {
// CHECK-NEXT: ^bb0(%[[S:.+]]: f32, %{{.+}}: index, %[[H:.+]]: index, %[[I:.+]]: index, %[[J:.+]]: index, %[[T:.+]]: tensor<?xf32>):
// CHECK-NEXT:   %[[M:.+]] = tensor.extract %[[T]][%[[H]]] : tensor<?xf32>
// CHECK-NEXT:   %[[II:.+]] = arith.index_cast %[[I]] : index to i64
// CHECK-NEXT:   %[[JJ:.+]] = arith.index_cast %[[J]] : index to i64
// CHECK-NEXT:   %[[D:.+]] = arith.subi %[[JJ]], %[[II]] : i64
// CHECK-NEXT:   %[[DF:.+]] = arith.sitofp %[[D]] : i64 to f32
// CHECK-NEXT:   %[[B:.+]] = arith.mulf %[[M]], %[[DF]] : f32
// CHECK-NEXT:   %[[R:.+]] = arith.addf %[[S]], %[[B]] : f32
// CHECK-NEXT:   attn.yield %[[R]] : f32
// CHECK-NEXT: }
// CHECK-NEXT: return %[[O]]
func.func @score_mod_alibi(%q: tensor<1x8x64x32xf32>, %k: tensor<1x8x64x32xf32>,
                           %v: tensor<1x8x64x32xf32>, %slopes: tensor<8xf32>)
    -> tensor<1x8x64x32xf32> {
  %o = attn.attention %q, %k, %v captures(%slopes : tensor<8xf32>)
      mask = [#attn.causal]
      : tensor<1x8x64x32xf32>, tensor<1x8x64x32xf32>, tensor<1x8x64x32xf32>
      -> tensor<1x8x64x32xf32>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index, %t: tensor<?xf32>):
    %m = tensor.extract %t[%h] : tensor<?xf32>
    %ii = arith.index_cast %i : index to i64
    %jj = arith.index_cast %j : index to i64
    %d = arith.subi %jj, %ii : i64
    %df = arith.sitofp %d : i64 to f32
    %bias = arith.mulf %m, %df : f32
    %r = arith.addf %s, %bias : f32
    attn.yield %r : f32
  }
  return %o : tensor<1x8x64x32xf32>
}

// Gemma-2 logit soft-capping: 50 * tanh(s / 50).
// CHECK-LABEL: func.func @score_mod_softcap
// CHECK: attn.attention %{{.+}}, %{{.+}}, %{{.+}} mask = [#attn.causal] :
// CHECK-SAME: score_mod {
// CHECK-NEXT: ^bb0(%[[S:.+]]: f32, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index):
// CHECK-NEXT:   %[[CAP:.+]] = arith.constant 5.000000e+01 : f32
// CHECK-NEXT:   %[[X:.+]] = arith.divf %[[S]], %[[CAP]] : f32
// CHECK-NEXT:   %[[T:.+]] = math.tanh %[[X]] : f32
// CHECK-NEXT:   %[[R:.+]] = arith.mulf %[[T]], %[[CAP]] : f32
// CHECK-NEXT:   attn.yield %[[R]] : f32
func.func @score_mod_softcap(%q: tensor<1x8x64x32xbf16>, %k: tensor<1x4x64x32xbf16>,
                             %v: tensor<1x4x64x32xbf16>) -> tensor<1x8x64x32xbf16> {
  %o = attn.attention %q, %k, %v mask = [#attn.causal]
      : tensor<1x8x64x32xbf16>, tensor<1x4x64x32xbf16>, tensor<1x4x64x32xbf16>
      -> tensor<1x8x64x32xbf16>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    %cap = arith.constant 50.0 : f32
    %x = arith.divf %s, %cap : f32
    %t = math.tanh %x : f32
    %r = arith.mulf %t, %cap : f32
    attn.yield %r : f32
  }
  return %o : tensor<1x8x64x32xbf16>
}

// A mask region with a captured per-batch length (key padding).
// CHECK-LABEL: func.func @mask_mod_padding
// CHECK-SAME: %[[LENS:[^:]+]]: tensor<2xindex>
// CHECK: attn.attention %{{.+}}, %{{.+}}, %{{.+}} captures(%[[LENS]] : tensor<2xindex>) mask = [#attn.causal] :
// CHECK-SAME: mask_mod {
// CHECK-NEXT: ^bb0(%[[B:.+]]: index, %{{.+}}: index, %{{.+}}: index, %[[J:.+]]: index, %[[L:.+]]: tensor<2xindex>):
// CHECK-NEXT:   %[[N:.+]] = tensor.extract %[[L]][%[[B]]] : tensor<2xindex>
// CHECK-NEXT:   %[[P:.+]] = arith.cmpi ult, %[[J]], %[[N]] : index
// CHECK-NEXT:   attn.yield %[[P]] : i1
func.func @mask_mod_padding(%q: tensor<2x4x16x32xf32>, %k: tensor<2x4x16x32xf32>,
                            %v: tensor<2x4x16x32xf32>, %lens: tensor<2xindex>)
    -> tensor<2x4x16x32xf32> {
  %o = attn.attention %q, %k, %v captures(%lens : tensor<2xindex>) mask = [#attn.causal]
      : tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>
      -> tensor<2x4x16x32xf32>
      mask_mod {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %l: tensor<2xindex>):
    %n = tensor.extract %l[%b] : tensor<2xindex>
    %p = arith.cmpi ult, %j, %n : index
    attn.yield %p : i1
  }
  return %o : tensor<2x4x16x32xf32>
}

// Both regions, sharing the captures; score_mod prints before mask_mod.
// CHECK-LABEL: func.func @score_mod_and_mask_mod
// CHECK: attn.attention %{{.+}}, %{{.+}}, %{{.+}} captures(%{{.+}}, %{{.+}} : tensor<4xf32>, tensor<16xi32>) normalize<softmax1> :
// CHECK-SAME: score_mod {
// CHECK-NEXT: ^bb0(%{{.+}}: f32, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %{{.+}}: tensor<4xf32>, %{{.+}}: tensor<16xi32>):
// CHECK:        attn.yield %{{.+}} : f32
// CHECK-NEXT: } mask_mod {
// CHECK-NEXT: ^bb0(%{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %{{.+}}: tensor<4xf32>, %{{.+}}: tensor<16xi32>):
// CHECK:        attn.yield %{{.+}} : i1
func.func @score_mod_and_mask_mod(%q: tensor<1x4x16x32xf32>, %k: tensor<1x4x16x32xf32>,
                                  %v: tensor<1x4x16x32xf32>, %slopes: tensor<4xf32>,
                                  %ids: tensor<16xi32>) -> tensor<1x4x16x32xf32> {
  %o = attn.attention %q, %k, %v captures(%slopes, %ids : tensor<4xf32>, tensor<16xi32>)
      normalize<softmax1>
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index,
       %sl: tensor<4xf32>, %id: tensor<16xi32>):
    %m = tensor.extract %sl[%h] : tensor<4xf32>
    %r = arith.mulf %s, %m : f32
    attn.yield %r : f32
  } mask_mod {
  ^bb0(%b: index, %h: index, %i: index, %j: index,
       %sl: tensor<4xf32>, %id: tensor<16xi32>):
    %a = tensor.extract %id[%i] : tensor<16xi32>
    %c = tensor.extract %id[%j] : tensor<16xi32>
    %p = arith.cmpi eq, %a, %c : i32
    attn.yield %p : i1
  }
  return %o : tensor<1x4x16x32xf32>
}

//===----------------------------------------------------------------------===//
// References to variants
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @use_variants
// CHECK-SAME: (%[[Q:[^:]+]]: {{.+}}, %[[K:[^:]+]]: {{.+}}, %[[V:[^:]+]]: {{.+}}, %[[SLOPES:[^:]+]]: tensor<8xf32>)
// CHECK: attn.attention %[[Q]], %[[K]], %[[V]] variant @causal_public :
// CHECK: attn.attention %[[Q]], %[[K]], %[[V]] variant @sigmoid_private :
// CHECK: attn.attention %[[Q]], %[[K]], %[[V]] captures(%[[SLOPES]] : tensor<8xf32>) variant @alibi :
// CHECK-SAME: -> tensor<1x8x64x32xf32>, tensor<1x8x64xf32>{{$}}
// CHECK: attn.attention %[[Q]], %[[K]], %[[V]] variant @even_keys {note} :
func.func @use_variants(%q: tensor<1x8x64x32xf32>, %k: tensor<1x8x64x32xf32>,
                        %v: tensor<1x8x64x32xf32>, %slopes: tensor<8xf32>)
    -> tensor<1x8x64x32xf32> {
  %o0 = attn.attention %q, %k, %v variant @causal_public
      : tensor<1x8x64x32xf32>, tensor<1x8x64x32xf32>, tensor<1x8x64x32xf32>
      -> tensor<1x8x64x32xf32>
  %o1 = attn.attention %q, %k, %v variant @sigmoid_private
      : tensor<1x8x64x32xf32>, tensor<1x8x64x32xf32>, tensor<1x8x64x32xf32>
      -> tensor<1x8x64x32xf32>
  %o2, %lse = attn.attention %q, %k, %v captures(%slopes : tensor<8xf32>) variant @alibi
      : tensor<1x8x64x32xf32>, tensor<1x8x64x32xf32>, tensor<1x8x64x32xf32>
      -> tensor<1x8x64x32xf32>, tensor<1x8x64xf32>
  %o3 = attn.attention %q, %k, %v variant @even_keys {note}
      : tensor<1x8x64x32xf32>, tensor<1x8x64x32xf32>, tensor<1x8x64x32xf32>
      -> tensor<1x8x64x32xf32>
  return %o2 : tensor<1x8x64x32xf32>
}
