"""A reader of the ``attn`` dialect subset that variant files, ``attn-opt``'s
print of them and the DSL's output use: a tokenizer and a recursive-descent
parser (no regular expressions over the IR).

* ``parse_variant_text(text)``: the one ``attn.variant`` of a file (possibly
  wrapped in ``module { ... }``): its name (and where it is spelled, for
  renaming), specification (the keys of ``printer.SPEC_KEYS``, masks as
  ``attn_mlir.reference`` dicts) and regions (block text from ``^bb0``);
* ``parse_block(text)``: one region block: its arguments, its ops (one
  result each, pretty syntax) and the yielded value;
* ``parse_tensor_type(text)``, ``parse_capture_comment(line)``.

``printer`` prints what this reads; ``ParseError`` says where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

__all__ = ["ParseError", "Token", "Lexer", "VariantText", "BlockText",
           "OpText", "parse_variant_text", "parse_block",
           "parse_tensor_type", "parse_capture_comment", "strip_comments"]


class ParseError(ValueError):
    """Text outside the subset this parser reads; the message says where."""


@dataclass
class Token:
    kind: str     # value, symbol, caret, hash, id, int, float, string, punct, eof
    text: str
    start: int
    end: int


_PUNCT = "<>()[]{},=:?*+"
_ID_START = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
_ID_CHARS = _ID_START + "0123456789$."
_SIGILS = {"%": "value", "@": "symbol", "^": "caret", "#": "hash"}


class Lexer:
    """Tokens of MLIR text on demand, ``//`` comments skipped; ``raw_*``
    methods read text that the tokens cannot (types, free text)."""

    def __init__(self, text: str, where: str = "<text>"):
        self.text = text
        self.where = where
        self.pos = 0
        self._peeked: List[Token] = []

    # -- positions and errors ---------------------------------------------
    def error(self, message: str, at: Optional[int] = None) -> ParseError:
        at = self.peek().start if at is None else at
        line = self.text.count("\n", 0, at) + 1
        col = at - (self.text.rfind("\n", 0, at) + 1) + 1
        lines = self.text.split("\n")
        src = lines[line - 1] if line <= len(lines) else ""
        return ParseError(f"{self.where}:{line}:{col}: {message}\n    "
                          f"{src.strip()}")

    def _skip(self, pos: int) -> int:
        t = self.text
        while pos < len(t):
            if t[pos].isspace():
                pos += 1
            elif t.startswith("//", pos):
                nl = t.find("\n", pos)
                pos = len(t) if nl < 0 else nl + 1
            else:
                break
        return pos

    # -- tokens -----------------------------------------------------------
    def _scan(self, pos: int) -> Token:
        t = self.text
        pos = self._skip(pos)
        if pos >= len(t):
            return Token("eof", "", len(t), len(t))
        c = t[pos]
        if c in _SIGILS:
            end = pos + 1
            if c == "@" and t.startswith('"', end):
                end = self._string_end(end)
            else:
                while end < len(t) and (t[end] in _ID_CHARS or t[end] == "-"
                                        and c == "%"):
                    end += 1
            if end == pos + 1:
                raise self.error(f"'{c}' without a name", pos)
            return Token(_SIGILS[c], t[pos:end], pos, end)
        if c in _ID_START:
            end = pos + 1
            while end < len(t) and t[end] in _ID_CHARS:
                end += 1
            return Token("id", t[pos:end], pos, end)
        if c.isdigit() or (c == "-" and pos + 1 < len(t) and t[pos + 1].isdigit()):
            return self._number(pos)
        if c == '"':
            end = self._string_end(pos)
            return Token("string", t[pos:end], pos, end)
        if t.startswith("->", pos):
            return Token("punct", "->", pos, pos + 2)
        if c in _PUNCT or c == "-":
            return Token("punct", c, pos, pos + 1)
        raise self.error(f"unexpected character {c!r}", pos)

    def _string_end(self, pos: int) -> int:
        end = pos + 1
        while end < len(self.text) and self.text[end] != '"':
            end += 2 if self.text[end] == "\\" else 1
        if end >= len(self.text):
            raise self.error("unterminated string", pos)
        return end + 1

    def _number(self, pos: int) -> Token:
        t = self.text
        end = pos + (t[pos] == "-")
        if t.startswith("0x", end):
            end += 2
            while end < len(t) and t[end] in "0123456789abcdefABCDEF":
                end += 1
            return Token("int", t[pos:end], pos, end)
        while end < len(t) and t[end].isdigit():
            end += 1
        kind = "int"
        if end < len(t) and t[end] == "." :
            kind, end = "float", end + 1
            while end < len(t) and t[end].isdigit():
                end += 1
        if end < len(t) and t[end] in "eE" and kind == "float":
            e = end + 1 + (end + 1 < len(t) and t[end + 1] in "+-")
            if e < len(t) and t[e].isdigit():
                end = e
                while end < len(t) and t[end].isdigit():
                    end += 1
        return Token(kind, t[pos:end], pos, end)

    def peek(self, n: int = 0) -> Token:
        while len(self._peeked) <= n:
            start = self._peeked[-1].end if self._peeked else self.pos
            self._peeked.append(self._scan(start))
        return self._peeked[n]

    def next(self) -> Token:
        tok = self.peek()
        self._peeked.pop(0)
        self.pos = tok.end
        return tok

    def at(self, text: str, n: int = 0) -> bool:
        tok = self.peek(n)
        return tok.text == text and tok.kind in ("punct", "id")

    def accept(self, text: str) -> Optional[Token]:
        return self.next() if self.at(text) else None

    def expect(self, text: str, what: str = "") -> Token:
        if not self.at(text):
            tok = self.peek()
            raise self.error(f"expected '{text}'{what}, got "
                             f"{tok.text or 'the end'!r}")
        return self.next()

    def expect_kind(self, kind: str, what: str) -> Token:
        tok = self.peek()
        if tok.kind != kind:
            raise self.error(f"expected {what}, got {tok.text or 'the end'!r}")
        return self.next()

    # -- raw text ---------------------------------------------------------
    def _reset(self, pos: int) -> None:
        self.pos = pos
        self._peeked.clear()

    def raw_balanced(self, open_: str, close: str) -> Tuple[int, int]:
        """After the opening ``open_`` token: the span of the text up to
        the matching ``close`` (tokens respected: comments, strings), which
        is consumed."""
        start, depth = self.pos, 1
        while True:
            tok = self.next()
            if tok.kind == "eof":
                raise self.error(f"no '{close}' matches the '{open_}'", start)
            if tok.kind == "punct" and tok.text == open_:
                depth += 1
            elif tok.kind == "punct" and tok.text == close:
                depth -= 1
                if depth == 0:
                    return start, tok.start

    def type_text(self) -> str:
        """One type: ``tensor<...>`` (sizes read as text), ``f32``,
        ``index``, ..."""
        tok = self.expect_kind("id", "a type")
        if tok.text in ("tensor", "vector", "memref") and self.peek().text == "<":
            start = tok.start
            self._reset(tok.end)
            self._skip_to_char("<")
            depth, pos = 0, self.pos
            while pos < len(self.text):
                ch = self.text[pos]
                depth += (ch == "<") - (ch == ">")
                pos += 1
                if depth == 0:
                    break
            if depth:
                raise self.error("unterminated type", start)
            self._reset(pos)
            return "".join(self.text[start:pos].split())
        return tok.text

    def _skip_to_char(self, ch: str) -> None:
        pos = self._skip(self.pos)
        if not self.text.startswith(ch, pos):
            raise self.error(f"expected '{ch}'", pos)
        self._reset(pos)

    def rest(self) -> str:
        """The text not read yet (consumed)."""
        pos = self._skip(self.pos) if not self._peeked else self.peek().start
        self._reset(len(self.text))
        return self.text[pos:]


def strip_comments(text: str) -> str:
    """``text`` without its ``//`` comments (strings respected), each
    comment's line kept (empty lines dropped)."""
    lex, out, pos = Lexer(text), [], 0
    while True:
        tok = lex.next()
        gap = text[pos:tok.start]
        out.append("\n".join(ln.split("//")[0].rstrip() if "//" in ln else ln
                             for ln in gap.split("\n")))
        if tok.kind == "eof":
            break
        out.append(text[tok.start:tok.end])
        pos = tok.end
    return "\n".join(ln for ln in "".join(out).split("\n") if ln.strip())


