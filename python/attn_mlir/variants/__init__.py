"""The library of named attention variants.

Every ``NAME.mlir`` file of this folder holds one ``attn.variant @NAME``
(everything about attention but the tensors: score kernel, feature maps,
masks, normalization, score/mask regions) after a comment that states its
math and cites its source. Mask sizes (windows, prefixes, grids) are fixed
in the file: copy a file and edit the numbers for other sizes. Any variant
serves MHA, GQA and MQA alike; the shapes of the tensors decide.

Lines of the leading comment of the form

    // @capture NAME TYPE [SHAPE]: what it holds
    // @sink_logits [Hq]: ...
    // @sink_rows [Hkv, Ns, D]: ...

declare the operands that the ``attn.attention`` op must supply besides
q, k and v (captured tensors in order, sink logits, sink rows)::

    from attn_mlir import variants
    alibi = variants.load("alibi")
    print(alibi.mlir())                       # the attn.variant text
    o = alibi.reference(q, k, v, slopes)      # float64 numpy reference
    text = alibi.emit_func("f", q.shape, k.shape, v.shape, "f32",
                           captures=[slopes.shape])

``attn_mlir.compiler.attention(q, k, v, variant="alibi", captures=[slopes])``
compiles and runs one by name.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Dict, List, Optional

from .._variant import Capture, VariantBase, parse_tensor_type
from ..regions import parse_block, split_types

__all__ = ["LIBRARY_DIR", "ALIASES", "LibraryError", "LibraryVariant",
           "names", "path", "load", "load_all", "parse_variant"]

LIBRARY_DIR = Path(__file__).resolve().parent

#: Other names of library variants. Grouped-query and multi-query attention
#: are shapes, not variants (``Hkv`` heads of k and v shared by ``Hq / Hkv``
#: query heads each), so their usual names are the causal variant itself.
ALIASES = {"gqa_causal": "causal", "mqa_causal": "causal",
           "mha_causal": "causal"}


class LibraryError(ValueError):
    """A library file that does not follow the library's conventions."""


def names(aliases: bool = False) -> List[str]:
    """The names of the library's variants (sorted), with ``aliases`` also
    those of ``ALIASES``."""
    out = sorted(p.stem for p in LIBRARY_DIR.glob("*.mlir"))
    return sorted(out + list(ALIASES)) if aliases else out


def path(name: str) -> Path:
    """The file of variant ``name`` (aliases resolved)."""
    name = ALIASES.get(name, name)
    p = LIBRARY_DIR / f"{name}.mlir"
    if not re.fullmatch(r"[A-Za-z_][\w]*", name) or not p.is_file():
        raise KeyError(f"no library variant '{name}'; the library has "
                       f"{', '.join(names(aliases=True))}")
    return p


def load(name: str) -> "LibraryVariant":
    """The library variant ``name`` (``ALIASES`` accepted)."""
    return _load(ALIASES.get(name, name))


@functools.lru_cache(maxsize=None)
def _load(name: str) -> "LibraryVariant":
    p = path(name)
    return parse_variant(p.read_text(), p.stem, str(p))


def load_all() -> List["LibraryVariant"]:
    return [load(n) for n in names()]


# ---------------------------------------------------------------------------
# Parsing a variant file
# ---------------------------------------------------------------------------

_META_CAPTURE = re.compile(
    r"^@capture\s+(\w+)\s+(tensor<[^>]*>)\s*(\[[^\]]*\])?\s*:?\s*(.*)$")
_META_SINK = re.compile(r"^@(sink_logits|sink_rows)\s*(\[[^\]]*\])?\s*:?\s*"
                        r"(.*)$")


def _parse_masks(text: str, where: str) -> List[dict]:
    masks = []
    for item in split_types(text):
        m = re.fullmatch(r"#attn\.(\w+)\s*(?:<(.*)>)?", item.strip(), re.S)
        if not m:
            raise LibraryError(f"{where}: cannot parse the mask {item!r}")
        kind, params = m.group(1), (m.group(2) or "").strip()
        mask: Dict[str, object] = {"kind": kind}
        if params and "=" not in params:
            mask["alignment"] = params
        elif params:
            for kv in split_types(params):
                key, _, val = kv.partition("=")
                key, val = key.strip(), val.strip()
                mask[key] = val if key == "alignment" else int(val)
        masks.append(mask)
    return masks


def _parse_spec(text: str, where: str) -> dict:
    spec: dict = {}
    rest = text

    def take(pattern):
        nonlocal rest
        m = re.search(pattern, rest, re.S)
        if m:
            rest = rest[:m.start()] + " " + rest[m.end():]
        return m

    if m := take(r"\bmask\s*=\s*\[([^\]]*)\]"):
        spec["masks"] = _parse_masks(m.group(1), where)
    if m := take(r"\bscore\s*<\s*(\w+)\s*>"):
        spec["score"] = m.group(1)
    for key in ("q_map", "k_map"):
        if m := take(rf"\b{key}\s*<\s*(\w+)\s*>"):
            spec[key] = m.group(1)
    if m := take(r"\bnormalize\s*<\s*(\w+)\s*>"):
        spec["normalization"] = m.group(1)
    for key in ("scale", "gamma", "bias", "length_scale"):
        if m := take(rf"\b{key}\s*=\s*([-+0-9.eE]+)"):
            spec[key] = float(m.group(1))
    if rest.strip():
        raise LibraryError(f"{where}: cannot parse {rest.strip()!r} in the "
                           "specification")
    return spec


