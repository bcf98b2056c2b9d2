#!/usr/bin/env bash
# Coverage-guided fuzzing of the native safetensors header parser (libFuzzer, clang 14, with
# AddressSanitizer + UndefinedBehaviorSanitizer + LeakSanitizer).
# Usage: toolchains/fuzz-native.sh [SECONDS]   (default 30; longer locally, e.g. 600)
# Builds target/fuzz-native/safetensors_header_fuzz from tests-native/fuzz/ and native/src/io/
# safetensors_header.cpp (no libtorch needed), then fuzzes starting from the committed seeds
# (tests-native/fuzz/corpus/) for SECONDS. Exits non-zero on any crash, sanitizer report, leak,
# timeout (10 s per input), out-of-memory (2 GB; 512 MB per allocation), or exception other than
# ptune::Error; the input that did it is written to target/fuzz-native/artifacts/ (add it to the seed
# corpus once fixed). New inputs found go to target/fuzz-native/corpus/, never into the repository.
# The log is target/fuzz-native/fuzz.log. Installs clang-14 (toolchains/bootstrap.sh --with-fuzz) when
# it is missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
seconds="${1:-30}"
[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -gt 0 ]] || { echo "usage: $0 [SECONDS>0]" >&2; exit 2; }
out="$root/target/fuzz-native"
mkdir -p "$out/corpus" "$out/artifacts"

if ! command -v clang++-14 >/dev/null ||
   ! compgen -G "/usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a" >/dev/null; then
  "$here/bootstrap.sh" --with-fuzz
fi

start=$(date +%s)
binary="$out/safetensors_header_fuzz"
sources=("$root/tests-native/fuzz/safetensors_header_fuzz.cpp" "$root/native/src/io/safetensors_header.cpp")
# Rebuild when a source or this script is newer than the binary.
rebuild=0
[[ -x "$binary" ]] || rebuild=1
for f in "${sources[@]}" "$root/native/src/io/safetensors_header.h" "$root/native/src/core/check.h" "$0"; do
  [[ "$f" -nt "$binary" ]] && rebuild=1
done
if ((rebuild)); then
  echo "fuzz: building $binary"
  nice -n 5 clang++-14 -std=c++17 -O1 -g -fno-omit-frame-pointer \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I"$root/native/src" "${sources[@]}" -o "$binary.tmp"
  mv "$binary.tmp" "$binary"
fi
built=$(date +%s)

# detect_leaks: every allocation of a parse must be freed (LeakSanitizer at the end of inputs).
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:symbolize=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
set +e
nice -n 5 "$binary" "$out/corpus" "$root/tests-native/fuzz/corpus" \
  -dict="$root/tests-native/fuzz/safetensors.dict" \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
  -max_len=4096 -print_final_stats=1 -artifact_prefix="$out/artifacts/" >"$out/fuzz.log" 2>&1
rc=$?
set -e
end=$(date +%s)
runs="$(grep -o 'stat::number_of_executed_units: [0-9]*' "$out/fuzz.log" | grep -o '[0-9]*$' || true)"
if [[ "$rc" == 0 ]]; then
  echo "fuzz: safetensors header parser passed: ${runs:-?} inputs in $((end - built)) s" \
       "(build $((built - start)) s), corpus $(ls "$out/corpus" | wc -l) files; log $out/fuzz.log"
else
  echo "fuzz: safetensors header parser FAILED (exit $rc) after ${runs:-?} inputs; log $out/fuzz.log," \
       "failing input(s) in $out/artifacts/:"
  grep -E -A25 '^==[0-9]+==ERROR|runtime error|uncaught exception|breaks the promise|deadly signal|out-of-memory|timeout' \
    "$out/fuzz.log" | head -60 || true
  exit 1
fi
