#!/usr/bin/env bash
# Runs the SPEC's city workload against Locus (locus-bench --spawn-units 4),
# Redis GEO (a scratch redis-server on a free loopback port) and PostGIS (a
# scratch PostgreSQL cluster with PostGIS on a free loopback port, when
# postgresql-15-postgis-3 is installed) with the same sizes, the same
# concurrency and the same pipeline depths, then prints every system's
# figures and the Locus/Redis and Locus/PostGIS ratios.
#
#   bench/compare-redis.sh [locus-bench flags, e.g. --devices 1000000 --pipeline 1,32]
#
# Defaults are the SPEC's: 1,000,000 devices, 2,000,000 updates, 100,000
# queries, 4 connections, and the queries at pipeline depths 1 and 32 (each
# system gets D queries in flight per connection: Cap'n Proto pipelining,
# Redis commands, libpq's pipeline mode). LOCUS_BIN (default: build/bin next to this script)
# points at the binaries; LOCUS_UNITS (default 4) sets the Locus shard count,
# LOCUS_REPLICAS (default 2, the cluster's default) its replica count, and
# LOCUS_ALSO_REPLICAS (e.g. 1) adds a second Locus run with that many
# replicas, shown side by side with the ratio between the two.
# PostgreSQL runs without durability (fsync, synchronous_commit and
# full_page_writes off), as Redis runs without persistence and the Locus
# units without --data-dir: all three hold the data in memory. LOCUS_POSTGIS=0
# leaves PostGIS out.
# Needs redis-server and python3 (scripts/install-deps.sh). Exits non-zero if
# any run fails; the servers are stopped on every exit.
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
declare -A size=([--devices]=1000000 [--updates]=2000000 [--queries]=100000 [--concurrency]=4
  [--pipeline]=1,32)
