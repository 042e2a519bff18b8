#!/usr/bin/env bash
# Runs the SPEC's city workload against Locus (locus-bench --spawn-units 4)
# and against Redis GEO (a scratch redis-server on a free loopback port) with
# the same sizes, then prints both systems' figures and Locus/Redis ratios.
#
#   bench/compare-redis.sh [locus-bench flags, e.g. --devices 1000000 --updates 2000000]
#
# Defaults are the SPEC's: 1,000,000 devices, 2,000,000 updates, 100,000
# queries, 4 connections. LOCUS_BIN (default: build/bin next to this script)
# points at the binaries; LOCUS_UNITS (default 4) sets the Locus shard count,
# LOCUS_REPLICAS (default 2, the cluster's default) its replica count, and
# LOCUS_ALSO_REPLICAS (e.g. 1) adds a second Locus run with that many
# replicas, shown side by side with the ratio between the two.
# Needs redis-server and python3 (scripts/install-deps.sh). Exits non-zero if
# either run fails; redis-server is stopped on every exit.
#
# With --open-loop-rate half, Redis gets the same offered query rate as
# Locus (half of Locus's closed-loop queries/s, read from its run), so both
# open-loop rows describe one load; a fixed rate passes through unchanged.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${LOCUS_BIN:-$here/../build/bin}"
units="${LOCUS_UNITS:-4}"
replicas="${LOCUS_REPLICAS:-2}"
also="${LOCUS_ALSO_REPLICAS:-}"
# The SPEC's sizes, overridden by the caller's flags; other flags pass through.
declare -A size=([--devices]=1000000 [--updates]=2000000 [--queries]=100000 [--concurrency]=4)
extra=()
while (($# > 0)); do
  if [[ $1 == -h || $1 == --help ]]; then
    sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    echo "Other flags pass to locus-bench; see: $bin/locus-bench --help"
    exit 0
  fi
  flag="${1%%=*}"
  if [[ -n "${size[$flag]+set}" ]]; then
    if [[ "$1" == *=* ]]; then
      size[$flag]="${1#*=}"
    else
      (($# >= 2)) || { echo "compare-redis: $1 needs a value" >&2; exit 2; }
      size[$flag]="$2"
      shift
    fi
  else
    extra+=("$1")
  fi
  shift
done
sizes=()
for flag in --devices --updates --queries --concurrency; do sizes+=("$flag" "${size[$flag]}"); done

command -v redis-server >/dev/null || { echo "compare-redis: redis-server not found (scripts/install-deps.sh)" >&2; exit 2; }
[[ -x "$bin/locus-bench" ]] || { echo "compare-redis: $bin/locus-bench not built" >&2; exit 2; }

work="$(mktemp -d)"
redis_pid=""
cleanup() {
  if [[ -n "$redis_pid" ]]; then
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free loopback port: bind to port 0, read it back, release it. Retried if
# redis-server loses the race for it.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

for attempt in 1 2 3 4 5; do
  port="$(free_port)"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$work" --logfile "$work/redis.log" &
  redis_pid=$!
  for _ in $(seq 1 50); do  # up to 5 s
    if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then break 2; fi
    if ! kill -0 "$redis_pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  kill "$redis_pid" 2>/dev/null || true
  wait "$redis_pid" 2>/dev/null || true
  redis_pid=""
  if ((attempt == 5)); then
    echo "compare-redis: redis-server did not start; its log:" >&2
    cat "$work/redis.log" >&2 || true
    exit 1
  fi
done
echo "compare-redis: redis-server $(redis-server --version | grep -o 'v=[0-9.]*') on 127.0.0.1:$port" >&2

echo "compare-redis: Locus, $units units, $replicas replicas" >&2
"$bin/locus-bench" --spawn-units "$units" --replicas "$replicas" "${sizes[@]}" ${extra[@]+"${extra[@]}"} --json >"$work/locus.json"
if [[ -n $also ]]; then
  echo "compare-redis: Locus, $units units, $also replicas" >&2
  "$bin/locus-bench" --spawn-units "$units" --replicas "$also" "${sizes[@]}" ${extra[@]+"${extra[@]}"} --json >"$work/locus-also.json"
fi
# The open-loop rate Locus ran at, replacing "half" for the Redis run.
locus_rate="$(python3 -c 'import json, sys; ol = json.load(open(sys.argv[1])).get("open_loop"); print(ol["target_queries_per_s"] if ol else 0)' "$work/locus.json")"
redis_extra=()
for ((i = 0; i < ${#extra[@]}; i++)); do
  case "${extra[$i]}" in
    --open-loop-rate=half) redis_extra+=("--open-loop-rate=$locus_rate") ;;
    --open-loop-rate)
      redis_extra+=("${extra[$i]}")
      if [[ "${extra[$((i + 1))]:-}" == half ]]; then
        redis_extra+=("$locus_rate")
        i=$((i + 1))
      fi
      ;;
    *) redis_extra+=("${extra[$i]}") ;;
  esac
done
echo "compare-redis: Redis GEO" >&2
"$bin/locus-bench" --redis "127.0.0.1:$port" "${sizes[@]}" ${redis_extra[@]+"${redis_extra[@]}"} --json >"$work/redis.json"

python3 - "$work/locus.json" "$work/redis.json" "$replicas" "$also" "$work/locus-also.json" <<'PY'
import json, os, sys

locus, redis = (json.load(open(p)) for p in sys.argv[1:3])
replicas, also = sys.argv[3], sys.argv[4]
other = json.load(open(sys.argv[5])) if also and os.path.exists(sys.argv[5]) else None
for run in (locus, redis) + ((other,) if other else ()):
    if run.get("open_loop"):
        run["open_loop"]["late_dropped"] = run["open_loop"]["late"] + run["open_loop"]["dropped"]

def get(d, path):
    for k in path.split("."):
        d = d.get(k) if isinstance(d, dict) else None
    return d

rows = [  # label, path, format, higher is better
    ("load reports/s (acked)", "load.reports_per_s", "{:,.0f}", True),
    ("load reports/s (applied)", "load.applied_reports_per_s", "{:,.0f}", True),
    ("update reports/s (acked)", "updates.reports_per_s", "{:,.0f}", True),
    ("update reports/s (applied)", "updates.applied_reports_per_s", "{:,.0f}", True),
    ("nearest-10 queries/s", "queries.queries_per_s", "{:,.0f}", True),
    ("latency p50 (us)", "queries.latency_us.p50", "{:,.1f}", False),
    ("latency p90 (us)", "queries.latency_us.p90", "{:,.1f}", False),
    ("latency p99 (us)", "queries.latency_us.p99", "{:,.1f}", False),
    ("latency p99.9 (us)", "queries.latency_us.p99_9", "{:,.1f}", False),
    ("open loop target queries/s", "open_loop.target_queries_per_s", "{:,.0f}", True),
    ("open loop queries/s", "open_loop.queries_per_s", "{:,.0f}", True),
    ("open loop p50 (us)", "open_loop.latency_us.p50", "{:,.1f}", False),
    ("open loop p90 (us)", "open_loop.latency_us.p90", "{:,.1f}", False),
    ("open loop p99 (us)", "open_loop.latency_us.p99", "{:,.1f}", False),
    ("open loop p99.9 (us)", "open_loop.latency_us.p99_9", "{:,.1f}", False),
    ("open loop late + dropped", "open_loop.late_dropped", "{:,.0f}", False),
    ("open loop updates/s", "open_loop.updates.reports_per_s", "{:,.0f}", True),
    ("bytes/device (own accounting)", "memory.index_bytes_per_device", "{:,.1f}", False),
    ("bytes/device (RSS)", "memory.rss_bytes_per_device", "{:,.1f}", False),
]
head = ["", "Locus R=" + replicas, "Redis GEO", "Locus/Redis"]
if other:
    head += ["Locus R=" + also, "R={}/R={}".format(replicas, also)]
table = [tuple(head)]
for label, path, fmt, _ in rows:
    a, b = get(locus, path), get(redis, path)
    if a is None and b is None:
        continue  # e.g. no open loop in this run
    cell = lambda v: "-" if v is None else fmt.format(v)
    ratio = "-" if a is None or not b else "{:.2f}x".format(a / b)
    row = [label, cell(a), cell(b), ratio]
    if other:
        c = get(other, path)
        row += [cell(c), "-" if a is None or not c else "{:.2f}x".format(a / c)]
    table.append(tuple(row))

print("devices {:,}, updates {:,}, queries {:,}, concurrency {}; Locus: {} units spawned".format(
    locus["devices"], locus["updates"]["reports"], locus["queries"]["count"],
    locus["concurrency"], locus["memory"]["units"]))
widths = [max(len(r[i]) for r in table) for i in range(len(head))]
for r in table:
    print("  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]))
print("Own accounting: Locus units' index bytes; Redis INFO used_memory growth. "
      "RSS: Locus units' VmRSS; Redis used_memory_rss growth. "
      "Redis GEOSEARCH is BYRADIUS 500 m ASC COUNT 10 (52-bit geohash positions); "
      "Locus answers are exact and checked against a brute-force scan.")
if locus.get("open_loop"):
    print("Open loop: Poisson arrivals at the same target rate for both, {:g} s, latency from "
          "each query's scheduled send time, while updates stream at {:,.0f} reports/s.".format(
              locus["open_loop"]["seconds"], locus["open_loop"]["updates"]["target_reports_per_s"]))
PY
