#!/usr/bin/env bash
# d. a segment gap (small-clean--gap: 00000002 deleted): init exits 2, Prometheus never starts,
#    the termination message says what is wrong, nothing on the volume changes.
. "$(dirname "$0")/../lib.sh"
setup d 19104
copy_corpus small-clean--gap "$DATA" || finish
chown -R 65534:65534 "$DATA"
before=$(sums "$DATA")
write_pod '["preflight", "/prometheus"]'
play
expect_init 2
expect_prometheus_not_started
if [ -s "$TERMLOG" ]; then
  expect_text "$TERMLOG" 'gap|missing|not sequential' "termination message names the problem"
  expect_text "$TERMLOG" '0*2\b|00000002' "termination message names the missing segment"
  sz=$(stat -c %s "$TERMLOG")
  [ "$sz" -le 4096 ] || fail "termination message is $sz bytes (> 4096)"
else
  fail "termination log ($TERMLOG, mounted at /dev/termination-log) is empty"
fi
[ "$(sums "$DATA")" = "$before" ] || fail "files changed on a refused volume"
finish
