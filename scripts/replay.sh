#!/usr/bin/env bash
# replay.sh PROMETHEUS_BINARY DATA_DIR OUT_FILE [EXTRA_FLAGS...]
#
# Starts a real Prometheus (2.42, 2.53 or 3.5; get one with scripts/get-prometheus.sh) on DATA_DIR, the
# way testdata/corpora/*/EXPECTED*.txt were measured: a config with no scrape targets, loopback only, a free
# port, --storage.tsdb.retention.time=3650d --query.max-samples=500000000 --query.timeout=10m, plus
# EXTRA_FLAGS (e.g. --enable-feature=native-histograms,exemplar-storage as the 2.42 notes used, or
# --enable-feature=promql-delayed-name-removal as the 3.5 notes used). It waits until /-/ready answers or
# Prometheus exits (REPLAY_READY_TIMEOUT seconds, default 60), measures what its head holds, sends SIGTERM
# and waits for it to exit (SIGKILL after REPLAY_STOP_TIMEOUT seconds, default 60).
#
# Prometheus changes DATA_DIR (its own WAL repair, new segments, chunks_head/, lock): run it on a copy.
#
# OUT_FILE gets one "KEY VALUE" line per fact ('-' = not measured):
#   started 0|1                                  /-/ready answered
#   ready_seconds S                              from exec to ready
#   exit_code N                                  exit status (after our SIGTERM if it started; 137 = killed)
#   prometheus_version V                         e.g. 3.5.3+ds
#   prometheus_tsdb_head_series N                from /metrics (agent: prometheus_agent_active_series)
#   prometheus_tsdb_head_series_created_total N
#   prometheus_tsdb_wal_corruptions_total N      WAL and WBL corruptions Prometheus found (and repaired)
#   prometheus_tsdb_head_min_time MS, prometheus_tsdb_head_max_time MS
#   samples_queryable N       float + histogram samples without staleness markers: for every metric name,
#                             sum(count_over_time({__name__="NAME"}[RANGE])) at time=head max time, RANGE
#                             covering the head's min..max time plus one day; added up over the names
#                             (the EXPECTED.txt method; per name so that no version trips over series
#                             that differ only in their name)
#   series_queryable N        series with at least one such sample (count(last_over_time(...)) per name)
#   metric_names N            names in /api/v1/label/__name__/values
#   log_corruption_lines N    lines of Prometheus's log matching corrupt|repair|torn (any case)
#   log_file PATH             Prometheus's log, kept at OUT_FILE.prometheus.log
#   query_samples_I N         with REPLAY_QUERIES (one series selector per line): sum(count_over_time(SEL[RANGE]))
#                             for the I-th selector, over the same RANGE as samples_queryable
# In agent mode (--agent in EXTRA_FLAGS: --storage.agent.path is used instead of the tsdb flags) there is no
# query API and samples/series_queryable are '-'.
#
# Exit status: 0 when OUT_FILE was written, whatever Prometheus did (read `started`); 1 if the measurement
# itself failed; 2 on bad usage. Children are stopped on any exit or signal (trap).
#
# Environment (optional): REPLAY_READY_TIMEOUT (s, default 60), REPLAY_STOP_TIMEOUT (s, default 60),
# REPLAY_OOO_WINDOW (e.g. 1h: writes storage.tsdb.out_of_order_time_window into the config; default none,
# as in the notes: a wbl/ directory is replayed without it).
# Needs bash and python3 (standard library only; proxies are ignored, only 127.0.0.1 is contacted).
#
# Example: scripts/replay.sh /tmp/prom-3.5/prometheus /tmp/copy/data /tmp/copy/replay.txt \
#            --enable-feature=promql-delayed-name-removal
set -euo pipefail

