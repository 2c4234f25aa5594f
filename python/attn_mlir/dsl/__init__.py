"""A small Python DSL for attention variants.

A variant is the specification of ``reference.attention`` (score kernel,
feature maps, structured masks, normalization and their parameters) plus
optional Python functions for the score and mask regions::

    from attn_mlir import dsl

    @dsl.variant(normalization="softmax",
                 masks=[dsl.causal(), dsl.sliding_window(1024)])
    def alibi(score, b, h, q_idx, kv_idx, slopes):
        return score + slopes[h] * (kv_idx - q_idx)

    @dsl.mask
    def key_padding(b, h, q_idx, kv_idx, lengths: dsl.i32):
        return kv_idx < lengths[b]

    padded = dsl.Variant("padded_alibi", score_mod=alibi.score_mod,
                         mask_mod=key_padding, masks=[dsl.causal()])

* ``score_mod(score, b, h, q_idx, kv_idx, *captures)`` returns the new
  score; ``mask_mod(b, h, q_idx, kv_idx, *captures)`` returns True where the
  key is visible (it joins the global masks). Parameters past the fixed
  ones are captured tensors, matched by name between the two functions;
  their element type is ``f32`` unless an annotation (``dsl.i32``,
  ``dsl.i64``, ``"i32"``, a full type ``"tensor<?x?xi32>"``) or the
  ``captures=`` argument (a list of names or a dict name -> type) says
  otherwise. Their rank comes from how they are indexed. A parameter whose
  default is a number (``w=3``, ``cap=30.0``, ``flag=True``; keyword-only
  ones too, so ``functools.partial(fn, w=3)`` works) is no capture but a
  constant of the region, as is a closure variable bound to a number; one
  whose default is an array (numpy, torch) is a capture typed after it
  (the data is still passed with the other captures).
* Inside the functions: arithmetic (``+ - * / // % **`` with a constant
  exponent, unary ``-``, ``abs``), comparisons, ``&``, ``|``, ``^``, ``~``,
  shifts ``<<`` and ``>>`` of integers, indexing of captured tensors with
  index expressions, and ``dsl.tanh``, ``dsl.exp``, ``dsl.exp2``,
  ``dsl.log``, ``dsl.sqrt``, ``dsl.abs``, ``dsl.minimum``, ``dsl.maximum``,
  ``dsl.clamp``, ``dsl.where``.
* Shifts: ``x << n`` is ``arith.shli``, ``x >> n`` ``arith.shrsi``
  (Python's arithmetic shift, floor division by ``2**n``, for negative
  values too; ``arith.shrui`` would agree only on values >= 0, so it is
  never emitted). ``index`` is 64-bit on every path (CPU and GPU), so a
  constant amount must lie in ``0..63`` (``0..31`` for ``i32``), else
  ``DSLError``; a traced amount outside that range gives numpy's results
  (``<<``: 0; ``>>``: 0, or -1 for a negative value) rather than
  ``arith``'s poison. Shifting a float or a boolean raises ``DSLError``.

The functions are *traced* when the variant is made: called once with
symbolic values whose operators record an expression graph, which is emitted
as ``arith`` / ``math`` / ``tensor.extract`` ops (``variant.mlir()``).
``score`` is ``f32``, ``b, h, q_idx, kv_idx`` are ``index``; integer
expressions stay integer (``kv_idx - q_idx`` is an ``arith.subi`` on
``index``) until they meet a float, where they are converted
(``index_cast`` to i64, then ``sitofp``). ``/`` is true division (always
float); ``//`` and ``%`` floor like Python's.

The same functions run eagerly on numpy arrays (``variant.reference(q, k,
v, *captures)`` calls ``reference.attention`` with them) and on torch
tensors (the ``dsl`` math functions dispatch on their argument), so one
definition is both the compiled kernel and its check.

What the tracer cannot turn into straight-line MLIR raises ``DSLError``,
whose message names the file and line of the user's code: ``if``/``while``/
``and``/``or``/``not`` on a traced value, ``min``/``max``, functions that need
a concrete number (``math.tanh``, ``float()``, ``int()``), numpy or torch
functions (use the ``dsl`` ones), ``**`` with a traced exponent, ...
"""

from __future__ import annotations

from ._errors import DSLError
from ._expr import Expr
from ._functions import (abs, clamp, exp, exp2, log, maximum, minimum, sqrt,
                         tanh, where)
from ._variants import (Variant, any_of, causal, chunked, document, mask,
                        neighborhood_1d, neighborhood_2d, prefix_lm,
                        sink_tokens, sliding_window, variant)

__all__ = [
    "DSLError", "Variant", "variant", "mask", "Expr",
    "f32", "i32", "i64",
    "tanh", "exp", "exp2", "log", "sqrt", "abs", "minimum", "maximum",
    "clamp", "where",
    "causal", "prefix_lm", "document", "sliding_window", "chunked",
    "neighborhood_1d", "neighborhood_2d", "sink_tokens", "any_of",
]

#: Element types of captured tensors, for annotations.
f32, i32, i64 = "f32", "i32", "i64"
