"""``attn_mlir.parser`` (the reader of variant files and region blocks) and
``attn_mlir.printer`` (the one printer of the dialect): tokens, the variant
grammar and its errors (with line:column), printer -> parser round trips of
specifications, region blocks, and renaming by the spelled symbol.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from attn_mlir import parser, printer, regions, variants
from attn_mlir import reference as ref
from attn_mlir.parser import Lexer, ParseError, parse_block, parse_variant_text


def _tokens(text):
    lex, out = Lexer(text), []
    while (tok := lex.next()).kind != "eof":
        out.append((tok.kind, tok.text))
    return out


def test_tokens():
    assert _tokens('attn.variant "private" @v_1 // comment\n'
                   'mask = [#attn.causal<bottom_right>] scale = -1.5e-02 '
                   'x = 0x7F800000 %a-1 ^bb0 -> ?') == [
        ("id", "attn.variant"), ("string", '"private"'), ("symbol", "@v_1"),
        ("id", "mask"), ("punct", "="), ("punct", "["),
        ("hash", "#attn.causal"), ("punct", "<"), ("id", "bottom_right"),
        ("punct", ">"), ("punct", "]"), ("id", "scale"), ("punct", "="),
        ("float", "-1.5e-02"), ("id", "x"), ("punct", "="),
        ("int", "0x7F800000"), ("value", "%a-1"), ("caret", "^bb0"),
        ("punct", "->"), ("punct", "?")]


def test_tensor_types():
    assert parser.parse_tensor_type("tensor<?x4xf32>") == ([None, 4], "f32")
    assert parser.parse_tensor_type("tensor< 2 x ? x i32 >") == ([2, None], "i32")
    assert parser.parse_tensor_type("tensor<i64>") == ([], "i64")
    for bad in ("tensor<?x4>", "memref<4xf32>", "tensor<4xf32", "tensor<ax4xf32>"):
        with pytest.raises(ValueError, match="not a ranked tensor type"):
            parser.parse_tensor_type(bad)


def test_variant_with_everything():
    text = """// leading comment
