#!/usr/bin/env bash
# c. a torn tail (truncated newest segment): preflight repairs it, Prometheus starts and logs
#    no WAL repair or corruption, and replays every series.
#    c: small-clean--trunc-tail with 2.42 (which wrote it); c3: v3-snappy-small--trunc-tail-unaligned with 3.5.
. "$(dirname "$0")/../lib.sh"
case "$(basename "$0")" in
  c3-*) setup c3 19113; corpus=v3-snappy-small--trunc-tail-unaligned; PROM_VERSION=3.5; series=510 ;;
  *)    setup c 19103;  corpus=small-clean--trunc-tail;               PROM_VERSION=2.42; series=410 ;;
esac
copy_corpus "$corpus" "$DATA" || finish
chown -R 65534:65534 "$DATA"
write_pod '["preflight", "/prometheus"]'
play
expect_init 0
if expect_prometheus_ready; then
  sleep 1
  prom_log
  if grep -Ei 'repair|corrupt' "$DIR/prometheus.log" >"$DIR/prom-repair.txt"; then
    fail "Prometheus logged: $(head -c 400 "$DIR/prom-repair.txt" | tr '\n' ' ')"
  else
    say "Prometheus log: no repair/corruption line"
  fi
  n=$(head_series "$PORT")
  say "head series after replay: ${n:-?}"
  [ "${n:-0}" -ge "$series" ] || fail "Prometheus replayed ${n:-?} series, expected >= $series"
fi
[ -d "$DATA/walfix-backup" ] && say "backup: $(cd "$DATA" && find walfix-backup -type f | tr '\n' ' ')"
finish