# ---------------------------------------------------------------------------
# Types
# ---------------------------------------------------------------------------

def parse_tensor_type(text: str) -> Tuple[List[Optional[int]], str]:
    """``tensor<?x4xf32>`` -> (``[None, 4]``, ``"f32"``)."""
    t = "".join(text.split())
    if not (t.startswith("tensor<") and t.endswith(">")):
        raise ValueError(f"not a ranked tensor type: {text!r}")
    *dims, elt = t[len("tensor<"):-1].split("x")
    if not elt or not elt[0].isalpha() or not all(d == "?" or d.isdigit()
                                                   for d in dims):
        raise ValueError(f"not a ranked tensor type: {text!r}")
    return [None if d == "?" else int(d) for d in dims], elt


# ---------------------------------------------------------------------------
# attn.variant
# ---------------------------------------------------------------------------

@dataclass
class VariantText:
    """A parsed ``attn.variant``."""
    name: str
    name_span: Tuple[int, int]       # where ``@name`` is spelled
    spec: dict
    regions: Dict[str, Optional[str]]   # kind -> block text from ^bb0


_FLOAT_KEYS = ("scale", "gamma", "bias", "length_scale")
_KIND_KEYS = {"score": "score", "q_map": "q_map", "k_map": "k_map",
              "normalize": "normalization"}


