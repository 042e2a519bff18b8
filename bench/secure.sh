#!/usr/bin/env bash
# What the locks cost: the city workload against the same cluster twice,
# open and locked (device tokens at the gateway, an admin API key at the
# server, TLS on both, CURVE to the units), and the locked/open ratios.
#
#   bench/secure.sh [locus-bench flags, e.g. --devices 200000 --updates 2000000]
#
# LOCUS_BIN (default: build/bin next to this script) points at the
# binaries; LOCUS_UNITS (default 4) sets the unit count (2 replicas).
# Every process it starts is stopped on exit.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${LOCUS_BIN:-$here/../build/bin}"
units="${LOCUS_UNITS:-4}"
for tool in openssl python3; do
  command -v "$tool" > /dev/null || { echo "secure: $tool not found (scripts/install-deps.sh)" >&2; exit 2; }
done

work="$(mktemp -d)"
pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
trap 'stop_all; rm -rf "$work"' EXIT

# The address a daemon logged for `what` ("rpc listening on", ...).
address_in() {  # log pattern
  for _ in $(seq 100); do
    if line=$(grep -m1 -o "$2[^ ]*" "$1" 2> /dev/null); then
      echo "${line##* }"
      return
    fi
    sleep 0.05
  done
  echo "secure: no '$2' in $1:" >&2
  cat "$1" >&2
  exit 1
}

# Keys and a certificate, as an operator makes them.
"$bin/locus" keygen --out "$work/unit.key" > /dev/null
"$bin/locus" keygen --out "$work/gateway.key" > /dev/null
"$bin/locus" keygen --out "$work/server.key" > /dev/null
cat "$work/unit.key.pub" "$work/gateway.key.pub" "$work/server.key.pub" > "$work/clients"
"$bin/locus" token keygen --key-file "$work/auth.keys" > /dev/null
token=$("$bin/locus" token issue --key-file "$work/auth.keys" --device-prefix '' --ttl 1d |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
key=$("$bin/locus" apikey create --key-file "$work/api.keys" --scope admin |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -keyout "$work/tls.key" -out "$work/tls.crt" 2> /dev/null
chmod 600 "$work/tls.key"

# Starts the cluster (open, or locked), runs locus-bench on it, stops it.
run() {  # name, then locus-bench flags
  local name=$1 locked=$2
  shift 2
  local unit_flags=() gateway_flags=() server_flags=() client_flags=()
  if [[ $locked == yes ]]; then
    unit_flags=(--curve-key "$work/unit.key" --curve-clients "$work/clients")
    gateway_flags=(--curve-key "$work/gateway.key" --unit-public-key "$work/unit.key.pub"
      --auth-keys "$work/auth.keys" --tls-cert "$work/tls.crt" --tls-key "$work/tls.key")
    server_flags=(--curve-key "$work/server.key" --unit-public-key "$work/unit.key.pub"
      --api-keys "$work/api.keys" --tls-cert "$work/tls.crt" --tls-key "$work/tls.key")
    client_flags=(--token "$token" --api-key "$key" --tls-ca "$work/tls.crt"
      --tls-server-name localhost)
  fi
  local endpoints=()
  for i in $(seq 0 $((units - 1))); do
    "$bin/locus-unit" --listen tcp://127.0.0.1:0 --replicas 2 "${unit_flags[@]}" \
      2> "$work/$name-unit-$i.log" &
    pids+=($!)
    endpoints+=("$(address_in "$work/$name-unit-$i.log" "listening on tcp://")")
  done
  local list
  list=$(IFS=,; echo "${endpoints[*]}")
  "$bin/locus-gateway" --units "$list" --replicas 2 --listen 127.0.0.1:0 \
    --listen-text 127.0.0.1:0 "${gateway_flags[@]}" 2> "$work/$name-gateway.log" &
  pids+=($!)
  "$bin/locus-server" --units "$list" --replicas 2 --listen 127.0.0.1:0 "${server_flags[@]}" \
    2> "$work/$name-server.log" &
  pids+=($!)
  local gateway server
  gateway=$(address_in "$work/$name-gateway.log" "rpc listening on ")
  server=$(address_in "$work/$name-server.log" "listening on ")
  sleep 1  # the replicas catch up from each other before they serve
  "$bin/locus-bench" --gateway "$gateway" --server "$server" "${client_flags[@]}" --json "$@" \
    > "$work/$name.json"
  stop_all
}

run open no "$@"
run locked yes "$@"

python3 - "$work/open.json" "$work/locked.json" <<'PY'
import json, sys
o, l = (json.load(open(p)) for p in sys.argv[1:3])
rows = [
    ("load acked reports/s", lambda r: r["load"]["reports_per_s"]),
    ("updates acked reports/s", lambda r: r["updates"]["reports_per_s"]),
    ("nearest-10 queries/s", lambda r: r["queries"]["queries_per_s"]),
    ("nearest-10 p50 us", lambda r: r["queries"]["latency_us"]["p50"]),
    ("nearest-10 p99 us", lambda r: r["queries"]["latency_us"]["p99"]),
]
print(f"{'':28} {'open':>12} {'locked':>12} {'locked/open':>12}")
for name, get in rows:
    a, b = get(o), get(l)
    print(f"{name:28} {a:12.0f} {b:12.0f} {b / a if a else float('nan'):12.2f}")
print("locked = device tokens + admin API key + TLS on the gateway and server + CURVE to the units")
PY
