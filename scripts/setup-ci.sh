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
