#!/usr/bin/env bash
# tests/pod/run.sh [SCENARIO...]: end-to-end tests of `walfix preflight` as an initContainer in
# pods run by `podman kube play`, in front of real Prometheus from Debian's packages.
#
# Builds the images first (every run): localhost/walfix:dev with scripts/build-image.sh and
# localhost/prometheus-deb:{2.42,3.5} with tests/pod/build-prometheus-image.sh (Prometheus fetched
# by scripts/get-prometheus.sh into target/prometheus/VERSION, as scripts/test.sh does), then runs
# every tests/pod/scenarios/*.sh (or the ones named: `run.sh a c3`), each under a time limit, and
# prints PASS/FAIL per scenario with the reasons. Exit 0 only if every scenario passed.
# Needs root (hostPath volumes owned by other uids, chown, a tmpfs mount) and podman
# (scripts/podman-setup.sh; run here if CONTAINERS_CONF is unset).
#
# Environment: WALFIX_SRC=REV (build-image.sh: build a commit instead of the working tree),
# WALFIX_POD_SKIP_BUILD=1 (reuse the images), WALFIX_POD_TIMEOUT (seconds per scenario, default 120).
# Scenario files, pod YAML and logs of the last run stay in target/podman/pod-tests/.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
[ "$(id -u)" -eq 0 ] || { echo "tests/pod/run.sh: needs root" >&2; exit 1; }
if [ -z "${CONTAINERS_CONF:-}" ]; then
  eval "$(scripts/podman-setup.sh)"
fi
export CONTAINERS_CONF
export WALFIX_IMAGE=localhost/walfix:dev
export PROM_IMAGE=localhost/prometheus-deb
export WORK="$root/target/podman/pod-tests"

cleanup() {
  local p
  for p in $(podman pod ps -a --filter name=walfix-e2e- --format '{{.Name}}' 2>/dev/null); do
    podman pod rm -f -t 0 "$p" >/dev/null 2>&1 || true
  done
  for p in $(podman ps -a --filter name=walfix-e2e- --format '{{.Names}}' 2>/dev/null); do
    podman rm -f -t 0 "$p" >/dev/null 2>&1 || true
  done
  if [ -d "$WORK" ]; then
    for p in $(awk -v w="$WORK/" 'index($2, w) == 1 {print $2}' /proc/mounts); do
      umount "$p" 2>/dev/null || umount -l "$p" 2>/dev/null || true
    done
  fi
}
trap cleanup EXIT
cleanup
rm -rf "$WORK"
mkdir -p "$WORK"

t0=$SECONDS
if [ -z "${WALFIX_POD_SKIP_BUILD:-}" ]; then
  echo "== images"
  scripts/build-image.sh "$WALFIX_IMAGE" >/dev/null
  for v in 2.42 3.5; do
    tests/pod/build-prometheus-image.sh "$v" "$PROM_IMAGE:$v" >/dev/null
  done
  echo "   built in $((SECONDS - t0)) s: $(podman run --rm "$WALFIX_IMAGE" --version)"
fi

scen=()
if [ $# -eq 0 ]; then
  for f in tests/pod/scenarios/*.sh; do scen+=("$f"); done
else
  for s in "$@"; do
    f=$(ls tests/pod/scenarios/"$s"-*.sh 2>/dev/null | head -1)
    [ -n "$f" ] || { echo "tests/pod/run.sh: no scenario $s" >&2; exit 2; }
    scen+=("$f")
  done
fi

pass=() failed=()
for f in "${scen[@]}"; do
  id=$(basename "$f" .sh)
  echo "== $id"
  t=$SECONDS
  set +e
  timeout -k 10 "${WALFIX_POD_TIMEOUT:-120}" "$f"
  rc=$?
  set -e
  if [ $rc -eq 0 ]; then
    echo "PASS $id ($((SECONDS - t)) s)"
    pass+=("$id")
  else
    [ $rc -eq 124 ] && echo "    FAIL: timed out after ${WALFIX_POD_TIMEOUT:-120} s"
    echo "FAIL $id ($((SECONDS - t)) s)"
    failed+=("$id")
  fi
done
echo "== ${#pass[@]} passed, ${#failed[@]} failed${failed:+: ${failed[*]}} ($((SECONDS - t0)) s in all; logs in $WORK)"
[ ${#failed[@]} -eq 0 ]
