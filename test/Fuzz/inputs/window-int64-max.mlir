// UBSan, signed-integer-overflow in emitKVRange (lib/Conversion/AttnCommon/AttnCodegen.cpp, `right + 1`) under attn-to-flash, before the verifier bounded mask parameters by 2^40 (issue 11 item 4).
func.func @f(%q: tensor<1x1x3x16xf32>, %k: tensor<1x1x5x16xf32>, %v: tensor<1x1x5x16xf32>) -> (tensor<1x1x3x16xf32>, tensor<1x1x3xf32>) {
  %o, %lse = attn.attention %q, %k, %v mask = [#attn.sliding_window<left = 0, right = 9223372036854775807>]
      : tensor<1x1x3x16xf32>, tensor<1x1x5x16xf32>, tensor<1x1x5x16xf32> -> tensor<1x1x3x16xf32>, tensor<1x1x3xf32>
  return %o, %lse : tensor<1x1x3x16xf32>, tensor<1x1x3xf32>
}
