#!/usr/bin/env bash
# f. a memory limit below the replay estimate with --on-oom-risk fail: exit 4 (docs/preflight.md
#    since 5b660ef: "environment not ready ... memory"; it said 2, policy, before), Prometheus
#    never starts. 1: --memory-limit 1Mi; 2: --memory-limit env:PROMETHEUS_MEMORY_LIMIT with the
#    variable set to 1048576 as the downward API would (podman's resourceFieldRef ignores containerName).
. "$(dirname "$0")/../lib.sh"
setup f 19106
copy_corpus small-clean "$DATA" || finish
chown -R 65534:65534 "$DATA"
before=$(sums "$DATA")
say "-- 1: --memory-limit 1Mi"
write_pod '["preflight", "/prometheus", "--on-oom-risk", "fail", "--memory-limit", "1Mi", "--prometheus-version", "2.42"]'
play
expect_init 4   # docs/preflight.md (5b660ef): a will-OOM verdict with --on-oom-risk fail is exit 4
expect_prometheus_not_started
cat "$DIR/init.log" "$TERMLOG" >"$DIR/messages"
expect_text "$DIR/messages" 'memory|oom' "message is about memory"
podman pod rm -f -t 0 "$NAME" >/dev/null 2>&1
: >"$TERMLOG"
say "-- 2: --memory-limit env:PROMETHEUS_MEMORY_LIMIT (=1048576)"
MEMLIMIT=1048576
write_pod '["preflight", "/prometheus", "--on-oom-risk", "fail", "--memory-limit", "env:PROMETHEUS_MEMORY_LIMIT", "--prometheus-version", "2.42"]'
play
expect_init 4   # docs/preflight.md (5b660ef): a will-OOM verdict with --on-oom-risk fail is exit 4
expect_prometheus_not_started
[ "$(sums "$DATA")" = "$before" ] || fail "files changed"
finish
