#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each, one after the other, on stable Rust (no sanitizer),
# starting from the committed seeds (fuzz/seeds/<target>/) plus whatever an earlier run left in
# fuzz/corpus/<target>/ (gitignored). Installs cargo-fuzz if it is missing. Fails, and leaves
# the input in fuzz/artifacts/<target>/, as soon as a target finds a crash, a hang or an
# out-of-memory. Usage: fuzz/run-all.sh SECONDS [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:?usage: fuzz/run-all.sh SECONDS [TARGET...]}"
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frames record compression roundtrip check_dir repair)

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "run-all: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

# Longest input per target: frames needs several pages, check_dir a few segments.
max_len() {
  case "$1" in
    frames) echo 131072 ;;
    check_dir | repair) echo 70000 ;;
    record) echo 32768 ;;
    *) echo 4096 ;;
  esac
}

cargo fuzz build -s none
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  echo "run-all: $t for ${secs}s" >&2
  # -timeout: one input taking longer than this is a hang; -rss_limit_mb: memory is bounded.
  # The progress lines (NEW, REDUCE, pulse) are dropped to keep CI logs short.
  if ! cargo fuzz run -s none "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -max_len="$(max_len "$t")" -timeout=30 -rss_limit_mb=2048 \
    -print_final_stats=1 2>&1 | { grep -v -E '^(#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)|".*" # Uses: )' || true; }; then
    echo "run-all: $t FAILED: input saved under fuzz/artifacts/$t/; see fuzz/README.md" >&2
    exit 1
  fi
done
echo "run-all: all ${#targets[@]} targets ran ${secs}s each without a crash" >&2
