#!/usr/bin/env bash
# podman-setup.sh: make podman usable on this kind of machine (idempotent).
#
#   scripts/podman-setup.sh            # installs if needed, writes the config, prints the export line
#   eval "$(scripts/podman-setup.sh)"  # ... and sets CONTAINERS_CONF in this shell
#   . scripts/podman-setup.sh          # same, when sourced
#
# - installs podman, buildah, runc and catatonit with apt-get if one is missing (CI: root, fresh
#   Debian); catatonit is what podman 4.3 builds its local pause image from for `podman kube play`
#   (pods need an infra container and no registry is reachable to pull k8s.gcr.io/pause);
# - writes target/podman/containers.conf:
#     runtime = "runc"     crun cannot start containers here (hybrid cgroup v1/v2 layout);
#     default_ulimits      podman's defaults raise nofile/nproc, refused without CAP_SYS_RESOURCE;
# - checks that `podman info` works with it.
# Prints `export CONTAINERS_CONF=...` on stdout; progress goes to stderr.
_walfix_podman_setup() {
  local root conf sudo=
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  conf="$root/target/podman/containers.conf"
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  local c missing=
  for c in podman buildah runc catatonit; do command -v "$c" >/dev/null || missing=1; done
  if [ -n "$missing" ]; then
    echo "podman-setup.sh: installing podman buildah runc catatonit (log: /tmp/podman-setup-apt.log)" >&2
    { $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        podman buildah runc catatonit uidmap fuse-overlayfs slirp4netns; } >/tmp/podman-setup-apt.log 2>&1 || {
      cat /tmp/podman-setup-apt.log >&2; echo "podman-setup.sh: apt-get failed" >&2; return 1; }
  fi
  mkdir -p "$(dirname "$conf")" || return 1
  local want
  want='# written by scripts/podman-setup.sh
[containers]
# podman'"'"'s default ulimits need CAP_SYS_RESOURCE, which this machine does not give
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
# crun fails on the hybrid cgroup layout here
runtime = "runc"
'
  if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$(printf '%s' "$want")" ]; then
    printf '%s' "$want" >"$conf.tmp.$$" && mv -f "$conf.tmp.$$" "$conf" || return 1
  fi
  export CONTAINERS_CONF="$conf"
  if ! podman info >/dev/null 2>"$root/target/podman/info.err"; then
    echo "podman-setup.sh: podman info fails with $conf:" >&2
    cat "$root/target/podman/info.err" >&2
    return 1
  fi
  echo "export CONTAINERS_CONF=$conf"
}
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  _walfix_podman_setup
else
  _walfix_podman_setup >/dev/null
fi
