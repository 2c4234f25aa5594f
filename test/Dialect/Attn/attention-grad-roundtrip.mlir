// RUN: attn-opt %s | attn-opt | FileCheck %s
// RUN: attn-opt %s --mlir-print-op-generic | attn-opt | FileCheck %s
// RUN: attn-opt %s --verify-roundtrip

// Round trip of attn.attention_grad: operands q, k, v, O, dO, then the
// optional lse(...) and grad_lse(...), then captures, sinks and the variant
// as attn.attention; results dq, dk, dv, then the parameter gradients
// (sink logits, sink rows, floating captures).

// CHECK-LABEL: func.func @softmax
// CHECK-SAME: (%[[Q:[^:]+]]: tensor<2x4x16x32xbf16>, %[[K:[^:]+]]: tensor<2x4x16x32xbf16>, %[[V:[^:]+]]: tensor<2x4x16x32xbf16>, %[[O:[^:]+]]: tensor<2x4x16x32xbf16>, %[[DO:[^:]+]]: tensor<2x4x16x32xbf16>, %[[LSE:[^:]+]]: tensor<2x4x16xf32>)
// CHECK-NEXT: %[[DQ:.+]], %[[DK:.+]], %[[DV:.+]] = attn.attention_grad %[[Q]], %[[K]], %[[V]], %[[O]], %[[DO]] lse(%[[LSE]] : tensor<2x4x16xf32>) mask = [#attn.causal] :
// CHECK-SAME: tensor<2x4x16x32xbf16>, tensor<2x4x16x32xbf16>, tensor<2x4x16x32xbf16>, tensor<2x4x16x32xbf16>, tensor<2x4x16x32xbf16> -> tensor<2x4x16x32xbf16>, tensor<2x4x16x32xbf16>, tensor<2x4x16x32xbf16>{{$}}
// CHECK-NEXT: return %[[DQ]], %[[DK]], %[[DV]]
func.func @softmax(%q: tensor<2x4x16x32xbf16>, %k: tensor<2x4x16x32xbf16>,
                   %v: tensor<2x4x16x32xbf16>, %o: tensor<2x4x16x32xbf16>,
                   %do: tensor<2x4x16x32xbf16>, %lse: tensor<2x4x16xf32>)
    -> (tensor<2x4x16x32xbf16>, tensor<2x4x16x32xbf16>, tensor<2x4x16x32xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %k, %v, %o, %do
      lse(%lse : tensor<2x4x16xf32>) mask = [#attn.causal]
      : tensor<2x4x16x32xbf16>, tensor<2x4x16x32xbf16>, tensor<2x4x16x32xbf16>,
        tensor<2x4x16x32xbf16>, tensor<2x4x16x32xbf16>
      -> tensor<2x4x16x32xbf16>, tensor<2x4x16x32xbf16>, tensor<2x4x16x32xbf16>
  return %dq, %dk, %dv
      : tensor<2x4x16x32xbf16>, tensor<2x4x16x32xbf16>, tensor<2x4x16x32xbf16>
}

// A variant reference with a floating capture: ALiBi's slopes get a
// gradient of their own type. GQA (8 query heads over 2 kv heads).
attn.variant @alibi mask = [#attn.causal] normalize<softmax> score_mod {
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

// CHECK-LABEL: func.func @alibi_variant
// CHECK: %{{.+}}, %{{.+}}, %{{.+}}, %[[DS:.+]] = attn.attention_grad %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} lse(%{{.+}} : tensor<2x8x64xf32>) captures(%{{.+}} : tensor<8xf32>) variant @alibi :
// CHECK-SAME: -> tensor<2x8x64x64xf16>, tensor<2x2x64x64xf16>, tensor<2x2x64x64xf16>, tensor<8xf32>{{$}}
// CHECK-NEXT: return %[[DS]]
func.func @alibi_variant(%q: tensor<2x8x64x64xf16>, %k: tensor<2x2x64x64xf16>,
                         %o: tensor<2x8x64x64xf16>, %lse: tensor<2x8x64xf32>,
                         %slopes: tensor<8xf32>) -> tensor<8xf32> {
  %dq, %dk, %dv, %dslopes = attn.attention_grad %q, %k, %k, %o, %o
      lse(%lse : tensor<2x8x64xf32>) captures(%slopes : tensor<8xf32>)
      variant @alibi
      : tensor<2x8x64x64xf16>, tensor<2x2x64x64xf16>, tensor<2x2x64x64xf16>,
        tensor<2x8x64x64xf16>, tensor<2x8x64x64xf16>
      -> tensor<2x8x64x64xf16>, tensor<2x2x64x64xf16>, tensor<2x2x64x64xf16>,
         tensor<8xf32>
  return %dslopes : tensor<8xf32>
}

// Sink logits and sink rows with dlse; Sq != Sk, Dqk != Dv, GQA: the
// parameter gradients come in the order sink logits, sink key, sink value.
// CHECK-LABEL: func.func @sinks_and_dlse
// CHECK: %{{.+}}, %{{.+}}, %{{.+}}, %[[P:.+]]:3 = attn.attention_grad %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} lse(%[[L:.+]] : tensor<1x4x3xf32>) grad_lse(%[[L]] : tensor<1x4x3xf32>) sink_logits(%{{.+}} : tensor<4xf32>) sink_rows(%{{.+}}, %{{.+}} : tensor<2x5x8xf32>, tensor<2x5x6xf32>) normalize<softmax1> :
// CHECK-SAME: tensor<1x4x3x8xf32>, tensor<1x2x7x8xf32>, tensor<1x2x7x6xf32>, tensor<1x4x3x6xf32>, tensor<1x4x3x6xf32> -> tensor<1x4x3x8xf32>, tensor<1x2x7x8xf32>, tensor<1x2x7x6xf32>, tensor<4xf32>, tensor<2x5x8xf32>, tensor<2x5x6xf32>{{$}}
// CHECK-NEXT: return %[[P]]#0, %[[P]]#1, %[[P]]#2
func.func @sinks_and_dlse(%q: tensor<1x4x3x8xf32>, %k: tensor<1x2x7x8xf32>,
                          %v: tensor<1x2x7x6xf32>, %o: tensor<1x4x3x6xf32>,
                          %lse: tensor<1x4x3xf32>, %sl: tensor<4xf32>,
                          %sk: tensor<2x5x8xf32>, %sv: tensor<2x5x6xf32>)
    -> (tensor<4xf32>, tensor<2x5x8xf32>, tensor<2x5x6xf32>) {
  %dq, %dk, %dv, %dsl, %dsk, %dsv = attn.attention_grad %q, %k, %v, %o, %o
      lse(%lse : tensor<1x4x3xf32>) grad_lse(%lse : tensor<1x4x3xf32>)
      sink_logits(%sl : tensor<4xf32>)
      sink_rows(%sk, %sv : tensor<2x5x8xf32>, tensor<2x5x6xf32>)
      normalize<softmax1>
      : tensor<1x4x3x8xf32>, tensor<1x2x7x8xf32>, tensor<1x2x7x6xf32>,
        tensor<1x4x3x6xf32>, tensor<1x4x3x6xf32>
      -> tensor<1x4x3x8xf32>, tensor<1x2x7x8xf32>, tensor<1x2x7x6xf32>,
         tensor<4xf32>, tensor<2x5x8xf32>, tensor<2x5x6xf32>
  return %dsl, %dsk, %dsv
      : tensor<4xf32>, tensor<2x5x8xf32>, tensor<2x5x6xf32>
}

// Integer captures (document segment ids) get no gradient; the floating
// bias table between them does. sigmoid needs no lse.
// CHECK-LABEL: func.func @integer_captures
// CHECK: %{{.+}}, %{{.+}}, %{{.+}}, %[[DB:.+]] = attn.attention_grad %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} captures(%{{.+}}, %{{.+}}, %{{.+}} : tensor<2x16xi32>, tensor<4x16x16xf32>, tensor<2x16xi32>) mask = [#attn.document<q_segments = 0, kv_segments = 2>] normalize<sigmoid> bias = -2.000000e+00 :
// CHECK-SAME: -> tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>, tensor<4x16x16xf32> score_mod {
// CHECK-NEXT: ^bb0(%{{.+}}: f32, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %{{.+}}: tensor<2x16xi32>, %[[T:.+]]: tensor<4x16x16xf32>, %{{.+}}: tensor<2x16xi32>):
// CHECK-NEXT:   tensor.extract %[[T]]
// CHECK:        attn.yield
// CHECK-NEXT: }
// CHECK-NEXT: return %[[DB]]
func.func @integer_captures(%q: tensor<2x4x16x32xf32>, %seg: tensor<2x16xi32>,
                            %table: tensor<4x16x16xf32>)
    -> tensor<4x16x16xf32> {
  %dq, %dk, %dv, %dtable = attn.attention_grad %q, %q, %q, %q, %q
      captures(%seg, %table, %seg
               : tensor<2x16xi32>, tensor<4x16x16xf32>, tensor<2x16xi32>)
      mask = [#attn.document<q_segments = 0, kv_segments = 2>]
      normalize<sigmoid> bias = -2.0
      : tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>,
        tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>
      -> tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>,
         tensor<4x16x16xf32>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index,
       %qs: tensor<2x16xi32>, %t: tensor<4x16x16xf32>, %ks: tensor<2x16xi32>):
    %x = tensor.extract %t[%h, %i, %j] : tensor<4x16x16xf32>
    %r = arith.addf %s, %x : f32
    attn.yield %r : f32
  }
  return %dtable : tensor<4x16x16xf32>
}

// RBF with a softcap region, dynamic sizes and no parameter gradients; mean
// takes an optional lse (and no dlse is needed: log n has no gradient).
// CHECK-LABEL: func.func @rbf_softcap_dynamic
// CHECK: attn.attention_grad %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} lse(%{{.+}} : tensor<?x?x?xf32>) score<rbf> gamma = 1.250000e-01 :
// CHECK-SAME: tensor<?x?x?x64xf32>, tensor<?x?x?x64xf32>, tensor<?x?x?x64xf32>, tensor<?x?x?x64xf32>, tensor<?x?x?x64xf32> -> tensor<?x?x?x64xf32>, tensor<?x?x?x64xf32>, tensor<?x?x?x64xf32> score_mod {
// CHECK:        math.tanh
// CHECK:      attn.attention_grad %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} lse(%{{.+}} : tensor<?x?x?xf32>) mask = [#attn.sliding_window<left = 1>] normalize<mean> :
// CHECK:      attn.attention_grad %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} normalize<none> :
func.func @rbf_softcap_dynamic(%q: tensor<?x?x?x64xf32>, %lse: tensor<?x?x?xf32>)
    -> tensor<?x?x?x64xf32> {
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %q
      lse(%lse : tensor<?x?x?xf32>) score<rbf> gamma = 0.125
      : tensor<?x?x?x64xf32>, tensor<?x?x?x64xf32>, tensor<?x?x?x64xf32>,
        tensor<?x?x?x64xf32>, tensor<?x?x?x64xf32>
      -> tensor<?x?x?x64xf32>, tensor<?x?x?x64xf32>, tensor<?x?x?x64xf32>
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    %cap = arith.constant 30.0 : f32
    %x = arith.divf %s, %cap : f32
    %t = math.tanh %x : f32
    %r = arith.mulf %t, %cap : f32
    attn.yield %r : f32
  }
  %mq, %mk, %mv = attn.attention_grad %q, %q, %q, %q, %q
      lse(%lse : tensor<?x?x?xf32>)
      mask = [#attn.sliding_window<left = 1>] normalize<mean>
      : tensor<?x?x?x64xf32>, tensor<?x?x?x64xf32>, tensor<?x?x?x64xf32>,
        tensor<?x?x?x64xf32>, tensor<?x?x?x64xf32>
      -> tensor<?x?x?x64xf32>, tensor<?x?x?x64xf32>, tensor<?x?x?x64xf32>
  %nq, %nk, %nv = attn.attention_grad %q, %q, %q, %q, %q normalize<none>
      : tensor<?x?x?x64xf32>, tensor<?x?x?x64xf32>, tensor<?x?x?x64xf32>,
        tensor<?x?x?x64xf32>, tensor<?x?x?x64xf32>
      -> tensor<?x?x?x64xf32>, tensor<?x?x?x64xf32>, tensor<?x?x?x64xf32>
  return %dq : tensor<?x?x?x64xf32>
}
