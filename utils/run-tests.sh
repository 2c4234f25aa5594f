#!/usr/bin/env bash
# The whole test suite, from a fresh machine: set-up and build (utils/setup.sh),
# then the lit suite (check-attn) and the Python suite (pytest).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${ATTN_BUILD_DIR:-$ROOT/build}"
"$ROOT/utils/setup.sh"
cmake --build "$BUILD" --target check-attn
ATTN_BUILD_DIR="$BUILD" "$ROOT/.venv/bin/python" -m pytest -q "$ROOT/python/tests"