def _number(lex: Lexer, what: str) -> float:
    tok = lex.next()
    if tok.kind not in ("int", "float"):
        raise lex.error(f"expected a number for {what}, got {tok.text!r}",
                        tok.start)
    if tok.text.lstrip("-").startswith("0x"):
        raise lex.error(f"{what}: hexadecimal floats are not read here",
                        tok.start)
    return float(tok.text)


def _mask_attr(lex: Lexer) -> dict:
    tok = lex.expect_kind("hash", "a mask attribute (#attn.KIND)")
    if not tok.text.startswith("#attn."):
        raise lex.error(f"expected an #attn mask, got {tok.text!r}", tok.start)
    mask: Dict[str, object] = {"kind": tok.text[len("#attn."):]}
    if not lex.accept("<"):
        return mask
    if mask["kind"] == "any_of":
        lex.expect("[")
        inner = [_mask_attr(lex)]
        while lex.accept(","):
            inner.append(_mask_attr(lex))
        lex.expect("]")
        lex.expect(">")
        mask["masks"] = inner
        return mask
    if lex.peek().kind == "id" and not lex.at("=", 1):
        mask["alignment"] = lex.next().text
        lex.expect(">")
        return mask
    while True:
        key = lex.expect_kind("id", "a mask parameter").text
        lex.expect("=")
        val = lex.next()
        if key == "alignment" and val.kind == "id":
            mask[key] = val.text
        elif val.kind == "int" and not val.text.lstrip("-").startswith("0x"):
            mask[key] = int(val.text)
        else:
            raise lex.error(f"mask parameter {key}: expected an integer, got "
                            f"{val.text!r}", val.start)
        if lex.accept(">"):
            return mask
        lex.expect(",", " or '>' in the mask parameters")


def _spec_item(lex: Lexer, spec: dict) -> None:
    tok = lex.next()
    key = tok.text
    if key == "attributes":
        lex.expect("{")
        lex.raw_balanced("{", "}")
        return
    name = _KIND_KEYS.get(key, "masks" if key == "mask" else key)
    if name in spec:
        raise lex.error(f"'{key}' is given twice", tok.start)
    if key in _KIND_KEYS:
        lex.expect("<")
        spec[name] = lex.expect_kind("id", f"a {key} kind").text
        lex.expect(">")
    elif key in _FLOAT_KEYS:
        lex.expect("=")
        spec[name] = _number(lex, key)
    else:                                           # mask = [...]
        lex.expect("=")
        lex.expect("[")
        masks = []
        while not lex.accept("]"):
            masks.append(_mask_attr(lex))
            if not lex.at("]"):
                lex.expect(",", " or ']' in the mask list")
        spec[name] = masks


_SPEC_WORDS = set(_KIND_KEYS) | set(_FLOAT_KEYS) | {"mask", "attributes"}


def _variant_op(lex: Lexer) -> VariantText:
    lex.expect("attn.variant")
    if lex.peek().kind == "string":
        lex.next()                                  # visibility
    sym = lex.expect_kind("symbol", "the variant's @name")
    name = sym.text[1:].strip('"')
    spec: dict = {}
    while lex.peek().kind == "id" and lex.peek().text in _SPEC_WORDS:
        _spec_item(lex, spec)
    regions: Dict[str, Optional[str]] = {"score_mod": None, "mask_mod": None}
    while lex.peek().text in regions and lex.at("{", 1):
        kind = lex.next().text
        if regions[kind] is not None:
            raise lex.error(f"two {kind} regions")
        lex.next()
        start, end = lex.raw_balanced("{", "}")
        regions[kind] = strip_comments(lex.text[start:end])
    return VariantText(name, (sym.start, sym.end), spec, regions)


def parse_variant_text(text: str, where: str = "<text>") -> VariantText:
    """The one ``attn.variant`` of ``text``, which may be wrapped in
    ``module [attributes {...}] { ... }``; anything else is an error."""
    lex = Lexer(text, where)
    wrapped = False
    if lex.at("module"):
        lex.next()
        if lex.peek().kind == "symbol":
            lex.next()
        if lex.accept("attributes"):
            lex.expect("{")
            lex.raw_balanced("{", "}")
        lex.expect("{", " after 'module'")
        wrapped = True
    if lex.peek().kind == "eof":
        raise lex.error("no attn.variant")
    if not lex.at("attn.variant"):
        raise lex.error(f"expected attn.variant, got {lex.peek().text!r}")
    v = _variant_op(lex)
    if lex.at("attn.variant"):
        raise lex.error("one attn.variant per file")
    if wrapped and lex.at("}"):
        lex.next()
    tok = lex.peek()
    if tok.kind != "eof":
        if tok.text == "attn.variant":
            raise lex.error("one attn.variant per file")
        raise lex.error(f"cannot parse {tok.text!r} in the specification of "
                        f"@{v.name}")
    return v


