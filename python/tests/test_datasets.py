"""Real datasets through the registry of `wowflow data`, and dataset distances between
MNIST subsets against POT's exact solvers."""

import numpy as np
import pytest

import wowflow

ot = pytest.importorskip("ot")


def test_mnist_subsets_are_seeded_class_balanced_and_in_0_1(data_dir):
    x, y = wowflow.datasets.load("mnist", split="test", per_class=7, seed=3, data_dir=data_dir)
    assert x.shape == (70, 784) and x.dtype == np.float32 and y.dtype == np.int64
    assert list(np.bincount(y)) == [7] * 10 and 0.0 <= x.min() and x.max() <= 1.0
    again, _ = wowflow.datasets.load("mnist", split="test", per_class=7, seed=3, data_dir=data_dir)
    np.testing.assert_array_equal(x, again)
    other, _ = wowflow.datasets.load("mnist", split="test", per_class=7, seed=4, data_dir=data_dir)
    assert not np.array_equal(x, other)
    whole_x, whole_y = wowflow.datasets.load("usps", split="test", data_dir=data_dir)
    assert whole_x.shape == (2007, 256) and whole_y.shape == (2007,)
    assert "fashion-mnist" in wowflow.datasets.names()
    small, _ = wowflow.datasets.load("usps", per_class=3, size=(28, 28), data_dir=data_dir)
    assert small.shape == (30, 784) and 0.0 <= small.min() and small.max() <= 1.0


def test_a_missing_split_names_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="mnist"):
        wowflow.datasets.load("mnist", data_dir=str(tmp_path), split="train")


def pot_wow(a, b):
    """WoW² with POT: exact W₂² between every pair of classes, exact OT between classes."""
    (xa, ya), (xb, yb) = a, b
    ca, cb = np.unique(ya), np.unique(yb)
    cost = np.array([[ot.emd2([], [], ot.dist(xa[ya == i], xb[yb == j])) for j in cb] for i in ca])
    return ot.emd2(np.full(len(ca), 1 / len(ca)), np.full(len(cb), 1 / len(cb)), cost), cost


def test_wow_and_otdd_between_mnist_subsets_agree_with_pot(data_dir):
    xa, ya = wowflow.datasets.load("mnist", per_class=12, seed=1, data_dir=data_dir)
    xb, yb = wowflow.datasets.load("fashion-mnist", per_class=9, seed=2, data_dir=data_dir)
    # Unbalanced: drop a few images of two classes on each side.
    keep_a = ~((ya == 3) & (np.arange(len(ya)) % 12 < 5))
    keep_b = ~((yb == 7) & (np.arange(len(yb)) % 9 < 4))
    a = (xa[keep_a].astype(np.float64), ya[keep_a])
    b = (xb[keep_b].astype(np.float64), yb[keep_b])
    ref, costs = pot_wow(a, b)
    got = wowflow.distance(a, b, kind="wow")
    assert got.squared == pytest.approx(ref, rel=1e-5)
    np.testing.assert_allclose(got.class_costs, costs, rtol=1e-4)
    # OTDD: OT between labeled points (mass 1/N each) for ‖x − x'‖² + W₂²(class, class').
    (x1, y1), (x2, y2) = a, b
    label = {(i, j): costs[i, j] for i in range(10) for j in range(10)}
    ground = ot.dist(x1, x2) + np.array([[label[(i, j)] for j in y2] for i in y1])
    ref_otdd = ot.emd2(np.full(len(y1), 1 / len(y1)), np.full(len(y2), 1 / len(y2)), ground)
    got_otdd = wowflow.distance(a, b, kind="otdd")
    assert got_otdd.squared == pytest.approx(ref_otdd, rel=1e-5)
