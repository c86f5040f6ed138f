#!/usr/bin/env bash
# One Table 2 quick cell (k-shot transfer, MNIST → TARGET, SW-MMD flow) with Gaussian and
# structured directions, side by side (issue 20). 3 trials × 2 LeNet-5 per arm.
# Usage: results/structured-directions/run_table2_cell.sh [TARGET [K]]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${WOWFLOW_BIN:-target/release/wowflow}"
tgt="${1:-fashion-mnist}"
k="${2:-10}"
data="${WOWFLOW_DATA:-../shared/data}"
for arm in gaussian structured; do
    config=()
    [ "$arm" = structured ] && config=(--config "$here/transfer-quick-structured.toml")
    out="$here/table2-quick-$tgt-k$k-$arm"
    [ -f "$out/result.json" ] && continue  # finished cells are kept
    "$bin" experiment transfer --method sw-mmd --target "$tgt" --k "$k" --profile quick \
        --trials 3 "${config[@]}" --data-dir "$data" --out "$out"
done
