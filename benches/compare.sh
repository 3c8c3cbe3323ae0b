#!/usr/bin/env bash
# benches/compare.sh [options]
#
# walfix against its baselines on a big WAL written by a real Prometheus 3.5, all measured in one
# run: `walfix check` (full: CRC, decompression, decoding), `walfix check --level frames`, `cat` of
# the same files to /dev/null, and Prometheus 3.5 replaying the same WAL (its own "WAL replay
# completed" durations). Page cache warmed first; every walfix/cat figure is the best (and the
# median) of RUNS runs. Peak anonymous memory (RssAnon) of walfix is sampled from /proc every ms.
#
# Options (or environment):
#   --threads "1 2"   walfix --threads values (THREADS)
#   --runs N          timed runs per measurement (RUNS, default 5)
#   --size BYTES      WAL size to generate if none is cached (WAL_BYTES, default 1 GiB)
#   --x4              also check a 4x WAL (the same segments hard-linked 4 times under new numbers)
#   --no-prometheus   skip the two Prometheus replays (~15 s and ~40 s)
#   WALFIX=BINARY     measure this walfix binary instead of building target/release/walfix
#   --base BINARY     also time another walfix binary (e.g. a build of an older commit), for
#                     before/after figures in the same run (WALFIX_BASE)
#
# The WAL is made once by benches/make-wal.sh (Prometheus 3.5 scraping 200k local series every
# second, ~10 min for 1 GiB) and cached under target/bench-wal/data; delete that to regenerate.
# The Prometheus binary comes from scripts/get-prometheus.sh into target/prometheus/3.5.
# Results go to stdout and to target/bench-wal/results-<UTC time>.txt. Not used by any test.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
threads=${THREADS:-"1 2"}
runs=${RUNS:-5}
wal_bytes=${WAL_BYTES:-$((1024 * 1024 * 1024))}
x4=
with_prom=1
base=${WALFIX_BASE:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --size) wal_bytes=$2; shift 2 ;;
    --x4) x4=1; shift ;;
    --no-prometheus) with_prom=; shift ;;
    --base) base=$2; shift 2 ;;
    *) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

bench=$root/target/bench-wal
mkdir -p "$bench"
out=$bench/results-$(date -u +%Y%m%dT%H%M%SZ).txt
say() { echo "$*" | tee -a "$out"; }
m=$root/benches/measure.py

if [ -n "${WALFIX:-}" ]; then
  walfix=$WALFIX  # a walfix binary built elsewhere
else
  echo "compare.sh: building walfix (release)" >&2
  cargo build --release -q -p walfix-cli
  walfix=$root/target/release/walfix
fi
cargo build --release -q -p walfix-benches --bin walfix-prof
prof_bin=$root/target/release/walfix-prof
prom_dir=$root/target/prometheus/3.5
scripts/get-prometheus.sh 3.5 "$prom_dir" >/dev/null
prom=$prom_dir/prometheus

if [ ! -d "$bench/data/wal" ]; then
  rm -rf "$bench/data.tmp"
  benches/make-wal.sh "$prom" "$bench/data" "$wal_bytes" >&2
fi
wal=$bench/data/wal
segs=$(find "$wal" -maxdepth 1 -type f -name '[0-9]*' | sort)
bytes=$(cat $segs | wc -c)

if [ -n "$x4" ]; then
  # 4x the WAL without 4x the disk or page cache: hard links under consecutive segment numbers.
  rm -rf "$bench/x4"
  mkdir -p "$bench/x4/wal"
  i=0
  for _ in 1 2 3 4; do
    for s in $segs; do ln "$s" "$bench/x4/wal/$(printf %08d $i)"; i=$((i + 1)); done
  done
fi

gbs() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) / float(sys.argv[2]) / 1e9))" "$1" "$2"; }
stat_of() {  # JSON from `measure.py time` -> "best median best-cpu"
  python3 -c 'import json,sys,statistics; d=json.loads(sys.argv[1]); w=sorted(d["wall"]); all(r == 0 for r in d["rc"]) or print("exit codes", d["rc"], file=sys.stderr); print("%.4f %.4f %.4f" % (w[0], statistics.median(w), min(d["cpu"])))' "$1"
}
row() {  # row LABEL BEST MEDIAN CPU
  printf '%-44s best %7.3f s  median %7.3f s  %6s GB/s   cpu %6.3f s' "$1" "$2" "$3" "$(gbs "$bytes" "$2")" "$4"
}

