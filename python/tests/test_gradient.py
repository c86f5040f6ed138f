"""SW-MMD and its WoW gradient against an independent float64 numpy implementation written
from the formulas (docs/math.md §2, §5): unequal class sizes, particle weights, both class
weightings and several kernels."""

import numpy as np
import pytest

import wowflow

from conftest import blobs


def w2_1d(u, wu, v, wv):
    """W_2² between weighted measures on the line and its Euclidean gradient in u, by the
    monotone (quantile) coupling: the union of both CDFs' breakpoints cut [0, 1] into pieces
    on each of which one atom of each side is coupled."""
    iu, iv = np.argsort(u, kind="stable"), np.argsort(v, kind="stable")
    us, vs = u[iu], v[iv]
    cu, cv = np.cumsum(wu[iu]), np.cumsum(wv[iv])
    cu[-1] = cv[-1] = 1.0
    t = np.unique(np.concatenate([[0.0], cu, cv]))
    mid, mass = (t[:-1] + t[1:]) / 2, np.diff(t)
    i = np.minimum(np.searchsorted(cu, mid), len(us) - 1)
    j = np.minimum(np.searchsorted(cv, mid), len(vs) - 1)
    diff = us[i] - vs[j]
    g_sorted = np.zeros_like(us)
    np.add.at(g_sorted, i, 2 * mass * diff)
    g = np.empty_like(g_sorted)
    g[iu] = g_sorted
    return float(np.sum(mass * diff**2)), g


def sw2(x, wx, y, wy, theta):
    """SW_2² with directions theta (L, d) and its Euclidean gradient in x (n, d)."""
    value, grad = 0.0, np.zeros_like(x)
    for th in theta:
        v, g = w2_1d(x @ th, wx, y @ th, wy)
        value += v
        grad += g[:, None] * th[None, :]
    return value / len(theta), grad / len(theta)


KERNELS = {
    "riesz": (lambda s: -np.sqrt(s), lambda s: -0.5 / np.sqrt(s) if s > 0 else 0.0),
    "gaussian": (lambda s: np.exp(-s / (2 * 0.7)), lambda s: -np.exp(-s / (2 * 0.7)) / (2 * 0.7)),
    "imq": (lambda s: (1.0 + s) ** -0.5, lambda s: -0.5 * (1.0 + s) ** -1.5),
}


def reference(x, y, w, xt, yt, wt, theta, kernel, weighting):
    """F = ½MMD² and its WoW gradient (Euclidean gradient / particle mass a_c w_ci), per
    row of x."""
    kappa, dkappa = KERNELS[kernel]

    def classes(x, y, w):
        ids = np.unique(y)
        parts = [(x[y == c], w[y == c] / w[y == c].sum(), np.flatnonzero(y == c)) for c in ids]
        sizes = np.array([len(p[0]) for p in parts], float)
        a = sizes / sizes.sum() if weighting == "proportional" else np.full(len(ids), 1 / len(ids))
        return parts, a

    P, a = classes(x.astype(np.float64), y, w)
    Q, b = classes(xt.astype(np.float64), yt, wt)
    F, grad = 0.0, np.zeros(x.shape, np.float64)
    for c, (xc, wc, rows) in enumerate(P):
        euclid = np.zeros_like(xc)
        for c2, (xc2, wc2, _) in enumerate(P):
            s, g = sw2(xc, wc, xc2, wc2, theta)
            F += 0.5 * a[c] * a[c2] * kappa(s)
            if c2 != c:
                euclid += a[c] * a[c2] * dkappa(s) * g
        for k, (yk, wk, _) in enumerate(Q):
            s, g = sw2(xc, wc, yk, wk, theta)
            F -= a[c] * b[k] * kappa(s)
            euclid -= a[c] * b[k] * dkappa(s) * g
        grad[rows] = euclid / (a[c] * wc)[:, None]
    for k, (yk, wk, _) in enumerate(Q):
        for k2, (yk2, wk2, _) in enumerate(Q):
            F += 0.5 * b[k] * b[k2] * kappa(sw2(yk, wk, yk2, wk2, theta)[0])
    return F, grad