usage() { echo "usage: $0 PROMETHEUS_BINARY DATA_DIR OUT_FILE [EXTRA_FLAGS...]" >&2; exit 2; }
[ $# -ge 3 ] || usage
prom=$1
data=$2
out=$3
shift 3
extra=("$@")
ready_timeout=${REPLAY_READY_TIMEOUT:-60}
stop_timeout=${REPLAY_STOP_TIMEOUT:-60}
ooo_window=${REPLAY_OOO_WINDOW:-}

log() { echo "replay.sh: $*" >&2; }
die() { log "$*"; exit 1; }

case "$ready_timeout$stop_timeout" in *[!0-9]*) log "timeouts must be whole seconds"; exit 2 ;; esac
command -v python3 >/dev/null || die "python3 not found"
py=$(python3 -c 'import sys; print(sys.executable)')
[ -x "$prom" ] || { log "not an executable: $prom"; exit 2; }
[ -d "$data" ] || { log "not a directory: $data"; exit 2; }
prom=$(cd "$(dirname "$prom")" && pwd)/$(basename "$prom")
data=$(cd "$data" && pwd)
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
prom_log=$out.prometheus.log
version_line=$("$prom" --version 2>&1 | head -n1) || die "$prom --version failed"
case "$version_line" in "prometheus, version "*) ;; *) die "not a Prometheus binary: $version_line" ;; esac
version=$(echo "$version_line" | awk '{print $3}')

agent=
for f in "${extra[@]}"; do [ "$f" = "--agent" ] && agent=1; done

work=$(mktemp -d "${TMPDIR:-/tmp}/replay.XXXXXX")
prom_pid=
cleanup() {
  local rc=$? i
  if [ -n "$prom_pid" ] && kill -0 "$prom_pid" 2>/dev/null; then
    kill -TERM "$prom_pid" 2>/dev/null || true
    for ((i = 0; i < stop_timeout * 10; i++)); do kill -0 "$prom_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$prom_pid" 2>/dev/null || true
  fi
  wait 2>/dev/null || true
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

cat >"$work/helper.py" <<'PY'
import json, math, os, re, sys, time, urllib.parse, urllib.request

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

def get(url, timeout=600):
    with OPENER.open(url, timeout=timeout) as r:
        return r.read().decode("utf-8", "replace")

def alive(pid):
    import os
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is dead for our purpose
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False

def metrics(text):
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if m:
            try:
                out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
            except ValueError:
                pass
    return out

def query(base, q, t):
    url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": q, "time": t})
    r = json.loads(get(url))
    if r.get("status") != "success":
        raise RuntimeError("query %s failed: %s" % (q, r))
    res = r["data"]["result"]
    if r["data"]["resultType"] == "scalar":
        return float(res[1])
    return sum(float(s["value"][1]) for s in res)

def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float) and v.is_integer():
        return "%d" % v
    return str(v)

cmd = sys.argv[1]
if cmd == "free-port":
    import socket
    s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
elif cmd == "wait-ready":  # wait-ready PORT PID TIMEOUT: exit 0 ready, 1 process gone, 2 timeout
    port, pid, timeout = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not alive(pid):
            sys.exit(1)
        try:
            get("http://127.0.0.1:%s/-/ready" % port, timeout=5)
            sys.exit(0)
        except Exception:
            time.sleep(0.1)
    sys.exit(2)
elif cmd == "measure":  # measure PORT AGENT(0|1) OUT
    port, agent, out = sys.argv[2], sys.argv[3] == "1", sys.argv[4]
    base = "http://127.0.0.1:%s" % port
    ms = metrics(get(base + "/metrics"))
    lines = []
    head = ms.get("prometheus_agent_active_series") if agent else ms.get("prometheus_tsdb_head_series")
    lines.append(("prometheus_tsdb_head_series", head))
    for n in ("prometheus_tsdb_head_series_created_total", "prometheus_tsdb_wal_corruptions_total",
              "prometheus_tsdb_head_min_time", "prometheus_tsdb_head_max_time"):
        lines.append((n, ms.get(n)))
    samples = series = names_n = None
    if not agent:
        mint, maxt = ms.get("prometheus_tsdb_head_min_time"), ms.get("prometheus_tsdb_head_max_time")
        names = json.loads(get(base + "/api/v1/label/__name__/values"))["data"]
        names_n = len(names)
        samples = series = 0
        if mint is not None and maxt is not None and maxt >= mint and names:
            rng = "%ds" % (math.ceil((maxt - mint) / 1000.0) + 86400)
            t = "%.3f" % (maxt / 1000.0)
            for name in names:
                sel = '{__name__="%s"}' % name.replace("\\", "\\\\").replace('"', '\\"')
                samples += query(base, "sum(count_over_time(%s[%s]))" % (sel, rng), t)
                series += query(base, "count(last_over_time(%s[%s]))" % (sel, rng), t)
    lines += [("samples_queryable", samples), ("series_queryable", series), ("metric_names", names_n)]
    # REPLAY_QUERIES: one selector per line; query_samples_I = sum(count_over_time(SEL[RANGE])).
    sels = [q for q in os.environ.get("REPLAY_QUERIES", "").split("\n") if q.strip()]
    for i, sel in enumerate(sels):
        v = None
        if not agent and mint is not None and maxt is not None and maxt >= mint:
            rng = "%ds" % (math.ceil((maxt - mint) / 1000.0) + 86400)
            v = query(base, "sum(count_over_time(%s[%s]))" % (sel, rng), "%.3f" % (maxt / 1000.0))
        lines.append(("query_samples_%d" % i, v))
    with open(out, "a") as f:
        for k, v in lines:
            f.write("%s %s\n" % (k, fmt(v)))
