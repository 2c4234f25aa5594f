// RUN: attn-opt %s --split-input-file --attn-instantiate-variants | FileCheck %s --check-prefixes=CHECK,KEEP
// RUN: attn-opt %s --split-input-file --attn-instantiate-variants=erase-variants=true | FileCheck %s --check-prefixes=CHECK,ERASE

// The CHECK lines hold for both runs. The KEEP lines: without options every
// variant stays. The ERASE lines: with erase-variants, a variant goes once
// nothing references it.

// Several ops, of different shapes, share one variant; an inline op next to
// them is left alone. Every specification attribute is copied, in the printed
// order, and the `variant` reference is dropped (it would print right after
// the operands).

// KEEP: attn.variant @rbf_sigmoid score<rbf> gamma = 2.500000e-01 q_map<elu_plus_one> k_map<relu> mask = [#attn.causal, #attn.sliding_window<left = 8>] normalize<sigmoid> bias = -1.000000e+00{{$}}
// ERASE-NOT: attn.variant
attn.variant @rbf_sigmoid score<rbf> gamma = 0.25 q_map<elu_plus_one> k_map<relu>
    mask = [#attn.causal, #attn.sliding_window<left = 8>]
    normalize<sigmoid> bias = -1.0

// CHECK-LABEL: func.func @shared_variant
// CHECK-SAME: (%[[Q:[^:]+]]: tensor<1x4x16x32xf32>, %[[K:[^:]+]]: tensor<1x4x16x32xf32>, %[[V:[^:]+]]: tensor<1x4x16x32xf32>, %[[Q2:[^:]+]]: tensor<2x8x4x64xbf16>, %[[K2:[^:]+]]: tensor<2x2x32x64xbf16>)
// CHECK:      %[[O1:.+]] = attn.attention %[[Q]], %[[K]], %[[V]] score<rbf> gamma = 2.500000e-01 q_map<elu_plus_one> k_map<relu> mask = [#attn.causal, #attn.sliding_window<left = 8>] normalize<sigmoid> bias = -1.000000e+00 {attn.variant_name = "rbf_sigmoid"} :
// CHECK-SAME:   tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32> -> tensor<1x4x16x32xf32>{{$}}
// CHECK-NEXT: %[[O2:.+]] = attn.attention %[[Q2]], %[[K2]], %[[K2]] score<rbf> gamma = 2.500000e-01 q_map<elu_plus_one> k_map<relu> mask = [#attn.causal, #attn.sliding_window<left = 8>] normalize<sigmoid> bias = -1.000000e+00 {attn.variant_name = "rbf_sigmoid", tag = "kept"} :
// CHECK-SAME:   tensor<2x8x4x64xbf16>, tensor<2x2x32x64xbf16>, tensor<2x2x32x64xbf16> -> tensor<2x8x4x64xbf16>{{$}}
// CHECK-NEXT: %[[O3:.+]] = attn.attention %[[Q]], %[[K]], %[[V]] mask = [#attn.causal] normalize<softmax1> :
// CHECK-SAME:   -> tensor<1x4x16x32xf32>{{$}}
// CHECK-NEXT: return %[[O1]], %[[O2]], %[[O3]]
func.func @shared_variant(%q: tensor<1x4x16x32xf32>, %k: tensor<1x4x16x32xf32>,
                          %v: tensor<1x4x16x32xf32>, %q2: tensor<2x8x4x64xbf16>,
                          %k2: tensor<2x2x32x64xbf16>)
    -> (tensor<1x4x16x32xf32>, tensor<2x8x4x64xbf16>, tensor<1x4x16x32xf32>) {
  %o1 = attn.attention %q, %k, %v variant @rbf_sigmoid
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  %o2 = attn.attention %q2, %k2, %k2 variant @rbf_sigmoid {tag = "kept"}
      : tensor<2x8x4x64xbf16>, tensor<2x2x32x64xbf16>, tensor<2x2x32x64xbf16>
      -> tensor<2x8x4x64xbf16>
  %o3 = attn.attention %q, %k, %v mask = [#attn.causal] normalize<softmax1>
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o1, %o2, %o3
      : tensor<1x4x16x32xf32>, tensor<2x8x4x64xbf16>, tensor<1x4x16x32xf32>
}

// A second function also uses the variant.
// CHECK-LABEL: func.func @shared_variant_again
// CHECK-SAME: (%[[Q:[^:]+]]: tensor<1x4x16x32xf32>)
// CHECK-NEXT: attn.attention %[[Q]], %[[Q]], %[[Q]] score<rbf> gamma = 2.500000e-01 q_map<elu_plus_one> k_map<relu> mask = [#attn.causal, #attn.sliding_window<left = 8>] normalize<sigmoid> bias = -1.000000e+00 {attn.variant_name = "rbf_sigmoid"} :
func.func @shared_variant_again(%q: tensor<1x4x16x32xf32>) -> tensor<1x4x16x32xf32> {
  %o = attn.attention %q, %q, %q variant @rbf_sigmoid
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
  return %o : tensor<1x4x16x32xf32>
}

// -----

// A private variant with a score region over a captured operand (ALiBi). The
// region is cloned with its block arguments, the dynamic capture type
// included, and the op keeps its captures and its lse result.

// KEEP: attn.variant "private" @alibi mask = [#attn.causal<bottom_right>] score_mod {
// ERASE-NOT: attn.variant
attn.variant "private" @alibi mask = [#attn.causal<bottom_right>] score_mod {
^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index, %slopes: tensor<?xf32>):
  %m = tensor.extract %slopes[%h] : tensor<?xf32>
  %ii = arith.index_cast %i : index to i64
  %jj = arith.index_cast %j : index to i64
  %d = arith.subi %jj, %ii : i64
  %df = arith.sitofp %d : i64 to f32
  %bias = arith.mulf %m, %df : f32
  %r = arith.addf %s, %bias : f32
  attn.yield %r : f32
}

// CHECK-LABEL: func.func @alibi_user
// CHECK-SAME: (%[[Q:[^:]+]]: tensor<1x8x4x32xf16>, %[[K:[^:]+]]: tensor<1x2x64x32xf16>, %[[SLOPES:[^:]+]]: tensor<8xf32>)
// CHECK:      %[[O:.+]], %[[LSE:.+]] = attn.attention %[[Q]], %[[K]], %[[K]] captures(%[[SLOPES]] : tensor<8xf32>) mask = [#attn.causal<bottom_right>] {attn.variant_name = "alibi"} :
// CHECK-SAME:   -> tensor<1x8x4x32xf16>, tensor<1x8x4xf32> score_mod {
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
// CHECK-NEXT: return %[[O]], %[[LSE]]
func.func @alibi_user(%q: tensor<1x8x4x32xf16>, %k: tensor<1x2x64x32xf16>, %slopes: tensor<8xf32>)
    -> (tensor<1x8x4x32xf16>, tensor<1x8x4xf32>) {
  %o, %lse = attn.attention %q, %k, %k captures(%slopes : tensor<8xf32>) variant @alibi
      : tensor<1x8x4x32xf16>, tensor<1x2x64x32xf16>, tensor<1x2x64x32xf16>
      -> tensor<1x8x4x32xf16>, tensor<1x8x4xf32>
  return %o, %lse : tensor<1x8x4x32xf16>, tensor<1x8x4xf32>
}

// -----

// Both regions, sharing two captures, plus normalization parameters.

// KEEP: attn.variant @softcap_padded scale = 1.250000e-01 normalize<scalable_softmax> length_scale = 5.000000e-01 score_mod {
// KEEP: } mask_mod {
// ERASE-NOT: attn.variant
attn.variant @softcap_padded scale = 0.125 normalize<scalable_softmax> length_scale = 0.5
    score_mod {
^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index,
     %cap: tensor<f32>, %lens: tensor<?xindex>):
  %c = tensor.extract %cap[] : tensor<f32>
  %x = arith.divf %s, %c : f32
  %t = math.tanh %x : f32
  %r = arith.mulf %t, %c : f32
  attn.yield %r : f32
} mask_mod {
^bb0(%b: index, %h: index, %i: index, %j: index,
     %cap: tensor<f32>, %lens: tensor<?xindex>):
  %n = tensor.extract %lens[%b] : tensor<?xindex>
  %p = arith.cmpi ult, %j, %n : index
  attn.yield %p : i1
}

