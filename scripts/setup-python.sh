#!/usr/bin/env bash
# The Python package's environment: creates .venv (with the machine's python3, or
# $PYTHON), installs the build tool and what the tests compare against, and builds and
# installs `wowflow` in place (editable: python/wowflow is imported from the checkout).
#
#   scripts/setup-python.sh            # development build (what the tests use)
#   scripts/setup-python.sh --release  # optimised build (benchmarks, real work)
#
# Needs only the Rust toolchain the README's first command needs and Python ≥ 3.9 with venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
pip install "maturin>=1.9,<2" "numpy>=1.21" "pytest>=7" "pot>=0.9" "tqdm>=4"
# JAX, for the interoperability test (wowflow's exact gradient inside a JAX loop); optional.
pip install "jax[cpu]>=0.4" || echo "setup-python: could not install jax; its interop test will be skipped"
# Ray, for the distributed table runner (wowflow.experiments.run_table(executor="ray")) and
# its tests against a local two-node cluster; optional: without it those tests are skipped.
pip install "ray>=2.9" || echo "setup-python: could not install ray; the Ray executor's tests will be skipped"
profile=()
if [ "${1:-}" = "--release" ]; then
  profile=(--release)
fi
(cd python && VIRTUAL_ENV="$PWD/../.venv" ../.venv/bin/maturin develop --quiet "${profile[@]}")
.venv/bin/python -c "import wowflow; print('setup-python: wowflow', wowflow.__version__, 'in .venv')"
