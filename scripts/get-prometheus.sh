#!/usr/bin/env bash
# get-prometheus.sh VERSION DIR
#
# Puts a real Prometheus server binary of VERSION at DIR/prometheus (and the package's promtool at
# DIR/promtool), taken from Debian's own packages:
#   2.42 -> bookworm, 2.53 -> trixie, 3.5 -> sid
# The .deb is fetched with apt-get (its own throw-away package lists, this machine's Debian mirror and
# keyring) and unpacked with dpkg-deb into a temporary directory: nothing is installed system-wide and
# the machine's apt state is not touched. Needs apt-get, apt-cache and dpkg-deb (any Debian/Ubuntu host).
#
# Idempotent: if DIR/prometheus already reports version VERSION.x and DIR/promtool exists, they are kept
# and nothing is downloaded.
# The binary is moved into place atomically, so concurrent callers with the same DIR are safe.
# Prints the binary's version line on stdout; progress and errors go to stderr. Exit 0 on success.
#
# Environment (all optional):
#   DEBIAN_MIRROR       mirror base URI (default: the first .../debian URI in /etc/apt/sources*)
#   GET_PROMETHEUS_TRIES  download attempts (default 3)
#
# Example: scripts/get-prometheus.sh 3.5 /tmp/prom-3.5 && /tmp/prom-3.5/prometheus --version
set -euo pipefail

usage() { echo "usage: $0 VERSION DIR   (VERSION: 2.42, 2.53 or 3.5)" >&2; exit 2; }
[ $# -eq 2 ] || usage
want=$1
dir=$2
case "$want" in
  2.42) suite=bookworm ;;
  2.53) suite=trixie ;;
  3.5)  suite=sid ;;
  *) echo "get-prometheus.sh: unknown version '$want' (use 2.42, 2.53 or 3.5)" >&2; exit 2 ;;
esac

have_version() {  # prints the version line of $1 if it is Prometheus $want.x
  [ -x "$1" ] || return 1
  local line
  line=$("$1" --version 2>&1 | head -n1) || return 1
  case "$line" in
    "prometheus, version $want."*) echo "$line" ;;
    *) return 1 ;;
  esac
}

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if [ -x "$dir/promtool" ] && have_version "$dir/prometheus"; then
  exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/get-prometheus.XXXXXX")
trap 'rm -rf "$work"' EXIT

for t in apt-get apt-cache dpkg-deb; do
  command -v "$t" >/dev/null || { echo "get-prometheus.sh: $t not found (needs a Debian-like host)" >&2; exit 1; }
done
uri=${DEBIAN_MIRROR:-}
if [ -z "$uri" ]; then
  # deb822 sources first, then one-line sources; take the first URI whose path ends in /debian
  uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '$1=="URIs:" {for (i=2;i<=NF;i++) print $i}' \
        | grep -m1 -E '/debian/?$' || true)
fi
if [ -z "$uri" ]; then
  uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
        | awk '$1=="deb" {for (i=2;i<=NF;i++) if ($i !~ /^\[/) {print $i; break}}' | grep -m1 -E '/debian/?$' || true)
fi
[ -n "$uri" ] || { echo "get-prometheus.sh: no Debian mirror found in apt sources (set DEBIAN_MIRROR)" >&2; exit 1; }

mkdir -p "$work/lists/partial" "$work/archives/partial" "$work/etc/preferences.d" "$work/etc/sources.list.d"
echo "deb $uri $suite main" >"$work/sources.list"
: >"$work/status"
aptopts=(-o "Dir::Etc::sourcelist=$work/sources.list" -o "Dir::Etc::sourceparts=$work/etc/sources.list.d"
         -o "Dir::Etc::preferencesparts=$work/etc/preferences.d" -o "Dir::Etc::preferences=$work/etc/preferences"
         -o "Dir::State::Lists=$work/lists" -o "Dir::State::status=$work/status"
         -o "Dir::Cache=$work" -o "Dir::Cache::archives=$work/archives"
         -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
         -o "APT::Sandbox::User=root" -o "Acquire::Languages=none" -o "Acquire::Retries=3"
         -o "Debug::NoLocking=1")
tries=${GET_PROMETHEUS_TRIES:-3}
ok=
for i in $(seq 1 "$tries"); do
  if apt-get "${aptopts[@]}" -qq update >"$work/update.log" 2>&1; then ok=1; break; fi
  echo "get-prometheus.sh: apt-get update for $suite failed (attempt $i/$tries)" >&2
  sleep $((i * 2))
done
[ -n "$ok" ] || { cat "$work/update.log" >&2; exit 1; }
# newest candidate of the wanted major.minor in that suite
ver=$(apt-cache "${aptopts[@]}" madison prometheus \
      | awk -F'|' -v w="$want" '{gsub(/ /,"",$2); if (index($2, w ".")==1) {print $2; exit}}')
[ -n "$ver" ] || { echo "get-prometheus.sh: Debian $suite has no prometheus $want.x" >&2; exit 1; }
echo "get-prometheus.sh: downloading prometheus=$ver from Debian $suite" >&2
ok=
for i in $(seq 1 "$tries"); do
  if (cd "$work/archives" && apt-get "${aptopts[@]}" -qq download "prometheus=$ver") >"$work/download.log" 2>&1; then
    ok=1; break
  fi
  echo "get-prometheus.sh: download failed (attempt $i/$tries)" >&2
  sleep $((i * 2))
done
[ -n "$ok" ] || { cat "$work/download.log" >&2; exit 1; }
deb=
for f in "$work"/archives/prometheus_*.deb; do deb=$f; break; done

[ -f "$deb" ] || { echo "get-prometheus.sh: no .deb at $deb" >&2; exit 1; }
dpkg-deb -x "$deb" "$work/root"
[ -f "$work/root/usr/bin/prometheus" ] || { echo "get-prometheus.sh: $deb has no usr/bin/prometheus" >&2; exit 1; }
install -m 0755 "$work/root/usr/bin/prometheus" "$dir/.prometheus.tmp.$$"
if ! have_version "$dir/.prometheus.tmp.$$" >/dev/null; then
  echo "get-prometheus.sh: unpacked binary does not run or is not version $want:" >&2
  "$dir/.prometheus.tmp.$$" --version >&2 || true
  rm -f "$dir/.prometheus.tmp.$$"
  exit 1
fi
mv -f "$dir/.prometheus.tmp.$$" "$dir/prometheus"
if [ ! -f "$work/root/usr/bin/promtool" ]; then
  # bookworm's prometheus package holds promtool; trixie and sid ship it as its own package `promtool`
  # of the same version
  if (cd "$work/archives" && apt-get "${aptopts[@]}" -qq download "promtool=$ver") >"$work/download-promtool.log" 2>&1; then
    for f in "$work"/archives/promtool_*.deb; do [ -f "$f" ] && dpkg-deb -x "$f" "$work/root"; done
  else
    cat "$work/download-promtool.log" >&2
  fi
fi
if [ -f "$work/root/usr/bin/promtool" ]; then
  install -m 0755 "$work/root/usr/bin/promtool" "$dir/.promtool.tmp.$$"
  mv -f "$dir/.promtool.tmp.$$" "$dir/promtool"
else
  echo "get-prometheus.sh: no promtool $ver in Debian $suite" >&2
fi
have_version "$dir/prometheus"
