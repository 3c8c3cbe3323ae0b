#!/usr/bin/env bash
# The OOM crash loop, for real (issue 14, docs/flush.md): a WAL whose replay needs more than a
# memory limit; real Prometheus 3.5 under that limit (a cgroup, as a container's) is OOM-killed
# replaying it, twice (the loop); `walfix preflight --on-oom-risk flush` under the same limit
# flushes it into blocks and moves the WAL to the backup; Prometheus then starts under the
# limit and answers every series and sample the WAL held.
#
#   tests/oom/run.sh             (as root: it makes a cgroup; .ci/run runs it)
#   OOM_SERIES=300000 OOM_SAMPLES=40 OOM_LIMIT_MIB=200 OOM_VERSION=3.5 tests/oom/run.sh
#
# Without root or a memory cgroup it says so and exits 0, unless WALFIX_REQUIRE_OOM_TEST=1
# (CI), where that is a failure. Prometheus comes from WALFIX_PROMETHEUS_DIR/3.5 (default
# target/prometheus, filled by scripts/get-prometheus.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
series=${OOM_SERIES:-300000}
samples=${OOM_SAMPLES:-40}
limit_mib=${OOM_LIMIT_MIB:-200}
limit=$((limit_mib << 20))

skip() {
  if [ "${WALFIX_REQUIRE_OOM_TEST:-0}" = 1 ]; then
    echo "tests/oom: FAIL: cannot run: $*" >&2
    exit 1
  fi
  echo "tests/oom: skipped: $*"
  exit 0
}
[ "$(id -u)" = 0 ] || skip "needs root to make a memory cgroup"
if [ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then
  cg=/sys/fs/cgroup/memory/walfix-oom-$$
  mkdir "$cg"
  echo "$limit" >"$cg/memory.limit_in_bytes"
  peak_file=$cg/memory.max_usage_in_bytes
  reset_peak() { echo 0 >"$cg/memory.max_usage_in_bytes"; }
  ooms() { awk '/^oom_kill /{print $2}' "$cg/memory.oom_control"; }
elif grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
  cg=/sys/fs/cgroup/walfix-oom-$$
  mkdir "$cg"
  echo "$limit" >"$cg/memory.max"
  echo 0 >"$cg/memory.swap.max" 2>/dev/null || true
  peak_file=$cg/memory.peak
  reset_peak() { echo reset >"$cg/memory.peak" 2>/dev/null || true; }
  ooms() { awk '/^oom_kill /{print $2}' "$cg/memory.events"; }
else
  skip "no memory cgroup (v1 or v2) here"
fi
work=$(mktemp -d /tmp/walfix-oom.XXXXXX)
bin=$(mktemp -d /dev/shm/walfix-oom.XXXXXX)
cleanup() {
  # Anything still in the cgroup is ours.
  if [ -f "$cg/cgroup.procs" ]; then
    for p in $(cat "$cg/cgroup.procs"); do kill -9 "$p" 2>/dev/null || true; done
    sleep 0.5
  fi
  rmdir "$cg" 2>/dev/null || true
  rm -rf "$work" "$bin"
}
trap cleanup EXIT
if [ "$(cat /proc/swaps | wc -l)" -gt 1 ]; then
  echo "tests/oom: note: swap is on; a v1 cgroup limits memory, not memory+swap" >&2
fi

version=${OOM_VERSION:-3.5}
prom_src=${WALFIX_PROMETHEUS_DIR:-$root/target/prometheus}/$version/prometheus
[ -x "$prom_src" ] || { echo "tests/oom: FAIL: no $prom_src (scripts/get-prometheus.sh $version DIR)" >&2; exit 1; }
cargo build --release -q -p walfix-cli
cargo build --release -q -p walfix-flush --example gen_wal
target=${CARGO_TARGET_DIR:-$root/target}
# The binaries run from tmpfs, charged to no cgroup and never evicted (no swap): from a disk,
# their text pages are what the kernel reclaims at the limit, and a process over it pages its
# own code in and out for minutes instead of being OOM-killed (measured: 2.42 and 3.5 replaying
# under 200 MiB, 400 s without a kill). In a node with swap or another file system that
# thrashing is a failure of its own; here the limit is to mean anonymous memory.
cp "$prom_src" "$bin/prometheus"
cp "$target/release/walfix" "$bin/walfix"
prom=$bin/prometheus
walfix=$bin/walfix
"$target/release/examples/gen_wal" "$work/orig" "$series" "$samples" 8
echo "tests/oom: Prometheus $version, WAL of $series series x $samples samples: $(du -sh "$work/orig/wal" | cut -f1); limit ${limit_mib} MiB"

# `in_cgroup CMD...`: CMD inside the cgroup.
in_cgroup() { sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cg" "$@"; }

# `prom.py PROM CGROUP DATA OUT N S`: Prometheus in the cgroup on DATA until it is ready (then it answers the
# queries below and is stopped) or dies; writes OUT.log, OUT.rc (its exit code, or "ready").
cat >"$work/prom.py" <<'EOF'
import json, os, signal, socket, subprocess, sys, time, urllib.parse, urllib.request
prom, cg, data, out, series, samples = sys.argv[1:7]
series, samples = int(series), int(samples)
cfg = os.path.join(os.path.dirname(out), "prometheus.yml")
open(cfg, "w").write("global:\n  scrape_interval: 1h\nscrape_configs: []\n")
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
log = open(out + ".log", "w")
p = subprocess.Popen(["sh", "-c", 'echo $$ >"$0/cgroup.procs" && exec "$@"', cg, prom,
                      "--config.file=" + cfg, "--storage.tsdb.path=" + data,
                      "--web.listen-address=127.0.0.1:%d" % port,
                      "--storage.tsdb.retention.time=3650d"], stdout=log, stderr=subprocess.STDOUT)
def get(path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=300) as r:
        return r.read()
deadline = time.time() + 600
ready = False
while time.time() < deadline and p.poll() is None:
    try:
        get("/-/ready"); ready = True; break
    except Exception:
        time.sleep(0.2)
res = {"rc": "ready" if ready else p.wait(60) if p.poll() is None else p.returncode}
if ready:
    # gen_wal: samples 15 s apart from 2025-06-15T10:00:00Z.
    t0 = 1749981600
    at = t0 + samples * 15 + 60
    rng = "%ds" % (samples * 15 + 600)
    def q(expr):
        u = "/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": at})
        r = json.loads(get(u))
        return float(r["data"]["result"][0]["value"][1]) if r["data"]["result"] else 0.0
    res["series"] = q('count(last_over_time({__name__=~"metric_.*"}[%s]))' % rng)
    res["samples"] = q('sum(count_over_time({__name__=~"metric_.*"}[%s]))' % rng)
    res["alive_after_queries"] = p.poll() is None
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(120)
    except subprocess.TimeoutExpired:
        p.kill(); p.wait()
