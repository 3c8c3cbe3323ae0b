#!/usr/bin/env bash
# benches/flush-vs-replay.sh [options]
#
# `walfix flush` against Prometheus 3.5 replaying the same WAL, in one run: for each size, a
# synthetic WAL (crates/walfix-flush/examples/gen_wal.rs: N series of L labels, S float samples
# each 15 s apart, snappy, 128 MiB segments; cached), then
#   * walfix flush --json --output-dir OUT (release), RUNS times: wall time, peak RssAnon (heap:
#     sampled every ~2 ms from /proc) and VmHWM (all resident pages: also the mapped segments,
#     spill and blocks, which the kernel can drop), the spill and blocks from its JSON report;
#   * Prometheus 3.5 started on a copy of wal/ (no blocks, no scrape targets), PROM_RUNS times:
#     wall time until its log says "WAL replay completed", peak RssAnon and VmHWM at that point.
# Medians are printed, with the ratios, and over the sizes a least-squares fit
# RSS = a + b * series for walfix (b: bytes per series).
#
# Options (or environment):
#   --series "100000 1000000"  sizes (SERIES)
#   --samples 40               samples per series (SAMPLES)
#   --labels 8                 labels per series (LABELS; gen_wal's values make ~3.6 distinct
#                              strings per series, a pessimistic case for the index)
#   --runs 3                   walfix runs per size (RUNS)
#   --prom-runs 1              Prometheus runs per size (PROM_RUNS; 0 skips it)
#   --base BINARY              also measure another walfix binary (e.g. an older commit's build)
#   WALFIX=BINARY              measure this walfix binary instead of building one
# Work files go to target/bench-flush/ (WALs kept; OUT and copies removed), results also to
# target/bench-flush/results-<UTC time>.txt. Needs python3. Not used by any test. The machine
# should be otherwise idle: timings on shared cores are noisy.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
sizes=${SERIES:-"100000 1000000"}
samples=${SAMPLES:-40}
labels=${LABELS:-8}
runs=${RUNS:-3}
prom_runs=${PROM_RUNS:-1}
base=${WALFIX_BASE:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --series) sizes=$2; shift 2 ;;
    --samples) samples=$2; shift 2 ;;
    --labels) labels=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --prom-runs) prom_runs=$2; shift 2 ;;
    --base) base=$2; shift 2 ;;
    *) echo "flush-vs-replay.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
target=${CARGO_TARGET_DIR:-$root/target}
bench=$root/target/bench-flush
mkdir -p "$bench"
out=$bench/results-$(date -u +%Y%m%dT%H%M%SZ).txt
say() { echo "$*" | tee -a "$out"; }

cargo build --release -q -p walfix-flush --example gen_wal
gen=$target/release/examples/gen_wal
if [ -n "${WALFIX:-}" ]; then
  walfix=$WALFIX
else
  cargo build --release -q -p walfix-cli
  walfix=$target/release/walfix
fi
prom=$root/target/prometheus/3.5/prometheus
if [ "$prom_runs" -gt 0 ] && [ ! -x "$prom" ]; then
  echo "flush-vs-replay.sh: no $prom (scripts/get-prometheus.sh), or --prom-runs 0" >&2
  exit 2
fi

