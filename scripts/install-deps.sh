#!/usr/bin/env bash
# Installs what Locus needs to build, test and benchmark on Debian 12.
# Idempotent: installs only the packages that are missing, and runs
# apt-get update at most once, only when something is missing.
# --browser adds Debian's chromium, for the live map's browser test.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libzmq3-dev cppzmq-dev             # ZeroMQ between processes
  capnproto libcapnp-dev             # schemas + RPC
  libboost-dev                       # Boost.Geometry R-tree
  libcli11-dev                       # flags (with LOCUS_* environment variables)
  nlohmann-json3-dev                 # JSON (CLI output, NDJSON ingest)
  libspdlog-dev                      # one-line-per-event logs
  libxxhash-dev                      # stable 64-bit hash for sharding
  libsodium-dev                      # device tokens, API keys, CURVE keys (HMAC, BLAKE2b, random)
  libcpp-httplib-dev                 # the unit's --http-listen; HTTP clients in tests
  python3 python3-jsonschema         # tests: /v1/openapi.json held against the answers
  catch2 libbenchmark-dev            # tests and micro benchmarks
  redis-server                       # the comparison baseline in benchmarks
  libhiredis-dev                     # locus-bench --redis drives Redis GEO (bench/compare-redis.sh)
  postgresql-15-postgis-3 libpq-dev  # ... and --postgis PostGIS, the other baseline
  gnuplot-nox                        # bench/sweep.sh draws its chart
  netcat-openbsd                     # `nc`, the simplest NDJSON client (README tour)
  openssl curl                       # TLS certificates in the tests and the README; HTTPS by hand
)

# Node.js and npm vendor the live map's packages (web/) at build time; a
# machine that has them from elsewhere (NodeSource) keeps its own.
if ! command -v npm > /dev/null; then packages+=(nodejs npm); fi
if [[ ${1:-} == --browser ]]; then packages+=(chromium); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
