"""The functions of ``wowflow``: numpy arrays in, numpy arrays out, the Rust engine inside.

Conventions used throughout (docs/math.md in the repository has the derivations):

* A **labeled dataset** is either an array ``(C, n, d)`` (``C`` classes of ``n`` points in
  ``R^d``) or a tuple ``(x, y)`` with features ``x (N, d)`` and integer labels ``y (N,)``;
  classes may have any sizes. It stands for the measure ``P = sum_c a_c delta(mu_c)``, each
  ``mu_c`` the empirical measure of class ``c``.
* Class weights ``a_c`` are ``"uniform"`` (``1/C``, Bonet et al.'s convention),
  ``"proportional"`` (``n_c/N``: every labeled point ``1/N``, Alvarez-Melis & Fusi's) or an
  array ``(C,)`` in ascending label order. Each function's default is its paper's.
* Features may be float32 or float64, C- or Fortran-ordered; they are read once into the
  engine's float32. Results come back in the caller's layout and row order.
* Precision: the engine computes in float32 (as the CLI and the GPU engine do) and
  accumulates costs and values in float64; float64 inputs are rounded to float32 on the way
  in. Relative agreement with float64 references (POT) is about 1e-7 for data near the
  origin; for data far from it (|x| ≫ spread), centre it first.
* Every random choice (slicing directions, mini-batches) is drawn from ``seed``; the same
  seed gives the same bits as the ``wowflow`` command. Step ``k`` of a flow draws from
  ``(seed, k)``: ``sw_mmd(x, target, seed=s, step=k)`` is exactly what step ``k`` of
  ``flow(..., seed=s)`` evaluates.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple, Union

import numpy as np

from . import _native

ArrayLike = Any
#: A labeled dataset: an array ``(C, n, d)`` or a tuple ``(x (N, d), y (N,))``.
Dataset = Union[np.ndarray, Tuple[ArrayLike, ArrayLike]]
ClassWeights = Union[str, ArrayLike, None]


def _array(a: ArrayLike, name: str) -> np.ndarray:
    """``a`` as a numpy array without copying one that already is (torch/JAX CPU arrays and
    lists are converted)."""
    if isinstance(a, np.ndarray):
        return a
    try:
        out = np.asarray(a)
    except Exception as e:  # noqa: BLE001 - any conversion failure is a type problem
        hint = (
            "; a labeled dataset given as features and labels is a tuple (x, y), not a list"
            if isinstance(a, list) and len(a) == 2
            else ""
        )
        raise TypeError(f"{name}: expected an array, got {type(a).__name__} ({e}){hint}") from None
    if out.dtype == object:
        raise TypeError(f"{name}: expected a numeric array, got {type(a).__name__} of objects")
    if isinstance(a, (list, tuple)) and out.dtype.kind in "iub" and name != "y":
        # Numbers typed by hand: [[0, 1], [2, 3]] means floats.
        out = out.astype(np.float64)
    return out


def _dataset(data: Dataset, name: str) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
    """A dataset as the engine reads it: an array, or a pair (x, y) of arrays."""
    if isinstance(data, tuple):
        if len(data) != 2:
            raise TypeError(
                f"{name}: a tuple dataset must be (x, y), features (N, d) and labels (N,); "
                f"got a tuple of {len(data)} items"
            )
        x, y = data
        return (_array(x, f"{name}[0] (features x)"), _array(y, "y"))
    return _array(data, name)


def _int(value: Any, name: str, minimum: int = 0, optional: bool = False) -> Optional[int]:
    """``value`` as an int ≥ ``minimum``, or a ``TypeError``/``ValueError`` naming ``name``."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        hint = (
            " (wowflow draws every random choice from an explicit seed; pass an int)"
            if name == "seed" and value is None
            else ""
        )
        raise TypeError(f"{name}: expected an int, got {value!r}{hint}")
    if value < minimum:
        raise ValueError(f"{name}: must be ≥ {minimum}, got {value}")
    return int(value)


