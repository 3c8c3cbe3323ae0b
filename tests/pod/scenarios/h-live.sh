#!/usr/bin/env bash
# h. a running Prometheus without a lock file (Debian 2.42's default) on the data dir: preflight
#    refuses (exit 2) and changes nothing. The live Prometheus is a separate container (uid 65534)
#    on the same host dir. 1: the walfix pod (its own PID namespace: it cannot see the process, only
#    the growing newest segment tells, within the default --live-wait); 2: the walfix image with
#    `podman run --pid=host` and --live-wait 0, so only /proc/*/fd can tell (podman 4.3's kube play
#    ignores hostPID: true).
#    The corpus's samples are old, so the live Prometheus itself compacts its head into a block right
#    after start (checkpoint, segments 0-2 deleted): the "nothing changed" snapshot is taken once
#    that has settled, and leaves out what a running Prometheus keeps writing (the newest segment,
#    chunks_head/, queries.active).
. "$(dirname "$0")/../lib.sh"
setup h 19108
copy_corpus small-clean "$DATA" || finish
chown -R 65534:65534 "$DATA"
live="$NAME-live"
cleanup_ctr "$live"; cleanup_ctr "$NAME-pidhost"
podman rm -f -t 0 "$live" >/dev/null 2>&1
podman run -d --name "$live" --user 65534:65534 --network host \
  -v "$DATA:/prometheus" -v "$CONFIG:/etc/prometheus:ro" "$PROM_IMAGE:2.42" \
  --config.file=/etc/prometheus/prometheus.yml --storage.tsdb.path=/prometheus \
  --web.listen-address=127.0.0.1:$PORT >"$DIR/live.id" 2>&1 || { fail "cannot start the live Prometheus: $(cat "$DIR/live.id")"; finish; }
wait_ready "$PORT" 30 || { fail "live Prometheus not ready"; finish; }
[ -e "$DATA/lock" ] && fail "the live Prometheus made a lock file (expected Debian 2.42 without one)"
# closed: every file but the newest segment, chunks_head/ and queries.active, with its sha256
closed() {
  (cd "$DATA" && find . -type f ! -path './chunks_head/*' ! -name queries.active \
     ! -path "./wal/$(ls wal | grep -E '^[0-9]+$' | tail -1)" -print0 | sort -z | xargs -0 -r sha256sum)
}
# the first scrape lands ~5 s after ready (the scrape manager applies targets on a 5 s tick); its
# commit is what makes the head compactable, so wait for it, then for 3 quiet seconds
for ((i = 0; i < 40; i++)); do
  curl -fsS -m 2 "http://127.0.0.1:$PORT/api/v1/query?query=up" 2>/dev/null | grep -q '"job":"self"' && break
  sleep 0.5
done
prev= same=0
for ((i = 0; i < 30 && same < 3; i++)); do
  sleep 1
  cur=$(closed)
  if [ "$cur" = "$prev" ]; then same=$((same + 1)); else same=0; fi
  prev=$cur
done
[ $same -ge 3 ] || fail "the live Prometheus's data dir did not settle in 30 s"
ls "$DATA"/*/meta.json >/dev/null 2>&1 || say "(no block yet: the live Prometheus did not compact its head)"
old=$(closed)
say "live Prometheus ready on :$PORT, no lock file, settled after ${i} s: $(cd "$DATA" && find . -mindepth 1 -maxdepth 2 ! -path './chunks_head/*' | sort | tr '\n' ' ')"
PORT=$((PORT + 1))   # the pod's own Prometheus (which must not start) would not collide
say "-- 1: pod, own PID namespace (default --live-wait)"
write_pod '["preflight", "/prometheus"]'
play
expect_init 2
expect_prometheus_not_started
cat "$DIR/init.log" "$TERMLOG" >"$DIR/messages"
expect_text "$DIR/messages" 'changed while watched|without a lock file' "message says a Prometheus is writing"
[ "$(closed)" = "$old" ] || fail "closed files changed: $(diff <(echo "$old") <(closed) | grep '^[<>]' | head -4 | tr '\n' ' ')"
[ -e "$DATA/walfix-backup" ] && fail "walfix-backup/ created while Prometheus runs"
podman pod rm -f -t 0 "$NAME" >/dev/null 2>&1

say "-- 2: podman run --pid=host, --live-wait 0"
podman run --rm --name "$NAME-pidhost" --pid=host --user 65534:65534 -v "$DATA:/prometheus" \
  "$WALFIX_IMAGE" preflight /prometheus --live-wait 0 >"$DIR/pidhost.log" 2>&1
rc=$?
say "exit $rc: $(tail -1 "$DIR/pidhost.log")"
[ $rc = 2 ] || fail "preflight with --pid=host exited $rc, expected 2"
expect_text "$DIR/pidhost.log" 'process [0-9]+ \(prometheus\) has /prometheus/' "message names the process and the file"
[ "$(closed)" = "$old" ] || fail "closed files changed: $(diff <(echo "$old") <(closed) | grep '^[<>]' | head -4 | tr '\n' ' ')"
[ -e "$DATA/walfix-backup" ] && fail "walfix-backup/ created while Prometheus runs"
[ "$(podman inspect "$live" --format '{{.State.Status}}')" = running ] || fail "the live Prometheus stopped"
finish
