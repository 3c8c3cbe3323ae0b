#!/usr/bin/env bash
# benches/estimate-vs-check.sh [options] [WAL_DIR]
#
# Whole-command times of `walfix estimate` against `walfix check` on the same WAL, in the same run
# (issue 13: estimate at most 1.5x check): page cache warmed, then RUNS rounds of check, estimate
# (and the --base binary's estimate, if given) one after the other, so that load from other
# processes hits all of them alike. Prints the median and the spread (min..max) of the wall time,
# the ratio of the medians and the median of the per-round ratios, CPU time, max RSS (from
# /usr/bin/time: VmHWM, mapped segment pages included) and the load average before and after.
# With --base, also says whether both estimates print the same JSON (the estimator's own
# `estimator_table_bytes` aside).
#
# Options (or environment):
#   --runs N          rounds (RUNS, default 7)
#   --base BINARY     also time this walfix binary's estimate, e.g. a build of an older commit
#                     (WALFIX_BASE)
#   WALFIX=BINARY     measure this walfix binary instead of building target/release/walfix
#   WAL_DIR           default target/bench-wal/data/wal (made by benches/make-wal.sh; see
#                     benches/compare.sh)
# Needs /usr/bin/time and python3. Results go to stdout and to
# target/bench-wal/estimate-vs-check-<UTC time>.txt. Not used by any test.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
runs=${RUNS:-7}
base=${WALFIX_BASE:-}
wal=
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --base) base=$2; shift 2 ;;
    -*) echo "estimate-vs-check.sh: unknown option $1" >&2; exit 2 ;;
    *) wal=$1; shift ;;
  esac
done
wal=${wal:-$root/target/bench-wal/data/wal}
[ -d "$wal" ] || { echo "estimate-vs-check.sh: no WAL at $wal (benches/make-wal.sh makes one)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "estimate-vs-check.sh: needs /usr/bin/time" >&2; exit 2; }

if [ -n "${WALFIX:-}" ]; then
  walfix=$WALFIX
else
  echo "estimate-vs-check.sh: building walfix (release)" >&2
  cargo build --release -q -p walfix-cli
  walfix=$root/target/release/walfix
fi

mkdir -p "$root/target/bench-wal"
out=$root/target/bench-wal/estimate-vs-check-$(date -u +%Y%m%dT%H%M%SZ).txt
say() { echo "$*" | tee -a "$out"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

say "# walfix estimate vs check, $(date -u +%FT%TZ)"
say "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
say "walfix: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates || echo '+changes'), $walfix"
if [ -n "$base" ]; then say "base: $base"; fi
say "WAL: $wal, $(cat "$wal"/[0-9]* | wc -c) bytes in $(ls "$wal" | grep -c '^[0-9]*$') segments"
say "rounds: $runs (check, estimate${base:+, base estimate} in turn)"

segs=$(find "$wal" -maxdepth 1 -type f -name '[0-9]*' | sort)
for _ in 1 2; do cat $segs >/dev/null; done
"$walfix" check "$wal" >/dev/null || true
"$walfix" estimate "$wal" >/dev/null || true

# One run: "wall user sys maxrss_kib" appended to FILE.
timed() {
  local file=$1; shift
  /usr/bin/time -o "$tmp/t" -f '%e %U %S %M' "$@" >/dev/null 2>&1 || true
  tail -n1 "$tmp/t" >>"$file"
}

say "load before: $(cut -d' ' -f1-3 /proc/loadavg); CPU pressure: $(head -n1 /proc/pressure/cpu 2>/dev/null || echo n/a)"
for _ in $(seq "$runs"); do
  timed "$tmp/check" "$walfix" check "$wal"
  timed "$tmp/estimate" "$walfix" estimate "$wal"
  if [ -n "$base" ]; then timed "$tmp/base" "$base" estimate "$wal"; fi
done
say "load after: $(cut -d' ' -f1-3 /proc/loadavg); CPU pressure: $(head -n1 /proc/pressure/cpu 2>/dev/null || echo n/a)"

python3 - "$tmp" "$base" <<'EOF' | tee -a "$out"
import os, statistics, sys
tmp, base = sys.argv[1], sys.argv[2]
def load(name):
    rows = [list(map(float, l.split())) for l in open(os.path.join(tmp, name)) if l.strip()]
    return rows
def line(label, rows):
    w = [r[0] for r in rows]; cpu = [r[1] + r[2] for r in rows]; rss = [r[3] for r in rows]
    print("%-18s wall median %6.3f s (%.3f .. %.3f)  cpu median %6.3f s  max RSS %6.1f MiB"
          % (label, statistics.median(w), min(w), max(w), statistics.median(cpu), max(rss) / 1024))
    return statistics.median(w)
c = load("check"); e = load("estimate")
mc = line("walfix check", c)
me = line("walfix estimate", e)
if base:
    mb = line("base estimate", load("base"))
pair = [b[0] / a[0] for a, b in zip(c, e)]
print("estimate / check: %.2f (ratio of medians), per-round %.2f .. %.2f (median %.2f)"
      % (me / mc, min(pair), max(pair), statistics.median(pair)))
if base:
    print("base estimate / check: %.2f; estimate / base estimate: %.2f" % (mb / mc, me / mb))
EOF

if [ -n "$base" ]; then
  "$walfix" estimate --json "$wal" >"$tmp/new.json" || true
  "$base" estimate --json "$wal" >"$tmp/old.json" || true
  python3 - "$tmp/new.json" "$tmp/old.json" <<'EOF' | tee -a "$out"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for o in (a, b):
    o["inputs"]["estimator_table_bytes"] = 0
print("estimate JSON: %s as the base's (estimator_table_bytes aside)" % ("the same" if a == b else "DIFFERENT from"))
EOF
fi
say "results: $out"