def _optional(a: Optional[ArrayLike], name: str) -> Optional[np.ndarray]:
    return None if a is None else _array(a, name)


def _weights(w: ClassWeights, name: str) -> Union[str, np.ndarray, None]:
    if w is None or isinstance(w, str):
        return w
    return _array(w, name)


def sliced_wasserstein(
    x: ArrayLike,
    y: ArrayLike,
    a: Optional[ArrayLike] = None,
    b: Optional[ArrayLike] = None,
    n_projections: int = 500,
    p: float = 2.0,
    projections: Optional[ArrayLike] = None,
    seed: int = 0,
    sampler: str = "gaussian",
) -> float:
    r"""Sliced Wasserstein distance between two weighted point clouds.

    .. math::
        SW_p(\alpha, \beta) = \Big(\frac{1}{L}\sum_{l=1}^{L}
            W_p^p(\theta_l\#\alpha, \theta_l\#\beta)\Big)^{1/p}

    with :math:`\alpha = \sum_i a_i \delta_{x_i}`, :math:`\beta = \sum_j b_j \delta_{y_j}` and
    unit directions :math:`\theta_l`. Each one-dimensional :math:`W_p` is exact (the monotone
    coupling of the sorted projections, any sizes and weights); only the directions are
    sampled.

    Parameters
    ----------
    x : array (n, d)
        Source points (float32 or float64; computed in float32, see the module notes).
    y : array (m, d)
        Target points.
    a : array (n,), optional
        Source weights (positive; normalised here). Uniform when None.
    b : array (m,), optional
        Target weights. Uniform when None.
    n_projections : int
        Number L of directions drawn when ``projections`` is None.
    p : float
        The power, p >= 1.
    projections : array (L, d), optional
        Directions, one per row (normalised here). Note that POT's ``projections`` are
        ``(d, L)``: pass their transpose to compare.
    seed : int
        Seed of the directions.
    sampler : {"gaussian", "orthogonal", "structured"}
        i.i.d. uniform directions; blocks of d orthonormal ones (lower variance); or
        structured blocks, rows of :math:`H D_3 H D_2 H D_1` (Walsh–Hadamard ``H`` of size
        ``d'`` = the next power of two >= max(d, 64), random sign diagonals ``D_i``),
        restricted to d coordinates and normalised: nearly orthonormal and applied by fast
        transforms in O(d' log d') per point, with no (L, d) matrix (docs/math.md §3).

    Returns
    -------
    float
        :math:`SW_p`.

    References
    ----------
    Rabin, Peyré, Delon & Bernot, "Wasserstein barycenter and its application to texture
    mixing", SSVM 2011. Bonneel, Rabin, Peyré & Pfister, "Sliced and Radon Wasserstein
    barycenters of measures", JMIV 2015.
    """
    return _native.sliced_wasserstein(
        _array(x, "x"),
        _array(y, "y"),
        _optional(a, "a"),
        _optional(b, "b"),
        _int(n_projections, "n_projections", 1),
        float(p),
        _optional(projections, "projections"),
        _int(seed, "seed"),
        sampler,
    )