def _region_text(text: str, kind: str, where: str) -> Optional[str]:
    m = re.search(rf"\b{kind}\s*\{{", text)
    if not m:
        return None
    depth = 0
    for pos in range(m.end() - 1, len(text)):
        if text[pos] == "{":
            depth += 1
        elif text[pos] == "}":
            depth -= 1
            if depth == 0:
                return text[m.end():pos].strip("\n")
    raise LibraryError(f"{where}: unbalanced braces in {kind}")


def parse_variant(text: str, name: Optional[str] = None,
                  where: str = "<text>") -> "LibraryVariant":
    """Parses the text of one library file."""
    comment, code = [], []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("//") and not code:
            comment.append(s[2:][1:] if s[2:3] == " " else s[2:])
        else:
            code.append(line.split("//")[0])
    src = "\n".join(code)
    # attn-opt's print wraps the op in `module { ... }`.
    wrapped = re.match(r"\s*module\s*(?:attributes\s*\{[^}]*\}\s*)?\{(.*)\}\s*$",
                       src, re.S)
    if wrapped:
        src = wrapped.group(1)
    m = re.search(r'attn\.variant\s+(?:"(?:private|public|nested)"\s+)?'
                  r'@([\w$.]+)', src)
    if not m:
        raise LibraryError(f"{where}: no attn.variant")
    if name is not None and m.group(1) != name:
        raise LibraryError(f"{where}: the file of '{name}' defines "
                           f"@{m.group(1)}")
    if src.count("attn.variant") != 1:
        raise LibraryError(f"{where}: one attn.variant per file")
    body = src[m.end():]
    starts = [x.start() for x in re.finditer(r"\b(score_mod|mask_mod)\s*\{",
                                             body)]
    header = body[:min(starts)] if starts else body
    header = re.sub(r"\battributes\s*\{[^}]*\}", " ", header)
    spec = _parse_spec(header, where)
    regions = {k: _region_text(body, k, where)
               for k in ("score_mod", "mask_mod")}

    captures: List[Capture] = []
    sinks = {"sink_logits": False, "sink_rows": False}
    doc = []
    for line in comment:
        s = line.strip()
        if (c := _META_CAPTURE.match(s)):
            dims, elt = parse_tensor_type(c.group(2))
            captures.append(Capture(c.group(1), elt, len(dims),
                                    c.group(3) or "", c.group(4).strip()))
        elif (c := _META_SINK.match(s)):
            sinks[c.group(1)] = True
        doc.append(line)
    if not captures:
        # No @capture lines (e.g. attn-opt's print): the regions' trailing
        # block arguments say what is captured.
        for kind, fixed in (("score_mod", 5), ("mask_mod", 4)):
            if regions[kind] is not None:
                for arg, ty in parse_block(regions[kind]).args[fixed:]:
                    dims, elt = parse_tensor_type(ty)
                    captures.append(Capture(arg.lstrip("%"), elt, len(dims)))
                break
    v = LibraryVariant(m.group(1), spec, captures, regions,
                       "\n".join(doc).strip(), text, where)
    v.sink_logits = sinks["sink_logits"]
    v.sink_rows = sinks["sink_rows"]
    v._check_regions()
    return v


class LibraryVariant(VariantBase):
    """A variant of the library (see the module doc)."""

    def __init__(self, name, spec, captures, regions, doc, text, where):
        self.name = name
        self.spec = spec
        self.captures = captures
        self.regions = regions
        self.doc = doc
        self.text = text
        self.path = where
        self._blocks = {k: parse_block(t) for k, t in regions.items()
                        if t is not None}

    @property
    def summary(self) -> str:
        """The first sentence of the file's comment."""
        first = self.doc.split("\n\n")[0].replace("\n", " ")
        return first.split(". ")[0].rstrip(".") + "."

    def _check_regions(self):
        for kind, fixed in (("score_mod", 5), ("mask_mod", 4)):
            block = self._blocks.get(kind)
            if block is None:
                continue
            extra = block.args[fixed:]
            if len(extra) != len(self.captures):
                raise LibraryError(
                    f"{self.path}: {kind} takes {len(extra)} captures, the "
                    f"header declares {len(self.captures)} (@capture lines)")
            for (arg, ty), cap in zip(extra, self.captures):
                dims, elt = parse_tensor_type(ty)
                if elt != cap.elt or len(dims) != cap.rank:
                    raise LibraryError(
                        f"{self.path}: {kind} argument {arg}: {ty} does not "
                        f"match '@capture {cap.name}' ({cap.rank}-d {cap.elt})")

    def region_block(self, kind: str) -> Optional[str]:
        return self.regions.get(kind)

    @property
    def score_mod_fn(self):
        block = self._blocks.get("score_mod")
        if block is None:
            return None
        return lambda s, b, h, i, j, *caps: block(s, b, h, i, j, *caps)

    @property
    def mask_mod_fn(self):
        block = self._blocks.get("mask_mod")
        if block is None:
            return None
        return lambda b, h, i, j, *caps: block(b, h, i, j, *caps)

    def mlir(self, name: Optional[str] = None) -> str:
        """The file's text (comment and ``attn.variant``), the variant
        renamed to ``name`` if given."""
        if name is None or name == self.name:
            return self.text
        if not re.fullmatch(r"[A-Za-z_][\w$.]*", name):
            raise ValueError(f"bad variant name {name!r}")
        return re.sub(rf'(attn\.variant\s+(?:"\w+"\s+)?)@{re.escape(self.name)}'
                      r'\b', rf"\g<1>@{name}", self.text, count=1)
