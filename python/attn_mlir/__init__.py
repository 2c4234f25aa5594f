"""attn-mlir Python helpers.

Kept deliberately light: importing the package imports nothing heavy.
Modules (import them explicitly):

* ``attn_mlir.reference``: the float64 numpy reference of ``attn.attention``.
* ``attn_mlir.emit``: MLIR text of one ``attn.attention`` in a function.
* ``attn_mlir.variants``: the library of named variants (``*.mlir`` files).
* ``attn_mlir.dsl``: write variants in Python (traced into MLIR).
* ``attn_mlir.compiler``: ``attention(q, k, v, variant=...)`` on the CPU JIT
  or the GPU, ``compile(...)`` into cached kernel bundles.
* ``attn_mlir.runtime``: load and launch bundles on torch CUDA tensors.
* ``attn_mlir.regions``: numpy evaluation of region bodies.
"""