def sw_mmd(
    source: Dataset,
    target: Dataset,
    kernel: str = "riesz",
    h: Optional[float] = None,
    r: float = 1.0,
    n_projections: int = 500,
    projections: Optional[ArrayLike] = None,
    seed: int = 0,
    sampler: str = "gaussian",
    source_weights: Optional[ArrayLike] = None,
    target_weights: Optional[ArrayLike] = None,
    class_weights: ClassWeights = None,
    target_class_weights: ClassWeights = None,
    return_grad: bool = True,
    step: int = 0,
) -> Union[float, Tuple[float, np.ndarray]]:
    r"""½ MMD² between two labeled datasets with a sliced-Wasserstein kernel, and its WoW
    gradient.

    .. math::
        F(P) = \tfrac12 \mathrm{MMD}_K^2(P, Q), \qquad
        K(\mu, \nu) = \kappa(SW_2^2(\mu, \nu))

    with :math:`P = \sum_c a_c \delta(\mu_c)` the source and :math:`Q` the target. Kernels
    (``kernel``): ``"riesz"`` :math:`-SW_2^r` (``r`` in (0, 2), the default r = 1 is the
    paper's), ``"gaussian"`` :math:`\exp(-SW_2^2/2h)`, ``"imq"`` :math:`(h + SW_2^2)^{-1/2}`,
    ``"laplace"`` :math:`\exp(-SW_1/h)`.

    The gradient is the **Wasserstein-over-Wasserstein gradient** evaluated at every point,
    :math:`\nabla_{W_W} F(P)(\mu_c)(x_{ci})` (Bonet, Vauthier & Korba 2025, Prop. 3.3): the
    velocity the flow moves point ``x_ci`` with. It is the Euclidean gradient of ``F`` with
    respect to the point divided by its mass ``a_c w_ci`` (``w_ci = 1/n_c`` for unweighted
    classes), so one explicit step is ``x <- x - lr * grad``.

    Parameters
    ----------
    source : array (C, n, d) or tuple (x (N, d), y (N,))
        The dataset that would move.
    target : array (K, m, d) or tuple (x (M, d), y (M,))
        The dataset it is compared with (same d).
    kernel : {"riesz", "gaussian", "imq", "laplace"}
    h : float, optional
        Bandwidth of the Gaussian, IMQ and Laplace kernels (defaults 0.1, 1, 0.5).
    r : float
        Exponent of the Riesz kernel.
    n_projections : int
        Number L of slicing directions drawn from ``seed``.
    projections : array (L, d), optional
        Fixed directions instead (rows normalised here).
    seed : int
        Seed of the directions.
    step : int
        Which step's draw: with ``(seed, step)`` the directions are those step ``step`` of
        ``flow(..., seed=seed)`` (and of ``wowflow flow --seed``) uses, so a Python loop can
        retrace a flow bit for bit.
    sampler : {"gaussian", "orthogonal", "structured"}
        How directions are drawn (see :func:`sliced_wasserstein`).
    source_weights, target_weights : array (N,) / (M,), optional
        Per-point masses, normalised inside each class.
    class_weights : "uniform", "proportional" or array (C,), optional
        Source class weights ``a_c`` (default uniform, the paper's). A string applies to
        the target too unless ``target_class_weights`` is given.
    target_class_weights : "uniform", "proportional" or array (K,), optional
    return_grad : bool
        Also return the gradient.

    Returns
    -------
    value : float
        :math:`F = \tfrac12 \mathrm{MMD}^2`.
    grad : array shaped like the source's features (float32)
        The WoW gradient, in the source's layout and row order (only if ``return_grad``).

    References
    ----------
    C. Bonet, C. Vauthier, A. Korba. "Flowing Datasets with Wasserstein over Wasserstein
    Gradient Flows", ICML 2025.
    """
    return _native.sw_mmd(
        _dataset(source, "source"),
        _dataset(target, "target"),
        kernel,
        h,
        float(r),
        _int(n_projections, "n_projections", 1),
        _optional(projections, "projections"),
        _int(seed, "seed"),
        sampler,
        _optional(source_weights, "source_weights"),
        _optional(target_weights, "target_weights"),
        _weights(class_weights, "class_weights"),
        _weights(target_class_weights, "target_class_weights"),
        return_grad,
        _int(step, "step"),
    )


