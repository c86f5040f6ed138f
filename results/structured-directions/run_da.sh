#!/usr/bin/env bash
# Quick domain-adaptation curves with Gaussian and structured directions, side by side
# (issue 20): the `quick` profile of experiments/domain-adaptation.toml, identical for both
# arms but for `flow.sampler` (da-quick-structured.toml) and, if given, `flow.seed`.
# About 5–9 min per arm on the 2-core CPU; an arm whose summary.json exists is kept.
# Usage: results/structured-directions/run_da.sh SOURCE [SEED]
#   SOURCE: fashion-mnist, kmnist or usps; SEED: the flow's seed (default 0, the profile's)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${WOWFLOW_BIN:-target/release/wowflow}"
src="${1:-fashion-mnist}"
seed="${2:-0}"
data="${WOWFLOW_DATA:-../shared/data}"
suffix=""
[ "$seed" != 0 ] && suffix="-seed$seed"
for arm in gaussian structured; do
    out="$here/da-quick-$arm-$src$suffix"
    [ -f "$out/summary.json" ] && continue
    config="$(mktemp --suffix=.toml)"
    # The structured file is the quick profile plus `sampler = "structured"`; the Gaussian
    # arm drops that line. Both set the flow's seed.
    sed -e "s/^seed = 0$/seed = SEED/" "$here/da-quick-structured.toml" |
        awk -v arm="$arm" -v seed="$seed" '
            /^\[profile\.quick\.flow\]/ { flow = 1 } /^\[profile\.quick\.(assign|output|classifier)\]/ { flow = 0 }
            arm == "gaussian" && /^sampler = / { next }
            /^seed = SEED$/ { print "seed = " (flow ? seed : 0); next }
            { print }' > "$config"
    "$bin" experiment domain-adaptation --source "$src" --profile quick --config "$config" \
        --data-dir "$data" --out "$out"
    rm -f "$config"
done
