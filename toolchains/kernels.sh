#!/usr/bin/env bash
# The CPU-kernel matrix both test suites run under: one definition, read by the Maven build
# (toolchains/kernels.sh properties, toolchains/native-tests.sh) and by test-summary.sh.
#
# BLAS and ATen pick their inner kernels by CPU, and each kernel rounds differently (another
# blocking of a GEMM, another vector width in a reduction), so a tolerance fitted to one kernel
# fails on the next machine. Running the suites under several kernels on one machine catches that
# before it lands. A configuration the CPU cannot execute is left out (forcing an AVX-512 kernel
# on a CPU without AVX-512 would stop the process with SIGILL).
#
# Configurations (NAME SUITES ENV...; SUITES native,java; ENV VAR=value sets, -VAR unsets):
#   as-given          the environment as it is (the machine's own setting, e.g. a CI's
#                     OPENBLAS_CORETYPE=Haswell)
#   openblas-auto     OPENBLAS_CORETYPE unset: OpenBLAS detects the core (only when it is set)
#   openblas-Haswell  AVX2/FMA kernels (Intel Haswell .. and most AMD Zen through OpenBLAS 0.3.21)
#   openblas-Zen      AMD Zen blocking on the same AVX2 kernels
#   openblas-SkylakeX AVX-512 kernels
#   aten-default      libtorch's non-vectorised kernels (ATEN_CPU_CAPABILITY=default)
#   aten-avx2         libtorch's AVX2 kernels on an AVX-512 machine, native only
#
# Usage:
#   kernels.sh list [all|own]           one configuration a line
#   kernels.sh properties FILE [all|own] [SKIP] [REPORTS]
#                                       Maven properties ptune.skip.java.<name>=true|false for
#                                       the Java suite's executions (all true when SKIP is true);
#                                       clears REPORTS (the previous run's reports) unless skipping
# Selection "own" keeps only as-given (a quick local run: mvn verify -Dptune.kernels=own).
set -euo pipefail

cpu_has() {
  local flags
  flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
  local f
  for f in "$@"; do [[ "$flags" == *" $f "* ]] || return 1; done
}

kernel_matrix() {
  local selection="${1:-all}"
  if [[ "$selection" != all && "$selection" != own ]]; then
    echo "kernels.sh: unknown selection '$selection' (ptune.kernels): use all or own" >&2
    return 2
  fi
  echo "as-given native,java"
  [[ "$selection" == own ]] && return 0
  local given="${OPENBLAS_CORETYPE:-}"
  [[ -n "$given" ]] && echo "openblas-auto native,java -OPENBLAS_CORETYPE"
  local core
  for core in Haswell Zen SkylakeX; do
    [[ "${given,,}" == "${core,,}" ]] && continue  # as-given runs it already
    case "$core" in
      Haswell | Zen) cpu_has avx2 fma || continue ;;
      SkylakeX) cpu_has avx2 fma avx512f avx512cd avx512bw avx512dq avx512vl || continue ;;
    esac
    echo "openblas-$core native,java OPENBLAS_CORETYPE=$core"
  done
  [[ "${ATEN_CPU_CAPABILITY:-}" != default ]] && echo "aten-default native,java ATEN_CPU_CAPABILITY=default"
  if cpu_has avx2 fma avx512f avx512bw avx512vl avx512dq && [[ "${ATEN_CPU_CAPABILITY:-}" != avx2 ]]; then
    echo "aten-avx2 native ATEN_CPU_CAPABILITY=avx2"
  fi
}

# The Java suite's executions in pom.xml, one per configuration that can apply to it.
JAVA_EXECUTIONS=(openblas-auto openblas-Haswell openblas-Zen openblas-SkylakeX aten-default)

write_properties() {
  local file="$1" selection="${2:-all}" skip_all="${3:-false}" reports="${4:-}"
  local matrix
  matrix="$(kernel_matrix "$selection")" || exit 2
  # Stale reports of an earlier run (another selection, a renamed test) must not reach the summary.
  [[ -n "$reports" && "$skip_all" != true ]] && rm -rf "$reports"
  mkdir -p "$(dirname "$file")"
  {
    echo "# written by toolchains/kernels.sh: which Java-suite kernel runs apply on this CPU"
    local name skip
    for name in "${JAVA_EXECUTIONS[@]}"; do
      skip=true
      [[ "$skip_all" != true ]] && grep -q "^$name .*java" <<<"$matrix" && skip=false
      echo "ptune.skip.java.$name=$skip"
    done
  } >"$file"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  case "${1:-}" in
    list) kernel_matrix "${2:-all}" ;;
    properties) write_properties "$2" "${3:-all}" "${4:-false}" "${5:-}" ;;
    *) echo "usage: $0 list [all|own] | properties FILE [all|own] [SKIP] [REPORTS]" >&2; exit 2 ;;
  esac
fi
