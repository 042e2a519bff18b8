#!/usr/bin/env bash
# Runs every libFuzzer target (fuzz/) for SECONDS each (default 60; or for
# FUZZ_RUNS executions each when that is set, whichever ends first), from
# the corpus kept in fuzz/corpus/<target>, and merges what it found that
# covers more back into that corpus. Builds them first with clang, ASan and
# UBSan in build-fuzz/ (installs clang if missing). Prints, per target, the
# executions, the coverage reached and the outcome; exits non-zero when a
# target found a crash, a leak or a hang (its input is left in
# build-fuzz/crashes/<target>/, to become a regression test).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
((${#targets[@]})) || targets=(report_line unit_request unit_reply geojson token location_service ingest http_request)

if ! command -v clang++ >/dev/null; then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo=sudo
  $sudo apt-get install -y -q --no-install-recommends clang
fi
dir=build-fuzz
[[ -f $dir/CMakeCache.txt ]] ||
  CC=clang CXX=clang++ cmake -S . -B $dir -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOCUS_FUZZ=ON \
    -DLOCUS_BUILD_TESTS=OFF -DLOCUS_BUILD_BENCH=OFF >/dev/null
cmake --build $dir -j "$(nproc)" --target fuzz-make-seeds "${targets[@]/#/fuzz-}" >/dev/null
"$dir/bin/fuzz-make-seeds" fuzz/corpus

failed=0
for t in "${targets[@]}"; do
  corpus=fuzz/corpus/$t
  work=$dir/work/$t
  crashes=$dir/crashes/$t
  mkdir -p "$corpus" "$work" "$crashes"
  log=$dir/$t.log
  started=$SECONDS
  set +e
  runs=()
  [[ -n ${FUZZ_RUNS:-} ]] && runs=(-runs="$FUZZ_RUNS")
  dict=()
  [[ -f fuzz/$t.dict ]] && dict=(-dict="fuzz/$t.dict")
  "$dir/bin/fuzz-$t" -max_total_time="$seconds" "${runs[@]}" "${dict[@]}" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$crashes/" -print_final_stats=1 "$work" "$corpus" >"$log" 2>&1
  rc=$?
  set -e
  executed=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
  # Keep what covers more, minimized, in the repository's corpus.
  "$dir/bin/fuzz-$t" -merge=1 "$corpus" "$work" >/dev/null 2>&1 || true
  if ((rc == 0)); then
    outcome="no crash, leak or hang"
  else
    outcome="FAILED (rc $rc): see $log and $crashes"
    failed=1
  fi
  printf '%-16s %12s executions in %s s, coverage %s edges, corpus %s inputs: %s\n' \
    "$t" "$executed" "$((SECONDS - started))" "$cov" "$(ls "$corpus" | wc -l)" "$outcome"
done
exit $failed
