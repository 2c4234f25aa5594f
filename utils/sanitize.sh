#!/usr/bin/env bash
# The sanitizer job, part of utils/run-tests.sh (after utils/setup.sh has
# installed clang-22 and libclang-rt-22-dev):
#   1. a second build, with clang, AddressSanitizer, UBSan and libFuzzer's
#      coverage (LLVM_USE_SANITIZER, LLVM_USE_SANITIZE_COVERAGE: the
#      switches of LLVM's HandleLLVMOptions), in $ATTN_BUILD_DIR/asan;
#   2. the lit suite (check-attn) once with its attn-opt, attn-run and
#      attn-fuzz, then the Python suite with its attn-opt and attn-run (most
#      of what attn-run does, .npy files and the JIT, is tested there);
#   3. the fuzz target attn-fuzz (parser, verifier, printer, attn-to-cpu) for
#      $ATTN_FUZZ_SECONDS (90 by default), seeded with test/**/*.mlir split
#      at `// -----` and the variant library (each variant also with a
#      function that uses it).
# Only the project's code is instrumented (LLVM and MLIR come from Debian's
# packages, uninstrumented), so reports point into our code or into what it
# calls. A crash fails the job and leaves its input in
# $ATTN_BUILD_DIR/asan/fuzz/crash-*: reduce it, fix it, and keep it as a
# test (test/Fuzz/: a lit test of what the input must do, and the input run
# through attn-fuzz by test/Fuzz/regressions.test).
#
#   utils/sanitize.sh              # all three
#   utils/sanitize.sh --no-fuzz    # build, lit and pytest only
#   utils/sanitize.sh --fuzz-only  # fuzz (the build must exist)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${ATTN_BUILD_DIR:-$ROOT/build}"
ASAN_BUILD="${ATTN_ASAN_BUILD_DIR:-$BUILD/asan}"
FUZZ_SECONDS="${ATTN_FUZZ_SECONDS:-90}"
LLVM_PREFIX=/usr/lib/llvm-22

build=1 lit=1 fuzz=1
case "${1:-}" in
  --no-fuzz) fuzz=0 ;;
  --fuzz-only) build=0 lit=0 ;;
  "") ;;
  *) echo "usage: $0 [--no-fuzz|--fuzz-only]" >&2; exit 2 ;;
esac

# Reports abort (so that `not attn-opt ...` in lit cannot pass on one) with
# symbolized stacks. allow_user_poisoning=0: LLVM's BumpPtrAllocator poisons
# its slabs when compiled with ASan, which the inline copies in our code are
# and libMLIR's are not; the mix reports use-after-poison on good memory.
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:allow_user_poisoning=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="abort_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export ASAN_SYMBOLIZER_PATH="$LLVM_PREFIX/bin/llvm-symbolizer"

if [ "$build" = 1 ]; then
  if [ ! -f "$ASAN_BUILD/build.ninja" ]; then
    # -O1 without NDEBUG: the project's assertions (and LLVM's inline ones,
    # cast<> included) are on; -gline-tables-only comes with the sanitizer.
    cmake -G Ninja -S "$ROOT" -B "$ASAN_BUILD" \
      -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_C_FLAGS_RELEASE=-O1 -DCMAKE_CXX_FLAGS_RELEASE=-O1 \
      -DCMAKE_C_COMPILER="$LLVM_PREFIX/bin/clang" \
      -DCMAKE_CXX_COMPILER="$LLVM_PREFIX/bin/clang++" \
      -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
      -DLLVM_USE_SANITIZER="Address;Undefined" \
      "-DLLVM_UBSAN_FLAGS=-fsanitize=undefined -fno-sanitize=vptr,function -fno-sanitize-recover=all" \
      -DLLVM_USE_SANITIZE_COVERAGE=ON \
      -DMLIR_DIR="$LLVM_PREFIX/lib/cmake/mlir" \
      -DLLVM_EXTERNAL_LIT="$LLVM_PREFIX/bin/lit" \
      -DPython3_EXECUTABLE="$ROOT/.venv/bin/python"
  fi
  cmake --build "$ASAN_BUILD" -j "$(nproc)"
fi

