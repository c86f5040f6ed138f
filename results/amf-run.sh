#!/usr/bin/env bash
# Alvarez-Melis & Fusi (2021)'s experiments through the table runner (issue 17), on the CPU,
# into results/amf-TABLE-PROFILE. Usage: results/amf-run.sh TABLE PROFILE [table-runner args]
#   TABLE: table1 (model re-purposing, experiments/amf-table1.toml) or fig3 (trajectories,
#          push-forward and fine-tuning, experiments/amf-fig3.toml)
#   PROFILE: quick or paper (experiments/repurpose.toml, experiments/trajectories.toml)
# Resumable: rerun the same command; finished cells (cells/KEY.json), trials and shared flows
# (cells/KEY/trials/, cells/flows/) are kept. Flowed images (*.npz) are git-ignored.
set -euo pipefail
cd "$(dirname "$0")/.."
table=${1:?usage: results/amf-run.sh table1|fig3 quick|paper [args]}
profile=${2:?usage: results/amf-run.sh table1|fig3 quick|paper [args]}
shift 2
data=${WOWFLOW_DATA:-../shared/data}
cargo build --release -p wowflow-cli
./target/release/wowflow experiment table --config "experiments/amf-$table.toml" \
  --profile "$profile" --out "results/amf-$table-$profile" --data-dir "$data" "$@"
