#!/usr/bin/env bash
# build-prometheus-image.sh VERSION [TAG]: localhost/prometheus-deb:VERSION from Debian's prometheus.
#
# Gets the binary with scripts/get-prometheus.sh into target/prometheus/VERSION (as scripts/test.sh
# does; nothing is downloaded if it is there), copies it and the shared libraries `ldd` lists into
# target/podman/ctx-prometheus-VERSION/rootfs, and builds tests/pod/prometheus.Containerfile with
# podman build --pull=never. Prints the tag on stdout. Needs CONTAINERS_CONF (podman-setup.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
v=${1:?usage: $0 VERSION [TAG]}
tag=${2:-localhost/prometheus-deb:$v}
if [ -z "${CONTAINERS_CONF:-}" ]; then
  eval "$(scripts/podman-setup.sh)"
fi
scripts/get-prometheus.sh "$v" "$root/target/prometheus/$v" >/dev/null
bin="$root/target/prometheus/$v/prometheus"

ctx="$root/target/podman/ctx-prometheus-$v"
rm -rf "$ctx"
mkdir -p "$ctx/rootfs/bin" "$ctx/rootfs/etc/prometheus" "$ctx/rootfs/prometheus" "$ctx/rootfs/tmp"
cp "$bin" "$ctx/rootfs/bin/prometheus"
# every absolute path ldd prints: "libc.so.6 => /lib/.../libc.so.6 (0x...)" and "/lib64/ld-... (0x...)";
# the files are copied dereferenced (the loader is a symlink on the host) to the path the binary asks for
libs=$(ldd "$bin" | awk '{for (i=1;i<=NF;i++) if ($i ~ /^\//) print $i}' | sort -u)
[ -n "$libs" ] || { echo "build-prometheus-image.sh: ldd lists no libraries for $bin (static?)" >&2; }
for l in $libs; do
  mkdir -p "$ctx/rootfs$(dirname "$l")"
  cp -L "$l" "$ctx/rootfs$l"
done
# a minimal passwd/group so that Go's os/user (and logs) can name uid/gid 65534
printf 'root:x:0:0:root:/:/nonexistent\nnobody:x:65534:65534:nobody:/nonexistent:/nonexistent\n' >"$ctx/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$ctx/rootfs/etc/group"
# a default config (scrapes nothing); the pods mount their own over it
printf 'global:\n  scrape_interval: 15s\nscrape_configs: []\n' >"$ctx/rootfs/etc/prometheus/prometheus.yml"
chmod 1777 "$ctx/rootfs/tmp"
chown 65534:65534 "$ctx/rootfs/prometheus"
echo "build-prometheus-image.sh: $v with $(echo $libs | tr '\n' ' ')" >&2
cp "$root/tests/pod/prometheus.Containerfile" "$ctx/Containerfile"
podman build --pull=never -q -f "$ctx/Containerfile" -t "$tag" "$ctx" >&2
podman run --rm "$tag" --version 2>&1 | head -1 >&2
echo "$tag"
