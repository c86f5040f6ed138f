#!/usr/bin/env bash
# Table 2 of Bonet, Vauthier & Korba (2025) at the paper's protocol (experiments/transfer.toml,
# profile `paper`), on the CPU, into results/table2-paper. Resumable: rerun the same command
# after an interruption; finished cells, flows, flow segments (every 500 steps or 5 minutes, and on Ctrl-C / SIGTERM) and networks
# are kept (cells/KEY.json, cells/KEY/trials/). Usage: run.sh [COLUMN ...] (default:
# target-only sw-mmd); extra arguments after `--` go to `wowflow experiment table`.
set -euo pipefail
cd "$(dirname "$0")/../.."
columns=()
while [[ $# -gt 0 && $1 != "--" ]]; do columns+=("$1"); shift; done
[[ ${1:-} == "--" ]] && shift
[[ ${#columns[@]} -eq 0 ]] && columns=(target-only sw-mmd)
# The datasets: $WOWFLOW_DATA, else the shared directory beside the repository.
data=${WOWFLOW_DATA:-../shared/data}
cargo build --release -p wowflow-cli
for column in "${columns[@]}"; do
  ./target/release/wowflow experiment table --config experiments/table2.toml --profile paper \
    --only "$column" --out results/table2-paper --data-dir "$data" "$@"
done