@pytest.mark.parametrize("kernel", ["riesz", "gaussian", "imq"])
@pytest.mark.parametrize("weighting", ["uniform", "proportional"])
@pytest.mark.parametrize("weighted_points", [False, True])
def test_wow_gradient_matches_an_independent_numpy_reference(kernel, weighting, weighted_points):
    x, y = blobs([7, 12, 5], 3, seed=1)
    xt, yt = blobs([9, 6], 3, seed=2, shift=0.7)
    rng = np.random.default_rng(0)
    w = rng.uniform(0.5, 2.0, len(y)) if weighted_points else np.ones(len(y))
    wt = rng.uniform(0.5, 2.0, len(yt)) if weighted_points else np.ones(len(yt))
    theta = rng.normal(size=(16, 3))
    theta /= np.linalg.norm(theta, axis=1, keepdims=True)
    h = {"riesz": None, "gaussian": 0.7, "imq": 1.0}[kernel]
    value, grad = wowflow.sw_mmd(
        (x, y),
        (xt, yt),
        kernel=kernel,
        h=h,
        projections=theta,
        source_weights=w if weighted_points else None,
        target_weights=wt if weighted_points else None,
        class_weights=weighting,
    )
    F, ref = reference(x, y, w, xt, yt, wt, theta.astype(np.float32).astype(np.float64), kernel, weighting)
    assert value == pytest.approx(F, rel=1e-5, abs=1e-7)
    assert grad.shape == x.shape  # the input's layout and row order
    assert np.linalg.norm(grad - ref) <= 1e-4 * np.linalg.norm(ref)


def test_the_array_and_the_pair_layouts_agree():
    rng = np.random.default_rng(9)
    src = rng.normal(size=(3, 20, 4)).astype(np.float32)
    tgt = (rng.normal(size=(2, 15, 4)) + 1).astype(np.float32)
    v1, g1 = wowflow.sw_mmd(src, tgt, seed=5)
    # The same classes as (x, y), rows shuffled: same value, gradient rows follow the rows.
    x, y = src.reshape(60, 4), np.repeat(np.arange(3), 20)
    perm = rng.permutation(60)
    v2, g2 = wowflow.sw_mmd((x[perm], y[perm]), tgt, seed=5)
    assert v1 == v2
    np.testing.assert_array_equal(g2, g1.reshape(60, 4)[perm])


def test_a_gradient_step_lowers_the_objective():
    src = np.random.default_rng(1).normal(size=(2, 30, 2)).astype(np.float32)
    tgt = src + 3.0
    theta = np.random.default_rng(2).normal(size=(50, 2))
    f0, g = wowflow.sw_mmd(src, tgt, projections=theta)
    f1 = wowflow.sw_mmd(src - 0.1 * g, tgt, projections=theta, return_grad=False)
    assert f1 < f0


def test_a_kept_objective_gives_the_one_off_calls_bits_call_after_call():
    x, y = blobs([8, 11, 6], 5, seed=3)
    xt, yt = blobs([9, 7, 10], 5, seed=4, shift=1.0)
    objective = wowflow.SwMmd((xt, yt), kernel="gaussian", h=1.5, n_projections=64)
    for seed in (0, 1, 0):  # the workspace is reused; results depend only on the inputs
        v1, g1 = objective((x, y), seed=seed)
        v2, g2 = wowflow.sw_mmd((x, y), (xt, yt), kernel="gaussian", h=1.5, n_projections=64, seed=seed)
        assert v1 == v2
        np.testing.assert_array_equal(g1, g2)
    # A target mini-batch is drawn from the call's seed.
    batched = wowflow.SwMmd((xt, yt), n_projections=64, target_batch=4)
    assert batched((x, y), seed=5)[0] == batched((x, y), seed=5)[0]
    assert batched((x, y), seed=5)[0] != batched((x, y), seed=6)[0]
    with pytest.raises(ValueError, match="source: has d = 5 features but the target has d = 3"):
        wowflow.SwMmd(np.zeros((2, 4, 3), np.float32))(x[None])
