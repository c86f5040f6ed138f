#!/usr/bin/env bash
# Early-stopped SW-MMD flows beside the paper-protocol Table 2 cells (experiments/transfer-early.toml;
# RESULTS.md says what they show). Resumable per network: rerun after an interruption.
# Usage: run.sh [TARGET K STEPS ...] (default: fmnist 5 1000 fmnist 5 2500).
set -euo pipefail
cd "$(dirname "$0")/../.."
data=${WOWFLOW_DATA:-../shared/data}
cells=("$@")
[[ ${#cells[@]} -eq 0 ]] && cells=(fmnist 5 1000 fmnist 5 2500)
cargo build --release -p wowflow-cli
for ((i = 0; i < ${#cells[@]}; i += 3)); do
  target=${cells[i]} k=${cells[i + 1]} steps=${cells[i + 2]}
  ./target/release/wowflow experiment transfer --config experiments/transfer-early.toml \
    --profile "early-$steps" --target "$target" --k "$k" --method sw-mmd \
    --out "results/table2-early/$target-k$k-$steps" --data-dir "$data"
done