// CHECK-LABEL: func.func @two_regions
// CHECK-SAME: (%[[Q:[^:]+]]: tensor<2x4x16x32xbf16>, %[[CAP:[^:]+]]: tensor<f32>, %[[LENS:[^:]+]]: tensor<2xindex>)
// CHECK:      attn.attention %[[Q]], %[[Q]], %[[Q]] captures(%[[CAP]], %[[LENS]] : tensor<f32>, tensor<2xindex>) scale = 1.250000e-01 normalize<scalable_softmax> length_scale = 5.000000e-01 {attn.variant_name = "softcap_padded"} :
// CHECK-SAME:   score_mod {
// CHECK-NEXT: ^bb0(%[[S:.+]]: f32, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %[[C0:.+]]: tensor<f32>, %{{.+}}: tensor<?xindex>):
// CHECK-NEXT:   %[[C:.+]] = tensor.extract %[[C0]][] : tensor<f32>
// CHECK-NEXT:   %[[X:.+]] = arith.divf %[[S]], %[[C]] : f32
// CHECK-NEXT:   %[[T:.+]] = math.tanh %[[X]] : f32
// CHECK-NEXT:   %[[R:.+]] = arith.mulf %[[T]], %[[C]] : f32
// CHECK-NEXT:   attn.yield %[[R]] : f32
// CHECK-NEXT: } mask_mod {
// CHECK-NEXT: ^bb0(%[[B:.+]]: index, %{{.+}}: index, %{{.+}}: index, %[[J:.+]]: index, %{{.+}}: tensor<f32>, %[[L:.+]]: tensor<?xindex>):
// CHECK-NEXT:   %[[N:.+]] = tensor.extract %[[L]][%[[B]]] : tensor<?xindex>
// CHECK-NEXT:   %[[P:.+]] = arith.cmpi ult, %[[J]], %[[N]] : index
// CHECK-NEXT:   attn.yield %[[P]] : i1
// CHECK-NEXT: }
func.func @two_regions(%q: tensor<2x4x16x32xbf16>, %cap: tensor<f32>, %lens: tensor<2xindex>)
    -> tensor<2x4x16x32xbf16> {
  %o = attn.attention %q, %q, %q captures(%cap, %lens : tensor<f32>, tensor<2xindex>)
      variant @softcap_padded
      : tensor<2x4x16x32xbf16>, tensor<2x4x16x32xbf16>, tensor<2x4x16x32xbf16>
      -> tensor<2x4x16x32xbf16>
  return %o : tensor<2x4x16x32xbf16>
}

