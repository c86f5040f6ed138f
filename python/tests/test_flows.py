"""Every method flows from Python: the objective falls, results come back in the caller's
layout and order, the same seed gives the same bits, inputs of any float dtype and memory
order give the same flow."""

import numpy as np
import pytest

import wowflow

from conftest import blobs


@pytest.mark.parametrize(
    "method,kwargs",
    [
        ("sw-mmd", dict(lr=1.0, n_projections=50)),
        ("sw-mmd", dict(lr=0.5, kernel="gaussian", h=2.0, sampler="orthogonal")),
        ("sw-mmd", dict(lr=1.0, sampler="structured")),
        ("otdd", dict(lr=0.3)),
        ("otdd", dict(lr=0.3, dynamics="joint-variable", clustering="kmeans")),
        ("product-mmd", dict(lr=0.3)),
        ("euclid-mmd", dict(lr=0.5)),
        ("dm", dict(lr=0.5)),
    ],
)
def test_every_method_lowers_its_objective(method, kwargs):
    x, y = blobs([12, 9, 10], 2, seed=1)
    xt, yt = blobs([11, 10, 8], 2, seed=2, shift=3.0)
    r = wowflow.flow((x, y), (xt, yt), method=method, steps=30, seed=0, **kwargs)
    assert r.steps == 30 and r.losses.shape == (30,) and r.grad_norms.shape == (30,)
    assert r.losses[-1] < r.losses[0]
    assert r.x.shape == x.shape and r.x.dtype == np.float32 and r.y.shape == y.shape
    assert r.snapshots.shape == (2, *x.shape) and list(r.snapshot_steps) == [0, 30]
    np.testing.assert_array_equal(r.snapshots[0], x)  # the first snapshot is the input, in order
    if kwargs.get("dynamics") == "joint-variable":
        assert {"label_means", "label_covs", "cluster"} <= set(r.extras)


def test_the_same_seed_gives_the_same_bits_whatever_the_input_layout():
    rng = np.random.default_rng(4)
    src64 = rng.normal(size=(3, 25, 5))
    tgt = rng.normal(size=(3, 20, 5)) + 1
    base = wowflow.flow(src64.astype(np.float32), tgt, steps=10, seed=9)
    for src in (src64, np.asfortranarray(src64), src64.astype(np.float32)):
        again = wowflow.flow(src, tgt, steps=10, seed=9)
        np.testing.assert_array_equal(again.x, base.x)
    other = wowflow.flow(src64, tgt, steps=10, seed=10)
    assert not np.array_equal(other.x, base.x)


def test_particles_keep_their_rows_and_labels():
    x, y = blobs([6, 8], 3, seed=5)
    xt, yt = blobs([7, 7], 3, seed=6, shift=2.0)
    r = wowflow.flow((x, y), (xt, yt), steps=0)
    np.testing.assert_array_equal(r.x, x)
    np.testing.assert_array_equal(r.y, y)
    moved = wowflow.flow((x, y), (xt, yt), steps=5, lr=0.5)
    np.testing.assert_array_equal(moved.y, y)
    # Each row moved on its own: row i of the result is the flowed row i of the input.
    assert np.linalg.norm(moved.x - x, axis=1).max() < 5.0


def test_threads_and_clip():
    src = np.random.default_rng(7).uniform(0, 1, size=(2, 20, 4))
    r = wowflow.flow(src, src + 5, steps=20, lr=2.0, clip=(0, 1), threads=1)
    assert r.x.min() >= 0.0 and r.x.max() <= 1.0
    r2 = wowflow.flow(src, src + 5, steps=20, lr=2.0, clip=(0, 1), threads=2)
    np.testing.assert_array_equal(r.x, r2.x)


def test_a_python_loop_retraces_the_flow_bit_for_bit_and_stops_keep_the_last_snapshot():
    rng = np.random.default_rng(8)
    src = rng.normal(size=(3, 20, 2)).astype(np.float32)
    tgt = rng.normal(size=(3, 25, 2)).astype(np.float32) + 2
    objective = wowflow.SwMmd(tgt, n_projections=50)
    x = src.copy()
    for k in range(6):
        _, grad = objective(x, seed=4, step=k)
        x = x - np.float32(0.5) * grad
    r = wowflow.flow(src, tgt, steps=6, lr=0.5, n_projections=50, seed=4)
    np.testing.assert_allclose(x, r.x, rtol=0, atol=1e-6)
    stopped = wowflow.flow(src, tgt, steps=50, save_every=100, callback=lambda s: s.step < 4)
    assert list(stopped.snapshot_steps) == [0, 5] and stopped.stopped


def test_integer_options_are_checked_by_name():
    src = np.zeros((2, 3, 2))
    for kwargs, err, msg in [
        (dict(steps=-1), ValueError, "steps: must be ≥ 0"),
        (dict(steps=2.5), TypeError, "steps: expected an int"),
        (dict(seed=None), TypeError, "explicit seed"),
        (dict(n_projections=0), ValueError, "n_projections: must be ≥ 1"),
        (dict(threads=0), ValueError, "threads: must be ≥ 1"),
        (dict(clip=0.5), TypeError, "clip: expected a pair"),
        (dict(callback=3), TypeError, "callback: expected a callable"),
    ]:
        with pytest.raises(err, match=msg):
            wowflow.flow(src, src + 1, **kwargs)
    with pytest.raises(TypeError, match="tuple"):
        wowflow.sw_mmd([np.zeros((4, 2)), np.arange(4)], src)
