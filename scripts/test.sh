#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run):
#   1. install what is missing (scripts/bootstrap.sh)
#   2. build with AddressSanitizer + UndefinedBehaviorSanitizer (gcc, build-asan/)
#   3. unit tests and corpus replays (ctest)
#   4. a bounded libFuzzer run per parser (clang, build-fuzz/); ES_FUZZ_SECONDS each, default 30
#   5. process and end-to-end tests, each in a private network namespace (loopback only)
# Prints "N passed, N failed" at the end and exits non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
fuzz_seconds=${ES_FUZZ_SECONDS:-30}
jobs=$(nproc)
passed=0
failed=0
failures=()

step() { echo; echo "=== $*"; }
record() { # NAME RC
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$1"); fi
}

step "bootstrap"
bash scripts/bootstrap.sh || { echo "bootstrap failed"; exit 1; }

step "build with ASan + UBSan (build-asan)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DESTUARY_SANITIZE=ON -DESTUARY_WERROR=ON > /dev/null &&
  cmake --build build-asan -j"$jobs" > build-asan.log 2>&1
rc=$?
[ $rc -eq 0 ] || { tail -50 build-asan.log; echo "0 passed, 1 failed"; exit 1; }

export ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

step "unit tests (ctest)"
(cd build-asan && ctest --output-on-failure -j"$jobs")
record ctest $?

step "fuzz: ${fuzz_seconds}s per parser (build-fuzz, clang libFuzzer)"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DESTUARY_SANITIZE=ON > /dev/null &&
  cmake --build build-fuzz -j"$jobs" > build-fuzz.log 2>&1
rc=$?
if [ $rc -ne 0 ]; then
  tail -30 build-fuzz.log
  record fuzz-build $rc
else
  for f in build-fuzz/tests/fuzz/fuzz_*; do
    name=${f##*/fuzz_}
    work=$(mktemp -d)
    # Fresh inputs go to a scratch folder; the committed corpus seeds it and stays unchanged.
    (cd "$work" && ASAN_OPTIONS=detect_leaks=1 timeout $((fuzz_seconds + 60)) "$root/$f" \
      -max_total_time="$fuzz_seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
      "$work" "$root/tests/fuzz/corpus/$name" > "$work/log" 2>&1)
    rc=$?
    grep -E "^#[0-9]+.*DONE|Done [0-9]+ runs" "$work/log" | tail -1 | sed "s/^/fuzz_$name: /"
    if [ $rc -ne 0 ]; then
      tail -40 "$work/log"
      mkdir -p fuzz-crashes && cp "$work"/crash-* "$work"/leak-* "$work"/timeout-* fuzz-crashes/ 2>/dev/null
      echo "fuzz_$name failed; inputs saved in fuzz-crashes/ (add them to tests/fuzz/corpus/$name)"
    fi
    record "fuzz_$name" $rc
    rm -rf "$work"
  done
fi

for t in tests/process/test_*.sh tests/e2e/test_*.sh; do
  [ -e "$t" ] || continue
  step "$t"
  timeout 900 bash "$t" build-asan
  record "$t" $?
done

echo
if [ "$failed" -ne 0 ]; then echo "failed: ${failures[*]}"; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