if [ "$lit" = 1 ]; then
  echo "== lit under AddressSanitizer + UBSan"
  cmake --build "$ASAN_BUILD" --target check-attn
  echo "== pytest with the sanitized attn-opt and attn-run"
  ATTN_BUILD_DIR="$ASAN_BUILD" ATTN_OPT="$ASAN_BUILD/bin/attn-opt" \
    ATTN_RUN="$ASAN_BUILD/bin/attn-run" \
    "$ROOT/.venv/bin/python" -m pytest -q -p no:cacheprovider "$ROOT/python/tests"
fi

if [ "$fuzz" = 1 ]; then
  FUZZ="$ASAN_BUILD/fuzz"
  SEEDS="$FUZZ/seeds"
  rm -rf "$SEEDS"
  mkdir -p "$SEEDS" "$FUZZ/corpus"
  # One seed per `// -----` case of every test, as --split-input-file reads
  # them.
  while IFS= read -r f; do
    name="$(echo "${f#"$ROOT"/}" | tr / _)"
    awk -v out="$SEEDS/$name" '
      BEGIN { n = 0; file = out "." n }
      /^\/\/ -----/ { close(file); n++; file = out "." n; next }
      { print > file }' "$f"
  done < <(find "$ROOT/test" "$ROOT/python/attn_mlir/variants" -name '*.mlir' | sort)
  # Every variant of the library, used by a function.
  for f in "$ROOT"/python/attn_mlir/variants/*.mlir; do
    sym="$(grep -oE '^attn\.variant @[A-Za-z0-9_]+' "$f" | head -1 | cut -d@ -f2)"
    [ -n "$sym" ] || continue
    { cat "$f"
      cat <<EOF
func.func @f(%q: tensor<1x2x37x16xf32>, %k: tensor<1x1x41x16xf32>, %v: tensor<1x1x41x16xf32>) -> (tensor<1x2x37x16xf32>, tensor<1x2x37xf32>) {
  %o, %lse = attn.attention %q, %k, %v variant @$sym
      : tensor<1x2x37x16xf32>, tensor<1x1x41x16xf32>, tensor<1x1x41x16xf32> -> tensor<1x2x37x16xf32>, tensor<1x2x37xf32>
  return %o, %lse : tensor<1x2x37x16xf32>, tensor<1x2x37xf32>
}
EOF
    } > "$SEEDS/use_$sym.mlir"
  done
  # A dictionary: the dialect's words, read from the seeds, and the numbers
  # at the edges (int64, the verifier's 2^40 bound of mask parameters, int32).
  { cat "$SEEDS"/* | grep -ohE '#?attn\.[a-z_0-9]+|\b[a-z_0-9]+ = |\b[a-z_0-9]+<' \
      | sort -u
    printf '%s\n' 0 -1 1 9223372036854775807 -9223372036854775808 \
      1099511627776 1099511627777 2147483647 2147483648 4294967296 'x0x' '?x'
  } | sed 's/.*/"&"/' > "$FUZZ/attn.dict"
  echo "== attn-fuzz for ${FUZZ_SECONDS}s ($(ls "$SEEDS" | wc -l) seeds)"
  # -timeout: a unit slower than this is a hang (a finding); -rss_limit_mb:
  # the machine's share; -only_ascii: the input is MLIR text.
  status=0
  "$ASAN_BUILD/bin/attn-fuzz" "$FUZZ/corpus" "$SEEDS" "$ROOT/test/Fuzz/inputs" \
    -max_total_time="$FUZZ_SECONDS" -timeout=30 -rss_limit_mb=4096 \
    -only_ascii=1 -dict="$FUZZ/attn.dict" -artifact_prefix="$FUZZ/" \
    -print_final_stats=1 > "$FUZZ/fuzz.log" 2>&1 || status=$?
  grep -E '^(INFO: seed corpus|#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb|Done )' \
    "$FUZZ/fuzz.log" || true
  if [ "$status" != 0 ]; then
    tail -n 80 "$FUZZ/fuzz.log" >&2
    echo "attn-fuzz failed (exit $status); the input is in $FUZZ/ (crash-*, timeout-*, oom-*, leak-*), the log in $FUZZ/fuzz.log" >&2
    exit 1
  fi
fi
