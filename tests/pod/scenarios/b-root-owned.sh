#!/usr/bin/env bash
# b. a root-owned PV (files 0644, dirs 0755, owner 0:0) and Prometheus as 65534:
#    1. preflight as 65534 fails with exit 4 and a message naming uid 65534 and the path;
#    2. the same PV, init as root with --fix-ownership: exit 0, Prometheus starts, all owned 65534.
. "$(dirname "$0")/../lib.sh"
setup b 19102
copy_corpus small-clean "$DATA" || finish
chown -R 0:0 "$DATA"
find "$DATA" -type d -exec chmod 0755 {} + ; find "$DATA" -type f -exec chmod 0644 {} +
before=$(sums "$DATA")

say "-- 1: init as 65534, no --fix-ownership"
write_pod '["preflight", "/prometheus"]'
play
expect_init 4
cat "$DIR/init.log" "$TERMLOG" >"$DIR/messages"
expect_text "$DIR/messages" '65534' "message names the uid"
expect_text "$DIR/messages" '/prometheus' "message names the path"
expect_prometheus_not_started
[ "$(sums "$DATA")" = "$before" ] || fail "files changed by a refused preflight"
[ -z "$(find "$DATA" ! -uid 0)" ] || fail "ownership changed without --fix-ownership"
podman pod rm -f -t 0 "$NAME" >/dev/null 2>&1
: >"$TERMLOG"

say "-- 2: init as root with --fix-ownership"
INIT_UID=0 INIT_GID=0
write_pod '["preflight", "/prometheus", "--fix-ownership"]'
play
expect_init 0
if expect_prometheus_ready; then
  n=$(head_series "$PORT")
  say "head series after replay: ${n:-?}"
  [ "${n:-0}" -ge 410 ] || fail "Prometheus replayed ${n:-?} series, expected >= 410"
fi
wrong=$(find "$DATA" \( ! -uid 65534 -o ! -gid 65534 \) -printf '%U:%G %m %P\n')
[ -z "$wrong" ] || fail "not owned 65534:65534 after --fix-ownership: $(echo "$wrong" | head -5 | tr '\n' ';')"
finish
