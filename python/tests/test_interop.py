"""wowflow's gradient inside a JAX loop (examples/python/jax_rings.py): `jax.grad` of the
wrapped objective is wowflow's exact gradient, the loop flows noise to the rings, and the
authors' quantile-approximated gradient is close to the exact one."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import wowflow

jax = pytest.importorskip("jax")
jnp = jax.numpy

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "python" / "jax_rings.py"
spec = importlib.util.spec_from_file_location("jax_rings", EXAMPLE)
jax_rings = importlib.util.module_from_spec(spec)
spec.loader.exec_module(jax_rings)


def test_jax_grad_is_wowflows_exact_gradient():
    target = wowflow.datasets.rings(per_ring=60, seed=0)
    x = wowflow.datasets.gaussian_noise(3, 60, 2, seed=1)
    f = jax_rings.exact_sw_mmd(target, seed=3, n_projections=100)
    value, grad = jax.value_and_grad(f)(jnp.asarray(x))
    ref_value, ref_wow = wowflow.sw_mmd(x, target, n_projections=100, seed=3)
    assert float(value) == pytest.approx(ref_value, rel=1e-6)
    np.testing.assert_allclose(np.asarray(grad) * 3 * 60, ref_wow, rtol=1e-5, atol=1e-7)


def test_the_authors_quantile_gradient_approximates_the_exact_one():
    target = wowflow.datasets.rings(per_ring=100, seed=0)
    x = wowflow.datasets.gaussian_noise(3, 100, 2, seed=1)
    theta = np.random.default_rng(0).normal(size=(200, 2))
    theta /= np.linalg.norm(theta, axis=1, keepdims=True)
    exact_value, exact = wowflow.sw_mmd(x, target, projections=theta)
    approx_value = jax_rings.quantile_sw_mmd(jnp.asarray(x), jnp.asarray(target), jnp.asarray(theta))
    approx = np.asarray(
        jax.grad(jax_rings.quantile_sw_mmd)(jnp.asarray(x), jnp.asarray(target), jnp.asarray(theta))
    ) * 300
    assert float(approx_value) == pytest.approx(exact_value, rel=0.05)
    rel = np.linalg.norm(approx - exact) / np.linalg.norm(exact)
    assert rel < 0.25, rel


def test_a_jax_loop_with_the_exact_gradient_flows_noise_to_the_rings():
    x, losses = jax_rings.flow_rings(steps=60, lr=1.0)
    assert losses[-1] < 0.1 * losses[0]
    assert x.shape == (3, 200, 2) and np.isfinite(x).all()