class SwMmd:
    r"""½ MMD² towards a fixed target, for loops that evaluate it every step.

    ``SwMmd(target, ...)(source, seed, step)`` returns what :func:`sw_mmd` returns, but the
    target is read once and the engine's workspace is kept between calls, so a step called
    from Python costs what the engine costs (within 1 % of ``wowflow bench`` at the median;
    the repository's ``python/benchmarks/bench_step.py``). The options are those of
    :func:`sw_mmd`; ``target_batch`` compares with that many random target points per class
    each call (drawn from the call's ``seed`` and ``step``; a class with fewer points is used
    whole).

    Examples
    --------
    >>> objective = wowflow.SwMmd(target, n_projections=500)
    >>> for k in range(steps):
    ...     value, grad = objective(x, seed=0, step=k)   # the draws of flow(seed=0)
    ...     x = x - lr * grad                             # = flow(..., lr=lr) bit for bit
    """

    def __init__(
        self,
        target: Dataset,
        kernel: str = "riesz",
        h: Optional[float] = None,
        r: float = 1.0,
        n_projections: int = 500,
        projections: Optional[ArrayLike] = None,
        sampler: str = "gaussian",
        target_weights: Optional[ArrayLike] = None,
        target_class_weights: ClassWeights = None,
        target_batch: Optional[int] = None,
    ) -> None:
        self._native = _native.SwMmd(
            _dataset(target, "target"),
            kernel,
            h,
            float(r),
            _int(n_projections, "n_projections", 1),
            _optional(projections, "projections"),
            sampler,
            _optional(target_weights, "target_weights"),
            _weights(target_class_weights, "target_class_weights"),
            _int(target_batch, "target_batch", 1, optional=True),
        )

    def __call__(
        self,
        source: Dataset,
        seed: int = 0,
        step: int = 0,
        source_weights: Optional[ArrayLike] = None,
        class_weights: ClassWeights = None,
        return_grad: bool = True,
    ) -> Union[float, Tuple[float, np.ndarray]]:
        """``(value, grad)`` at ``source`` (the value alone if not ``return_grad``); see
        :func:`sw_mmd` for the shapes."""
        return self._native(
            _dataset(source, "source"),
            _int(seed, "seed"),
            _int(step, "step"),
            _optional(source_weights, "source_weights"),
            _weights(class_weights, "class_weights"),
            return_grad,
        )


class DistanceResult(NamedTuple):
    """A dataset distance and what produced it.

    Attributes
    ----------
    distance : float
        The distance, ``sqrt(squared)``.
    squared : float
        The squared distance: WoW², sliced WoW², OTDD², or MMD² for ``"sw-mmd"`` (which is
        twice :func:`sw_mmd`'s F).
    class_costs : array (C, K) or None
        Class-to-class costs, squared: W₂² (``wow``, ``otdd``), SW₂² (``sliced-wow``), the
        Bures–Wasserstein² between class Gaussians (``otdd-gaussian``); None for ``sw-mmd``.
    plan : array or None
        The outer optimal plan: (C, K) between classes for the WoW kinds, (N, M) between
        labeled points (rows grouped by ascending class id) for the OTDD kinds; None for
        ``sw-mmd``.
    class_ids : (list, list)
        Both datasets' class ids in ascending order: the rows and columns of
        ``class_costs``.
    class_weights : (array (C,), array (K,))
        The class weights used on each side.
    """

    distance: float
    squared: float
    class_costs: Optional[np.ndarray]
    plan: Optional[np.ndarray]
    class_ids: Tuple[list, list]
    class_weights: Tuple[np.ndarray, np.ndarray]


