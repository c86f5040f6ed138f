"""wowflow — optimal-transport gradient flows of labeled datasets.

A labeled dataset is a distribution over class distributions, ``P = sum_c a_c delta(mu_c)``.
wowflow moves it towards a target dataset ``Q`` by minimising
``F(P) = 1/2 MMD_K^2(P, Q)`` with kernels on the sliced-Wasserstein distance between classes,
by the explicit Wasserstein-over-Wasserstein gradient scheme of Bonet, Vauthier & Korba
(ICML 2025), and computes dataset distances (WoW, OTDD, SW-MMD) — with the exact Rust engine
of the ``wowflow`` command behind flat, numpy-in numpy-out functions:

>>> import numpy as np, wowflow
>>> rng = np.random.default_rng(0)
>>> source, target = rng.normal(size=(3, 50, 2)), rng.normal(size=(3, 40, 2)) + 2
>>> value, grad = wowflow.sw_mmd(source, target, seed=0)   # grad: (3, 50, 2)
>>> result = wowflow.flow(source, target, steps=200, lr=1.0)
>>> wowflow.distance(source, target, kind="wow").distance
...

Functions: :func:`sliced_wasserstein`, :func:`sw_mmd`, :func:`flow`, :func:`distance`,
:func:`assign_labels`, and :class:`SwMmd` (the objective a loop calls every step); modules :mod:`wowflow.datasets` (the registry and cache of
``wowflow data``) and :mod:`wowflow.experiments` (the papers' experiments).

Errors: bad shapes and values raise ``ValueError``, bad types ``TypeError``, missing files
``FileNotFoundError``, failed computations :class:`WowflowError` (a ``RuntimeError``: a flow
whose objective or gradient became NaN or infinite, a GPU call); every message names the
argument and what was expected.

Precision: the engine computes in float32 and accumulates in float64 (float64 inputs are
rounded on the way in); see the notes of ``wowflow._api`` (``help(wowflow.sw_mmd)``).
"""

from . import datasets, experiments
from ._api import (
    DistanceResult,
    FlowResult,
    FlowStep,
    SwMmd,
    assign_labels,
    distance,
    flow,
    sliced_wasserstein,
    sw_mmd,
)
from ._native import WowflowError, __version__

__all__ = [
    "DistanceResult",
    "FlowResult",
    "FlowStep",
    "SwMmd",
    "WowflowError",
    "__version__",
    "assign_labels",
    "datasets",
    "distance",
    "experiments",
    "flow",
    "sliced_wasserstein",
    "sw_mmd",
]
