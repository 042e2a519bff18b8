#!/usr/bin/env bash
# The shard-count sweep: runs the city workload (locus-bench --spawn-units N)
# for each N, prints one table row per N and draws bench/results/sweep.png
# (ingest reports/s and nearest-10 p50/p99 against N).
#
#   bench/sweep.sh [--units 1,2,4,8] [--out FILE.png] [locus-bench flags, e.g. --devices 200000]
#
# Ingest figures are "applied" rates: until the units' counters showed every
# report, not just the gateway's acknowledgement. LOCUS_BIN (default:
# build/bin next to this script) points at the binaries. Needs python3 and,
# for the chart, gnuplot (scripts/install-deps.sh); without gnuplot it prints
# the table and says so. Exits non-zero if any run fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${LOCUS_BIN:-$here/../build/bin}"
units="1,2,4,8"
out="$here/results/sweep.png"
extra=()
while (($# > 0)); do
  case "$1" in
    --units) (($# >= 2)) || { echo "sweep: --units needs a value" >&2; exit 2; }; units="$2"; shift ;;
    --units=*) units="${1#*=}" ;;
    --out) (($# >= 2)) || { echo "sweep: --out needs a value" >&2; exit 2; }; out="$2"; shift ;;
    --out=*) out="${1#*=}" ;;
    --spawn-units* | --json | --gateway* | --server* | --redis*)
      echo "sweep: $1 is set by the sweep itself" >&2; exit 2 ;;
    *) extra+=("$1") ;;
  esac
  shift
done
[[ "$units" =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "sweep: --units wants a list like 1,2,4,8" >&2; exit 2; }
[[ -x "$bin/locus-bench" ]] || { echo "sweep: $bin/locus-bench not built" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

IFS=, read -r -a counts <<<"$units"
for n in "${counts[@]}"; do
  echo "sweep: $n units" >&2
  "$bin/locus-bench" --spawn-units "$n" ${extra[@]+"${extra[@]}"} --json >"$work/$n.json"
done

# One data row per N: units load/s update/s queries/s p50_ms p99_ms.
python3 - "$work" "${counts[@]}" >"$work/sweep.dat" <<'PY'
import json, sys
work, counts = sys.argv[1], sys.argv[2:]
for n in counts:
    r = json.load(open(f"{work}/{n}.json"))
    lat = r["queries"]["latency_us"]
    print(n, r["load"]["applied_reports_per_s"], r["updates"]["applied_reports_per_s"],
          r["queries"]["queries_per_s"], lat["p50"] / 1000, lat["p99"] / 1000)
PY

first="$work/${counts[0]}.json"
python3 - "$first" "$work/sweep.dat" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("devices {:,}, updates {:,}, queries {:,}, concurrency {}".format(
    r["devices"], r["updates"]["reports"], r["queries"]["count"], r["concurrency"]))
table = [("units", "load/s", "update/s", "queries/s", "p50 (ms)", "p99 (ms)")]
for line in open(sys.argv[2]):
    n, load, upd, q, p50, p99 = line.split()
    table.append((n, f"{float(load):,.0f}", f"{float(upd):,.0f}", f"{float(q):,.0f}",
                  f"{float(p50):.2f}", f"{float(p99):.2f}"))
widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
for row in table:
    print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
PY

if ! command -v gnuplot >/dev/null; then
  echo "sweep: gnuplot not found (scripts/install-deps.sh): no chart" >&2
  exit 0
fi
mkdir -p "$(dirname "$out")"
sizes="$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("{:,} devices, {:,} updates, {:,} queries, {} connections".format(r["devices"], r["updates"]["reports"], r["queries"]["count"], r["concurrency"]))' "$first")"
gnuplot <<GP
set terminal png size 800,480 font ",10"
set output "$out"
set title "Locus shard sweep — city workload, $sizes"
set xlabel "location units (shards)"
set logscale x 2
set offsets graph 0.05, graph 0.05, 0, 0
set xtics (${units//,/, })
set ylabel "ingest, reports/s (applied)"
set y2label "nearest-10 latency, ms"
set format y "%.1s%c"
set yrange [0:*]
set y2range [0:*]
set ytics nomirror
set y2tics
set key top left
set grid ytics
plot "$work/sweep.dat" using 1:2 axes x1y1 with linespoints lw 2 title "load reports/s", \
     "" using 1:3 axes x1y1 with linespoints lw 2 title "update reports/s", \
     "" using 1:5 axes x1y2 with linespoints lw 2 dt 2 title "p50 (ms)", \
     "" using 1:6 axes x1y2 with linespoints lw 2 dt 2 title "p99 (ms)"
GP
echo "sweep: chart in $out" >&2
