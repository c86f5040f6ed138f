"""Type stubs of the native module (the documented API is in wowflow/_api.py)."""

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

__version__: str
HAS_CUDA: bool

class WowflowError(RuntimeError): ...

_Dataset = Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]
_Weights = Union[str, np.ndarray, None]

def sliced_wasserstein(
    x: np.ndarray,
    y: np.ndarray,
    a: Optional[np.ndarray] = ...,
    b: Optional[np.ndarray] = ...,
    n_projections: int = ...,
    p: float = ...,
    projections: Optional[np.ndarray] = ...,
    seed: int = ...,
    sampler: str = ...,
) -> float: ...
def sw_mmd(
    source: _Dataset,
    target: _Dataset,
    kernel: str = ...,
    h: Optional[float] = ...,
    r: float = ...,
    n_projections: int = ...,
    projections: Optional[np.ndarray] = ...,
    seed: int = ...,
    sampler: str = ...,
    source_weights: Optional[np.ndarray] = ...,
    target_weights: Optional[np.ndarray] = ...,
    class_weights: _Weights = ...,
    target_class_weights: _Weights = ...,
    return_grad: bool = ...,
    step: int = ...,
) -> Union[float, Tuple[float, np.ndarray]]: ...

class SwMmd:
    def __init__(
        self,
        target: _Dataset,
        kernel: str = ...,
        h: Optional[float] = ...,
        r: float = ...,
        n_projections: int = ...,
        projections: Optional[np.ndarray] = ...,
        sampler: str = ...,
        target_weights: Optional[np.ndarray] = ...,
        target_class_weights: _Weights = ...,
        target_batch: Optional[int] = ...,
    ) -> None: ...
    def __call__(
        self,
        source: _Dataset,
        seed: int = ...,
        step: int = ...,
        source_weights: Optional[np.ndarray] = ...,
        class_weights: _Weights = ...,
        return_grad: bool = ...,
    ) -> Union[float, Tuple[float, np.ndarray]]: ...

def distance(
    a: _Dataset,
    b: _Dataset,
    kind: str = ...,
    n_projections: int = ...,
    seed: int = ...,
    epsilon: Optional[float] = ...,
    a_weights: Optional[np.ndarray] = ...,
    b_weights: Optional[np.ndarray] = ...,
    class_weights: _Weights = ...,
    b_class_weights: _Weights = ...,
) -> Dict[str, Any]: ...
def assign_labels(
    flowed: _Dataset,
    target: _Dataset,
    method: str = ...,
    cost: str = ...,
    n_projections: int = ...,
    seed: int = ...,
    class_weights: Optional[str] = ...,
) -> Dict[str, Any]: ...
def flow(
    source: _Dataset,
    target: _Dataset,
    method: str = ...,
    steps: int = ...,
    lr: float = ...,
    optimizer: Optional[str] = ...,
    momentum: Optional[float] = ...,
    kernel: str = ...,
    h: Optional[float] = ...,
    r: float = ...,
    n_projections: int = ...,
    projections: Optional[np.ndarray] = ...,
    sampler: str = ...,
    target_batch: Optional[int] = ...,
    clip: Optional[Tuple[float, float]] = ...,
    seed: int = ...,
    class_weights: _Weights = ...,
    target_class_weights: _Weights = ...,
    source_weights: Optional[np.ndarray] = ...,
    target_weights: Optional[np.ndarray] = ...,
    threads: Optional[int] = ...,
    device: str = ...,
    lr_sigma: float = ...,
    dynamics: str = ...,
    label_cost: Optional[str] = ...,
    epsilon: Optional[float] = ...,
    label_dim: int = ...,
    clustering: str = ...,
    clusters: Optional[int] = ...,
    dbscan_eps: Optional[float] = ...,
    dbscan_min_points: int = ...,
    save_every: Optional[int] = ...,
    on_step: Optional[Callable[[int, int, float, float], Optional[bool]]] = ...,
    checkpoint: Optional[str] = ...,
    checkpoint_every: Optional[int] = ...,
    resume: Optional[str] = ...,
) -> Dict[str, Any]: ...
def load(
    name: str,
    split: str = ...,
    per_class: Optional[int] = ...,
    seed: int = ...,
    data_dir: Optional[str] = ...,
    size: Optional[Tuple[int, int]] = ...,
) -> Dict[str, Any]: ...
def names() -> List[str]: ...
def run_experiment(args: Sequence[str]) -> None: ...
def table_plan(args: Sequence[str]) -> str: ...
def rings(per_ring: int = ..., seed: int = ...) -> np.ndarray: ...
def gaussian_noise(classes: int, per_class: int, dim: int, std: float = ..., seed: int = ...) -> np.ndarray: ...
