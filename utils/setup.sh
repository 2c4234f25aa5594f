#!/usr/bin/env bash
# Installs everything attn-mlir needs on a fresh Debian 12 machine and builds
# it. Idempotent: a second run only rebuilds what changed.
#   utils/setup.sh            # install, configure, build into ./build
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${ATTN_BUILD_DIR:-$ROOT/build}"
LLVM_PREFIX=/usr/lib/llvm-22

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# clang-22 and libclang-rt-22-dev: the sanitizer and fuzzer build of
# utils/sanitize.sh (the main build is g++).
APT_PACKAGES="llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools ninja-build cmake ccache g++ clang-22 libclang-rt-22-dev"
missing=""
for p in $APT_PACKAGES; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "== installing:$missing"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing
fi

# Python tools for the test suite, in a virtual environment of the project.
VENV="$ROOT/.venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import numpy, pytest" 2>/dev/null; then
  "$VENV/bin/pip" install -q -r "$ROOT/python/requirements.txt"
fi

# The CUDA toolkit whose ptxas and libdevice turn the GPU kernels into
# cubins, found as the package finds it (attn_mlir.compiler.find_cuda_toolkit:
# $CUDA_HOME, $CUDA_PATH, /usr/local/cuda, NVIDIA's wheels in site-packages).
# With none, ptxas and libdevice come from PyPI into .venv: nvidia-cuda-nvcc
# (CUDA 13; it brings nvidia-nvvm, whose libdevice lands beside ptxas in
# site-packages/nvidia/cu13), or nvidia-cuda-nvcc-cu12 where nvidia-smi
# reports a CUDA 12 driver; $ATTN_CUDA_WHEEL names another. (Debian 12's
# nvidia-cuda-toolkit, in non-free, is CUDA 11.8: too old for sm_90a.)
find_toolkit() {
  PYTHONPATH="$ROOT/python" "$VENV/bin/python" -c \
    "from attn_mlir.compiler import find_cuda_toolkit; print(find_cuda_toolkit() or '')"
}
CUDA_TOOLKIT="$(find_toolkit)"
if [ -z "$CUDA_TOOLKIT" ]; then
  wheel="${ATTN_CUDA_WHEEL:-}"
  if [ -z "$wheel" ]; then
    wheel=nvidia-cuda-nvcc
    if command -v nvidia-smi >/dev/null &&
        nvidia-smi 2>/dev/null | grep -q "CUDA Version: 12\."; then
      wheel=nvidia-cuda-nvcc-cu12
    fi
  fi
  echo "== no CUDA toolkit with ptxas and libdevice: installing $wheel from PyPI into .venv"
  if "$VENV/bin/pip" install -q "$wheel"; then
    CUDA_TOOLKIT="$(find_toolkit)"
  fi
fi
if [ -n "$CUDA_TOOLKIT" ]; then
  echo "== CUDA toolkit: $CUDA_TOOLKIT"
else
  echo "== WARNING: GPU kernels cannot be assembled into cubins here:"
  PYTHONPATH="$ROOT/python" "$VENV/bin/python" -c \
    "from attn_mlir.compiler import missing_toolkit_message; print(missing_toolkit_message())"
  echo "   The CPU path works without it; lit reports the ptxas tests unsupported and pytest skips the GPU compiles."
fi

if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -G Ninja -S "$ROOT" -B "$BUILD" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
    -DMLIR_DIR="$LLVM_PREFIX/lib/cmake/mlir" \
    -DLLVM_EXTERNAL_LIT="$LLVM_PREFIX/bin/lit" \
    -DPython3_EXECUTABLE="$VENV/bin/python" \
    ${CUDA_TOOLKIT:+-DATTN_CUDA_TOOLKIT_PATH="$CUDA_TOOLKIT"}
elif [ -n "$CUDA_TOOLKIT" ] &&
    ! grep -qx "ATTN_CUDA_TOOLKIT_PATH:PATH=$CUDA_TOOLKIT" "$BUILD/CMakeCache.txt"; then
  # The lit suite's toolkit (its ptxas feature), where another was found.
  cmake -B "$BUILD" -DATTN_CUDA_TOOLKIT_PATH="$CUDA_TOOLKIT"
fi
cmake --build "$BUILD" -j "$(nproc)"
