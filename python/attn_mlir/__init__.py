"""attn-mlir Python helpers.

Kept deliberately light: importing the package imports nothing heavy.
Modules (import them explicitly):

* ``attn_mlir.reference``: the float64 numpy reference of ``attn.attention``.
* ``attn_mlir.printer``: prints the dialect (masks, specifications,
  regions, ``attn.variant``, functions holding ``attn.attention``);
  ``attn_mlir.parser`` reads variant files and region blocks back.
* ``attn_mlir.emit``: MLIR text of one ``attn.attention`` in a function.
* ``attn_mlir.variants``: the library of named variants (``*.mlir`` files).
* ``attn_mlir.dsl``: write variants in Python (traced into MLIR; a package:
  errors, the expression graph, math functions, regions, variants).
* ``attn_mlir.compiler``: ``attention(q, k, v, variant=...)`` on the CPU JIT
  or the GPU, ``compile(...)`` into cached kernel bundles (kernel options,
  timeouts).
* ``attn_mlir.torch``: ``attention(q, k, v, variant=...)`` as a
  differentiable PyTorch operator (``torch.library`` custom ops, traced by
  ``torch.compile``); needs torch.
* ``attn_mlir.cpu_module``: CPU functions compiled once into a cached shared
  library and called through ctypes.
* ``attn_mlir.runtime``: load bundles and run their launch lists on torch
  CUDA tensors.
* ``attn_mlir.regions``: numpy evaluation of region bodies.

``python -m attn_mlir`` (``__main__``) is the command line: ``list``,
``compile`` and ``run`` of a library variant or a variant file.
"""
