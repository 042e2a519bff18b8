#!/usr/bin/env bash
# Co-located against spawned: the same workload against one `locus local`
# (the units as threads of one process, the server reaching them over ZeroMQ
# inproc://) and against a cluster of separate processes over loopback TCP
# (locus-bench --spawn-units), then one table of queries/s, p50 and CPU per
# query at each pipeline depth.
#
#   bench/colocated.sh [--units 4] [--replicas 2] [locus-bench flags, e.g. --pipeline 1,32]
#
# Defaults: 1,000,000 devices, 1,000,000 updates, 50,000 queries per depth at
# depths 1, 8, 32 and 128, 4 connections. `locus local` listens on
# 127.0.0.1:$LOCUS_COLOCATED_PORT (default 17700) and the three ports after
# it. LOCUS_BIN (default: build/bin next to this script) points at the
# binaries. Exits non-zero if either run fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${LOCUS_BIN:-$here/../build/bin}"
port="${LOCUS_COLOCATED_PORT:-17700}"
units=4
replicas=2
declare -A size=([--devices]=1000000 [--updates]=1000000 [--queries]=50000 [--concurrency]=4
  [--pipeline]=1,8,32,128)
extra=()
while (($# > 0)); do
  case "$1" in
    --units) (($# >= 2)) || { echo "colocated: --units needs a value" >&2; exit 2; }; units="$2"; shift ;;
    --replicas) (($# >= 2)) || { echo "colocated: --replicas needs a value" >&2; exit 2; }; replicas="$2"; shift ;;
    --devices | --updates | --queries | --concurrency | --pipeline)
      (($# >= 2)) || { echo "colocated: $1 needs a value" >&2; exit 2; }; size[$1]="$2"; shift ;;
    --spawn-units* | --json | --gateway* | --server* | --redis* | --postgis* | --cpu-pids*)
      echo "colocated: $1 is set by the script itself" >&2; exit 2 ;;
    *) extra+=("$1") ;;
  esac
  shift
done
[[ -x "$bin/locus-bench" && -x "$bin/locus" ]] || { echo "colocated: $bin/locus-bench or locus not built" >&2; exit 2; }
sizes=()
for flag in --devices --updates --queries --concurrency --pipeline; do sizes+=("$flag" "${size[$flag]}"); done

work="$(mktemp -d)"
local_pid=""
cleanup() {
  [[ -n "$local_pid" ]] && kill "$local_pid" 2>/dev/null && wait "$local_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "colocated: locus local, $units units, $replicas replicas" >&2
"$bin/locus" local --units "$units" --replicas "$replicas" --simulate 0 --http-listen '' \
  --gateway-http-listen '' --gateway-listen "127.0.0.1:$port" --text-listen "127.0.0.1:$((port + 1))" \
  --server-listen "127.0.0.1:$((port + 2))" >"$work/local.log" 2>&1 &
local_pid=$!
for _ in $(seq 100); do
  grep -q "server listening" "$work/local.log" && grep -q "gateway listening" "$work/local.log" && break
  kill -0 "$local_pid" 2>/dev/null || { cat "$work/local.log" >&2; exit 1; }
  sleep 0.1
done
"$bin/locus-bench" --gateway "127.0.0.1:$port" --server "127.0.0.1:$((port + 2))" \
  --cpu-pids "$local_pid" "${sizes[@]}" ${extra[@]+"${extra[@]}"} --json >"$work/local.json"
rss_kib="$(awk '/^VmRSS/ {print $2}' "/proc/$local_pid/status")"
kill "$local_pid"
wait "$local_pid" 2>/dev/null || true
local_pid=""

echo "colocated: spawned processes, $units units, $replicas replicas" >&2
"$bin/locus-bench" --spawn-units "$units" --replicas "$replicas" "${sizes[@]}" ${extra[@]+"${extra[@]}"} \
  --json >"$work/spawned.json"

python3 - "$work" "$rss_kib" <<'PY'
import json, sys
work, rss_kib = sys.argv[1], int(sys.argv[2])
colo = json.load(open(f"{work}/local.json"))
spawned = json.load(open(f"{work}/spawned.json"))
print("devices {:,}, updates {:,}, concurrency {}".format(
    colo["devices"], colo["updates"]["reports"], colo["concurrency"]))
rows = [("", "co-located", "spawned", "co-located/spawned")]
def add(name, a, b, fmt="{:,.0f}"):
    rows.append((name, fmt.format(a), fmt.format(b), "{:.2f}x".format(a / b) if b else "-"))
add("load reports/s (applied)", colo["load"]["applied_reports_per_s"], spawned["load"]["applied_reports_per_s"])
add("update reports/s (applied)", colo["updates"]["applied_reports_per_s"],
    spawned["updates"]["applied_reports_per_s"])
by_depth = lambda r: {q["pipeline"]: q for q in r["queries_by_depth"]}
c, s = by_depth(colo), by_depth(spawned)
for depth in sorted(c):
    add(f"nearest-10 queries/s @{depth}", c[depth]["queries_per_s"], s[depth]["queries_per_s"])
    add(f"latency p50 (us) @{depth}", c[depth]["latency_us"]["p50"], s[depth]["latency_us"]["p50"], "{:,.1f}")
    add(f"cluster CPU/query (us) @{depth}", c[depth]["cpu_us_per_query"], s[depth]["cpu_us_per_query"], "{:,.1f}")
spawned_rss = spawned["memory"].get("rss_bytes_per_device", 0)
add("RSS bytes/device", rss_kib * 1024 / colo["devices"], spawned_rss, "{:,.1f}")
widths = [max(len(r[i]) for r in rows) for i in range(4)]
for r in rows:
    print(r[0].ljust(widths[0]), *(v.rjust(w) for v, w in zip(r[1:], widths[1:])), sep="  ")
print("Co-located RSS is the whole process (gateway, server, units); spawned RSS is the units' only.")
print("Cluster CPU: co-located, the one process; spawned, the units, server and gateway.")
PY
