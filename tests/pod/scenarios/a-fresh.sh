#!/usr/bin/env bash
# a. fresh empty PV (owned by Prometheus's uid, as with fsGroup or a pre-chowned volume):
#    preflight exits 0 and Prometheus starts on it.
. "$(dirname "$0")/../lib.sh"
setup a 19101
mkdir -p "$DATA" && chown 65534:65534 "$DATA" && chmod 0755 "$DATA"
write_pod '["preflight", "/prometheus"]'
play
expect_init 0
expect_prometheus_ready && {
  [ -d "$DATA/wal" ] || fail "no wal/ in the data dir after Prometheus started"
}
finish