# ---------------------------------------------------------------------------
# Region blocks
# ---------------------------------------------------------------------------

@dataclass
class OpText:
    """One op of a block: ``result = name operands : types``."""
    result: str
    name: str
    operands: List[str]
    pred: str = ""        # comparisons
    literal: str = ""     # constants
    types: str = ""       # after ':' ("f32", "index to i64")
    line: str = ""        # the op's text, whitespace collapsed


@dataclass
class BlockText:
    args: List[Tuple[str, str]]
    ops: List[OpText] = field(default_factory=list)
    yielded: str = ""


def _op_end(lex: Lexer) -> bool:
    tok = lex.peek()
    return tok.kind == "eof" or tok.text == "}" and tok.kind == "punct" or (
        tok.kind == "value" and lex.at("=", 1)) or (
        tok.kind == "id" and tok.text == "attn.yield")


def _op_types(lex: Lexer) -> str:
    """The types after an op's ``:``: ``t``, ``t to u`` or ``t, u``."""
    types = [lex.type_text()]
    while True:
        if lex.accept("to"):
            types.append("to")
            types.append(lex.type_text())
        elif lex.at(",") and not _op_end(lex):
            lex.next()
            types[-1] += ","
            types.append(lex.type_text())
        else:
            return " ".join(types)


def _op(lex: Lexer) -> OpText:
    start = lex.peek().start
    result = lex.expect_kind("value", "an op's result (%name =)").text
    lex.expect("=")
    name = lex.expect_kind("id", "an op name").text
    op = OpText(result, name, [])
    while not _op_end(lex) and not lex.at(":"):
        tok = lex.next()
        if tok.kind == "value":
            op.operands.append(tok.text)
        elif tok.kind == "punct" and tok.text == "{":      # attribute dict
            lex.raw_balanced("{", "}")
        elif tok.kind == "id" and lex.at("<"):          # fastmath<...>
            lex.next()
            lex.raw_balanced("<", ">")
        elif tok.kind in ("int", "float") or tok.text in ("true", "false"):
            op.literal = op.literal or tok.text
        elif tok.kind == "id" and not op.pred and not op.operands:
            op.pred = tok.text
    if lex.accept(":"):
        op.types = _op_types(lex)
    if name == "arith.constant" and not op.types and op.literal in (
            "true", "false"):
        op.types = "i1"
    op.line = " ".join(lex.text[start:lex.pos].split())
    return op


def parse_block(text: str, where: str = "<region>") -> BlockText:
    """One region block: ``^bb0(%a: t, ...):``, ops, ``attn.yield %v : t``."""
    lex = Lexer(text, where)
    lex.expect_kind("caret", "a block header '^bb0(...):'")
    lex.expect("(")
    args = []
    while not lex.accept(")"):
        name = lex.expect_kind("value", "a block argument").text
        lex.expect(":")
        args.append((name, lex.type_text()))
        if not lex.at(")"):
            lex.expect(",", " or ')' in the block arguments")
    lex.expect(":", " after the block arguments")
    block = BlockText(args)
    while lex.peek().kind != "eof":
        if lex.accept("attn.yield"):
            block.yielded = lex.expect_kind("value", "the yielded value").text
            if lex.accept(":"):
                lex.type_text()
            if lex.peek().kind != "eof":
                raise lex.error("ops after attn.yield")
            return block
        block.ops.append(_op(lex))
    raise lex.error("the region has no attn.yield")


# ---------------------------------------------------------------------------
# Comments of library files
# ---------------------------------------------------------------------------

def parse_capture_comment(line: str):
    """``@capture NAME TYPE [SHAPE]: doc`` -> ``("capture", NAME, TYPE,
    SHAPE, doc)``; ``@sink_logits [..]: doc`` / ``@sink_rows ...`` ->
    ``(KIND, ...)``; None for other lines."""
    if not line.strip().startswith("@"):
        return None
    lex = Lexer(line.strip())
    try:
        tok = lex.peek()
        if tok.kind != "symbol" or tok.text not in (
                "@capture", "@sink_logits", "@sink_rows"):
            return None
        lex.next()
        if tok.text != "@capture":
            return (tok.text[1:],)
        name = lex.expect_kind("id", "the capture's name").text
        ty = lex.type_text()
        shape = ""
        if lex.at("["):
            lex.next()
            start, end = lex.raw_balanced("[", "]")
            shape = "[" + lex.text[start:end] + "]"
        lex.accept(":")
        return ("capture", name, ty, shape, lex.rest().strip())
    except ParseError as e:
        raise ParseError(f"cannot read the comment line {line.strip()!r}: "
                         f"{e}") from None
