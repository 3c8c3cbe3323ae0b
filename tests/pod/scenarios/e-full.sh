#!/usr/bin/env bash
# e. a nearly full volume (a small tmpfs, filled up to ~16 KiB free): preflight exits 4 with the
#    free and needed bytes in its message, and every WAL file is byte-identical afterwards.
. "$(dirname "$0")/../lib.sh"
setup e 19105
vol="$DIR/vol"
mkdir -p "$vol"
mount -t tmpfs -o size=4m,mode=0755 walfix-e2e-e "$vol" || { fail "cannot mount a tmpfs at $vol"; finish; }
cleanup_mount "$vol"
DATA="$vol/prometheus"
copy_corpus small-clean "$DATA" || finish
chown -R 65534:65534 "$DATA"
avail=$(df --output=avail -B1 "$vol" | tail -1)
head -c $((avail - 16384)) /dev/zero >"$vol/filler" 2>/dev/null
sync
say "tmpfs: $(df -B1 --output=size,used,avail "$vol" | tail -1 | awk '{print $1 " bytes, " $2 " used, " $3 " free"}')"
before=$(sums "$DATA")
write_pod '["preflight", "/prometheus", "--json"]'
play
expect_init 4
expect_prometheus_not_started
# the JSON space check: free_bytes < needed_bytes
grep '^{' "$DIR/init.log" >"$DIR/init.jsonl"
python3 - "$DIR/init.jsonl" >"$DIR/space.txt" 2>&1 <<'PY' || fail "JSON space check: $(cat "$DIR/space.txt")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
sp = [l for l in lines if l.get("type") == "check" and l.get("check") == "space"]
assert sp, "no space check line"
s = sp[0]
print("space check:", json.dumps(s))
assert s.get("status") == "fail", "status %r" % s.get("status")
fb, nb = s.get("free_bytes"), s.get("needed_bytes")
assert isinstance(fb, int) and isinstance(nb, int), "free_bytes %r needed_bytes %r" % (fb, nb)
assert fb < nb, "free_bytes %d >= needed_bytes %d" % (fb, nb)
out = [l for l in lines if l.get("type") == "outcome"]
assert out and out[-1].get("exit_code") == 4 and out[-1].get("status") == "not-ready", "outcome %r" % out
PY
say "$(cat "$DIR/space.txt")"
# the human message (termination log) carries the numbers
if [ -s "$TERMLOG" ]; then
  [ "$(grep -Eo '[0-9]+' "$TERMLOG" | wc -l)" -ge 2 ] || fail "termination message has no numbers: $(cat "$TERMLOG")"
  expect_text "$TERMLOG" 'free|space' "termination message is about space"
else
  fail "termination log is empty"
fi
[ "$(sums "$DATA")" = "$before" ] || fail "WAL files changed on a full volume"
finish
