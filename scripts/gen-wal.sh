#!/usr/bin/env bash
# gen-wal.sh PROMETHEUS_BINARY OUT_DATA_DIR [SECONDS] [METRICS_FILE]
#
# Makes a fresh, real WAL: runs PROMETHEUS_BINARY (2.42, 2.53 or 3.5; get one with
# scripts/get-prometheus.sh) with --storage.tsdb.path=OUT_DATA_DIR, scraping a tiny synthetic target on
# 127.0.0.1 every second for SECONDS (default 15), then stops it cleanly (SIGTERM) and waits for it to exit.
# OUT_DATA_DIR must not exist or be empty. Only loopback addresses are used; ports are chosen free.
#
# SECONDS counts from the first scrape (Prometheus's scrape manager takes up to 5 s to start scraping).
# Exact counts: after SECONDS the scrape config is replaced by an empty one (SIGHUP reload), which stops
# all scraping (a scrape in flight is dropped; staleness markers, if this version writes any for the
# dropped series, are appended like any sample). The script waits until
# prometheus_tsdb_head_samples_appended_total has stopped moving, reads Prometheus's /metrics, and only
# then sends SIGTERM. So the counts in METRICS_FILE are everything this process appended, and the WAL
# holds exactly those samples and series (checked by decoding uncompressed WALs of 2.42, 2.53 and 3.5).
#
# METRICS_FILE (default: OUT_DATA_DIR/../gen-wal-metrics.txt, i.e. next to OUT_DATA_DIR; the env var
# GEN_WAL_METRICS also sets it) gets one "KEY VALUE" pair per line, KEY without spaces, '#' lines are
# comments:
#   prometheus_tsdb_head_samples_appended_total N                    all types added up
#   prometheus_tsdb_head_samples_appended_total{type="float"} N      as exposed by Prometheus
#   prometheus_tsdb_head_samples_appended_total{type="histogram"} N
#   prometheus_tsdb_head_series N
#   prometheus_tsdb_head_series_created_total N
#   prometheus_tsdb_wal_corruptions_total N, prometheus_tsdb_wal_segment_current N,
#   prometheus_tsdb_checkpoint_creations_total N, prometheus_tsdb_head_chunks_created_total N
#   gen_wal_target_series N      series the synthetic target exposes (+5 per-scrape series such as 'up')
#   gen_wal_scrapes N            scrapes the target served
#   gen_wal_prometheus_exit N    Prometheus's exit status after SIGTERM (0 = clean)
# A comment line carries the `prometheus --version` line.
#
# stdout: Prometheus's version, the listing of OUT_DATA_DIR/wal (size and name), the metrics, and as the
# last line `GEN_WAL_METRICS=<path of METRICS_FILE>`. Progress goes to stderr. Prometheus's log is kept at
# METRICS_FILE's directory as gen-wal-prometheus.log.
#
# Environment (optional): GEN_WAL_SERIES (target series, default 200), GEN_WAL_INTERVAL (scrape interval,
# default 1s), GEN_WAL_PROM_FLAGS (extra Prometheus flags, e.g. "--storage.tsdb.wal-compression-type=zstd"
# on 2.53/3.5 or "--no-storage.tsdb.wal-compression").
# Needs bash and python3 (standard library only). Children are stopped on any exit (trap).
#
# Example: scripts/get-prometheus.sh 3.5 /tmp/prom-3.5 && scripts/gen-wal.sh /tmp/prom-3.5/prometheus /tmp/g/data 10
set -euo pipefail

