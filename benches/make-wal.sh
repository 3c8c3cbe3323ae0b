#!/usr/bin/env bash
# make-wal.sh PROMETHEUS_BINARY OUT_DATA_DIR [TARGET_BYTES]
#
# Writes a big, real WAL for the benchmarks: runs PROMETHEUS_BINARY (get 3.5 with
# scripts/get-prometheus.sh 3.5 DIR) scraping one local target that exposes BENCH_SERIES series
# (default 200000) every BENCH_INTERVAL (default 1s), until OUT_DATA_DIR/wal holds TARGET_BYTES
# (default 1 GiB), then stops it with SIGTERM. Blocks are never cut while it runs
# (--storage.tsdb.min-block-duration=24h), so no compaction truncates the WAL.
#
# The target is a Python standard-library HTTP server answering /metrics with one of a few
# pre-rendered bodies (values change from scrape to scrape: counters grow, gauges move), so it
# costs almost no CPU. Only 127.0.0.1 is used; ports are chosen free.
#
# The data dir is built in OUT_DATA_DIR.tmp and renamed at the end, so an interrupted run leaves
# no half WAL behind at OUT_DATA_DIR. A summary goes to OUT_DATA_DIR/../make-wal-info.txt.
# Progress goes to stderr. Needs bash and python3. Children are stopped on any exit.
set -euo pipefail

[ $# -ge 2 ] && [ $# -le 3 ] || { echo "usage: $0 PROMETHEUS_BINARY OUT_DATA_DIR [TARGET_BYTES]" >&2; exit 2; }
prom=$1
out=$2
target_bytes=${3:-$((1024 * 1024 * 1024))}
series=${BENCH_SERIES:-200000}
interval=${BENCH_INTERVAL:-1s}
bodies=${BENCH_BODIES:-6}

log() { echo "make-wal.sh: $*" >&2; }
die() { log "$*"; exit 1; }
[ -x "$prom" ] || die "not an executable: $prom"
[ -e "$out" ] && die "$out exists already"
version_line=$("$prom" --version 2>&1 | head -n1)

tmp="$out.tmp"
rm -rf "$tmp"
mkdir -p "$tmp/data"
work=$(mktemp -d "${TMPDIR:-/tmp}/make-wal.XXXXXX")
prom_pid=
target_pid=
stop_pid() {
  local pid=$1 t=$2 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < t * 10; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  [ -n "$prom_pid" ] && stop_pid "$prom_pid" 120
  [ -n "$target_pid" ] && stop_pid "$target_pid" 5
  wait 2>/dev/null || true
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

cat >"$work/target.py" <<'PY'
import http.server, socketserver, sys, os, random
series, nbodies, portfile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = random.Random(42)
# ~20 metric families, like a node/cAdvisor-style exporter: counters, gauges, a few
# label combinations per series.
families = []
for i in range(20):
    kind = "counter" if i % 3 != 2 else "gauge"
    name = "bench_%s_%02d%s" % (["requests", "bytes", "temperature", "errors", "queue"][i % 5], i,
                                 "_total" if kind == "counter" else "")
    families.append((name, kind))
per = series // len(families)
rows = []  # (family index, label text, base value, step)
for fi, (name, kind) in enumerate(families):
    for j in range(per if fi < len(families) - 1 else series - per * (len(families) - 1)):
        labels = 'pod="pod-%05d",namespace="ns-%02d",container="c%d",idx="%d"' % (
            j // 10, j % 37, j % 4, j)
        base = rng.randrange(0, 10**9) if kind == "counter" else rng.random() * 1000
        step = rng.randrange(0, 5000) if kind == "counter" else 0
        rows.append((fi, labels, base, step))
bodies = []
for n in range(nbodies):
    out = []
    last = -1
    for fi, labels, base, step in rows:
        name, kind = families[fi]
        if fi != last:
            out.append("# HELP %s synthetic series for walfix benchmarks\n# TYPE %s %s\n" % (name, name, kind))
            last = fi
        if kind == "counter":
            v = "%d" % (base + step * n)
        else:
            v = "%.3f" % (base + rng.random() * 10)
        out.append("%s{%s} %s\n" % (name, labels, v))
    bodies.append("".join(out).encode())
state = {"n": 0}

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path.split("?")[0] != "/metrics":
            self.send_error(404); return
        b = bodies[state["n"] % len(bodies)]
        state["n"] += 1
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def log_message(self, *a):
        pass

class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

srv = S(("127.0.0.1", 0), H)
with open(portfile + ".tmp", "w") as f:
    f.write("%d\n" % srv.server_address[1])
os.rename(portfile + ".tmp", portfile)
sys.stderr.write("target: %d series, %d bodies of %d bytes\n" % (series, len(bodies), len(bodies[0])))
srv.serve_forever()
PY
python3 "$work/target.py" "$series" "$bodies" "$work/port" 2>"$work/target.log" &
target_pid=$!
for ((i = 0; i < 1200; i++)); do [ -s "$work/port" ] && break; kill -0 "$target_pid" || break; sleep 0.1; done
[ -s "$work/port" ] || { cat "$work/target.log" >&2; die "target did not start"; }
tport=$(cat "$work/port")
log "$(cat "$work/target.log") on 127.0.0.1:$tport"

cat >"$work/prometheus.yml" <<YML
global:
  scrape_interval: $interval
  scrape_timeout: $interval
  evaluation_interval: 1m
scrape_configs:
  - job_name: bench
    static_configs:
      - targets: ['127.0.0.1:$tport']
YML
pport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$prom" --config.file="$work/prometheus.yml" --storage.tsdb.path="$tmp/data" \
  --web.listen-address="127.0.0.1:$pport" --storage.tsdb.retention.time=3650d \
  --storage.tsdb.min-block-duration=24h --storage.tsdb.max-block-duration=24h \
  >"$tmp/prometheus.log" 2>&1 &
prom_pid=$!
start=$(date +%s)
log "$version_line writing $tmp/data until wal/ holds $target_bytes bytes"
while :; do
  sleep 5
  kill -0 "$prom_pid" 2>/dev/null || { tail -n 20 "$tmp/prometheus.log" >&2; die "Prometheus died"; }
  have=$(du -sb "$tmp/data/wal" 2>/dev/null | cut -f1)
  el=$(( $(date +%s) - start ))
  log "${el}s: wal $have bytes"
  [ "${have:-0}" -ge "$target_bytes" ] && break
done
stop_pid "$prom_pid" 300
wait "$prom_pid" 2>/dev/null || true
prom_pid=
el=$(( $(date +%s) - start ))
grep -c 'scrape' "$tmp/prometheus.log" >/dev/null || true
{
  echo "# make-wal.sh $(date -u +%FT%TZ)"
  echo "prometheus: $version_line"
  echo "series: $series"
  echo "interval: $interval"
  echo "seconds: $el"
  echo "wal_bytes: $(du -sb "$tmp/data/wal" | cut -f1)"
  echo "segments: $(ls "$tmp/data/wal" | grep -c '^[0-9]*$')"
} >"$tmp/make-wal-info.txt"
mv "$tmp/prometheus.log" "$tmp/data/../make-wal-prometheus.log"
mv "$tmp/data" "$out"
mkdir -p "$(dirname "$out")"
mv "$tmp/make-wal-info.txt" "$tmp/make-wal-prometheus.log" "$(dirname "$out")/"
rmdir "$tmp"
cat "$(dirname "$out")/make-wal-info.txt"
