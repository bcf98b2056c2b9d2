#!/usr/bin/env bash
# Coverage-guided fuzzing of the Java parsers: every @FuzzTest method under tests-java/src
# (config.json, adapter directories, safetensors, datasets), one target per JVM, each for a
# bounded time, with Jazzer (libFuzzer for the JVM). `mvn verify` runs the same methods on their
# committed seeds only (tests-java/resources/<package>/<Class>Inputs/<method>/); this script
# mutates from those seeds.
#
# Usage: toolchains/fuzz-java.sh [SECONDS_PER_TARGET] [FILTER]
#   SECONDS_PER_TARGET  fuzzing time per target (default 30, CI); e.g. 3600 for a long local run
#   FILTER              only targets whose Class#method contains it (e.g. Safetensors)
# Environment:
#   PTUNE_FUZZ_DIR      work folder (default target/fuzz): corpus/<Class>/<method>/ keeps the
#                       inputs that found new coverage between runs; findings/<Class>/<method>/
#                       gets crash-<sha1> files and a Java reproducer per finding; logs/ the output
#   PTUNE_FUZZ_BUILD=0  skip compiling (the test classes must be current: mvn -o test-compile)
#
# Fails (exit 1) when any target has a finding: an exception other than the documented
# io.ptune.PtuneException subclass the parser throws, an Error (OutOfMemoryError,
# StackOverflowError, ...), a failed assertion, or an input that takes more than 30 s (a hang).
# To keep a finding as a regression test, copy its crash file into the target's seed folder
# (the script prints the command) and fix the parser.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
seconds="${1:-30}"
filter="${2:-}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz-java.sh: SECONDS_PER_TARGET must be a positive whole number, got '$seconds'" >&2
  exit 2
fi
work="${PTUNE_FUZZ_DIR:-$root/target/fuzz}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"

if [[ "${PTUNE_FUZZ_BUILD:-1}" != 0 ]]; then
  echo "fuzz-java.sh: compiling (mvn -o test-compile, log $work/build.log)"
  if ! mvn -B -q -o test-compile -DskipTests >"$work/build.log" 2>&1; then
    tail -40 "$work/build.log" >&2
    echo "fuzz-java.sh: the build failed" >&2
    exit 2
  fi
fi
if ! mvn -B -q -o dependency:build-classpath -Dmdep.includeScope=test -Dmdep.outputFile="$work/classpath.txt" \
    >"$work/classpath.log" 2>&1; then
  cat "$work/classpath.log" >&2
  echo "fuzz-java.sh: cannot resolve the test class path (mvn dependency:build-classpath)" >&2
  exit 2
fi
classpath="$root/target/test-classes:$root/target/classes:$(cat "$work/classpath.txt")"

# Targets: Class#method of every @FuzzTest (the method is declared on one of the next lines).
mapfile -t targets < <(grep -rlE --include='*.java' '^[[:space:]]*@FuzzTest' tests-java/src | sort | while read -r file; do
  class="$(sed -e 's|^tests-java/src/||' -e 's|\.java$||' -e 's|/|.|g' <<<"$file")"
  awk '/^[ \t]*@FuzzTest/ {armed = 1; next} armed && match($0, /void [A-Za-z0-9_]+\(/) {
         print substr($0, RSTART + 5, RLENGTH - 6); armed = 0 }' "$file" | sed "s|^|$class#|"
done | grep -F -- "$filter" || true)
if [[ ${#targets[@]} -eq 0 ]]; then
  echo "fuzz-java.sh: no @FuzzTest method under tests-java/src matches '$filter'" >&2
  exit 2
fi

echo "fuzz-java.sh: ${#targets[@]} targets, ${seconds} s each; work folder $work"
failed=()
summary=()
for target in "${targets[@]}"; do
  class="${target%#*}" method="${target#*#}"
  simple="${class##*.}"
  corpus="$work/corpus/$simple/$method"
  findings="$work/findings/$simple/$method"
  log="$work/logs/$simple.$method.log"
  rm -rf "$findings"
  mkdir -p "$corpus" "$findings" "$(dirname "$log")"
  # JAZZER_FUZZ=1: fuzzing mode. The corpus folder comes first (libFuzzer adds new inputs there);
  # the committed seeds are read from the class path. Coverage is measured in ptune and in
  # Jackson's parsers (whose token comparisons teach the fuzzer JSON and CSV). -timeout: an
  # input running 30 s is a hang (not less: the first inputs also pay for instrumenting the
  # classes they load). -Xmx bounds the heap, so that a huge allocation driven by a declared
  # length shows up as an OutOfMemoryError finding.
  set +e
  JAZZER_FUZZ=1 timeout --kill-after=30 $((seconds + 240)) \
    java -Xmx1g -Xss1m -cp "$classpath" \
      -Dptune.shared="$root/../shared" -Dptune.root="$root" \
      com.code_intelligence.jazzer.Jazzer \
      --target_class="$class" --target_method="$method" \
      --instrument='io.ptune.**,com.fasterxml.jackson.core.**,com.fasterxml.jackson.dataformat.**' \
      --reproducer_path="$findings" \
      -max_total_time="$seconds" -timeout=30 -artifact_prefix="$findings/" \
      "$corpus" >"$log" 2>&1
  rc=$?
  set -e
  done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)"
  runs="$(grep -oE '^#[0-9]+' <<<"$done_line" | tr -d '#' || true)"
  rate="$(grep -oE 'exec/s: [0-9]+' <<<"$done_line" | grep -oE '[0-9]+' || true)"
  cov="$(grep -oE 'cov: [0-9]+' <<<"$done_line" | grep -oE '[0-9]+' || true)"
  crashes=()
  while IFS= read -r -d '' f; do crashes+=("$f"); done < <(find "$findings" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' \) -print0)
  if [[ $rc -eq 0 && ${#crashes[@]} -eq 0 ]]; then
    summary+=("$(printf '%-52s %10s runs %7s exec/s  cov %-6s ok' "$target" "${runs:-?}" "${rate:-?}" "${cov:-?}")")
    continue
  fi
  failed+=("$target")
  summary+=("$(printf '%-52s %10s runs %7s exec/s  cov %-6s FINDING (exit %s)' "$target" "${runs:-?}" "${rate:-?}" "${cov:-?}" "$rc")")
  echo
  echo "=== FINDING in $target (exit $rc), full log: $log"
  grep -E -A12 '^== Java Exception|^== Java Assertion|^==[0-9]+== ERROR|ERROR: libFuzzer' "$log" | head -40 || tail -40 "$log"
  seeds="tests-java/resources/${class%.*}"
  seeds="${seeds//.//}/${simple}Inputs/$method"
  for f in "${crashes[@]}"; do
    echo "  input: $f"
    echo "    keep it as a regression seed: cp '$f' '$seeds/'"
  done
  if [[ ${#crashes[@]} -eq 0 ]]; then
    echo "  no crash file was written: see the log"
  fi
done

echo
echo "fuzz-java.sh summary (${seconds} s per target):"
printf '  %s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz-java.sh: ${#failed[@]} target(s) with findings: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz-java.sh: no findings"
