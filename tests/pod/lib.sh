# tests/pod/lib.sh: helpers sourced by every tests/pod/scenarios/*.sh.
# A scenario runs as its own process: `scenarios/X.sh` with WORK, WALFIX_IMAGE and PROM_IMAGE
# exported by run.sh (it also works alone once the images exist). It prints what it sees, calls
# `fail REASON` for each failed assertion and ends with `finish` (exit 0 = PASS, 1 = FAIL).
# Everything it creates lives in $WORK/$ID; pods are named walfix-e2e-$ID; a trap removes the pod,
# extra containers (cleanup_ctr) and mounts (cleanup_mount) however the script ends.
set -uo pipefail
POD_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$POD_DIR/../.." && pwd)
CORPORA="$ROOT/testdata/corpora"
: "${WALFIX_IMAGE:=localhost/walfix:dev}"
: "${PROM_IMAGE:=localhost/prometheus-deb}"
: "${WORK:=$ROOT/target/podman/pod-tests}"
if [ -z "${CONTAINERS_CONF:-}" ]; then
  export CONTAINERS_CONF="$ROOT/target/podman/containers.conf"
fi

_cleanup_ctrs=()
_cleanup_mounts=()
_reasons=()

# setup ID PORT: the scenario's dir, data dir, config (Prometheus scrapes itself), termination log
setup() {
  ID=$1
  PORT=$2
  NAME="walfix-e2e-$ID"
  DIR="$WORK/$ID"
  rm -rf "$DIR"
  mkdir -p "$DIR/config"
  DATA="$DIR/data"
  CONFIG="$DIR/config"
  TERMLOG="$DIR/termination-log"
  : >"$TERMLOG"
  chmod 0666 "$TERMLOG"   # the init container may run as 65534 or 0
  cat >"$CONFIG/prometheus.yml" <<EOC
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: self
    static_configs: [{targets: ["127.0.0.1:$PORT"]}]
EOC
  chmod 0755 "$CONFIG"; chmod 0644 "$CONFIG/prometheus.yml"
  # defaults for write_pod
  INIT_UID=65534
  INIT_GID=65534
  MEMLIMIT=0
  PROM_VERSION=2.42
  MAIN_NAME=prometheus
  MAIN_IMAGE=
  MAIN_ARGS=
  podman pod rm -f -t 0 "$NAME" >/dev/null 2>&1 || true
  trap _cleanup EXIT
  trap 'exit 130' INT TERM
  SECONDS=0
}

_cleanup() {
  podman pod rm -f -t 0 "$NAME" >/dev/null 2>&1 || true
  local c m
  for c in "${_cleanup_ctrs[@]}"; do podman rm -f -t 0 "$c" >/dev/null 2>&1 || true; done
  for m in "${_cleanup_mounts[@]}"; do
    mountpoint -q "$m" && { umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; }
  done
}
cleanup_ctr() { _cleanup_ctrs+=("$1"); }
cleanup_mount() { _cleanup_mounts+=("$1"); }