else:
    sys.exit("helper.py: unknown command " + cmd)
PY

{
  echo "global:"
  echo "  scrape_interval: 1m"
  echo "  evaluation_interval: 1m"
  echo "scrape_configs: []"
  if [ -n "$ooo_window" ]; then
    echo "storage:"
    echo "  tsdb:"
    echo "    out_of_order_time_window: $ooo_window"
  fi
} >"$work/prometheus.yml"

if [ -n "$agent" ]; then
  storage_flags=(--storage.agent.path="$data")
else
  storage_flags=(--storage.tsdb.path="$data" --storage.tsdb.retention.time=3650d
    --query.max-samples=500000000 --query.timeout=10m)
fi

: >"$work/result"
started=0
exit_code=-
ready_seconds=-
for attempt in 1 2 3; do
  port=$("$py" "$work/helper.py" free-port)
  t0=$(date +%s.%N)
  "$prom" --config.file="$work/prometheus.yml" --web.listen-address="127.0.0.1:$port" \
    "${storage_flags[@]}" --log.level=info "${extra[@]}" >"$prom_log" 2>&1 &
  prom_pid=$!
  set +e
  "$py" "$work/helper.py" wait-ready "$port" "$prom_pid" "$ready_timeout"
  w=$?
  set -e
  if [ "$w" -eq 0 ]; then
    started=1
    ready_seconds=$(echo "$t0 $(date +%s.%N)" | awk '{printf "%.2f", $2 - $1}')
    break
  fi
  if [ "$w" -eq 2 ]; then
    log "Prometheus not ready after ${ready_timeout}s; stopping it"
    kill -TERM "$prom_pid" 2>/dev/null || true
  fi
  set +e
  wait "$prom_pid"
  exit_code=$?
  set -e
  prom_pid=
  if [ "$w" -eq 1 ] && grep -q 'address already in use' "$prom_log" && [ "$attempt" -lt 3 ]; then
    log "port $port taken, retrying"
    continue
  fi
  break
done

if [ "$started" = 1 ]; then
  "$py" "$work/helper.py" measure "$port" "${agent:-0}" "$work/result" || {
    tail -n 20 "$prom_log" >&2
    die "measuring Prometheus on 127.0.0.1:$port failed"
  }
  kill -TERM "$prom_pid" 2>/dev/null || true
  for ((i = 0; i < stop_timeout * 10; i++)); do kill -0 "$prom_pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$prom_pid" 2>/dev/null; then
    log "Prometheus did not exit ${stop_timeout}s after SIGTERM; SIGKILL"
    kill -KILL "$prom_pid" 2>/dev/null || true
  fi
  set +e
  wait "$prom_pid"
  exit_code=$?
  set -e
  prom_pid=
else
  for k in prometheus_tsdb_head_series prometheus_tsdb_head_series_created_total \
    prometheus_tsdb_wal_corruptions_total prometheus_tsdb_head_min_time prometheus_tsdb_head_max_time \
    samples_queryable series_queryable metric_names; do
    echo "$k -"
  done >"$work/result"
fi

corrupt=$(grep -ciE 'corrupt|repair|torn' "$prom_log" || true)
{
  echo "started $started"
  echo "ready_seconds $ready_seconds"
  echo "exit_code $exit_code"
  echo "prometheus_version $version"
  cat "$work/result"
  echo "log_corruption_lines ${corrupt:-0}"
  echo "log_file $prom_log"
} >"$out.tmp"
mv -f "$out.tmp" "$out"
if [ "$started" != 1 ]; then
  log "Prometheus did not start (exit $exit_code); last log lines:"
  tail -n 5 "$prom_log" >&2
fi
cat "$out"
