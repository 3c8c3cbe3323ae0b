#!/usr/bin/env bash
# decoders.sh [N] [SEGMENT...]
#
# Issue 15's decoder comparison, in one run on the same records: snap (what walfix uses),
# snipsnap (pure Rust) and Google's C++ snappy 1.3.1 (the sources bundled in the snappy_src
# crate, fetched from crates.io and compiled here with g++), one thread, best of N passes each.
# Every decoder's output is checked against snap's (byte for byte for snipsnap, an FNV-1a hash of
# all outputs for C++). Default input: segments 1-2 of the benchmark WAL (benches/make-wal.sh,
# real Prometheus 3.5 records). Not used by any test; needs cargo and g++.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-7}
shift || true
if [ $# -eq 0 ]; then
  set -- "$root"/target/bench-wal/data/wal/00000001 "$root"/target/bench-wal/data/wal/00000002
fi
for f in "$@"; do [ -f "$f" ] || { echo "decoders.sh: no such segment: $f (run benches/make-wal.sh)" >&2; exit 1; }; done
work=$(mktemp -d "${TMPDIR:-/tmp}/decoders.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The C++ sources: the snappy_src crate at a pinned version, through cargo's own fetch.
mkdir -p "$work/fetch/src"
cat > "$work/fetch/Cargo.toml" <<'TOML'
[package]
name = "fetch-snappy-src"
version = "0.0.0"
edition = "2021"
[dependencies]
snappy_src = "=0.2.7"
[workspace]
TOML
: > "$work/fetch/src/lib.rs"
cargo fetch -q --manifest-path "$work/fetch/Cargo.toml"
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/snappy_src-0.2.7+snappy.1.3.1/snappy | head -n1)
[ -f "$src/snappy.cc" ] || { echo "decoders.sh: snappy sources not found" >&2; exit 1; }
mkdir -p "$work/gen"
sed -e 's/${HAVE_SYS_UIO_H_01}/1/' -e 's/${PROJECT_VERSION_MAJOR}/1/' \
    -e 's/${PROJECT_VERSION_MINOR}/3/' -e 's/${PROJECT_VERSION_PATCH}/1/' \
    "$src/snappy-stubs-public.h.in" > "$work/gen/snappy-stubs-public.h"
build() { # NAME FLAGS...
  local name=$1; shift
  g++ -std=c++14 "$@" -I"$src" -I"$work/gen" "$root/benches/snappy-cpp/bench.cc" \
    "$src/snappy.cc" "$src/snappy-sinksource.cc" "$src/snappy-stubs-internal.cc" -o "$work/$name"
}
# As CMake's Release build of snappy compiles it; and as snappy_src's build.rs does under
# `cargo build --release` (cc: -O3, assertions on); and for this CPU (BMI2 paths).
build release -O3 -DNDEBUG
build cc-crate -O3
build native -O3 -DNDEBUG -march=native

cargo build -q --release -p walfix-benches --bin walfix-prof --manifest-path "$root/Cargo.toml"
prof=${CARGO_TARGET_DIR:-$root/target}/release/walfix-prof
echo "# decoders.sh $(date -u +%FT%TZ) $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'), N=$n, load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$prof" payloads "$work/payloads.bin" "$@"
# Alternate the decoders twice, so drift on a shared machine hits each of them.
for round in 1 2; do
  "$prof" decoders "$n" "$@"
  for b in release cc-crate native; do
    printf '%-9s ' "$b"; "$work/$b" "$n" "$work/payloads.bin"
  done
done