def distance(
    a: Dataset,
    b: Dataset,
    kind: str = "wow",
    n_projections: int = 500,
    seed: int = 0,
    epsilon: Optional[float] = None,
    a_weights: Optional[ArrayLike] = None,
    b_weights: Optional[ArrayLike] = None,
    class_weights: ClassWeights = None,
    b_class_weights: ClassWeights = None,
) -> DistanceResult:
    r"""A distance between two labeled datasets.

    ``kind``:

    * ``"wow"`` — Wasserstein over Wasserstein, :math:`W_{W_2}(P, Q)`: exact :math:`W_2`
      between every pair of classes, exact OT between the class weights.
    * ``"sliced-wow"`` — the same with :math:`SW_2` between classes.
    * ``"otdd"`` — the optimal transport dataset distance (Alvarez-Melis & Fusi 2020) with
      exact label-to-label :math:`W_2`: OT between labeled points for the cost
      :math:`\|x - x'\|^2 + W_2^2(\mu_y, \nu_{y'})`.
    * ``"otdd-gaussian"`` — OTDD with Bures–Wasserstein label costs between class Gaussians
      (weighted mean and biased covariance, ``ddof=0``, of each class; no regularisation).
    * ``"sw-mmd"`` — :math:`\mathrm{MMD}` with the Riesz kernel :math:`-SW_2`.

    Parameters
    ----------
    a, b : array (C, n, d) or tuple (x, y)
        The datasets (same d).
    kind : str
        Which distance (above).
    n_projections : int
        Slicing directions (``sliced-wow``, ``sw-mmd``).
    seed : int
        Seed of the directions.
    epsilon : float, optional
        Entropic regularisation of the outer OT of the OTDD kinds (ignored by the others);
        exact OT when None.
    a_weights, b_weights : array (N,) / (M,), optional
        Per-point masses, normalised inside each class.
    class_weights : "uniform", "proportional" or array (C,), optional
        Class weights of ``a`` (a string applies to ``b`` too). Default: each distance's
        paper — proportional (every labeled point 1/N) for the OTDD kinds, uniform for the
        others. Equal class sizes make both the same.
    b_class_weights : "uniform", "proportional" or array (K,), optional

    Returns
    -------
    DistanceResult
        ``distance``, ``squared``, ``class_costs``, ``plan``, ``class_ids``,
        ``class_weights``.

    References
    ----------
    Bonet, Vauthier & Korba, ICML 2025. Alvarez-Melis & Fusi, "Geometric dataset distances
    via optimal transport", NeurIPS 2020.
    """
    out = _native.distance(
        _dataset(a, "a"),
        _dataset(b, "b"),
        kind,
        _int(n_projections, "n_projections", 1),
        _int(seed, "seed"),
        epsilon,
        _optional(a_weights, "a_weights"),
        _optional(b_weights, "b_weights"),
        _weights(class_weights, "class_weights"),
        _weights(b_class_weights, "b_class_weights"),
    )
    return DistanceResult(**out)


def assign_labels(
    flowed: Dataset,
    target: Dataset,
    method: str = "ot",
    cost: str = "sliced",
    n_projections: int = 500,
    seed: int = 0,
) -> Dict[str, Any]:
    r"""Labels for the classes of a flowed dataset, read off the target it was flowed to.

    ``method="ot"`` solves exact OT between the class weights with the class-to-class cost
    ``cost`` (``"sliced"``: :math:`SW_2^2` with ``n_projections`` directions from ``seed``;
    ``"exact"``: :math:`W_2^2`) and gives each flowed class the target class it sends most
    mass to. ``method="nn"`` lets every flowed point vote with its nearest target point.

    Parameters
    ----------
    flowed : array (C, n, d) or tuple (x, y)
        The flowed dataset (its own labels only group the points).
    target : array (K, m, d) or tuple (x, y)

    Returns
    -------
    dict
        ``labels`` (N,) for every flowed point in its input order, ``class_labels``
        (flowed class ids, the target id each got), ``is_permutation``, ``costs`` (C, K).
    """
    return _native.assign_labels(
        _dataset(flowed, "flowed"),
        _dataset(target, "target"),
        method,
        cost,
        _int(n_projections, "n_projections", 1),
        _int(seed, "seed"),
    )


class FlowStep(NamedTuple):
    """What a ``flow`` callback receives after every step.

    Attributes
    ----------
    step : int
        Index of the step just taken (0-based; a resumed run continues the count).
    total : int
        Steps of the run in all (``flow``'s ``steps``).
    loss : float
        The objective F before the step.
    grad_norm : float
        Root-mean-square of the gradient the step used.
    """

    step: int
    total: int
    loss: float
    grad_norm: float