module attributes {foo = "}"} {
  attn.variant "private" @v score<rbf> gamma = 5.000000e-01 q_map<relu>
      mask = [#attn.causal<bottom_right>, #attn.sliding_window<left = 4, right = 2>,
              #attn.document<q_segments = 0, kv_segments = 1>]
      normalize<scalable_softmax> length_scale = 2.0 attributes {a = 1}
      score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index,
       %c: tensor<?xf32>, %seg: tensor<?x?xi32>):  // a } in a comment
    %m = tensor.extract %c[%h] : tensor<?xf32>
    %r = arith.addf %s, %m fastmath<fast> : f32
    attn.yield %r : f32
  } mask_mod {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %c: tensor<?xf32>,
       %seg: tensor<?x?xi32>):
    %t = arith.constant true
    attn.yield %t : i1
  }
}
"""
    v = parse_variant_text(text)
    assert v.name == "v" and text[slice(*v.name_span)] == "@v"
    assert v.spec == {
        "score": "rbf", "gamma": 0.5, "q_map": "relu",
        "masks": [{"kind": "causal", "alignment": "bottom_right"},
                  {"kind": "sliding_window", "left": 4, "right": 2},
                  {"kind": "document", "q_segments": 0, "kv_segments": 1}],
        "normalization": "scalable_softmax", "length_scale": 2.0}
    assert v.regions["score_mod"].lstrip().startswith("^bb0(")
    assert "comment" not in v.regions["score_mod"]
    b = parse_block(v.regions["score_mod"])
    assert [a for a, _ in b.args] == ["%s", "%b", "%h", "%i", "%j", "%c", "%seg"]
    assert b.args[6] == ("%seg", "tensor<?x?xi32>")
    assert [(o.name, o.operands, o.types) for o in b.ops] == [
        ("tensor.extract", ["%c", "%h"], "tensor<?xf32>"),
        ("arith.addf", ["%s", "%m"], "f32")]
    assert parse_block(v.regions["mask_mod"]).ops[0].types == "i1"


@pytest.mark.parametrize("text,message", [
    ("", "1:1: no attn.variant"),
    ("func.func @f()", "expected attn.variant, got 'func.func'"),
    ("attn.variant score<dot>", "expected the variant's @name"),
    ("attn.variant @v\nnormalize<softmax> foo = 3", "2:20: cannot parse 'foo' "
     "in the specification of @v"),
    ("attn.variant @v scale = x", "expected a number for scale"),
    ("attn.variant @v scale = 1.0 scale = 2.0", "'scale' is given twice"),
    ("attn.variant @v mask = [#attn.causal", "expected ',' or ']' in the mask list"),
    ("attn.variant @v mask = [#attn.sliding_window<left = a>]",
     "mask parameter left: expected an integer, got 'a'"),
    ("attn.variant @v mask = [#foo.bar]", "expected an #attn mask"),
    ("attn.variant @a\nattn.variant @b", "2:1: one attn.variant per file"),
    ("attn.variant @v score_mod {\n^bb0(%s: f32):\n", "no '}' matches the '{'"),
    ("attn.variant @v $", "unexpected character '\\$'"),
])
def test_variant_errors_say_where(text, message):
    with pytest.raises(ParseError, match=message):
        parse_variant_text(text)


MASKS = [ref.causal(), ref.causal("bottom_right"), ref.sliding_window(3, 2),
         ref.sliding_window(7, 0, "bottom_right"), ref.chunked(16),
         ref.prefix_lm(5, "bottom_right"), ref.document(0, 1),
         ref.neighborhood_1d(7, 2), ref.neighborhood_2d(4, 6, 3, 3, 1, 2),
         ref.sink_tokens(4)]


def test_any_of_parses_back():
    """#attn.any_of lists its masks in brackets; they read back as dicts."""
    mask = ref.any_of(ref.sliding_window(5), ref.prefix_lm(3, "bottom_right"),
                      ref.chunked(8, "bottom_right"))
    text = printer.variant_op("v", {"masks": [mask]})
    assert "#attn.any_of<[#attn.sliding_window<" in text
    got = parse_variant_text(text).spec["masks"]
    assert [m["kind"] for m in got[0]["masks"]] == [
        "sliding_window", "prefix_lm", "chunked"]
    assert got[0]["masks"][2] == {"kind": "chunked", "size": 8,
                                  "alignment": "bottom_right"}


@pytest.mark.parametrize("masks", [list(c) for c in itertools.combinations(MASKS, 2)]
                         + [MASKS])
def test_printed_specs_parse_back(masks):
    spec = {"score": "dot", "scale": 0.125, "masks": masks,
            "normalization": "sigmoid", "bias": -6.9}
    text = printer.variant_op("v", spec)
    got = parse_variant_text(text).spec
    assert got == {**spec, "masks": [printer.compact_mask(m) for m in masks]}


def test_block_ops():
    b = parse_block("""^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
      %0 = arith.constant 0x7F800000 : f32   // +inf
      %1 = arith.constant -3 : i64
      %2 = arith.cmpi slt, %i, %j : index
      %3 = arith.index_cast %i : index to i64
      %4 = arith.addi %3, %1 overflow<nsw> : i64
      %5 = arith.select %2, %s, %0 : f32
      %6 = arith.cmpf ogt, %5, %s {fastmath = #arith.fastmath<fast>} : f32
      attn.yield %5 : f32""")
    assert [(o.result, o.name, o.operands, o.pred, o.literal, o.types)
            for o in b.ops] == [
        ("%0", "arith.constant", [], "", "0x7F800000", "f32"),
        ("%1", "arith.constant", [], "", "-3", "i64"),
        ("%2", "arith.cmpi", ["%i", "%j"], "slt", "", "index"),
        ("%3", "arith.index_cast", ["%i"], "", "", "index to i64"),
        ("%4", "arith.addi", ["%3", "%1"], "", "", "i64"),
        ("%5", "arith.select", ["%2", "%s", "%0"], "", "", "f32"),
        ("%6", "arith.cmpf", ["%5", "%s"], "ogt", "", "f32")]
    assert b.yielded == "%5"
    assert b.ops[2].line == "%2 = arith.cmpi slt, %i, %j : index"
    # And regions evaluates it: where i < j the score is +inf.
    blk = regions.parse_block("\n".join(["^bb0(%s: f32, %b: index, %h: index,"
                                         " %i: index, %j: index):"]
                                        + [o.line for o in b.ops]
                                        + ["attn.yield %5 : f32"]))
    s = np.arange(6.0).reshape(2, 3)
    i, j = np.arange(2)[:, None], np.arange(3)[None, :]
    np.testing.assert_array_equal(blk(s, 0, 0, i, j),
                                  np.where(i < j, s, np.inf))


