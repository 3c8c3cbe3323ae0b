#!/usr/bin/env bash
# measure-memory.sh [-v "2.42 2.53 3.5"] [-w "NAME ..."] [-o OUT.jsonl] [-k KEEP_DIR]
#
# Measures how much memory real Prometheus needs to replay WALs, for `walfix estimate`'s
# calibration (crates/walfix-estimate/tests/calibration.rs holds the estimate against every line).
#
# Workloads are listed in testdata/memory/workloads.tsv (NAME<TAB>SOURCE):
#   synth:SPEC    a deterministic synthetic WAL written by `cargo run --example synth_wal` (the same
#                 SPEC always gives the same bytes; the test regenerates it and checks the hash)
#   corpus:DIR    a WAL that real Prometheus wrote while scraping, committed under testdata/memory/DIR
#   empty         no WAL at all: Prometheus's own baseline
#   scrape:SPEC   Prometheus of each version scrapes synthetic targets (python, loopback) for a while:
#                 SPEC is targets=N,series=N,interval=S,duration=S,churn_period=S,churn_pct=P,seed=N,
#                 values=mixed|random|counter|histogram (mixed: the first workloads' counters and 100
#                 repeating gauge values; random: gauges of random floats, full mantissas; counter:
#                 counters with random integer increments; histogram: classic histograms of 10
#                 buckets + +Inf, _sum, _count, i.e. series/13 histograms per target).
#                 Its heap is read while it scrapes (after a forced GC: head + scrape caches), then it
#                 stops, and its WAL is kept under testdata/memory/scraped/NAME@VERSION/ and replayed
#                 as a corpus (one line per version, source corpus:scraped/NAME@VERSION, with the
#                 scraping_* fields added). These runs take `duration` seconds each.
# For every version and workload, one at a time (never two Prometheus processes at once):
#   1. copy the WAL into a fresh data dir; start `prometheus` (scripts/get-prometheus.sh fetches the
#      Debian build) with a config without scrape targets, default flags, GOGC/GOMEMLIMIT unset
#   2. sample /proc/PID/status every 10 ms until /-/ready answers: VmHWM at ready is the peak RSS
#      of start-up + replay; the highest RssAnon seen is kept too
#   3. read /metrics at ready (process_resident_memory_bytes, go_memstats_*, prometheus_tsdb_head_*)
#   4. force a GC through /debug/pprof/heap?gc=1 and read /metrics again: heap_inuse after GC is
#      the live heap (what the head keeps), i.e. the steady-state heap for that head
#   5. SIGTERM, wait; append one JSON object per run to OUT (default testdata/memory/measurements.jsonl)
# Runs stay sequential on purpose; CPU load from other processes does not change memory figures
# much (replay is shorter; the GC pacer sees the same heap), but two Prometheus at once would.
#
# Options: -v versions (default "2.42 2.53 3.5"); -w workload names (default: all in workloads.tsv);
# -o output file (appended to; default testdata/memory/measurements.jsonl); -k keep Prometheus logs
# and heap profiles under KEEP_DIR; -r repeat each run N times (default 1); -e "GOGC=50 ..."
# environment for Prometheus (recorded in each line as "env"; GOGC and GOMEMLIMIT are otherwise unset).
# Environment: PROM_CACHE (default /tmp/walfix-prometheus: DIR/prom-VERSION/prometheus),
# CARGO_TARGET_DIR (honoured when building synth_wal).
# Needs bash, python3 (standard library), cargo, and what get-prometheus.sh needs.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
versions="2.42 2.53 3.5"
only=""
out="$here/testdata/memory/measurements.jsonl"
keep=""
repeat=1
penv=""
while getopts "v:w:o:k:r:e:h" opt; do
  case "$opt" in
    v) versions=$OPTARG ;;
    w) only=$OPTARG ;;
    o) out=$OPTARG ;;
    k) keep=$OPTARG ;;
    r) repeat=$OPTARG ;;
    e) penv=$OPTARG ;;
    *) sed -n '2,30p' "$0"; exit 2 ;;
  esac