say() { printf '    %s\n' "$*"; }
fail() { _reasons+=("$*"); printf '    FAIL: %s\n' "$*"; }
finish() {
  if [ ${#_reasons[@]} -eq 0 ]; then
    say "(${SECONDS}s)"
    exit 0
  fi
  say "(${SECONDS}s)"
  printf '%s\n' "${_reasons[@]}" >"$DIR/reasons"
  exit 1
}

# copy_corpus CORPUS DEST: the corpus's WAL dirs (wal/, wbl/; not its notes) into DEST, a new data dir
copy_corpus() {
  local src="$CORPORA/$1" dest=$2 d
  [ -d "$src/wal" ] || { fail "no corpus $src"; return 1; }
  mkdir -p "$dest"
  for d in wal wbl; do
    [ -d "$src/$d" ] && cp -a "$src/$d" "$dest/$d"
  done
  return 0
}

prom_args() {  # JSON list of Prometheus's args
  printf '["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus", "--web.listen-address=127.0.0.1:%s"%s]' \
    "$PORT" "${1:+, $1}"
}

# write_pod INIT_ARGS_JSON: $DIR/pod.yaml from pod.yaml.in and the variables set by setup/the scenario
write_pod() {
  local init_args=$1
  local main_image=${MAIN_IMAGE:-$PROM_IMAGE:$PROM_VERSION}
  local main_args=${MAIN_ARGS:-$(prom_args)}
  sed -e "s|@NAME@|$NAME|g" -e "s|@WALFIX_IMAGE@|$WALFIX_IMAGE|g" \
      -e "s|@INIT_ARGS@|$init_args|g" -e "s|@INIT_UID@|$INIT_UID|g" -e "s|@INIT_GID@|$INIT_GID|g" \
      -e "s|@MEMLIMIT@|$MEMLIMIT|g" -e "s|@MAIN_NAME@|$MAIN_NAME|g" -e "s|@MAIN_IMAGE@|$main_image|g" \
      -e "s|@MAIN_ARGS@|$main_args|g" -e "s|@DATA@|$DATA|g" -e "s|@CONFIG@|$CONFIG|g" \
      -e "s|@TERMLOG@|$TERMLOG|g" -e "s|@PORT@|$PORT|g" \
      "$POD_DIR/pod.yaml.in" >"$DIR/pod.yaml"
}

# play: podman kube play; PLAY_RC is its exit code (125 when an init container exits non-zero)
play() {
  podman kube play "$DIR/pod.yaml" >"$DIR/play.log" 2>&1
  PLAY_RC=$?
  podman logs "$NAME-walfix" >"$DIR/init.log" 2>&1 || true
  INIT_RC=$(podman inspect "$NAME-walfix" --format '{{.State.ExitCode}}' 2>/dev/null || echo none)
  say "kube play exit $PLAY_RC; init container exit $INIT_RC"
  say "init output (last lines):"
  tail -n 12 "$DIR/init.log" | sed 's/^/      | /'
  if [ -s "$TERMLOG" ]; then
    say "termination log: $(head -c 600 "$TERMLOG")"
  else
    say "termination log: (empty)"
  fi
}

# started CTR: 0 if the container has ever started
started() {
  local at
  at=$(podman inspect "$1" --format '{{.State.StartedAt}}' 2>/dev/null) || return 1
  case "$at" in 0001-01-01*|"") return 1 ;; esac
  return 0
}
state() { podman inspect "$1" --format '{{.State.Status}} exit={{.State.ExitCode}}' 2>/dev/null || echo "no such container"; }

# wait_ready PORT SECONDS: Prometheus answers /-/ready
wait_ready() {
  local i
  for ((i = 0; i < $2 * 4; i++)); do
    curl -fsS -m 2 "http://127.0.0.1:$1/-/ready" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  return 1
}
# wait_exit CTR SECONDS
wait_exit() {
  local i s
  for ((i = 0; i < $2 * 4; i++)); do
    s=$(podman inspect "$1" --format '{{.State.Status}}' 2>/dev/null) || return 1
    [ "$s" = exited ] || [ "$s" = stopped ] && return 0
    sleep 0.25
  done
  return 1
}
prom_log() { podman logs "$NAME-prometheus" >"$DIR/prometheus.log" 2>&1; }
# head_series PORT: numSeries from /api/v1/status/tsdb
head_series() {
  curl -fsS -m 5 "http://127.0.0.1:$1/api/v1/status/tsdb" 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["headStats"]["numSeries"])' 2>/dev/null
}

# expect_init CODE: the init container's exit code
expect_init() {
  [ "$INIT_RC" = "$1" ] || fail "init container exited $INIT_RC, expected $1"
}
expect_prometheus_ready() {
  if ! started "$NAME-prometheus"; then
    fail "prometheus container never started ($(state "$NAME-prometheus"))"
    return 1
  fi
  if ! wait_ready "$PORT" 40; then
    prom_log
    fail "prometheus not ready on :$PORT after 40 s ($(state "$NAME-prometheus")); log tail: $(tail -n 3 "$DIR/prometheus.log" | tr '\n' ' ')"
    return 1
  fi
  say "prometheus ready on :$PORT"
}
expect_prometheus_not_started() {
  if started "$NAME-prometheus"; then
    fail "prometheus container started ($(state "$NAME-prometheus")), expected it never to start"
  else
    say "prometheus container never started ($(state "$NAME-prometheus"))"
  fi
}
# expect_text FILE REGEX WHAT: FILE matches the extended REGEX (case-insensitive)
expect_text() {
  grep -Eiq -- "$2" "$1" || fail "$3: no match for /$2/ in $(basename "$1"): $(head -c 400 "$1" | tr '\n' ' ')"
}
# stat_list DIR: "uid gid mode relative-path" of every file and dir, sorted
stat_list() { (cd "$1" && find . -printf '%U %G %m %P\n' | sort -k4); }
# sums DIR: sha256 of every file under DIR, relative paths
sums() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum); }
