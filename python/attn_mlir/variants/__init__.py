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
from pathlib import Path
from typing import List, Optional

import numpy as np

from .. import parser as _parser
from .._variant import Capture, VariantBase
from ..parser import parse_tensor_type
from ..regions import parse_block

__all__ = ["LIBRARY_DIR", "ALIASES", "LibraryError", "LibraryVariant",
           "names", "path", "load", "load_all", "parse_variant",
           "gpu_capture_shapes", "capture_shapes", "random_operands"]

LIBRARY_DIR = Path(__file__).resolve().parent

#: Other names of library variants. Grouped-query and multi-query attention
#: are shapes, not variants (``Hkv`` heads of k and v shared by ``Hq / Hkv``
#: query heads each), so their usual names are the causal variant itself.
ALIASES = {"gqa_causal": "causal", "mqa_causal": "causal",
           "mha_causal": "causal"}


class LibraryError(ValueError):
    """A library file that does not follow the library's conventions."""


def _valid_name(name: str, extra: str = "$.") -> bool:
    """A symbol name: a letter or ``_``, then letters, digits, ``_`` and
    ``extra``."""
    return bool(name) and (name[0].isascii() and name[0].isalpha()
                           or name[0] == "_") and all(
        c.isascii() and (c.isalnum() or c == "_" or c in extra) for c in name)


def names(aliases: bool = False) -> List[str]:
    """The names of the library's variants (sorted), with ``aliases`` also
    those of ``ALIASES``."""
    out = sorted(p.stem for p in LIBRARY_DIR.glob("*.mlir"))
    return sorted(out + list(ALIASES)) if aliases else out


def path(name: str) -> Path:
    """The file of variant ``name`` (aliases resolved)."""
    name = ALIASES.get(name, name)
    p = LIBRARY_DIR / f"{name}.mlir"
    if not _valid_name(name, extra="") or not p.is_file():
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


def gpu_capture_shapes(v: VariantBase) -> list:
    """The ``captures`` of ``compiler.compile`` for variant ``v`` when no
    tensors are at hand: per capture a ``(shape, element type)`` whose first
    size the bundle takes as dynamic (document segment ids: every size), the
    others placeholders of 16."""
    return [((4,) if c.rank == 1 else (2,) + (16,) * (c.rank - 1), c.elt)
            for c in v.captures]


def capture_shapes(v: VariantBase, B: int, Hq: int, Hkv: int, S: int,
                   D: int, Dv: int, sink_rows: int = 3) -> list:
    """Per capture of ``v`` its ``(shape, element type)`` for these sizes,
    from its ``@capture`` line (``[Hq]``, ``[B, Sk]``, ...): what
    ``compiler.compile`` takes where no tensors are at hand. ``ValueError``
    for a capture whose shape is not made of these sizes."""
    dims = {"B": B, "Hq": Hq, "Hkv": Hkv, "Sq": S, "Sk": S, "D": D,
            "Dv": Dv, "Ns": sink_rows}
    out = []
    for c in v.captures:
        names = [x.strip() for x in c.shape.strip().strip("[]").split(",")]
        if not all(n in dims for n in names):
            raise ValueError(
                f"capture '{c.name}' of variant '{v.name}' has no shape made "
                f"of {', '.join(dims)} (e.g. '@capture {c.name} ... [Hq]' "
                "in the file's header)")
        out.append((tuple(dims[n] for n in names), c.elt))
    return out