done
workloads="$here/testdata/memory/workloads.tsv"
[ -f "$workloads" ] || { echo "measure-memory.sh: $workloads missing" >&2; exit 1; }
cache=${PROM_CACHE:-/tmp/walfix-prometheus}
work=$(mktemp -d "${TMPDIR:-/tmp}/measure-memory.XXXXXX")
trap 'rm -rf "$work"' EXIT
[ -n "$keep" ] && mkdir -p "$keep"

echo "measure-memory.sh: building synth_wal" >&2
(cd "$here" && cargo build --quiet --release -p walfix-estimate --example synth_wal)
synth="${CARGO_TARGET_DIR:-$here/target}/release/examples/synth_wal"
[ -x "$synth" ] || { echo "measure-memory.sh: $synth not built" >&2; exit 1; }

for v in $versions; do
  "$here/scripts/get-prometheus.sh" "$v" "$cache/prom-$v" >/dev/null
done

cat >"$work/scrape.py" <<'PY'
import hashlib, json, os, re, signal, socket, subprocess, sys, threading, time, urllib.request
import http.server, socketserver
prom, data, spec = sys.argv[1:4]
w = dict(kv.split("=", 1) for kv in spec.split(","))
targets, series = int(w.get("targets", 10)), int(w.get("series", 1000))
interval, duration = int(w.get("interval", 15)), int(w.get("duration", 600))
period, pct, seed = int(w.get("churn_period", 0)), int(w.get("churn_pct", 0)), int(w.get("seed", 1))
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
def get(url, timeout=60):
    with opener.open(url, timeout=timeout) as r:
        return r.read().decode("utf-8", "replace")
def h(*a):
    return int.from_bytes(hashlib.sha256(repr((seed,) + a).encode()).digest()[:8], "big")
