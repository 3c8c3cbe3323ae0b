#!/usr/bin/env bash
# h. a running Prometheus without a lock file (Debian 2.42's default) on the data dir: preflight
#    refuses (exit 2) and changes nothing. The live Prometheus is a separate container (uid 65534)
#    on the same host dir. 1: the walfix pod has its own PID namespace (it cannot see the process:
#    only a growing segment tells); 2: hostPID: true (it can see it in /proc).
. "$(dirname "$0")/../lib.sh"
setup h 19108
copy_corpus small-clean "$DATA" || finish
chown -R 65534:65534 "$DATA"
live="$NAME-live"
cleanup_ctr "$live"
podman rm -f -t 0 "$live" >/dev/null 2>&1
podman run -d --name "$live" --user 65534:65534 --network host \
  -v "$DATA:/prometheus" -v "$CONFIG:/etc/prometheus:ro" "$PROM_IMAGE:2.42" \
  --config.file=/etc/prometheus/prometheus.yml --storage.tsdb.path=/prometheus \
  --web.listen-address=127.0.0.1:$PORT >"$DIR/live.id" 2>&1 || { fail "cannot start the live Prometheus: $(cat "$DIR/live.id")"; finish; }
wait_ready "$PORT" 30 || { fail "live Prometheus not ready"; finish; }
[ -e "$DATA/lock" ] && fail "the live Prometheus made a lock file (expected Debian 2.42 without one)"
sleep 2
say "live Prometheus ready on :$PORT, no lock file; segments: $(ls "$DATA/wal" | tr '\n' ' ')"
old=$(cd "$DATA" && sha256sum wal/0000000[0-3])
PORT=$((PORT + 1))   # the pod's own Prometheus (which must not start) would not collide
for hp in false true; do
  say "-- hostPID: $hp"
  HOSTPID=$hp
  : >"$TERMLOG"
  write_pod '["preflight", "/prometheus"]'
  play
  expect_init 2
  expect_prometheus_not_started
  cat "$DIR/init.log" "$TERMLOG" >"$DIR/messages"
  expect_text "$DIR/messages" 'live|running|in use|growing|open' "message says Prometheus is running"
  [ "$(cd "$DATA" && sha256sum wal/0000000[0-3])" = "$old" ] || fail "closed segments changed"
  [ -e "$DATA/walfix-backup" ] && fail "walfix-backup/ created while Prometheus runs"
  podman pod rm -f -t 0 "$NAME" >/dev/null 2>&1
done
[ "$(podman inspect "$live" --format '{{.State.Status}}')" = running ] || fail "the live Prometheus stopped"
finish
