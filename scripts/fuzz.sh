#!/usr/bin/env bash
# Runs each fuzz target (README "Fuzzing") for FUZZ_SECONDS with the libFuzzer binary that
# `make fuzz-build` made, then prints a table per target: seconds, executions, coverage
# (libFuzzer's cov: code edges reached; ft: features), corpus (inputs libFuzzer keeps), new
# (inputs added to the working corpus so far), crashes, and the known findings it met.
#
# Memory blow-ups count as crashes (-rss_limit_mb, -malloc_limit_mb), as do inputs that take
# over FUZZ_TIMEOUT seconds; crashing inputs land in $FUZZ_OUT/crashes/<target>/ and the run
# fails. Findings listed in Fuzz/known-issues (being fixed elsewhere) do not stop a target.
# Leak detection is off: NIO's and Swift's process-wide pools (started on first use, never
# freed) read as leaks. AddressSanitizer keeps 64 MB of freed memory in quarantine (not its
# 256 MB default), so that the RSS limit measures the code under test. Each target's working corpus ($FUZZ_OUT/corpus/<target>) grows across
# runs; the committed seeds and regression inputs are read, never written.
# Fuzz/dictionaries/<target>.dict, when there is one, gives libFuzzer the tokens of the
# target's format (JSON keys, boundary numbers) to splice in.
#
# usage: scripts/fuzz.sh <evnode-fuzz binary> [target...]   (default: every target)
set -uo pipefail
cd "$(dirname "$0")/.."

bin="$1"; shift
seconds="${FUZZ_SECONDS:-60}"
out="${FUZZ_OUT:-.build-fuzz/run}"
rss_mb="${FUZZ_RSS_MB:-2048}"
malloc_mb="${FUZZ_MALLOC_MB:-1024}"
timeout_s="${FUZZ_TIMEOUT:-30}"

if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for d in Fuzz/corpus/*/; do targets+=("$(basename "$d")"); done
fi

mkdir -p "$out"
summary="$out/summary.txt"
printf '%-18s %7s %12s %9s %7s %8s %7s %7s %8s  %s\n' target seconds executions exec/s cov ft corpus new crashes known > "$summary"
failed=0
for t in "${targets[@]}"; do
  corpus="$out/corpus/$t"
  crashes="$out/crashes/$t"
  log="$out/logs/$t.log"
  mkdir -p "$corpus" "$crashes" "$(dirname "$log")"
  seeds=("Fuzz/corpus/$t")
  [ -d "Fuzz/regressions/$t" ] && seeds+=("Fuzz/regressions/$t")
  known=$(awk -v t="$t" '$1 == t { print $2 }' Fuzz/known-issues | paste -sd, -)
  dict=()
  [ -f "Fuzz/dictionaries/$t.dict" ] && dict=("-dict=Fuzz/dictionaries/$t.dict")
  # Crashes, memory blow-ups, timeouts (libFuzzer's slow-unit files are only reports).
  count() { ls "$crashes" | grep -cE '^(crash|oom|timeout|leak)-'; }
  before=$(count)
  start=$(date +%s)
  # libFuzzer writes what it finds to the first directory; the others are only read.
  # The Swift runtime's backtracer would take the fatal signal first and keep libFuzzer from
  # saving the input: libFuzzer prints the stack itself.
  EVNODE_FUZZ_KNOWN_FINDINGS="$known" ASAN_OPTIONS="detect_leaks=0:quarantine_size_mb=64${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
    SWIFT_BACKTRACE=enable=no "$bin" "$t" -max_total_time="$seconds" -rss_limit_mb="$rss_mb" \
    -malloc_limit_mb="$malloc_mb" -timeout="$timeout_s" -detect_leaks=0 -print_final_stats=1 "${dict[@]}" \
    -artifact_prefix="$crashes/" "$corpus" "${seeds[@]}" > "$log" 2>&1
  status=$?
  elapsed=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<< "$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<< "$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<< "$last")
  size=$(ls "$corpus" | wc -l)
  found=$(( $(count) - before ))
  if [ "$status" -ne 0 ] && [ "$found" -eq 0 ]; then found="?"; fi
  hit=$(sed -n 's/^KNOWN FINDING in [^:]*: \[\([^]]*\)\].*/\1/p' "$log" | sort -u | paste -sd, -)
  printf '%-18s %7s %12s %9s %7s %8s %7s %7s %8s  %s\n' "$t" "$elapsed" "${execs:--}" "${rate:--}" "${cov:--}" "${ft:--}" \
    "${corp:--}" "$size" "$found" "${hit:--}" >> "$summary"
  if [ "$status" -ne 0 ]; then
    failed=1
    echo "fuzz: $t failed (exit $status); log: $log" >&2
    grep -E 'FINDING|SUMMARY|ERROR: libFuzzer|Test unit written' "$log" | head -5 >&2
  fi
done
cat "$summary"
if [ "$failed" -ne 0 ]; then
  echo "fuzz: crashes in $out/crashes/ — reproduce with: $bin <target> <file>; add each to Fuzz/regressions/<target>/" >&2
  exit 1
fi