def random_operands(v: VariantBase, B: int, Hq: int, Hkv: int, S: int,
                    D: int, Dv: int, seed: int = 0, sink_rows: int = 3):
    """Random operands of variant ``v``: ``(q, k, v, captures, sinks)``.

    q ``[B, Hq, S, D]``, k ``[B, Hkv, S, D]``, v ``[B, Hkv, S, Dv]``
    (standard normal, float32); the captures sized by the shapes of their
    ``@capture`` lines (``[Hq]``, ``[B, Sk]``, ...): floats uniform in [0.05,
    1), integers sorted ids in [0, 4) along the last axis (document
    segments); ``sinks``: the keyword operands the variant takes
    (``sink_logits [Hq]``, ``sink_key [Hkv, sink_rows, D]`` and
    ``sink_value [Hkv, sink_rows, Dv]``, standard normal). ``ValueError``
    for a capture whose shape is not made of these sizes."""
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((B, Hq, S, D)).astype(np.float32)
    k = rng.standard_normal((B, Hkv, S, D)).astype(np.float32)
    val = rng.standard_normal((B, Hkv, S, Dv)).astype(np.float32)
    caps = []
    for shape, elt in capture_shapes(v, B, Hq, Hkv, S, D, Dv, sink_rows):
        if elt.startswith("f"):
            caps.append(rng.uniform(0.05, 1.0, size=shape).astype(np.float32))
        else:
            caps.append(np.sort(rng.integers(0, 4, size=shape), axis=-1)
                        .astype(np.int32))
    sinks = {}
    if v.sink_logits:
        sinks["sink_logits"] = rng.standard_normal(Hq).astype(np.float32)
    if v.sink_rows:
        sinks["sink_key"] = rng.standard_normal(
            (Hkv, sink_rows, D)).astype(np.float32)
        sinks["sink_value"] = rng.standard_normal(
            (Hkv, sink_rows, Dv)).astype(np.float32)
    return q, k, val, caps, sinks


# ---------------------------------------------------------------------------
# Parsing a variant file
# ---------------------------------------------------------------------------

def _leading_comment(text: str) -> List[str]:
    """The lines of the comment before the first line of code, without
    their ``//`` (and one space)."""
    comment = []
    for line in text.splitlines():
        s = line.strip()
        if not s.startswith("//"):
            if s:
                break
            continue
        comment.append(s[2:][1:] if s[2:3] == " " else s[2:])
    return comment


def _declarations(comment: List[str], where: str):
    """The ``@capture`` / ``@sink_logits`` / ``@sink_rows`` lines of the
    comment: (captures, {"sink_logits": bool, "sink_rows": bool})."""
    captures: List[Capture] = []
    sinks = {"sink_logits": False, "sink_rows": False}
    for line in comment:
        try:
            decl = _parser.parse_capture_comment(line)
        except _parser.ParseError as e:
            raise LibraryError(f"{where}: {e}") from None
        if decl is None:
            continue
        if decl[0] == "capture":
            _, name, ty, shape, doc = decl
            try:
                dims, elt = parse_tensor_type(ty)
            except ValueError as e:
                raise LibraryError(f"{where}: @capture {name}: {e}") from None
            captures.append(Capture(name, elt, len(dims), shape, doc))
        else:
            sinks[decl[0]] = True
    return captures, sinks


def _captures_of_regions(regions) -> List[Capture]:
    """No ``@capture`` lines (e.g. attn-opt's print): the regions' trailing
    block arguments say what is captured."""
    for kind, fixed in (("score_mod", 5), ("mask_mod", 4)):
        if regions[kind] is not None:
            return [Capture(arg.lstrip("%"), elt, len(dims))
                    for arg, ty in parse_block(regions[kind]).args[fixed:]
                    for dims, elt in [parse_tensor_type(ty)]]
    return []


def parse_variant(text: str, name: Optional[str] = None,
                  where: str = "<text>") -> "LibraryVariant":
    """Parses the text of one library file (``attn_mlir.parser``)."""
    try:
        op = _parser.parse_variant_text(text, where)
    except _parser.ParseError as e:
        raise LibraryError(str(e)) from None
    if name is not None and op.name != name:
        raise LibraryError(f"{where}: the file of '{name}' defines "
                           f"@{op.name}")
    comment = _leading_comment(text)
    captures, sinks = _declarations(comment, where)
    if not captures:
        captures = _captures_of_regions(op.regions)
    v = LibraryVariant(op.name, op.spec, captures, op.regions,
                       "\n".join(comment).strip(), text, where)
    v._name_span = op.name_span
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
        if not _valid_name(name):
            raise ValueError(f"bad variant name {name!r}")
        start, end = self._name_span
        return self.text[:start] + f"@{name}" + self.text[end:]