@pytest.mark.parametrize("text,message", [
    ("%0 = arith.constant 1 : i64\nattn.yield %0 : i64", "a block header"),
    ("^bb0(%s: f32):\n  %0 = arith.negf %s : f32", "no attn.yield"),
    ("^bb0(%s: f32):\n  arith.negf %s : f32\n  attn.yield %s : f32",
     "an op's result"),
    ("^bb0(%s: f32):\n  attn.yield %s : f32\n  %0 = arith.negf %s : f32",
     "ops after attn.yield"),
])
def test_block_errors(text, message):
    with pytest.raises(ParseError, match=message):
        parse_block(text)
    with pytest.raises(regions.RegionError, match=message):
        regions.parse_block(text)


def test_capture_comments():
    assert parser.parse_capture_comment(
        "@capture slopes tensor<?xf32> [Hq]: m_h, the slope: of head h") == (
        "capture", "slopes", "tensor<?xf32>", "[Hq]", "m_h, the slope: of head h")
    assert parser.parse_capture_comment("@capture seg tensor<?x?xi32>") == (
        "capture", "seg", "tensor<?x?xi32>", "", "")
    assert parser.parse_capture_comment("@sink_rows [Hkv, Ns, D]: rows") == (
        "sink_rows",)
    assert parser.parse_capture_comment("`code` and prose (a, b).") is None
    with pytest.raises(ParseError, match="cannot read the comment line"):
        parser.parse_capture_comment("@capture 3 tensor<?xf32>")


def test_rename_touches_only_the_symbol():
    v = variants.parse_variant("// alibi: mentions @alibi and attn.variant @alibi\n"
                               + variants.path("alibi").read_text().split("\n", 1)[1],
                               "alibi")
    renamed = v.mlir("other")
    assert renamed.count("@other") == 1
    assert "mentions @alibi and attn.variant @alibi" in renamed
    assert variants.parse_variant(renamed, "other").spec == v.spec


def test_library_errors_name_the_file():
    with pytest.raises(variants.LibraryError, match="f.mlir:2:1: no attn.variant"):
        variants.parse_variant("// nothing\n", where="f.mlir")
    with pytest.raises(variants.LibraryError, match="defines @b"):
        variants.parse_variant("attn.variant @b", "a", "f.mlir")


def test_printer_func_and_variant():
    t = printer.AttentionTypes(q="tensor<?x?x?x64xbf16>", k="tensor<?x?x?x64xbf16>",
                               v="tensor<?x?x?x32xbf16>", o="tensor<?x?x?x32xbf16>",
                               lse="tensor<?x?x?xf32>")
    text = printer.attention_func("f", t, variant="causal")
    assert "attn.attention %attn_q, %attn_k, %attn_v\n      variant @causal\n" in text
    assert text.splitlines()[0].endswith(
        "-> (tensor<?x?x?x32xbf16>, tensor<?x?x?xf32>) {")
    with pytest.raises(ValueError, match="not both"):
        printer.attention_func("f", t, variant="causal", spec="score<dot>")
    with pytest.raises(ValueError, match="unknown specification keys"):
        printer.spec_text({"mask": []})
    assert printer.tensor_type((None, 4), "f32") == "tensor<?x4xf32>"
    assert printer.op_line("%0", "arith.sitofp", ["%a"], "f32", "i64") == \
        "%0 = arith.sitofp %a : i64 to f32"
