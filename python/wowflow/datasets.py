"""The datasets of ``wowflow data``: the same registry, search path and checksums.

Files are looked for in ``data_dir`` (if given), then ``$WOWFLOW_DATA``, then the cache
directory (``wowflow data fetch NAME`` downloads there). A missing file raises
``FileNotFoundError`` listing every place searched.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from . import _native


def names() -> List[str]:
    """The registered datasets: ``mnist``, ``fashion-mnist``, ``kmnist``, ``usps``, ...."""
    return list(_native.names())


def load(
    name: str,
    split: str = "test",
    per_class: Optional[int] = None,
    seed: int = 0,
    data_dir: Optional[str] = None,
    size: Optional[Tuple[int, int]] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """One split of a registered dataset as features and labels.

    Parameters
    ----------
    name : str
        A registered dataset (``names()``); ``fmnist`` and ``fashion`` are aliases of
        ``fashion-mnist``.
    split : {"test", "train"}
    per_class : int, optional
        Draw this many images of every class (disjoint, seeded; rows grouped by class).
        The whole split, in file order, when None.
    seed : int
        Seed of the draw.
    data_dir : str, optional
        A directory searched first.
    size : (int, int), optional
        Resize every image to (height, width), bilinear with half-pixel centres, as the
        experiments do (``size=(28, 28)`` puts USPS in MNIST's space).

    Returns
    -------
    x : array (N, c*h*w), float32 in [0, 1]
        Images flattened in C order (channels, rows, columns).
    y : array (N,), int64
        Class labels.
    """
    if per_class is not None and (isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1):
        raise ValueError(f"per_class: expected an int ≥ 1 or None (the whole split), got {per_class!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise TypeError(f"seed: expected an int ≥ 0, got {seed!r}")
    out = _native.load(name, split, per_class, seed, data_dir, size)
    return out["x"], out["y"]


def rings(per_ring: int = 200, seed: int = 0) -> np.ndarray:
    """The three noisy rings of the papers' toy flow (``wowflow demo rings``).

    Returns
    -------
    array (3, per_ring, 2), float32
        Ring c is centred at 1.2·(cos φ_c, sin φ_c), φ_c = π/2 + 2πc/3, radius 0.5 + N(0, 0.02²).
    """
    if isinstance(per_ring, bool) or not isinstance(per_ring, int) or per_ring < 1:
        raise ValueError(f"per_ring: expected an int ≥ 1, got {per_ring!r}")
    return _native.rings(per_ring, seed)


def gaussian_noise(classes: int, per_class: int, dim: int, std: float = 1.0, seed: int = 0) -> np.ndarray:
    """i.i.d. N(0, std² I) points, (classes, per_class, dim) float32: the generative source."""
    for name, value in (("classes", classes), ("per_class", per_class), ("dim", dim)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected an int ≥ 1, got {value!r}")
    if not (np.isfinite(std) and std > 0):
        raise ValueError(f"std: expected a finite number > 0, got {std!r}")
    return _native.gaussian_noise(classes, per_class, dim, float(std), seed)
