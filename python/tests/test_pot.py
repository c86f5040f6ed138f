"""Sliced Wasserstein against POT's `ot.sliced_wasserstein_distance` with the same
directions, on clouds of unequal sizes with and without weights."""

import numpy as np
import pytest

import wowflow

ot = pytest.importorskip("ot")


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_sliced_wasserstein_matches_pot(p, weighted):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(37, 5)).astype(np.float32)
    y = (rng.normal(size=(23, 5)) * 1.7 + 0.8).astype(np.float32)
    a = b = None
    if weighted:
        a = rng.uniform(0.2, 2.0, size=37)
        b = rng.uniform(0.2, 2.0, size=23)
    theta = rng.normal(size=(64, 5))
    theta /= np.linalg.norm(theta, axis=1, keepdims=True)
    ours = wowflow.sliced_wasserstein(x, y, a, b, p=p, projections=theta)
    pa = None if a is None else a / a.sum()
    pb = None if b is None else b / b.sum()
    # POT's projections are (d, L): the transpose of ours.
    theirs = ot.sliced_wasserstein_distance(
        x.astype(np.float64), y.astype(np.float64), pa, pb, p=p, projections=theta.T
    )
    assert ours == pytest.approx(float(theirs), rel=2e-5)


def test_random_directions_are_seeded_and_estimate_the_same_distance():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(200, 10)), rng.normal(size=(150, 10)) + 0.5
    one = wowflow.sliced_wasserstein(x, y, n_projections=2000, seed=1)
    assert one == wowflow.sliced_wasserstein(x, y, n_projections=2000, seed=1)
    other = wowflow.sliced_wasserstein(x, y, n_projections=2000, seed=2)
    assert one != other
    pot = ot.sliced_wasserstein_distance(x, y, n_projections=20000, seed=0)
    assert one == pytest.approx(float(pot), rel=0.03)


def test_float32_float64_and_fortran_order_give_the_same_bits():
    rng = np.random.default_rng(5)
    x64, y64 = rng.normal(size=(40, 6)), rng.normal(size=(30, 6))
    x32, y32 = x64.astype(np.float32), y64.astype(np.float32)
    base = wowflow.sliced_wasserstein(x32, y32, seed=4)
    assert wowflow.sliced_wasserstein(x64.astype(np.float32).astype(np.float64), y32, seed=4) == base
    assert wowflow.sliced_wasserstein(np.asfortranarray(x32), y32, seed=4) == base
    assert wowflow.sliced_wasserstein(x32[:, ::1], y32[::1], seed=4) == base
    # A strided view is read in place.
    big = np.zeros((80, 6), np.float32)
    big[::2] = x32
    assert wowflow.sliced_wasserstein(big[::2], y32, seed=4) == base


@pytest.mark.parametrize("d", [3, 40])
def test_structured_directions_estimate_the_same_distance(d):
    # Structured Hadamard blocks (d = 3 pads to the smallest transform, 64; d = 40 to 64
    # as well, restricted rows renormalised) against POT's i.i.d. estimate with many
    # directions: the same distance within Monte-Carlo error, and seeded.
    rng = np.random.default_rng(11)
    scale = np.linspace(0.5, 2.0, d)
    x = rng.normal(size=(300, d)) * scale
    y = rng.normal(size=(250, d)) + 1.0
    ours = [wowflow.sliced_wasserstein(x, y, n_projections=1024, seed=s, sampler="structured")
            for s in range(8)]
    assert ours[0] == wowflow.sliced_wasserstein(
        x, y, n_projections=1024, seed=0, sampler="structured")
    assert ours[0] != ours[1]
    pot = np.mean([ot.sliced_wasserstein_distance(x, y, n_projections=20000, seed=s)
                   for s in range(4)])
    assert np.mean(ours) == pytest.approx(float(pot), rel=0.01)
