"""attn-mlir Python helpers.

Kept deliberately light: importing the package imports nothing heavy.  The
float64 numpy reference of `attn.attention` lives in `attn_mlir.reference`
(import it explicitly).
"""
