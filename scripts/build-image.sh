#!/usr/bin/env bash
# build-image.sh [TAG]: the walfix container image (default tag localhost/walfix:dev).
#
# 1. a static binary: RUSTFLAGS='-C target-feature=+crt-static' cargo build --release
#    --target x86_64-unknown-linux-gnu -p walfix-cli (static-pie; checked with file and ldd);
# 2. a build context holding only that binary (target/podman/ctx-walfix/walfix, stripped);
# 3. podman build --pull=never -f Containerfile (FROM scratch, USER 65534:65534, ENTRYPOINT /walfix).
#
# Needs podman and CONTAINERS_CONF (scripts/podman-setup.sh writes and prints it; if unset, this
# script runs podman-setup.sh itself). Prints the tag on stdout; progress goes to stderr.
# Environment:
#   WALFIX_SRC=REV      build the committed tree of git revision REV (e.g. HEAD) instead of the
#                       working tree: `git archive REV` unpacked in target/podman/src (for a shared
#                       checkout where others have uncommitted edits); default: the working tree.
#   WALFIX_SKIP_CARGO=1 reuse the binary already built.
# cargo uses its own target dir, target/podman/cargo, so it never waits for (or invalidates) the
# builds others run in target/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tag=${1:-localhost/walfix:dev}
triple=x86_64-unknown-linux-gnu
export CARGO_TARGET_DIR="$root/target/podman/cargo"
bin="$CARGO_TARGET_DIR/$triple/release/walfix"
src=$root
if [ -n "${WALFIX_SRC:-}" ]; then
  rev=$(git rev-parse --verify "${WALFIX_SRC}^{commit}")
  src="$root/target/podman/src"
  if [ "$(cat "$src/.walfix-rev" 2>/dev/null)" != "$rev" ]; then
    rm -rf "$src.tmp" && mkdir -p "$src.tmp"
    git archive "$rev" | tar -x -C "$src.tmp"
    echo "$rev" >"$src.tmp/.walfix-rev"
    # keep mtimes of unchanged files so cargo's fingerprints stay valid: rsync-like copy by content
    mkdir -p "$src"
    (cd "$src.tmp" && find . -type f) | while read -r f; do
      cmp -s "$src.tmp/$f" "$src/$f" 2>/dev/null || { mkdir -p "$(dirname "$src/$f")"; cp -p "$src.tmp/$f" "$src/$f"; }
    done
    (cd "$src" && find . -type f ! -path './.walfix-rev') | while read -r f; do
      [ -e "$src.tmp/$f" ] || rm -f "$src/$f"
    done
    cp "$src.tmp/.walfix-rev" "$src/.walfix-rev"
    rm -rf "$src.tmp"
  fi
  echo "build-image.sh: building commit $rev ($(git log -1 --format=%s "$rev" | cut -c1-70))" >&2
fi

if [ -z "${CONTAINERS_CONF:-}" ]; then
  eval "$(scripts/podman-setup.sh)"
fi

if [ -z "${WALFIX_SKIP_CARGO:-}" ]; then
  echo "build-image.sh: cargo build (static, $triple)" >&2
  (cd "$src" && RUSTFLAGS='-C target-feature=+crt-static' \
     cargo build --release --locked --target "$triple" -p walfix-cli >&2)
fi
[ -x "$bin" ] || { echo "build-image.sh: no binary at $bin" >&2; exit 1; }

# static? `file` says "static-pie linked" (or "statically linked"); ldd says "statically linked"
# or "not a dynamic executable" depending on the glibc version; any "=>" line means shared libs.
finfo=$(file -b "$bin")
case "$finfo" in
  *static-pie\ linked*|*statically\ linked*) ;;
  *) echo "build-image.sh: $bin is not static: $finfo" >&2; exit 1 ;;
esac
lddout=$(ldd "$bin" 2>&1 || true)
if printf '%s\n' "$lddout" | grep -q '=>'; then
  echo "build-image.sh: $bin links shared libraries:" >&2
  printf '%s\n' "$lddout" >&2
  exit 1
fi
echo "build-image.sh: $bin: $finfo; ldd: $(printf '%s' "$lddout" | tr -s '\n\t' '  ')" >&2

ctx=target/podman/ctx-walfix
rm -rf "$ctx"
mkdir -p "$ctx"
if command -v strip >/dev/null; then
  strip -o "$ctx/walfix" "$bin"
else
  cp "$bin" "$ctx/walfix"
fi
chmod 0755 "$ctx/walfix"
# the binary must run on its own, outside any image, before it goes in one
"$ctx/walfix" --version >&2

podman build --pull=never -q -f "$root/Containerfile" -t "$tag" "$ctx" >&2
podman run --rm "$tag" --version >&2
echo "$tag"
