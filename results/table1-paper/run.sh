#!/usr/bin/env bash
# Table 1 of Bonet, Vauthier & Korba (2025) at the authors' protocol (experiments/distill.toml,
# profile `paper`: 20 000 flow steps, τ = 1, momentum 0.9, 256 real images per class per step,
# ConvNet-128 trained 1 000 epochs with AdamW 3e-4 and batch 64, 3 flows × 5 networks), on the
# CPU, into results/table1-paper. Resumable: rerun the same command after an interruption;
# finished cells, flows, flow segments and networks are kept (cells/KEY.json,
# cells/KEY/trials/). Usage: run.sh [-- table-runner args]; by default the k = 1 rows of MNIST
# and Fashion-MNIST for DM, SW-MMD and random real images (issue 18), then nothing else —
# pass e.g. `-- --only full-data` for the full-data column.
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ ${1:-} == "--" ]] && shift
args=("$@")
[[ ${#args[@]} -eq 0 ]] && args=(--only k1- --skip aug-embed)
data=${WOWFLOW_DATA:-../shared/data}
cargo build --release -p wowflow-cli
./target/release/wowflow experiment table --config experiments/table1.toml --profile paper \
  --out results/table1-paper --data-dir "$data" "${args[@]}"
