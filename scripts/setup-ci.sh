#!/usr/bin/env bash
# Optional tools the test suite uses when present (each test that needs one prints a
# SKIPPED line when it is missing, so this script failing never fails the suite):
#  - numpy, for the independent cross-check of the gradient (scripts/crosscheck_numpy.py)
#    and the npy/npz interoperability tests.
set -u
if ! python3 -c "import numpy" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check numpy \
    || echo "setup-ci: could not install numpy; the numpy cross-checks will be skipped"
fi
#  - NVRTC from PyPI (into target/nvrtc), so the CUDA kernels are compiled to PTX on CI
#    machines without a GPU (crates/wowflow-cuda tests find it there).
bash "$(dirname "$0")/install-nvrtc.sh" >/dev/null \
  || echo "setup-ci: could not install NVRTC; the PTX compile test will be skipped"