usage() { echo "usage: $0 PROMETHEUS_BINARY OUT_DATA_DIR [SECONDS] [METRICS_FILE]" >&2; exit 2; }
if [ $# -lt 2 ] || [ $# -gt 4 ]; then usage; fi
prom=$1
data=$2
duration=${3:-15}
metrics_file=${4:-${GEN_WAL_METRICS:-}}
series=${GEN_WAL_SERIES:-200}
interval=${GEN_WAL_INTERVAL:-1s}
extra_flags=${GEN_WAL_PROM_FLAGS:-}

log() { echo "gen-wal.sh: $*" >&2; }
die() { log "$*"; exit 1; }

case "$duration" in ''|*[!0-9]*) die "SECONDS must be a whole number, got '$duration'" ;; esac
case "$series" in ''|*[!0-9]*) die "GEN_WAL_SERIES must be a whole number" ;; esac
command -v python3 >/dev/null || die "python3 not found"
py=$(python3 -c 'import sys; print(sys.executable)')  # the real interpreter: shims (pyenv) are slow to start
[ -x "$prom" ] || die "not an executable: $prom"
prom=$(cd "$(dirname "$prom")" && pwd)/$(basename "$prom")
version_line=$("$prom" --version 2>&1 | head -n1) || die "$prom --version failed"
case "$version_line" in "prometheus, version "*) ;; *) die "not a Prometheus binary: $version_line" ;; esac
interval_s=$("$py" -c 'import re,sys; m=re.fullmatch(r"(\d+)(ms|s|m)", sys.argv[1]); sys.exit(1) if not m else print(int(m.group(1))*{"ms":0.001,"s":1,"m":60}[m.group(2)])' "$interval") \
  || die "GEN_WAL_INTERVAL must look like 500ms, 1s or 1m"

if [ -e "$data" ] && [ -n "$(ls -A "$data" 2>/dev/null)" ]; then
  die "OUT_DATA_DIR $data exists and is not empty"
fi
mkdir -p "$data"
data=$(cd "$data" && pwd)
[ -n "$metrics_file" ] || metrics_file=$(dirname "$data")/gen-wal-metrics.txt
mkdir -p "$(dirname "$metrics_file")"
metrics_file=$(cd "$(dirname "$metrics_file")" && pwd)/$(basename "$metrics_file")
prom_log_keep=$(dirname "$metrics_file")/gen-wal-prometheus.log

work=$(mktemp -d "${TMPDIR:-/tmp}/gen-wal.XXXXXX")
prom_pid=
target_pid=
nap_pid=

