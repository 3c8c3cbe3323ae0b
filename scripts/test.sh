#!/usr/bin/env bash
# Runs every test, end-to-end ones included. The end-to-end tests start a real Prometheus,
# fetched from Debian's packages by scripts/get-prometheus.sh into target/prometheus/.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="$PWD/target/prometheus"
for v in 2.42 2.53 3.5; do
  scripts/get-prometheus.sh "$v" "$dir/$v" >/dev/null
done
export WALFIX_PROMETHEUS_DIR="$dir"
cargo test --workspace -- --include-ignored "$@"
