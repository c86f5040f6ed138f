"""The package and the `wowflow` command give the same bits for the same data, settings and
seed: flows of every method, their loss curves, and distances."""

import json
import subprocess

import numpy as np
import pytest

import wowflow

from conftest import blobs


def run(cli, *args):
    out = subprocess.run([str(cli), *map(str, args)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    x, y = blobs([14, 9, 11], 4, seed=3)
    xt, yt = blobs([10, 12, 8], 4, seed=4, shift=1.0)  # DM matches classes by id
    np.savez(d / "src.npz", x=x, y=y)
    np.savez(d / "tgt.npz", x=xt, y=yt)
    return d, (x, y), (xt, yt)


METHODS = [
    ("sw-mmd", ["--lr", "0.5", "-L", "40"], dict(lr=0.5, n_projections=40)),
    ("sw-mmd", ["--kernel", "gaussian", "--h", "2", "--momentum", "0.9", "-L", "30", "--target-batch", "5"],
     dict(kernel="gaussian", h=2.0, momentum=0.9, n_projections=30, target_batch=5)),
    ("otdd", ["--lr", "0.2"], dict(lr=0.2)),
    ("otdd", ["--lr", "0.2", "--dynamics", "joint-fixed"], dict(lr=0.2, dynamics="joint-fixed")),
    ("euclid-mmd", ["--lr", "0.5"], dict(lr=0.5)),
    ("dm", ["--lr", "0.5"], dict(lr=0.5)),
    ("product-mmd", ["--lr", "0.2"], dict(lr=0.2)),
]


@pytest.mark.parametrize("method,flags,kwargs", METHODS, ids=[f"{m[0]}-{i}" for i, m in enumerate(METHODS)])
def test_a_flow_gives_the_clis_bits(cli, files, method, flags, kwargs):
    d, source, target = files
    out = d / f"{method}-{len(flags)}.npz"
    run(cli, "flow", "--source", d / "src.npz", "--target", d / "tgt.npz", "--out", out,
        "--method", method, "--steps", 12, "--seed", 11, "--save-every", 4, *flags)
    ref = np.load(out)
    got = wowflow.flow(source, target, method=method, steps=12, seed=11, save_every=4, **kwargs)
    np.testing.assert_array_equal(got.x, ref["x"])
    np.testing.assert_array_equal(got.y, ref["y"])
    np.testing.assert_array_equal(got.losses, ref["loss"])
    np.testing.assert_array_equal(got.grad_norms, ref["grad_norm"])
    np.testing.assert_array_equal(got.snapshots, ref["snapshots"])
    np.testing.assert_array_equal(got.snapshot_steps, ref["snapshot_steps"])
    assert got.steps == 12 and not got.interrupted


@pytest.mark.parametrize("kind", ["wow", "sliced-wow", "otdd", "otdd-gaussian", "sw-mmd"])
def test_a_distance_gives_the_clis_number(cli, files, kind):
    d, source, target = files
    ref = json.loads(run(cli, "distance", "--kind", kind, "--json", "-L", 64, "--seed", 2,
                         d / "src.npz", d / "tgt.npz"))
    got = wowflow.distance(source, target, kind=kind, n_projections=64, seed=2)
    assert got.squared == ref["squared"]
    assert got.distance == ref["distance"]
    if ref["class_costs"] is not None:
        np.testing.assert_array_equal(got.class_costs.ravel(), ref["class_costs"])
    np.testing.assert_array_equal(got.class_weights[0], ref["class_weights"][0])


def test_sw_mmd_is_the_first_step_of_the_clis_flow(cli, files):
    d, source, target = files
    out = d / "one.npz"
    run(cli, "flow", "--source", d / "src.npz", "--target", d / "tgt.npz", "--out", out,
        "--steps", 1, "--seed", 5, "-L", 50)
    value, grad = wowflow.sw_mmd(source, target, n_projections=50, seed=5)
    assert value == np.load(out)["loss"][0]
    # One step of gd at lr 0.1 moved every point by -0.1 × its gradient (float32 rounding).
    moved = np.load(out)["x"] - source[0]
    np.testing.assert_allclose(moved, -0.1 * grad, rtol=1e-4, atol=1e-6)