json.dump(res, open(out + ".json", "w"))
print(json.dumps(res))
EOF

fail() { echo "tests/oom: FAIL: $*" >&2; exit 1; }
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2]))' "$1" "$2"; }

# 1. The crash loop: each start replays the WAL and is killed.
cp -a "$work/orig" "$work/data"
for i in 1 2; do
  before=$(ooms)
  reset_peak
  python3 "$work/prom.py" "$prom" "$cg" "$work/data" "$work/start$i" "$series" "$samples" >/dev/null
  rc=$(field "$work/start$i.json" rc)
  after=$(ooms)
  echo "tests/oom: Prometheus start $i: exit $rc, OOM kills in the cgroup $before -> $after, peak $(( $(cat "$peak_file") >> 20 )) MiB"
  [ "$rc" = 137 ] || [ "$rc" = -9 ] || fail "start $i: Prometheus was not killed (exit $rc); log: $(tail -5 "$work/start$i.log")"
  [ "$after" -gt "$before" ] || fail "start $i: killed, but not by the cgroup's OOM killer"
  grep -q "WAL replay completed" "$work/start$i.log" && fail "start $i: the replay completed under the limit: raise OOM_SERIES"
done

# 2. The pod's initContainer: preflight under the same limit flushes the WAL (as the killed
# starts left it: each opened a new segment).
(cd "$work/data/wal" && sha256sum ./*) >"$work/wal.sha256"
reset_peak
set +e
# Prometheus runs as root here (the pod tests cover uid 65534 and ownership).
in_cgroup "$walfix" preflight "$work/data" --memory-limit "${limit_mib}Mi" --on-oom-risk flush \
  --uid 0 --gid 0 --live-wait 0 --json >"$work/preflight.jsonl" 2>"$work/preflight.err"
rc=$?
set -e
echo "tests/oom: walfix preflight --on-oom-risk flush: exit $rc, cgroup peak $(( $(cat "$peak_file") >> 20 )) MiB (page cache included)"
[ "$rc" = 0 ] || fail "preflight exit $rc: $(tail -3 "$work/preflight.jsonl") $(cat "$work/preflight.err")"
python3 - "$work/preflight.jsonl" "$series" "$samples" <<'EOF' || fail "preflight's report"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
mem = next(l for l in lines if l.get("check") == "memory")
f = mem["flush"]
n, s = int(sys.argv[2]), int(sys.argv[3])
assert mem["status"] == "fixed" and mem["verdict"] == "will_oom", mem["message"]
assert f["samples_written"] == n * s and f["series"] == n, (f["samples_written"], f["series"])
assert f["handover"]["moved"], "nothing moved"
print("tests/oom: flush wrote %d blocks, %d samples, heap peak %.0f MiB; moved %s to %s" % (
    len(f["blocks"]), f["samples_written"], f["memory"]["anon_rss_bytes"] / 2**20,
    ", ".join(m["path"].rsplit("/", 1)[-1] for m in f["handover"]["moved"]), f["handover"]["backup_run"]))
EOF
[ ! -e "$work/data/wal" ] || fail "wal/ is still in the data dir"
cmp "$work/wal.sha256" <(cd "$work/data/walfix-backup"/*/wal && sha256sum ./*) \
  || fail "the WAL in the backup differs from the original"

# 3. Prometheus starts under the same limit, with every series and sample.
reset_peak
before=$(ooms)
python3 "$work/prom.py" "$prom" "$cg" "$work/data" "$work/after" "$series" "$samples" >/dev/null
echo "tests/oom: Prometheus after the flush: $(cat "$work/after.json"), peak $(( $(cat "$peak_file") >> 20 )) MiB, OOM kills $before -> $(ooms)"
[ "$(field "$work/after.json" rc)" = ready ] || fail "Prometheus did not start: $(tail -5 "$work/after.log")"
[ "$(field "$work/after.json" alive_after_queries)" = True ] || fail "Prometheus died answering the queries"
python3 - "$work/after.json" "$series" "$samples" <<'EOF' || fail "series or samples differ"
import json, sys
r = json.load(open(sys.argv[1])); n, s = int(sys.argv[2]), int(sys.argv[3])
assert r["series"] == n, ("series", r["series"], n)
assert r["samples"] == n * s, ("samples", r["samples"], n * s)
EOF
grep -qiE "level=error|corrupt" "$work/after.log" && fail "Prometheus logged an error: $(grep -iE 'level=error|corrupt' "$work/after.log" | head -3)"
echo "tests/oom: ok: OOM-killed twice replaying, flushed under the same ${limit_mib} MiB, then started with all $series series and $((series * samples)) samples"
