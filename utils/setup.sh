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

if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -G Ninja -S "$ROOT" -B "$BUILD" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
    -DMLIR_DIR="$LLVM_PREFIX/lib/cmake/mlir" \
    -DLLVM_EXTERNAL_LIT="$LLVM_PREFIX/bin/lit" \
    -DPython3_EXECUTABLE="$VENV/bin/python"
fi
cmake --build "$BUILD" -j "$(nproc)"
