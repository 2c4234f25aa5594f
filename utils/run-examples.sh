#!/usr/bin/env bash
# The main job: set up and build (utils/setup.sh), install torch and
# matplotlib into .venv (python/requirements-examples.txt, from PyPI, once),
# run every example in examples/ (each compiles its variants, runs them on the
# GPU when torch sees one and on the CPU JIT otherwise, and checks them
# against the float64 reference; train_gpt.py trains a small GPT with each
# attention and checks the loss curves), then compile every library variant
# (python/attn_mlir/variants/*.mlir) for the GPU with attn-opt --attn-to-nvvm,
# printing those the tensor-core kernel refuses and the compiler's reason.
#   utils/run-examples.sh                 # everything
#   ATTN_SKIP_SETUP=1 utils/run-examples.sh   # with an up-to-date build
# Exits non-zero if any example fails or a variant fails to compile for a
# reason other than a documented refusal.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${ATTN_BUILD_DIR:-$ROOT/build}"
if [ "${ATTN_SKIP_SETUP:-0}" != 1 ]; then
  "$ROOT/utils/setup.sh"
fi
PY="$ROOT/.venv/bin/python"
# torch and matplotlib for examples/train_gpt.py (PyPI; not for the tests).
if ! "$PY" -c "import torch, matplotlib" 2>/dev/null; then
  echo "== installing python/requirements-examples.txt into .venv"
  "$ROOT/.venv/bin/pip" install -q -r "$ROOT/python/requirements-examples.txt"
fi
# With an NVIDIA GPU (nvidia-smi lists one) the examples run on it: the
# bundle runtime also needs cuda-bindings (python/requirements-gpu.txt).
if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q "^GPU"; then
  if ! "$PY" -c "import cuda.bindings.driver" 2>/dev/null; then
    echo "== a GPU is present: installing python/requirements-gpu.txt into .venv"
    "$ROOT/.venv/bin/pip" install -q -r "$ROOT/python/requirements-gpu.txt"
  fi
  echo "== GPU: $(nvidia-smi -L | head -1)"
else
  echo "== no NVIDIA GPU (nvidia-smi lists none): the examples run on the CPU JIT"
fi
export ATTN_OPT="${ATTN_OPT:-$BUILD/bin/attn-opt}"
export ATTN_RUN="${ATTN_RUN:-$BUILD/bin/attn-run}"

failed=()
for ex in "$ROOT"/examples/*.py; do
  case "$(basename "$ex")" in _*) continue ;; esac
  echo
  echo "################ examples/$(basename "$ex")"
  if ! "$PY" "$ex"; then
    failed+=("examples/$(basename "$ex")")
  fi
done

echo
echo "################ the variant library on the GPU compiler"
if ! PYTHONPATH="$ROOT/python" "$PY" -m attn_mlir.variants compile-gpu \
    --out "$BUILD/variant-bundles"; then
  failed+=("compile-gpu")
fi

echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "run-examples: all examples passed"
