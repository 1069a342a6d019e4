#!/usr/bin/env bash
# Classification throughput and `safe-migrations check` wall time on 10,000 statements
# (the policy corpus repeated), release build, one thread.
#
#   bench/classify.sh            # uses $CARGO_TARGET_DIR or ./target
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-$PWD/target}
export CARGO_TARGET_DIR=$target

cargo build --quiet --release -p safe-migrations --bin safe-migrations --example classify_bench

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
file=$work/10k.sql

"$target/release/examples/classify_bench" "$file"

best=""
for _ in 1 2 3 4 5; do
    start=$(date +%s%N)
    # Exit status 1 (error-level findings) is expected for the corpus.
    "$target/release/safe-migrations" check "$file" > /dev/null || [ $? -eq 1 ]
    end=$(date +%s%N)
    ms=$(( (end - start) / 1000000 ))
    if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
done
echo "safe-migrations check, one file of 10,000 statements ($(wc -c < "$file") bytes): ${best} ms wall time (best of 5)"