t0 = time.time()
def gen(k):
    if not period:
        return 0
    e = int((time.time() - t0) // period)
    return sum(1 for i in range(1, e + 1) if h("churn", k, i) % 100 < pct)
values = w.get("values", "mixed")
hb = 10  # classic histograms: buckets per histogram (+Inf, _sum and _count added)
prefixes = {}
def names(k, g):
    # The series text of target k in pod generation g, without the value (cached: the big targets
    # would otherwise spend the scrape interval formatting labels).
    if prefixes.get(k, (None,))[0] != g:
        pod = "t%d-%x" % (k, h("pod", k, g) % (1 << 24))
        ns = "ns-%d" % (k % 5)
        out = []
        if values == "histogram":
            per = hb + 3
            for j in range(max(1, series // per)):
                m = j % 20
                base = 'synth_scrape_h%02d_%s{pod="%s",idx="%d",namespace="%s"' % (m, "%s", pod, j // 20, ns)
                for b in range(hb):
                    out.append((base % "bucket") + ',le="%g"} ' % (0.005 * 2 ** b))
                out.append((base % "bucket") + ',le="+Inf"} ')
                out.append((base % "sum") + '} ')
                out.append((base % "count") + '} ')
        else:
            for i in range(series):
                out.append('synth_scrape_m%02d{pod="%s",idx="%d",namespace="%s"} ' % (i % 20, pod, i // 20, ns))
        prefixes[k] = (g, out)
    return prefixes[k][1]
import random
rates = []
def body(k):
    g = gen(k)
    n = int(time.time() - t0)
    pre = names(k, g)
    if values == "mixed":
        # the first workloads (scrape-20k-churn): even metrics are counters, odd ones repeat 100 values
        vals = [str((n * (i % 7 + 1)) if (i % 20) % 2 == 0 else ((n * 31 + i * 17) % 1000) / 10.0) for i in range(len(pre))]
    elif values == "random":
        # gauges with random float values: full 52-bit mantissas, the worst case of XOR chunks
        r = random.Random(h("v", k, n))
        vals = [repr(r.random() * 1000.0) for _ in pre]
    elif values == "counter":
        # counters with random integer increments (requests_total-like)
        if len(rates) != len(pre):
            rr = random.Random(h("rate"))
            rates[:] = [1 + rr.randrange(50) for _ in pre]
        r = random.Random(h("c", k, n))
        vals = [str(n * a + r.randrange(7)) for a in rates]
    elif values == "histogram":
        vals = []
        per = hb + 3
        for j in range(len(pre) // per):
            cnt = n * (1 + j % 13)
            for b in range(hb):
                vals.append(str(cnt * (b + 1) // (hb + 1)))
            vals += [str(cnt), repr(cnt * 0.0371 * (1 + (j % 5))), str(cnt)]
    else:
        sys.exit("scrape.py: values=%s: use mixed, random, counter or histogram" % values)
    return "".join(a + b + "\n" for a, b in zip(pre, vals)).encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = body(self.server.k)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
servers = []
for k in range(targets):
    srv = S(("127.0.0.1", 0), H); srv.k = k; servers.append(srv)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
cfg = os.path.join(data, "..", "prometheus.yml")
with open(cfg, "w") as f:
    f.write("global:\n  scrape_interval: %ds\n  scrape_timeout: %ds\nscrape_configs:\n  - job_name: synth\n    static_configs:\n      - targets: [%s]\n"
            % (interval, max(1, interval - 1), ",".join("'127.0.0.1:%d'" % v.server_address[1] for v in servers)))
env = {k: v for k, v in os.environ.items() if k not in ("GOGC", "GOMEMLIMIT", "GODEBUG", "GOMAXPROCS")}
log = open(os.path.join(data, "..", "prometheus-scrape.log"), "w")
p = subprocess.Popen([prom, "--config.file=" + cfg, "--storage.tsdb.path=" + data,
                      "--web.listen-address=127.0.0.1:%d" % port, "--storage.tsdb.retention.time=3650d"],
                     stdout=log, stderr=subprocess.STDOUT, env=env)
t0 = time.time()
for _ in range(600):
    try:
        get("http://127.0.0.1:%d/-/ready" % port, 1); break
    except Exception:
        time.sleep(0.1)
t0 = time.time()
time.sleep(duration)
def metrics():
    out = {}
    for line in get("http://127.0.0.1:%d/metrics" % port).splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\s+(\S+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out
get("http://127.0.0.1:%d/debug/pprof/heap?gc=1" % port)
m = metrics()
st = {}
for line in open("/proc/%d/status" % p.pid):
    k, _, v = line.partition(":")
    if k in ("VmHWM", "VmRSS"):
        st[k] = int(v.split()[0]) * 1024
p.send_signal(signal.SIGTERM); p.wait(timeout=120)
for srv in servers:
    srv.shutdown()
print(json.dumps({
    "scraping_seconds": duration,
    "scraping_head_series": int(m.get("prometheus_tsdb_head_series", 0)),
    "scraping_heap_inuse_after_gc_bytes": int(m["go_memstats_heap_inuse_bytes"]),
    "scraping_heap_alloc_after_gc_bytes": int(m["go_memstats_heap_alloc_bytes"]),
    "scraping_rss_bytes": st.get("VmRSS"),
    "scraping_peak_rss_bytes": st.get("VmHWM"),
    "scraping_spec": spec,
}))
PY

cat >"$work/run.py" <<'PY'
import json, os, re, signal, socket, subprocess, sys, time, urllib.request

prom, data, name, source, version, wal_desc, keep = sys.argv[1:8]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

def get(url, timeout=30):
    with opener.open(url, timeout=timeout) as r:
        return r.read().decode("utf-8", "replace")

def metrics(port):
    out = {}
    for line in get("http://127.0.0.1:%d/metrics" % port).splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if m and not m.group(2):
            try:
                out[m.group(1)] = float(m.group(3))
            except ValueError:
                pass
    return out

def status(pid):
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "VmPeak"):
                    out[k] = int(v.split()[0]) * 1024
    except OSError:
        pass
    return out

s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
cfg = os.path.join(data, "..", "prometheus.yml")
with open(cfg, "w") as f:
    f.write("global:\n  scrape_interval: 15s\n  evaluation_interval: 1m\nscrape_configs: []\n")
env = {k: v for k, v in os.environ.items() if k not in ("GOGC", "GOMEMLIMIT", "GODEBUG", "GOMAXPROCS", "MEASURE_ENV")}
extra = dict(kv.split("=", 1) for kv in os.environ.get("MEASURE_ENV", "").split() if "=" in kv)
env.update(extra)
log = open(os.path.join(data, "..", "prometheus.log"), "w")
args = [prom, "--config.file=" + cfg, "--storage.tsdb.path=" + data,
        "--web.listen-address=127.0.0.1:%d" % port, "--storage.tsdb.retention.time=3650d"]
t0 = time.time()
p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
peak_anon = 0
ready = False
last_poll = 0.0
while p.poll() is None and time.time() - t0 < 900:
    st = status(p.pid)
    peak_anon = max(peak_anon, st.get("RssAnon", 0))
    now = time.time()
    if now - last_poll > 0.05:
        last_poll = now
        try:
            get("http://127.0.0.1:%d/-/ready" % port, timeout=1)
            ready = True
            break
        except Exception:
            pass
    time.sleep(0.01)
if not ready:
    p.kill(); p.wait()
    sys.exit("prometheus did not become ready (see %s)" % log.name)
ready_s = time.time() - t0
st_ready = status(p.pid)
m_ready = metrics(port)
time.sleep(1.0)
prof = get("http://127.0.0.1:%d/debug/pprof/heap?gc=1&debug=1" % port, timeout=120)
m_gc = metrics(port)
st_gc = status(p.pid)
if keep != "-":
    with open(os.path.join(keep, "%s@%s%s.heap.txt" % (name, version, "".join("-" + k + "=" + v for k, v in sorted(extra.items())))), "w") as f:
        f.write(prof)
p.send_signal(signal.SIGTERM)
try:
    p.wait(timeout=120)
except subprocess.TimeoutExpired:
    p.kill(); p.wait()
log.close()
replay = None
for line in open(log.name, encoding="utf-8", errors="replace"):
    m = re.search(r"total_replay_duration=(\S+)", line)
    if m:
        replay = m.group(1)
vline = subprocess.run([prom, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
binary = open(prom, "rb").read()
layout = "string" if b"labels_stringlabels.go" in binary else "slice"
gover = re.search(rb"go1\.\d+(\.\d+)?", binary)
wal = dict(kv.split("=", 1) for kv in wal_desc.split() if "=" in kv) if wal_desc else {}
def pick(m, k):
    v = m.get(k)
    return int(v) if v is not None else None
rec = {
    "id": "%s@%s%s" % (name, version, "".join(" " + k + "=" + v for k, v in sorted(extra.items()))),
    "workload": name,
    "source": source,
    "wal_bytes": int(wal["bytes"]) if "bytes" in wal else None,
    "wal_fnv64": wal.get("fnv64"),
    "prometheus": vline,
    "family": version,
    "env": extra,
    "label_layout": layout,
    "go": gover.group(0).decode() if gover else None,
    "cpus": os.cpu_count(),
    "head_series": pick(m_ready, "prometheus_tsdb_head_series"),
    "head_chunks": pick(m_ready, "prometheus_tsdb_head_chunks"),
    "ready_s": round(ready_s, 3),
    "replay": replay,
    "peak_rss_bytes": st_ready.get("VmHWM"),
    "peak_rss_anon_bytes": peak_anon,
    "rss_at_ready_bytes": pick(m_ready, "process_resident_memory_bytes"),
    "rss_file_at_ready_bytes": st_ready.get("RssFile"),
    "heap_inuse_at_ready_bytes": pick(m_ready, "go_memstats_heap_inuse_bytes"),
    "heap_alloc_at_ready_bytes": pick(m_ready, "go_memstats_heap_alloc_bytes"),
    "next_gc_at_ready_bytes": pick(m_ready, "go_memstats_next_gc_bytes"),
    "sys_at_ready_bytes": pick(m_ready, "go_memstats_sys_bytes"),
    "gc_cycles_at_ready": pick(m_ready, "go_gc_duration_seconds_count"),
    "heap_inuse_after_gc_bytes": pick(m_gc, "go_memstats_heap_inuse_bytes"),
    "heap_alloc_after_gc_bytes": pick(m_gc, "go_memstats_heap_alloc_bytes"),
    "stack_inuse_bytes": pick(m_gc, "go_memstats_stack_inuse_bytes"),
    "gc_sys_bytes": pick(m_gc, "go_memstats_gc_sys_bytes"),
    "other_sys_bytes": pick(m_gc, "go_memstats_other_sys_bytes"),
    "mspan_inuse_bytes": pick(m_gc, "go_memstats_mspan_inuse_bytes"),
    "rss_after_gc_bytes": st_gc.get("VmRSS"),
    "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
}
print(json.dumps(rec, sort_keys=False))
PY

n=0
while IFS=$'\t' read -r name source _set; do
  case "$name" in ''|'#'*) continue ;; esac
  if [ -n "$only" ] && ! [[ " $only " == *" $name "* ]]; then continue; fi
  src="$work/src-$name"
  mkdir -p "$src"
  desc=""
  case "$source" in
    synth:*)
      desc=$("$synth" "${source#synth:}" "$src")
      echo "measure-memory.sh: $name: $desc" >&2 ;;
    corpus:*)
      dir="$here/testdata/memory/${source#corpus:}"
      [ -d "$dir/wal" ] || { echo "measure-memory.sh: $dir/wal missing" >&2; exit 1; }
      cp -r "$dir/wal" "$src/wal"
      bytes=$(find "$src/wal" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
      desc="bytes=$bytes" ;;
    empty) ;;
    scrape:*)
      for v in $versions; do
        dest="$here/testdata/memory/scraped/$name@$v"
        run="$work/scrape-$name-$v"
        rm -rf "$run"; mkdir -p "$run/data"
        echo "measure-memory.sh: $name: Prometheus $v scraping (${source#scrape:})" >&2
        scraped=$(python3 "$work/scrape.py" "$cache/prom-$v/prometheus" "$run/data" "${source#scrape:}")
        rm -rf "$dest"; mkdir -p "$dest"
        cp -r "$run/data/wal" "$dest/wal"
        rm -f "$dest/wal/"*.tmp
        bytes=$(find "$dest/wal" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
        rm -rf "$run/data"; mkdir -p "$run/data"; cp -r "$dest/wal" "$run/data/wal"
        line=$(python3 "$work/run.py" "$cache/prom-$v/prometheus" "$run/data" "$name" "corpus:scraped/$name@$v" "$v" "bytes=$bytes" "${keep:--}")
        line=$(python3 -c 'import json,sys; a=json.loads(sys.argv[1]); a.update(json.loads(sys.argv[2])); print(json.dumps(a))' "$line" "$scraped")
        echo "$line" >>"$out"
        echo "  $scraped" >&2
        rm -rf "$run"
        n=$((n + 1))
      done
      rm -rf "$src"
      continue ;;
    *) echo "measure-memory.sh: bad source '$source' for $name" >&2; exit 1 ;;
  esac
  for v in $versions; do
    for ((i = 0; i < repeat; i++)); do
      run="$work/run-$name-$v"
      rm -rf "$run"; mkdir -p "$run/data"
      [ -d "$src/wal" ] && cp -r "$src/wal" "$run/data/wal"
      echo "measure-memory.sh: $name on Prometheus $v${penv:+ with $penv}" >&2
      line=$(MEASURE_ENV="$penv" python3 "$work/run.py" "$cache/prom-$v/prometheus" "$run/data" "$name" "$source" "$v" "$desc" "${keep:--}")
      echo "$line" >>"$out"
      echo "$line" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("  head_series=%(head_series)s peak_rss=%(peak_rss_bytes)s heap_ready=%(heap_inuse_at_ready_bytes)s heap_after_gc=%(heap_inuse_after_gc_bytes)s ready_s=%(ready_s)s" % r)' >&2
      [ -n "$keep" ] && cp "$run/prometheus.log" "$keep/$name@$v.log"
      rm -rf "$run"
      n=$((n + 1))
    done
  done
  rm -rf "$src"
done <"$workloads"
echo "measure-memory.sh: $n run(s) appended to $out" >&2
