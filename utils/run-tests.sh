#!/usr/bin/env bash
# The whole test suite, from a fresh machine: set-up and build (utils/setup.sh),
# then the lit suite (check-attn), the Python suite (pytest), and the
# sanitizer job (utils/sanitize.sh: an ASan + UBSan build that runs the lit
# and Python suites once, then the fuzz target for $ATTN_FUZZ_SECONDS, 90 by
# default). ATTN_SANITIZE=0 skips that job.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${ATTN_BUILD_DIR:-$ROOT/build}"
"$ROOT/utils/setup.sh"
cmake --build "$BUILD" --target check-attn
ATTN_BUILD_DIR="$BUILD" "$ROOT/.venv/bin/python" -m pytest -q "$ROOT/python/tests"
if [ "${ATTN_SANITIZE:-1}" != 0 ]; then
  "$ROOT/utils/sanitize.sh"
fi