@dataclass
class FlowResult:
    """What ``flow`` returns, also when a Ctrl-C or the callback stopped it early.

    Attributes
    ----------
    x : array, the source's layout
        Final particles: (C, n, d) for an array source, (N, d) in the input's row order for
        an ``(x, y)`` source; float32.
    y : array (N,), int64
        Each particle's label, flat in the order of ``x``'s rows (row-major over (C, n) for
        an array source): the class ids, or the labels the method assigned (OTDD's joint
        dynamics, product-space MMD).
    losses : array (K,)
        F *before* each step taken (``losses[k]`` is F at the start of step k; F after the
        last step is not evaluated).
    grad_norms : array (K,)
        Root-mean-square of the gradient at each step.
    snapshots : array (S, *x.shape)
        Particles every ``save_every`` steps, plus the first and the last state (also when
        the flow stopped early).
    snapshot_steps : array (S,)
        The number of steps done at each snapshot.
    steps : int
        Steps done in all (a resumed run counts the steps before it).
    interrupted : bool
        True when a Ctrl-C stopped the flow (after a complete step).
    stopped : bool
        True when the flow ended early (Ctrl-C, or the callback returned False).
    seconds : float
        Wall time of the call.
    checkpoint : str or None
        Where the state of a stopped run was saved (pass it as ``resume=``); None when the
        flow finished (``checkpoint_every`` files are written all the same).
    extras : dict
        What some methods add: ``label_means``, ``label_covs`` and (``joint-variable``)
        ``cluster`` for OTDD's joint dynamics; empty for the other methods.
    """

    x: np.ndarray
    y: np.ndarray
    losses: np.ndarray
    grad_norms: np.ndarray
    snapshots: np.ndarray
    snapshot_steps: np.ndarray
    steps: int
    interrupted: bool = False
    stopped: bool = False
    seconds: float = 0.0
    checkpoint: Optional[str] = None
    extras: Dict[str, np.ndarray] = field(default_factory=dict)

    def __repr__(self) -> str:
        state = " (interrupted)" if self.interrupted else (" (stopped)" if self.stopped else "")
        first = self.losses[0] if len(self.losses) else float("nan")
        last = self.losses[-1] if len(self.losses) else float("nan")
        return (
            f"FlowResult(steps={self.steps}{state}, x={self.x.shape}, "
            f"F at the first step {first:.4e}, at the last {last:.4e}, {self.seconds:.1f} s)"
        )


class _TextProgress:
    """A progress line on stderr when tqdm is not installed."""

    def __init__(self, total: int, initial: int) -> None:
        self.total, self.n, self.last = total, initial, 0.0

    def update(self, n: int) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last > 1.0 or self.n >= self.total:
            self.last = now
            sys.stderr.write(f"\rwowflow: step {self.n}/{self.total}")
            sys.stderr.flush()

    def set_postfix(self, **_: Any) -> None:
        pass

    def close(self) -> None:
        sys.stderr.write("\n")


def _progress_bar(total: int, initial: int) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _TextProgress(total, initial)
    return tqdm(total=total, initial=initial, unit="step", desc="wowflow")


_METHOD_KEYS = {
    "kernel", "h", "r", "n_projections", "projections", "sampler", "target_batch", "clip",
    "class_weights", "target_class_weights", "source_weights", "target_weights", "threads",
    "device", "lr_sigma", "dynamics", "label_cost", "epsilon", "label_dim", "clustering",
    "clusters", "dbscan_eps", "dbscan_min_points", "optimizer", "momentum",
}


