#!/usr/bin/env bash
# The sweep: runs the city workload (locus-bench --spawn-units N) for each
# unit count N and each device count D, prints one table row per (D, N) and
# draws bench/results/sweep.png (ingest reports/s and nearest-10 queries/s
# against N, a line per D).
#
#   bench/sweep.sh [--units 1,2,4,8] [--devices 100000,1000000] [--out FILE.png]
#                  [locus-bench flags, e.g. --pipeline 32 --updates 400000]
#
# Each row also shows the system's CPU per query and the units' resident
# bytes per device, the figures BENCHMARKS.md's capacity model is built on.
#
# Ingest figures are "applied" rates: until the units' counters showed every
# report, not just the gateway's acknowledgement. LOCUS_BIN (default:
# build/bin next to this script) points at the binaries. Needs python3 and,
# for the chart, gnuplot (scripts/install-deps.sh); without gnuplot it prints
# the table and says so. A run that fails is a row marked so;
# the sweep goes on and exits non-zero at the end.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${LOCUS_BIN:-$here/../build/bin}"
units="1,2,4,8"
devices="200000"
out="$here/results/sweep.png"
extra=()
while (($# > 0)); do
  case "$1" in
    --units) (($# >= 2)) || { echo "sweep: --units needs a value" >&2; exit 2; }; units="$2"; shift ;;
    --units=*) units="${1#*=}" ;;
    --out) (($# >= 2)) || { echo "sweep: --out needs a value" >&2; exit 2; }; out="$2"; shift ;;
    --devices) (($# >= 2)) || { echo "sweep: --devices needs a value" >&2; exit 2; }; devices="$2"; shift ;;
    --devices=*) devices="${1#*=}" ;;
    --out=*) out="${1#*=}" ;;
    --spawn-units* | --json | --gateway* | --server* | --redis*)
      echo "sweep: $1 is set by the sweep itself" >&2; exit 2 ;;
    *) extra+=("$1") ;;
  esac
  shift
done
[[ "$units" =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "sweep: --units wants a list like 1,2,4,8" >&2; exit 2; }
[[ "$devices" =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "sweep: --devices wants a list like 100000,1000000" >&2; exit 2; }
[[ -x "$bin/locus-bench" ]] || { echo "sweep: $bin/locus-bench not built" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

IFS=, read -r -a counts <<<"$units"
IFS=, read -r -a sizes <<<"$devices"
# A run that fails (its reason is on stderr) is a row marked so; the others
# still run, and the sweep exits non-zero at the end.
failed=0
for d in "${sizes[@]}"; do
  for n in "${counts[@]}"; do
    echo "sweep: $d devices, $n units" >&2
    if ! "$bin/locus-bench" --spawn-units "$n" --devices "$d" ${extra[@]+"${extra[@]}"} --json \
      >"$work/$d-$n.json"; then
      echo "sweep: the run with $d devices on $n units FAILED" >&2
      rm -f "$work/$d-$n.json"
      failed=1
    fi
  done
done

# One data row per (D, N), a blank line between device counts (gnuplot's
# data blocks): devices units load/s update/s queries/s p50_ms p99_ms
# cpu_us/query rss_bytes/device.
python3 - "$work" "$devices" "$units" >"$work/sweep.dat" <<'PY'
import json, sys
work, sizes, counts = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")
for d in sizes:
    for n in counts:
        try:
            r = json.load(open(f"{work}/{d}-{n}.json"))
        except FileNotFoundError:  # the run failed
            print(d, n, *["NaN"] * 7)
            continue
        q = r["queries"]
        lat = q["latency_us"]
        print(d, n, r["load"]["applied_reports_per_s"], r["updates"]["applied_reports_per_s"],
              q["queries_per_s"], lat["p50"] / 1000, lat["p99"] / 1000,
              q["cpu_us_per_query"] if q["cpu_us_per_query"] is not None else -1,
              r["memory"].get("rss_bytes_per_device", 0))
    print()
    print()
PY

first="$(ls "$work"/*.json 2>/dev/null | head -1)"
[[ -n "$first" ]] || { echo "sweep: every run failed" >&2; exit 1; }
python3 - "$first" "$work/sweep.dat" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("updates {:,}, queries {:,} at depth {}, concurrency {}".format(
    r["updates"]["reports"], r["queries"]["count"], r["queries"]["pipeline"], r["concurrency"]))
table = [("devices", "units", "load/s", "update/s", "queries/s", "p50 (ms)", "p99 (ms)",
          "CPU/query (us)", "RSS B/device")]
for line in open(sys.argv[2]):
    if not line.strip():
        continue
    d, n, load, upd, q, p50, p99, cpu, rss = line.split()
    if load == "NaN":
        table.append((f"{int(d):,}", n, *["failed"] + [""] * 6))
        continue
    table.append((f"{int(d):,}", n, f"{float(load):,.0f}", f"{float(upd):,.0f}", f"{float(q):,.0f}",
                  f"{float(p50):.2f}", f"{float(p99):.2f}", f"{float(cpu):,.1f}",
                  f"{float(rss):,.0f}"))
widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
for row in table:
    print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
PY

if ! command -v gnuplot >/dev/null; then
  echo "sweep: gnuplot not found (scripts/install-deps.sh): no chart" >&2
  exit $failed
fi
mkdir -p "$(dirname "$out")"
about="$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("{:,} updates, nearest-10 at depth {}, {} connections".format(r["updates"]["reports"], r["queries"]["pipeline"], r["concurrency"]))' "$first")"
plots_ingest="" plots_queries=""
for i in "${!sizes[@]}"; do
  sep=""
  ((i > 0)) && sep=", "
  plots_ingest+="$sep\"$work/sweep.dat\" index $i using 2:4 with linespoints lw 2 title \"${sizes[$i]} devices\""
  plots_queries+="$sep\"$work/sweep.dat\" index $i using 2:5 with linespoints lw 2 title \"${sizes[$i]} devices\""
done
gnuplot <<GP
set terminal png size 1000,440 font ",10"
set output "$out"
set multiplot layout 1,2 title "Locus sweep — city workload, $about"
set xlabel "location units (shards)"
set logscale x 2
set offsets graph 0.05, graph 0.05, 0, 0
set xtics (${units//,/, })
set format y "%.1s%c"
set yrange [0:*]
set key bottom right
set grid ytics
set title "updates, reports/s (applied)"
plot $plots_ingest
set title "nearest-10, queries/s"
plot $plots_queries
unset multiplot
GP
echo "sweep: chart in $out" >&2
exit $failed
