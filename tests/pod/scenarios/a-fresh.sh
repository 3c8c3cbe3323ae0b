#!/usr/bin/env bash
# a. fresh empty PV: preflight exits 0 and Prometheus starts on it.
#    1: the volume is owned by Prometheus's uid (as with fsGroup or a pre-chowned volume);
#    2: a freshly formatted volume: root-owned 0755 with a root-owned 0700 lost+found; the init
#       container runs as root with --fix-ownership: the data dir becomes 65534's, lost+found is
#       left alone (Prometheus ignores it), Prometheus starts.
. "$(dirname "$0")/../lib.sh"
setup a 19101
say "-- 1: empty, owned 65534:65534"
mkdir -p "$DATA" && chown 65534:65534 "$DATA" && chmod 0755 "$DATA"
write_pod '["preflight", "/prometheus"]'
play
expect_init 0
expect_prometheus_ready && {
  [ -d "$DATA/wal" ] || fail "no wal/ in the data dir after Prometheus started"
}
podman pod rm -f -t 0 "$NAME" >/dev/null 2>&1

say "-- 2: empty, root-owned, lost+found, init as root with --fix-ownership"
rm -rf "$DATA"
mkdir -p "$DATA/lost+found" && chmod 0755 "$DATA" && chmod 0700 "$DATA/lost+found"
: >"$TERMLOG"
INIT_UID=0 INIT_GID=0
write_pod '["preflight", "/prometheus", "--fix-ownership"]'
play
expect_init 0
expect_prometheus_ready && {
  [ -d "$DATA/wal" ] || fail "no wal/ in the data dir after Prometheus started"
}
[ "$(stat -c '%u:%g' "$DATA")" = 65534:65534 ] || fail "data dir is $(stat -c '%u:%g' "$DATA") after --fix-ownership"
[ "$(stat -c '%u:%g %a' "$DATA/lost+found")" = "0:0 700" ] || fail "lost+found became $(stat -c '%u:%g %a' "$DATA/lost+found")"
finish
