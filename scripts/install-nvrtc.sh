#!/usr/bin/env bash
# Installs NVRTC (the CUDA run-time compiler) from the PyPI wheel `nvidia-cuda-nvrtc` into
# target/nvrtc, so the wowflow-cuda tests can compile the GPU kernels to PTX on a machine
# without a GPU or CUDA toolkit. Idempotent: a second run only prints the directory.
#
# Prints the directory holding libnvrtc.so.13 on stdout (nothing else goes to stdout), e.g.
#   export WOWFLOW_NVRTC_DIR="$(scripts/install-nvrtc.sh)"
# The tests read WOWFLOW_NVRTC_DIR (and also look in target/nvrtc by themselves).
# If the wheel cannot be installed (no network, no pip), it says so on stderr and exits 0:
# the PTX test then reports itself as skipped rather than failing the build.
#
# Version: 13.0.x, matching cudarc's `cuda-13000` feature and the CUDA 13.0 driver of the
# project's GPU machines (PTX from a newer NVRTC may not load on an older driver).
set -uo pipefail
cd "$(dirname "$0")/.."
dest="target/nvrtc"
version="${WOWFLOW_NVRTC_VERSION:-13.0.*}"
libdir="$dest/nvidia/cu13/lib"

if [ ! -e "$libdir/libnvrtc.so.13" ]; then
    py=""
    for cand in python3 python; do
        if command -v "$cand" >/dev/null 2>&1 && "$cand" -m pip --version >/dev/null 2>&1; then
            py="$cand"
            break
        fi
    done
    if [ -z "$py" ]; then
        echo "install-nvrtc: no python with pip found; NVRTC not installed (PTX test will be skipped)" >&2
        exit 0
    fi
    echo "install-nvrtc: installing nvidia-cuda-nvrtc==$version into $dest" >&2
    if ! "$py" -m pip install --quiet --disable-pip-version-check --no-deps \
        --target "$dest" --upgrade "nvidia-cuda-nvrtc==$version" >&2; then
        echo "install-nvrtc: pip install failed; NVRTC not installed (PTX test will be skipped)" >&2
        exit 0
    fi
fi

if [ -e "$libdir/libnvrtc.so.13" ]; then
    (cd "$libdir" && pwd)
else
    found="$(find "$dest" -name 'libnvrtc.so.*' ! -name '*.alt.*' 2>/dev/null | head -n1)"
    if [ -n "$found" ]; then
        (cd "$(dirname "$found")" && pwd)
    else
        echo "install-nvrtc: wheel installed but libnvrtc.so not found under $dest" >&2
    fi
fi
exit 0
