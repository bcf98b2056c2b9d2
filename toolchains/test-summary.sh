#!/usr/bin/env bash
# Reports both test suites under every kernel configuration of toolchains/kernels.sh, then fails
# if any run failed or did not report. Runs after the native and the Java suites have both run
# (neither stops the build by itself), so one suite's failure never hides the other's.
# Usage: test-summary.sh REPORT_DIR [all|own]
#   REPORT_DIR/native-<name>/  *.xml (Google Test, one per test binary), exit-code, output.log
#   REPORT_DIR/java-<name>/    TEST-*.xml (Surefire)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/kernels.sh"
report_dir="$1" selection="${2:-all}"
matrix="$(kernel_matrix "$selection")"

# Counts (tests failures errors skipped) over the XML reports given. Surefire writes one
# <testsuite> per file with a skipped count; Google Test a <testsuites> total whose tests include
# those skipped with GTEST_SKIP, each a <testcase ... result="skipped">, and per-suite elements
# that would count everything twice.
counts() {
  awk '
    function add(line, keys,   n, k, i) {
      n = split(keys, k, " ")
      for (i = 1; i <= n; i++)
        if (match(line, " " k[i] "=\"[0-9]+\"")) v[k[i]] += substr(line, RSTART + length(k[i]) + 3, RLENGTH - length(k[i]) - 4)
    }
    FNR == 1 { gtest = 0 }
    /<testsuites / { gtest = 1; add($0, "tests failures errors"); next }
    /<testsuite / { if (!gtest) add($0, "tests failures errors skipped"); next }
    gtest && /<testcase / && /result="skipped"/ { v["skipped"]++ }
    END { printf "%d %d %d %d\n", v["tests"], v["failures"], v["errors"], v["skipped"] }' "$@"
}

# Class.method of every failing or erroring test case in the reports given.
failing() {
  awk '
    /<testcase / {
      name = ""; cls = ""
      if (match($0, / name="[^"]*"/)) name = substr($0, RSTART + 7, RLENGTH - 8)
      if (match($0, / classname="[^"]*"/)) cls = substr($0, RSTART + 12, RLENGTH - 13)
      n = split(cls, parts, "."); current = parts[n] "." name
    }
    /<failure|<error/ { if (!(current in seen)) { seen[current] = 1; printf "%s%s", (count++ ? ", " : ""), current } }
    END { print "" }' "$@"
}

failed_runs=0 runs=0
echo "== ptune test summary: each suite under each CPU-kernel configuration (toolchains/kernels.sh) =="
while read -r name suites settings; do
  for suite in native java; do
    [[ "$suites" == *$suite* ]] || continue
    runs=$((runs + 1))
    dir="$report_dir/$suite-$name"
    label="$(printf '%-6s %-17s %-30s' "$suite" "$name" "${settings:--}")"
    if [[ "$suite" == native ]]; then
      reports=("$dir"/*.xml)
      core="$(grep -m1 -o 'Core: [A-Za-z0-9]*' "$dir/output.log" 2>/dev/null || true)"
      [[ -n "$core" ]] && label="$label ${core#Core: }"
    else
      reports=("$dir"/TEST-*.xml)
    fi
    if [[ ! -e "${reports[0]}" ]]; then
      echo "$label  NO REPORT (the suite did not run or crashed; see $dir)"
      failed_runs=$((failed_runs + 1))
      continue
    fi
    read -r tests failures errors skipped < <(counts "${reports[@]}")
    exit_code="$(cat "$dir/exit-code" 2>/dev/null || echo 0)"
    if ((failures + errors > 0)) || [[ "$exit_code" != 0 ]]; then
      failed_runs=$((failed_runs + 1))
      echo "$label  $tests tests, $failures failed, $errors errors: $(failing "${reports[@]}")"
      [[ "$exit_code" != 0 ]] && ((failures + errors == 0)) && echo "    exit code $exit_code: see $dir/output.log"
    else
      echo "$label  $((tests - skipped)) tests passed$( ((skipped > 0)) && echo ", $skipped skipped")"
    fi
  done
done <<<"$matrix"
if ((failed_runs > 0)); then
  echo "== $failed_runs of $runs suite runs FAILED =="
  exit 1
fi
echo "== all $runs suite runs passed =="