// -----

// erase-variants erases only unreferenced variants: @library stays because a
// function attribute still names it; @unused, which nothing ever referenced,
// goes too. Inline ops, regions included, are left exactly as they were.

// CHECK: attn.variant @library mask = [#attn.causal]{{$}}
// KEEP-NEXT: attn.variant @unused normalize<relu>{{$}}
// ERASE-NOT: attn.variant
attn.variant @library mask = [#attn.causal]
attn.variant @unused normalize<relu>

// CHECK-LABEL: func.func @inline_only
// CHECK-SAME: (%[[Q:[^:]+]]: tensor<1x4x16x32xf32>, %[[SEG:[^:]+]]: tensor<1x16xi32>)
// CHECK-SAME: attributes {lib = @library}
// CHECK-NEXT: %[[O:.+]] = attn.attention %[[Q]], %[[Q]], %[[Q]] captures(%[[SEG]] : tensor<1x16xi32>) mask = [#attn.document<q_segments = 0, kv_segments = 0>] normalize<relu2> :
// CHECK-SAME:   -> tensor<1x4x16x32xf32> mask_mod {
// CHECK-NEXT: ^bb0(%{{.+}}: index, %{{.+}}: index, %[[I:.+]]: index, %[[J:.+]]: index, %{{.+}}: tensor<1x16xi32>):
// CHECK-NEXT:   %[[P:.+]] = arith.cmpi ne, %[[I]], %[[J]] : index
// CHECK-NEXT:   attn.yield %[[P]] : i1
// CHECK-NEXT: }
// CHECK-NEXT: return %[[O]]
func.func @inline_only(%q: tensor<1x4x16x32xf32>, %seg: tensor<1x16xi32>)
    -> tensor<1x4x16x32xf32> attributes {lib = @library} {
  %o = attn.attention %q, %q, %q captures(%seg : tensor<1x16xi32>)
      mask = [#attn.document<q_segments = 0, kv_segments = 0>] normalize<relu2>
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>
      mask_mod {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %s: tensor<1x16xi32>):
    %p = arith.cmpi ne, %i, %j : index
    attn.yield %p : i1
  }
  return %o : tensor<1x4x16x32xf32>
}
// ERASE-NOT: attn.variant

// -----

// attn.attention_grad references are inlined like attn.attention's, regions
// included; the capture keeps its gradient result.

// KEEP: attn.variant @scaled_by
// ERASE-NOT: attn.variant
attn.variant @scaled_by normalize<softmax> score_mod {
^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index, %t: tensor<?xf32>):
  %x = tensor.extract %t[%h] : tensor<?xf32>
  %r = arith.mulf %s, %x : f32
  attn.yield %r : f32
}

// CHECK-LABEL: func.func @grad_op
// CHECK-NEXT: %{{.+}}, %{{.+}}, %{{.+}}, %[[DT:.+]] = attn.attention_grad %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} lse(%{{.+}} : tensor<1x4x16xf32>) captures(%{{.+}} : tensor<4xf32>) normalize<softmax> {attn.variant_name = "scaled_by"} :
// CHECK-SAME: -> tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<4xf32> score_mod {
// CHECK-NEXT: ^bb0(%{{.+}}: f32, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %{{.+}}: tensor<?xf32>):
// CHECK:        arith.mulf
// CHECK:      return %[[DT]]
func.func @grad_op(%q: tensor<1x4x16x32xf32>, %lse: tensor<1x4x16xf32>,
                   %t: tensor<4xf32>) -> tensor<4xf32> {
  %dq, %dk, %dv, %dt = attn.attention_grad %q, %q, %q, %q, %q
      lse(%lse : tensor<1x4x16xf32>) captures(%t : tensor<4xf32>)
      variant @scaled_by
      : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
        tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>
      -> tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>,
         tensor<4xf32>
  return %dt : tensor<4xf32>
}