extra=()
while (($# > 0)); do
  if [[ $1 == -h || $1 == --help ]]; then
    sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
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
for flag in --devices --updates --queries --concurrency --pipeline; do sizes+=("$flag" "${size[$flag]}"); done

command -v redis-server >/dev/null || { echo "compare-redis: redis-server not found (scripts/install-deps.sh)" >&2; exit 2; }
[[ -x "$bin/locus-bench" ]] || { echo "compare-redis: $bin/locus-bench not built" >&2; exit 2; }

work="$(mktemp -d)"
chmod 755 "$work"  # PostgreSQL's own user keeps its data dir in it
redis_pid=""
pg_pid=""
# PostgreSQL will not run as root: as root, its programs run as the
# postgres user that Debian's package creates.
as_pg=()
[[ $(id -u) -eq 0 ]] && as_pg=(runuser -u postgres --)
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
cleanup() {
  if [[ -n "$redis_pid" ]]; then
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  fi
  if [[ -n "$pg_pid" ]]; then
    "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg" stop -m immediate >/dev/null 2>&1 || true
    wait "$pg_pid" 2>/dev/null || true
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

# PostGIS: a scratch cluster in $work/pg, trusted on loopback only.
pg_conninfo=""
if [[ ${LOCUS_POSTGIS:-1} != 0 && -x $pg_bin/postgres ]] &&
  compgen -G "/usr/share/postgresql/*/extension/postgis.control" >/dev/null; then
  mkdir "$work/pg"
  [[ $(id -u) -eq 0 ]] && chown postgres: "$work/pg"
  "${as_pg[@]}" "$pg_bin/initdb" -D "$work/pg" -U postgres --auth=trust -E UTF8 >"$work/initdb.log" 2>&1 ||
    { cat "$work/initdb.log" >&2; exit 1; }
  for attempt in 1 2 3 4 5; do
    pg_port="$(free_port)"
    "${as_pg[@]}" "$pg_bin/postgres" -D "$work/pg" -p "$pg_port" -c listen_addresses=127.0.0.1 \
      -c unix_socket_directories="$work/pg" -c fsync=off -c synchronous_commit=off \
      -c full_page_writes=off -c shared_buffers=1GB -c max_connections=64 >"$work/pg.log" 2>&1 &
    pg_pid=$!
    for _ in $(seq 1 100); do  # up to 10 s
      if "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port"; then break 2; fi
      if ! kill -0 "$pg_pid" 2>/dev/null; then break; fi
      sleep 0.1
    done
    "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg" stop -m immediate >/dev/null 2>&1 || true
    wait "$pg_pid" 2>/dev/null || true
    pg_pid=""
    if ((attempt == 5)); then
      echo "compare-redis: postgres did not start; its log:" >&2
      cat "$work/pg.log" >&2 || true
      exit 1
    fi
  done
  pg_conninfo="host=127.0.0.1 port=$pg_port user=postgres dbname=postgres"
  echo "compare-redis: $("$pg_bin/postgres" --version) with PostGIS on 127.0.0.1:$pg_port" >&2
else
  echo "compare-redis: PostGIS left out (LOCUS_POSTGIS=0, or postgresql-15-postgis-3 not installed)" >&2
fi

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
if [[ -n $pg_conninfo ]]; then
  echo "compare-redis: PostGIS" >&2
  "$bin/locus-bench" --postgis "$pg_conninfo" "${sizes[@]}" ${redis_extra[@]+"${redis_extra[@]}"} --json >"$work/postgis.json"
fi

python3 - "$work" "$replicas" "$also" <<'PY'
import json, os, sys

work, replicas, also = sys.argv[1:4]
load = lambda name: json.load(open(os.path.join(work, name))) if os.path.exists(os.path.join(work, name)) else None
locus, redis, postgis, other = (load(n) for n in ("locus.json", "redis.json", "postgis.json", "locus-also.json"))
runs = [r for r in (locus, redis, postgis, other) if r]
for run in runs:
    if run.get("open_loop"):
        run["open_loop"]["late_dropped"] = run["open_loop"]["late"] + run["open_loop"]["dropped"]
    run["at"] = {str(q["pipeline"]): q for q in run.get("queries_by_depth", [])}

def get(d, path):
    for k in path.split("."):
        d = d.get(k) if isinstance(d, dict) else None
    return d

rows = [  # label, path, format
    ("load reports/s (acked)", "load.reports_per_s", "{:,.0f}"),
    ("load reports/s (applied)", "load.applied_reports_per_s", "{:,.0f}"),
    ("update reports/s (acked)", "updates.reports_per_s", "{:,.0f}"),
    ("update reports/s (applied)", "updates.applied_reports_per_s", "{:,.0f}"),
]
for depth in locus["at"]:
    at = "at." + depth + "."
    rows += [
        ("nearest-10 queries/s @" + depth, at + "queries_per_s", "{:,.0f}"),
        ("latency p50 (us) @" + depth, at + "latency_us.p50", "{:,.1f}"),
        ("latency p99 (us) @" + depth, at + "latency_us.p99", "{:,.1f}"),
        ("latency p99.9 (us) @" + depth, at + "latency_us.p99_9", "{:,.1f}"),
        ("server CPU/query (us) @" + depth, at + "cpu_us_per_query", "{:,.1f}"),
    ]
rows += [
    ("open loop target queries/s", "open_loop.target_queries_per_s", "{:,.0f}"),
    ("open loop queries/s", "open_loop.queries_per_s", "{:,.0f}"),
    ("open loop p50 (us)", "open_loop.latency_us.p50", "{:,.1f}"),
    ("open loop p90 (us)", "open_loop.latency_us.p90", "{:,.1f}"),
    ("open loop p99 (us)", "open_loop.latency_us.p99", "{:,.1f}"),
    ("open loop p99.9 (us)", "open_loop.latency_us.p99_9", "{:,.1f}"),
    ("open loop late + dropped", "open_loop.late_dropped", "{:,.0f}"),
    ("open loop updates/s", "open_loop.updates.reports_per_s", "{:,.0f}"),
    ("bytes/device (own accounting)", "memory.index_bytes_per_device", "{:,.1f}"),
    ("bytes/device (RSS)", "memory.rss_bytes_per_device", "{:,.1f}"),
]
columns = [("Locus R=" + replicas, locus), ("Redis GEO", redis)]
if postgis:
    columns.append(("PostGIS", postgis))
ratios = [("Locus/Redis", locus, redis)]
if postgis:
    ratios.append(("Locus/PostGIS", locus, postgis))
if other:
    columns.append(("Locus R=" + also, other))
    ratios.append(("R={}/R={}".format(replicas, also), locus, other))
head = [""] + [c[0] for c in columns] + [r[0] for r in ratios]
table = [tuple(head)]
for label, path, fmt in rows:
    values = [get(run, path) for _, run in columns]
    if all(v is None for v in values):
        continue  # e.g. no open loop in this run
    cell = lambda v: "-" if v is None else fmt.format(v)
    ratio = lambda a, b: "-" if a is None or not b else "{:.2f}x".format(a / b)
    table.append(tuple([label] + [cell(v) for v in values] +
                       [ratio(get(a, path), get(b, path)) for _, a, b in ratios]))

print("devices {:,}, updates {:,}, queries {:,} per depth, concurrency {}; Locus: {} units spawned".format(
    locus["devices"], locus["updates"]["reports"], locus["queries"]["count"],
    locus["concurrency"], locus["memory"]["units"]))
widths = [max(len(r[i]) for r in table) for i in range(len(head))]
for r in table:
    print("  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]))
print("@D: D queries in flight per connection. Server CPU: the system's processes' user + system "
      "CPU during the queries over their count (Locus: units, server, gateway; Redis: INFO cpu; "
      "PostGIS: the postmaster and its backends). "
      "Own accounting: Locus units' index bytes; Redis INFO used_memory growth; PostGIS the "
      "table's and indexes' size. RSS: Locus units' VmRSS; Redis used_memory_rss growth. "
      "Redis GEOSEARCH is BYRADIUS 500 m ASC COUNT 10 (52-bit geohash positions); PostGIS is "
      "ORDER BY g <-> point LIMIT 10 on a GiST index (planar KNN in degrees), reports as batched "
      "upserts; Locus answers are exact and checked against a brute-force scan.")
if locus.get("open_loop"):
    print("Open loop: Poisson arrivals at the same target rate for all, {:g} s, latency from "
          "each query's scheduled send time, while updates stream at {:,.0f} reports/s.".format(
              locus["open_loop"]["seconds"], locus["open_loop"]["updates"]["target_reports_per_s"]))
PY
