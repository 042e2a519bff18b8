#!/usr/bin/env bash
# `make run`: start a local Locus location unit and show how to use it.
#
# Until the gateway, server and `locus local` exist (the cluster issue), the
# main job is one location unit on its default endpoint, loaded with a
# simulated city fleet, answering a nearest query. It keeps running until
# Ctrl-C.
set -euo pipefail
bin=${1:-build/bin}
endpoint=${LOCUS_LISTEN:-tcp://127.0.0.1:7900}
devices=${LOCUS_SIMULATE:-100000}

"$bin/locus-unit" --listen "$endpoint" --name unit-0 &
unit=$!
trap 'kill -TERM $unit 2>/dev/null; wait $unit 2>/dev/null' EXIT INT TERM
sleep 0.3
kill -0 $unit 2>/dev/null || { echo "locus-unit did not start (is $endpoint in use?)" >&2; exit 1; }

"$bin/locus-unit-probe" --unit "$endpoint" load --devices "$devices"
"$bin/locus-unit-probe" --unit "$endpoint" nearest --lat 31.23 --lon 121.47 -k 5
cat <<TXT

A location unit is running on $endpoint with $devices simulated devices.
Ask it yourself, for example:
  $bin/locus-unit-probe --unit $endpoint nearest --lat 31.23 --lon 121.47 -k 10
  $bin/locus-unit-probe --unit $endpoint radius --lat 31.23 --lon 121.47 --radius-m 500 --count
  $bin/locus-unit-probe --unit $endpoint stats
Press Ctrl-C to stop.
TXT
wait $unit