stop_pid() {  # stop_pid PID SECONDS: SIGTERM, wait up to SECONDS, then SIGKILL
  local pid=$1 t=$2 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < t * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  log "pid $pid did not stop after ${t}s; SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}
nap() {  # sleep that a signal interrupts at once (bash runs traps only between foreground commands)
  sleep "$1" &
  nap_pid=$!
  wait "$nap_pid" || true
  nap_pid=
}
cleanup() {
  local rc=$?
  [ -n "$nap_pid" ] && kill "$nap_pid" 2>/dev/null
  [ -n "$prom_pid" ] && stop_pid "$prom_pid" 30
  [ -n "$target_pid" ] && stop_pid "$target_pid" 5
  wait 2>/dev/null || true
  if [ -f "$work/prometheus.log" ]; then cp -f "$work/prometheus.log" "$prom_log_keep" 2>/dev/null || true; fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# ---- helpers (python3 standard library; proxies ignored: loopback only)
cat >"$work/helper.py" <<'PY'
import re, sys, time, urllib.request

def get(url):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as r:
        return r.read().decode("utf-8", "replace")

def metrics(text):
    """{name: {labels: value}} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if m:
            out.setdefault(m.group(1), {})[m.group(2) or ""] = float(m.group(3))
    return out

def total(ms, name):
    return sum(ms[name].values()) if name in ms else None

cmd = sys.argv[1]
if cmd == "get":  # get URL
    sys.stdout.write(get(sys.argv[2]))
elif cmd == "free-port":
    import socket
    s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
elif cmd == "reload-ts":  # reload-ts URL: timestamp of the last successful config load
    print(total(metrics(get(sys.argv[2])), "prometheus_config_last_reload_success_timestamp_seconds"))
elif cmd == "quiesce":  # quiesce URL TS0 INTERVAL_S OUT: wait for the reload, then for appends to stop; write OUT
    url, ts0, interval, out = sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
    deadline = time.time() + 10
    while True:  # the reload is done when its success timestamp moves (1 s resolution: startup may share it)
        ms = metrics(get(url))
        if total(ms, "prometheus_config_last_reload_successful") == 1 and \
           str(total(ms, "prometheus_config_last_reload_success_timestamp_seconds")) != ts0:
            break
        if time.time() > deadline:
            print("reload not seen in /metrics after 10 s (continuing)", file=sys.stderr)
            break
        time.sleep(0.1)
    # staleness markers, if any, come about 2 intervals after a scrape pool stops; then 3 equal readings
    time.sleep(2 * interval + 0.2)
    name = "prometheus_tsdb_head_samples_appended_total"
    prev, same = None, 0
    for _ in range(120):
        ms = metrics(get(url))
        cur = total(ms, name)
        same = same + 1 if cur == prev else 0
        if same >= 2:
            break
        prev = cur
        time.sleep(max(0.25, interval / 2))
    else:
        print("WARNING: %s still moving; counts may be short" % name, file=sys.stderr)
    with open(out, "w") as f:
        f.write("%s %d\n" % (name, total(ms, name) or 0))
        for labels, v in sorted(ms.get(name, {}).items()):
            if labels:
                f.write("%s%s %d\n" % (name, labels, v))
        for n in ("prometheus_tsdb_head_series", "prometheus_tsdb_head_series_created_total",
                  "prometheus_tsdb_head_chunks_created_total", "prometheus_tsdb_wal_corruptions_total",
                  "prometheus_tsdb_wal_segment_current", "prometheus_tsdb_checkpoint_creations_total"):
            if n in ms:
                f.write("%s %d\n" % (n, total(ms, n)))
else:
    sys.exit("helper.py: unknown command " + cmd)
PY
http_get() { "$py" "$work/helper.py" get "$1"; }

# ---- the synthetic target: serves /metrics (Prometheus text format 0.0.4) on a kernel-chosen port
cat >"$work/target.py" <<'PY'
import http.server, socketserver, sys, threading, time
series, portfile, countfile = int(sys.argv[1]), sys.argv[2], sys.argv[3]
names = ["gen_wal_requests_total", "gen_wal_bytes_total", "gen_wal_temperature_celsius", "gen_wal_queue_length"]
state = {"n": 0}
lock = threading.Lock()

def body(n):
    out = []
    for i, name in enumerate(names):
        kind = "counter" if name.endswith("_total") else "gauge"
        out.append("# HELP %s synthetic series for walfix tests\n# TYPE %s %s\n" % (name, name, kind))
        for j in range(i, series, len(names)):
            if kind == "counter":
                v = n * (j % 7 + 1)
            else:
                v = ((n * 31 + j * 17) % 1000) / 10.0
            out.append('%s{idx="%d",shard="s%d"} %s\n' % (name, j, j % 3, v))
    return "".join(out).encode()

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.split("?")[0] != "/metrics":
            self.send_error(404); return
        with lock:
            state["n"] += 1
            n = state["n"]
            with open(countfile, "w") as f:
                f.write("%d\n" % n)
        b = body(n)
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
import os; os.rename(portfile + ".tmp", portfile)
srv.serve_forever()
PY
echo 0 >"$work/scrapes"
"$py" "$work/target.py" "$series" "$work/target.port" "$work/scrapes" 2>"$work/target.log" &
target_pid=$!
for ((i = 0; i < 100; i++)); do [ -s "$work/target.port" ] && break; sleep 0.1; done
[ -s "$work/target.port" ] || { cat "$work/target.log" >&2; die "synthetic target did not start"; }
target_port=$(cat "$work/target.port")
http_get "http://127.0.0.1:$target_port/metrics" >/dev/null || die "synthetic target does not answer"
echo 0 >"$work/scrapes"
log "synthetic target: $series series at http://127.0.0.1:$target_port/metrics"

cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: $interval
  scrape_timeout: $interval
  evaluation_interval: 1m
scrape_configs:
  - job_name: gen-wal
    static_configs:
      - targets: ['127.0.0.1:$target_port']
EOF
cat >"$work/prometheus-stopped.yml" <<EOF
global:
  scrape_interval: $interval
  evaluation_interval: 1m
scrape_configs: []
EOF
cp "$work/prometheus.yml" "$work/active.yml"

# ---- start Prometheus (retry with another port if the chosen one was taken meanwhile)
started=
for _ in 1 2 3; do
  port=$("$py" "$work/helper.py" free-port)
  # shellcheck disable=SC2086
  "$prom" --config.file="$work/active.yml" --storage.tsdb.path="$data" \
    --web.listen-address="127.0.0.1:$port" --storage.tsdb.retention.time=3650d --log.level=info \
    $extra_flags >"$work/prometheus.log" 2>&1 &
  prom_pid=$!
  for ((i = 0; i < 600; i++)); do  # up to 60 s
    if ! kill -0 "$prom_pid" 2>/dev/null; then break; fi
    if http_get "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1; then started=1; break; fi
    sleep 0.1
  done
  [ -n "$started" ] && break
  if kill -0 "$prom_pid" 2>/dev/null; then stop_pid "$prom_pid" 10; fi
  wait "$prom_pid" 2>/dev/null || true
  prom_pid=
  if grep -q 'address already in use' "$work/prometheus.log"; then
    log "port $port taken, retrying"; continue
  fi
  tail -n 30 "$work/prometheus.log" >&2
  die "Prometheus did not become ready"
done
[ -n "$started" ] || die "Prometheus did not start after 3 attempts"
log "$version_line ready on 127.0.0.1:$port, data $data"
# Prometheus's scrape manager applies new targets only every 5 s: SECONDS counts from the first scrape
for ((i = 0; i < 300; i++)); do
  [ "$(cat "$work/scrapes")" -ge 1 ] 2>/dev/null && break
  kill -0 "$prom_pid" 2>/dev/null || break
  sleep 0.1
done
[ "$(cat "$work/scrapes")" -ge 1 ] || { tail -n 30 "$work/prometheus.log" >&2; die "Prometheus never scraped the target"; }
log "first scrape done; scraping for ${duration}s"

nap "$duration"
kill -0 "$prom_pid" 2>/dev/null || { tail -n 30 "$work/prometheus.log" >&2; die "Prometheus died while scraping"; }

# ---- stop scraping (reload with no scrape configs) and wait until nothing more is appended
ts0=$("$py" "$work/helper.py" reload-ts "http://127.0.0.1:$port/metrics")
cp "$work/prometheus-stopped.yml" "$work/active.yml"
kill -HUP "$prom_pid"
log "scraping stopped after $(cat "$work/scrapes") scrapes; waiting until appends stop"
"$py" "$work/helper.py" quiesce "http://127.0.0.1:$port/metrics" "$ts0" "$interval_s" "$work/counts.txt" &
nap_pid=$!
wait "$nap_pid"
nap_pid=
grep -c 'Completed loading of configuration file' "$work/prometheus.log" | grep -qv '^[01]$' \
  || { tail -n 30 "$work/prometheus.log" >&2; die "config reload (stop scraping) failed"; }
{
  echo "# written by scripts/gen-wal.sh from Prometheus /metrics after scraping stopped, before SIGTERM"
  echo "# $version_line"
  echo "# data dir: $data; target series: $series; scrape interval: $interval; seconds: $duration"
  cat "$work/counts.txt"
  echo "gen_wal_target_series $series"
  echo "gen_wal_scrapes $(cat "$work/scrapes")"
} >"$work/gen-wal-metrics.txt"

# ---- clean stop
kill -TERM "$prom_pid"
rc=
for ((i = 0; i < 600; i++)); do
  if ! kill -0 "$prom_pid" 2>/dev/null; then break; fi
  sleep 0.1
done
if kill -0 "$prom_pid" 2>/dev/null; then
  log "Prometheus did not exit 60 s after SIGTERM; SIGKILL"
  kill -KILL "$prom_pid" 2>/dev/null || true
fi
set +e
wait "$prom_pid"
rc=$?
set -e
prom_pid=
echo "gen_wal_prometheus_exit $rc" >>"$work/gen-wal-metrics.txt"
cp "$work/gen-wal-metrics.txt" "$metrics_file"
[ "$rc" -eq 0 ] || { tail -n 30 "$work/prometheus.log" >&2; die "Prometheus exited with status $rc"; }

echo "$version_line"
echo "WAL $data/wal:"
(cd "$data" && find wal -type f -printf '%s %p\n' | sort -k2)
echo "metrics ($metrics_file):"
grep -v '^#' "$metrics_file"
echo "GEN_WAL_METRICS=$metrics_file"