# The sampler: `mem OUT_JSON CMD...` runs CMD and prints wall, peak RssAnon and VmHWM (KiB);
# `replay PROM DATA` runs Prometheus until "WAL replay completed" and prints the same.
py=$bench/sampler.py
cat >"$py" <<'EOF'
import json, os, signal, socket, subprocess, sys, tempfile, time
def kib(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for l in f:
                if l.startswith(key + ":"):
                    return int(l.split()[1])
    except OSError:
        return None
def watch(p, done):
    anon = hwm = 0
    t0 = time.perf_counter()
    while p.poll() is None and not done():
        a, h = kib(p.pid, "RssAnon"), kib(p.pid, "VmHWM")
        anon, hwm = max(anon, a or 0), max(hwm, h or 0)
        time.sleep(0.002)
    return time.perf_counter() - t0, anon, hwm
if sys.argv[1] == "mem":
    with open(sys.argv[2], "w") as o:
        p = subprocess.Popen(sys.argv[3:], stdout=o, stderr=subprocess.DEVNULL)
        wall, anon, hwm = watch(p, lambda: False)
    print(json.dumps({"wall": wall, "anon_kib": anon, "hwm_kib": hwm, "rc": p.returncode}))
else:
    prom, data = sys.argv[2], sys.argv[3]
    work = tempfile.mkdtemp(prefix="flush-bench.")
    cfg = os.path.join(work, "prometheus.yml")
    open(cfg, "w").write("global:\n  scrape_interval: 1m\nscrape_configs: []\n")
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    logp = os.path.join(work, "log")
    log = open(logp, "w")
    p = subprocess.Popen([prom, "--config.file=" + cfg, "--storage.tsdb.path=" + data,
                          "--web.listen-address=127.0.0.1:%d" % port,
                          "--storage.tsdb.retention.time=3650d"], stdout=log, stderr=subprocess.STDOUT)
    def done():
        return "WAL replay completed" in open(logp).read()
    wall, anon, hwm = watch(p, done)
    hwm = max(hwm, kib(p.pid, "VmHWM") or 0)
    ok = done()
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(120)
    except subprocess.TimeoutExpired:
        p.kill(); p.wait()
    if not ok:
        sys.stderr.write(open(logp).read()[-2000:])
        sys.exit("no 'WAL replay completed' from Prometheus")
    print(json.dumps({"wall": wall, "anon_kib": anon, "hwm_kib": hwm, "rc": 0}))
EOF

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

say "# walfix flush vs Prometheus 3.5 replay, $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD)$(git diff --quiet -- crates/walfix-flush || echo '+dirty'), $(nproc) cores"
say "# WAL: gen_wal SERIES $samples samples, $labels labels; walfix median of $runs, Prometheus median of $prom_runs"
fit=$bench/fit.txt
: >"$fit"
measure_walfix() { # $1 label, $2 binary, $3 data dir, $4 series
  local w=() a=() h=() r j
  for _ in $(seq "$runs"); do
    rm -rf "$bench/out"
    r=$(python3 "$py" mem "$bench/report.json" "$2" flush --json --output-dir "$bench/out" "$3")
    [ "$(field "$r" rc)" = 0 ] || { cat "$bench/report.json" >&2; echo "walfix flush failed" >&2; exit 1; }
    w+=("$(field "$r" wall)"); a+=("$(field "$r" anon_kib)"); h+=("$(field "$r" hwm_kib)")
  done
  rm -rf "$bench/out"
  j=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); d=r.get("disk",{}); print("%d %d %d %d" % (d.get("spill_bytes", r["spill_bytes"]), sum(b["index_bytes"]+b["chunk_bytes"] for b in r["blocks"]), d.get("peak_bytes_estimate",0), r["samples_written"]))' "$bench/report.json")
  WALL=$(printf '%s\n' "${w[@]}" | median)
  ANON=$(printf '%s\n' "${a[@]}" | median)
  HWM=$(printf '%s\n' "${h[@]}" | median)
  read -r spill blocks peak written <<<"$j"
  say "$(printf '%-22s %9d series  %7.2f s  RssAnon %7.1f MiB  VmHWM %7.1f MiB  spill %6.0f MiB  blocks %6.0f MiB  disk peak est %6.0f MiB  (runs: %s s)' "$1" "$4" "$WALL" "$(echo "$ANON/1024" | bc -l)" "$(echo "$HWM/1024" | bc -l)" "$(echo "$spill/1048576" | bc -l)" "$(echo "$blocks/1048576" | bc -l)" "$(echo "$peak/1048576" | bc -l)" "${w[*]}")"
  echo "$1 $4 $ANON $HWM" >>"$fit"
}
for n in $sizes; do
  data=$bench/wal-$n-$samples-$labels
  if [ ! -d "$data/wal" ]; then
    echo "flush-vs-replay.sh: generating $data" >&2
    rm -rf "$data"
    "$gen" "$data" "$n" "$samples" "$labels"
  fi
  say "## $n series x $samples samples: WAL $(du -sb "$data/wal" | awk '{printf "%.0f MiB", $1/1048576}')"
  cat "$data"/wal/* >/dev/null
  measure_walfix "walfix flush" "$walfix" "$data" "$n"
  fw=$WALL; fa=$ANON; fh=$HWM
  if [ -n "$base" ]; then
    measure_walfix "walfix flush (base)" "$base" "$data" "$n"
  fi
  if [ "$prom_runs" -gt 0 ]; then
    pw=() pa=() ph=()
    for _ in $(seq "$prom_runs"); do
      rm -rf "$bench/replay"; mkdir -p "$bench/replay"; cp -a "$data/wal" "$bench/replay/wal"
      r=$(python3 "$py" replay "$prom" "$bench/replay")
      pw+=("$(field "$r" wall)"); pa+=("$(field "$r" anon_kib)"); ph+=("$(field "$r" hwm_kib)")
    done
    rm -rf "$bench/replay"
    PW=$(printf '%s\n' "${pw[@]}" | median); PA=$(printf '%s\n' "${pa[@]}" | median); PH=$(printf '%s\n' "${ph[@]}" | median)
    say "$(printf '%-22s %9d series  %7.2f s  RssAnon %7.1f MiB  VmHWM %7.1f MiB  (runs: %s s)' "Prometheus 3.5 replay" "$n" "$PW" "$(echo "$PA/1024" | bc -l)" "$(echo "$PH/1024" | bc -l)" "${pw[*]}")"
    say "$(python3 -c 'import sys; fw,fa,fh,pw,pa,ph=map(float,sys.argv[1:]); print("ratio walfix/Prometheus: time %.2f, RssAnon %.2f, VmHWM %.2f" % (fw/pw, fa/pa, fh/ph))' "$fw" "$fa" "$fh" "$PW" "$PA" "$PH")"
  fi
done
say "## fit over the sizes: RSS = a + b * series (least squares)"
python3 - "$fit" <<'EOF' | tee -a "$out"
import sys, collections
rows = collections.defaultdict(list)
for l in open(sys.argv[1]):
    *name, n, anon, hwm = l.split()
    rows[" ".join(name)].append((int(n), int(anon) * 1024, int(hwm) * 1024))
for name, r in rows.items():
    if len(r) < 2:
        continue
    for k, what in ((1, "RssAnon"), (2, "VmHWM")):
        xs = [x[0] for x in r]; ys = [x[k] for x in r]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        a = my - b * mx
        print("%-20s %-8s a = %6.1f MiB, b = %6.1f B/series" % (name, what, a / 1048576, b))
EOF
echo "results: $out" >&2