def flow(
    source: Dataset,
    target: Dataset,
    method: str = "sw-mmd",
    steps: int = 1000,
    lr: float = 0.1,
    optimizer: Optional[str] = None,
    momentum: Optional[float] = None,
    seed: int = 0,
    save_every: Optional[int] = None,
    callback: Optional[Callable[[FlowStep], Optional[bool]]] = None,
    progress: bool = False,
    checkpoint: Optional[str] = None,
    checkpoint_every: Optional[int] = None,
    resume: Optional[str] = None,
    **options: Any,
) -> FlowResult:
    r"""Flows a labeled dataset towards a target by an explicit gradient scheme.

    Every method of ``wowflow flow``:

    * ``"sw-mmd"`` — :math:`F(P) = \tfrac12 \mathrm{MMD}_K^2(P, Q)` with a sliced-Wasserstein
      kernel, by the explicit Wasserstein-over-Wasserstein scheme
      :math:`x_{ci} \leftarrow x_{ci} - \tau \nabla_{W_W} F(P)(\mu_c)(x_{ci})` (Bonet,
      Vauthier & Korba 2025). Options: ``kernel``, ``h``, ``r``, ``n_projections``,
      ``projections``, ``sampler``, ``target_batch`` (as in :func:`sw_mmd`).
    * ``"otdd"`` — the OTDD flows of Alvarez-Melis & Fusi (2021): ``dynamics="feature"``
      (default), ``"joint-fixed"`` or ``"joint-variable"`` (labels recovered by
      ``clustering="dbscan"`` or ``"kmeans"``); ``label_cost``, ``epsilon``, ``label_dim``,
      ``clusters``, ``dbscan_eps``, ``dbscan_min_points``, ``lr_sigma``.
    * ``"product-mmd"`` — MMD on (x, m, Σ) particles (Hua et al. 2023); ``lr_sigma``.
    * ``"euclid-mmd"`` — Euclidean MMD with the Riesz kernel on features, labels ignored.
    * ``"dm"`` — distribution matching: class means matched by class id; ``target_batch``.

    Parameters
    ----------
    source : array (C, n, d) or tuple (x (N, d), y (N,))
        The dataset that moves.
    target : array (K, m, d) or tuple (x (M, d), y (M,))
    method : str
        Which functional (above).
    steps : int
        Steps in all (a resumed run continues up to this total).
    lr : float
        Step size τ.
    optimizer : {"gd", "momentum", "adam"}, optional
        Default: momentum when ``momentum`` is given, else plain gradient descent.
    momentum : float, optional
        Heavy-ball coefficient m (v <- g + m v; x <- x - τ v); 0.9 when
        ``optimizer="momentum"`` is given without it.
    seed : int
        Seed of every random choice (directions, mini-batches): the same seed gives the same
        bits as ``wowflow flow --seed``; step k draws from ``(seed, k)`` (see :func:`sw_mmd`'s
        ``step``).
    save_every : int, optional
        Keep a snapshot every k steps (the first and last are always kept).
    callback : callable(FlowStep) -> bool or None, optional
        Called after every step; returning ``False`` (exactly; ``None``, ``0`` and anything
        else go on) stops the flow and the result so far is returned. An exception it
        raises stops the flow and propagates.
    progress : bool
        Show a progress bar (tqdm if installed, else a line on stderr).
    checkpoint : str, optional
        A file the state is written to when the flow stops early or fails (and every
        ``checkpoint_every`` steps); ``resume=`` continues from it. Missing directories are
        created.
    checkpoint_every : int, optional
    resume : str, optional
        Continue from a checkpoint written under the same settings.
    **options
        Method options: ``kernel``, ``h``, ``r``, ``n_projections``, ``projections``,
        ``sampler``, ``target_batch``, ``clip`` ((lo, hi), e.g. (0, 1) for images),
        ``class_weights``, ``target_class_weights``, ``source_weights``,
        ``target_weights``, ``threads``, ``device`` ("cpu" or "cuda"), ``lr_sigma`` and the
        OTDD options above. Options of another method are accepted and ignored (as on the
        command line), so one settings dict can serve several methods.

    Returns
    -------
    FlowResult
        Final particles ``x`` (in the source's layout and row order), labels ``y``,
        ``losses``, ``grad_norms``, ``snapshots``, ``snapshot_steps``, ``steps``,
        ``interrupted``.

    Notes
    -----
    The loop runs in Rust with the GIL released. Ctrl-C stops it after the current step;
    the partial result is returned with ``interrupted=True`` (and a warning), and written
    to ``checkpoint`` when one is given.

    References
    ----------
    C. Bonet, C. Vauthier, A. Korba, ICML 2025. D. Alvarez-Melis, N. Fusi, "Dataset dynamics
    via gradient flows in probability space", ICML 2021. Hua et al., "Dynamic flows on
    curved space generated by labeled data", IJCAI 2023.
    """
    unknown = set(options) - _METHOD_KEYS
    if unknown:
        raise TypeError(
            f"flow() got unexpected keyword argument(s) {sorted(unknown)}; "
            f"method options are {sorted(_METHOD_KEYS)}"
        )
    steps = _int(steps, "steps")
    seed = _int(seed, "seed")
    save_every = _int(save_every, "save_every", 1, optional=True)
    checkpoint_every = _int(checkpoint_every, "checkpoint_every", 1, optional=True)
    for key, minimum in (("n_projections", 1), ("target_batch", 1), ("threads", 1),
                         ("label_dim", 1), ("clusters", 1), ("dbscan_min_points", 1)):
        if key in options:
            options[key] = _int(options[key], key, minimum, optional=key != "n_projections")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback: expected a callable taking a FlowStep, got {callback!r}")
    if options.get("device") == "cuda" and not _native.HAS_CUDA:
        raise ValueError(
            "device='cuda': this build of wowflow has no CUDA engine (build the package with "
            "the `cuda` feature: in python/, maturin develop --release --features cuda)"
        )
    for key in ("class_weights", "target_class_weights"):
        if key in options:
            options[key] = _weights(options[key], key)
    for key in ("projections", "source_weights", "target_weights"):
        if key in options:
            options[key] = _optional(options[key], key)
    if options.get("clip") is not None:
        clip = options["clip"]
        if not (isinstance(clip, (tuple, list)) and len(clip) == 2):
            raise TypeError(f"clip: expected a pair (lo, hi), e.g. (0, 1) for images, got {clip!r}")
        options["clip"] = (float(clip[0]), float(clip[1]))

    bar = _progress_bar(steps, 0) if progress else None
    def on_step(step: int, total: int, loss: float, grad_norm: float) -> Optional[bool]:
        if bar is not None:
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix(loss=f"{loss:.4e}")
        if callback is not None and callback(FlowStep(step, total, loss, grad_norm)) is False:
            return False
        return None

    try:
        out = _native.flow(
            _dataset(source, "source"),
            _dataset(target, "target"),
            method=method,
            steps=steps,
            lr=float(lr),
            optimizer=optimizer,
            momentum=momentum,
            seed=seed,
            save_every=save_every,
            on_step=on_step if (bar is not None or callback is not None) else None,
            checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
            resume=resume,
            **options,
        )
    finally:
        if bar is not None:
            bar.close()
    core = {k: out.pop(k) for k in (
        "x", "y", "losses", "grad_norms", "snapshots", "snapshot_steps", "steps",
        "interrupted", "stopped", "seconds", "checkpoint")}
    out.pop("first_step", None)
    core["checkpoint"] = None if core["checkpoint"] is None else str(core["checkpoint"])
    result = FlowResult(**core, extras=out)
    if result.interrupted:
        where = (
            f"; its state is saved in {result.checkpoint} (resume={result.checkpoint!r})"
            if result.checkpoint
            else ""
        )
        warnings.warn(
            f"wowflow.flow interrupted after step {result.steps} of {steps}: returning the "
            f"partial result{where}",
            RuntimeWarning,
            stacklevel=2,
        )
    return result