say "# walfix benchmarks vs. baselines, $(date -u +%FT%TZ)"
say "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, kernel $(uname -r)"
say "walfix: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates || echo '+changes'), $($walfix --version)"
say "prometheus: $($prom --version 2>&1 | head -n1)"
[ -f "$bench/make-wal-info.txt" ] && say "WAL: $(grep -v '^#' "$bench/make-wal-info.txt" | tr '\n' ' ')"
say "WAL bytes: $bytes in $(echo "$segs" | wc -l) segments ($wal)"
say "runs per figure: $runs (best / median wall time)"

echo "compare.sh: warming the page cache" >&2
for _ in 1 2; do cat $segs >/dev/null; done
$walfix check "$wal" >/dev/null || true

say ""
say "## summary of the WAL (walfix check --json)"
$walfix check --json "$wal" | python3 -c '
import json, sys
for l in sys.stdin:
    o = json.loads(l)
    if o.get("type") == "summary":
        t = o["totals"]
        keep = {k: t[k] for k in ("segments", "bytes", "records", "series", "float_samples", "decoded_bytes", "records_by_type", "compression") if k in t}
        keep["distinct_series"] = o.get("distinct_series")
        keep["exit_code"] = o.get("exit_code")
        print(json.dumps(keep))
' | tee -a "$out" || true

say ""
say "## timings"
say "CPU pressure before (/proc/pressure/cpu): $(head -n1 /proc/pressure/cpu 2>/dev/null || echo n/a)"
read -r cat_best cat_med cat_cpu < <(stat_of "$(python3 "$m" time "$runs" sh -c "cat $(echo $segs) >/dev/null")")
say "$(row "cat > /dev/null" "$cat_best" "$cat_med" "$cat_cpu")"

declare -A full frames
for t in $threads; do
  read -r b md c < <(stat_of "$(python3 "$m" time "$runs" "$walfix" check --threads "$t" "$wal")")
  full[$t]=$b
  say "$(row "walfix check --threads $t" "$b" "$md" "$c")"
  read -r b md c < <(stat_of "$(python3 "$m" time "$runs" "$walfix" check --level frames --threads "$t" "$wal")")
  frames[$t]=$b
  say "$(row "walfix check --level frames --threads $t" "$b" "$md" "$c")"
  if [ -n "$base" ]; then
    read -r b md c < <(stat_of "$(python3 "$m" time "$runs" "$base" check --threads "$t" "$wal")")
    say "$(row "base: check --threads $t" "$b" "$md" "$c")"
    read -r b md c < <(stat_of "$(python3 "$m" time "$runs" "$base" check --level frames --threads "$t" "$wal")")
    say "$(row "base: check --level frames --threads $t" "$b" "$md" "$c")"
  fi
done
# The floor under any full check: snappy decompression of every record and nothing else (records
# assembled in memory beforehand, handed to threads one record at a time).
declare -A ceil
for t in $threads; do
  c=$("$prof_bin" ceiling "$t" "$runs" $segs)
  ceil[$t]=$(echo "$c" | sed -n 's/.*best \([0-9.]*\) s.*/\1/p')
  say "$(printf '%-44s best %7.3f s                     %6s GB/s   (%s)' "snappy alone (ceiling) --threads $t" "${ceil[$t]}" "$(gbs "$bytes" "${ceil[$t]}")" "$(echo "$c" | sed 's/^ceiling --threads [0-9]*: //; s/, best.*//')")"
done
say "CPU pressure after: $(head -n1 /proc/pressure/cpu 2>/dev/null || echo n/a)"

say ""
say "## peak memory of walfix (RssAnon sampled every ~1 ms: heap and stacks, not mapped segment pages; VmHWM: all resident pages)"
memline() {
  local label=$1; shift
  python3 "$m" mem "$@" | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print("%-44s RssAnon %6.1f MiB   VmHWM %7.1f MiB   (%d samples, %.2f s, exit %d)" % (sys.argv[1], d["peak_rss_anon_kib"]/1024, d["peak_vmhwm_kib"]/1024, d["samples"], d["wall"], d["rc"]))' "$label"
}
for t in $threads; do
  say "$(memline "check --threads $t ($(( bytes >> 20 )) MiB)" "$walfix" check --threads "$t" "$wal")"
  say "$(memline "check --level frames --threads $t" "$walfix" check --level frames --threads "$t" "$wal")"
  if [ -n "$base" ]; then
    say "$(memline "base: check --threads $t" "$base" check --threads "$t" "$wal")"
  fi
  if [ -n "$x4" ]; then
    x4bytes=$((bytes * 4))
    say "$(memline "check --threads $t ($(( x4bytes >> 20 )) MiB, x4)" "$walfix" check --threads "$t" "$bench/x4/wal")"
  fi
