"""Shared helpers of the Python tests: the repository's paths, the `wowflow` binary (the
CLI the package must agree with bit for bit) and small labeled datasets."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def cli() -> Path:
    """The `wowflow` binary of this checkout (built by `cargo test` before pytest runs; built
    here if it is missing)."""
    explicit = os.environ.get("WOWFLOW_BIN")
    path = Path(explicit) if explicit else REPO / "target" / "debug" / "wowflow"
    if not path.exists():
        subprocess.run(["cargo", "build", "-p", "wowflow-cli"], cwd=REPO, check=True)
    return path


@pytest.fixture(scope="session")
def data_dir() -> str:
    """The shared datasets (`$WOWFLOW_DATA`, then `<repo>/../shared/data`): skipped when
    absent, an error under CI, where they are always laid out (as in the Rust tests)."""
    for candidate in (os.environ.get("WOWFLOW_DATA"), SHARED_DATA):
        if candidate and (Path(candidate) / "mnist").is_dir():
            return str(candidate)
    assert "CI" not in os.environ, "CI run without shared/data"
    pytest.skip("shared/data not found (set WOWFLOW_DATA)")


def blobs(sizes, d, seed, shift=0.0):
    """(x (N, d) float32, y (N,) int64): one Gaussian blob per class, classes of `sizes`,
    rows shuffled so that classes are interleaved."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c, n in enumerate(sizes):
        xs.append(rng.normal(size=(n, d)) * 0.5 + 1.5 * c + shift)
        ys.append(np.full(n, c))
    x, y = np.concatenate(xs), np.concatenate(ys)
    perm = rng.permutation(len(y))
    return x[perm].astype(np.float32), y[perm].astype(np.int64)