done
if [ -n "$x4" ]; then
  for t in $threads; do
    read -r b md c < <(stat_of "$(python3 "$m" time 2 "$walfix" check --threads "$t" "$bench/x4/wal")")
    say "$(printf '%-44s best %7.3f s  median %7.3f s  %6s GB/s   cpu %6.3f s' "x4 WAL: check --threads $t" "$b" "$md" "$(gbs "$((bytes * 4))" "$b")" "$c")"
  done
fi

if [ -n "$with_prom" ]; then
  # Two ways to replay the same WAL: the data dir as Prometheus left it (wal/ plus the
  # chunks_head/ it had m-mapped: samples already in those chunks are decoded but not appended
  # again), and wal/ alone (as after copying only the WAL, or losing chunks_head/: every sample
  # is appended again, the full cost of replaying this WAL).
  replay_one() { # $1 label, $2 "full" or "wal-only"
    rm -rf "$bench/replay"
    if [ "$2" = full ]; then
      cp -a "$bench/data" "$bench/replay"
    else
      mkdir -p "$bench/replay"
      cp -a "$bench/data/wal" "$bench/replay/wal"
    fi
    cat "$bench"/replay/wal/* >/dev/null
    rj=$(python3 "$m" replay "$prom" "$bench/replay")
    rm -rf "$bench/replay"
    say "" >&2
    say "## Prometheus 3.5 replaying the same WAL: $1 (no scrape targets)" >&2
    say "$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print("log: " + d["log_line"]); print("total_replay_duration %.2f s, wal_replay_duration %.2f s, peak RssAnon %.0f MiB" % (d["total_replay_duration"], d["wal_replay_duration"], d["peak_rss_anon_kib"]/1024))' "$rj")" >&2
    python3 -c 'import json,sys; print(json.loads(sys.argv[1])["total_replay_duration"])' "$rj"
  }
  prom_full=$(replay_one "copy of the data dir (wal/ + chunks_head/)" full | tail -1)
  prom_walonly=$(replay_one "wal/ alone" wal-only | tail -1)
  say ""
  say "## ratios (same run)"
  for t in $threads; do
    say "$(python3 -c 'import sys; p,q,w,t=float(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]),sys.argv[4]; print("walfix check --threads %s (%.3f s) is %.1fx faster than Prometheus replaying wal/ alone (%.2f s) and %.1fx faster than replaying the data dir with chunks_head/ (%.2f s); target >= 40x" % (t, w, q/w, q, p/w, p))' "$prom_full" "$prom_walonly" "${full[$t]}" "$t")"
  done
fi
say ""
for t in $threads; do
  say "$(python3 -c 'import sys; c,w,t=float(sys.argv[1]),float(sys.argv[2]),sys.argv[3]; print("walfix check --threads %s runs at %.0f%% of the snappy-alone ceiling (%.3f s vs %.3f s)" % (t, 100*c/w, w, c))' "${ceil[$t]}" "${full[$t]}" "$t")"
  if [ -n "$with_prom" ]; then
    say "$(python3 -c 'import sys; c,q,t=float(sys.argv[1]),float(sys.argv[2]),sys.argv[3]; print("  40x of the wal/-alone replay needs <= %.3f s at --threads %s; snappy alone takes %.3f s (%.1fx)" % (q/40, t, c, q/c))' "${ceil[$t]}" "$prom_walonly" "$t")"
  fi
done
for t in $threads; do
  say "$(python3 -c 'import sys; c,f,t=float(sys.argv[1]),float(sys.argv[2]),sys.argv[3]; print("walfix check --level frames --threads %s runs at %.0f%% of cat throughput (target >= 60%%)" % (t, 100*c/f))' "$cat_best" "${frames[$t]}" "$t")"
done
echo "compare.sh: results in $out" >&2
