"""Bad inputs raise the exception a user would catch, naming the argument and what was
expected; nothing panics."""

import numpy as np
import pytest

import wowflow

GOOD = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)


def pair(n=10, d=3):
    rng = np.random.default_rng(1)
    return rng.normal(size=(n, d)).astype(np.float32), np.arange(n) % 2


@pytest.mark.parametrize("fn", ["sw_mmd", "flow", "distance"])
def test_nan_in_features_is_a_value_error_naming_the_entry(fn):
    bad = GOOD.copy()
    bad[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match=r"source.*non-finite value NaN at index \(1, 2, 0\)|a.*non-finite"):
        getattr(wowflow, fn)(bad, GOOD, **({"steps": 2} if fn == "flow" else {}))


def test_wrong_ndim_mismatched_d_and_empty_classes():
    with pytest.raises(ValueError, match=r"source.*expected shape \(C, n, d\).*got an array of shape \(5, 3\)"):
        wowflow.sw_mmd(GOOD[0], GOOD)
    with pytest.raises(ValueError, match="source: has d = 3 features but the target has d = 4"):
        wowflow.sw_mmd(GOOD, np.zeros((2, 5, 4), np.float32))
    with pytest.raises(ValueError, match=r"at least one point"):
        wowflow.sw_mmd(np.zeros((2, 0, 3), np.float32), GOOD)
    with pytest.raises(ValueError, match=r"y: expected shape \(4, d\)|\(m, 3\)"):
        wowflow.sliced_wasserstein(np.zeros((3, 3)), np.zeros((4, 2)))


def test_labels_must_be_integers_of_the_right_length():
    x, y = pair()
    with pytest.raises(ValueError, match=r"label 0.5 at index 0 is not an integer"):
        wowflow.sw_mmd((x, y + 0.5), GOOD)
    with pytest.raises(ValueError, match=r"expected shape \(10,\), one label per row of x, got \(9,\)"):
        wowflow.sw_mmd((x, y[:9]), GOOD)
    with pytest.raises(TypeError, match="integer class labels, got dtype <U1"):
        wowflow.sw_mmd((x, np.array(list("ab" * 5))), GOOD)
    # Whole numbers stored as floats are labels.
    v1 = wowflow.sw_mmd((x, y.astype(np.float64)), GOOD, return_grad=False)
    assert v1 == wowflow.sw_mmd((x, y), GOOD, return_grad=False)


def test_wrong_dtypes_are_type_errors():
    with pytest.raises(TypeError, match=r"source: expected a float32 or float64 array .* got dtype int64"):
        wowflow.sw_mmd(np.zeros((2, 3, 2), np.int64), GOOD)
    with pytest.raises(TypeError, match="expected an array|numeric"):
        wowflow.sw_mmd({"x": 1}, GOOD)
    with pytest.raises(TypeError, match=r"a tuple dataset must be \(x, y\)"):
        wowflow.sw_mmd((GOOD,), GOOD)
    with pytest.raises(TypeError, match="unexpected keyword"):
        wowflow.flow(GOOD, GOOD, kernal="riesz")


def test_bad_names_and_parameters_are_value_errors():
    with pytest.raises(ValueError, match=r'method: unknown value "sw"; expected one of "sw-mmd"'):
        wowflow.flow(GOOD, GOOD, method="sw")
    with pytest.raises(ValueError, match=r"kernel"):
        wowflow.sw_mmd(GOOD, GOOD, kernel="cauchy")
    with pytest.raises(ValueError, match=r"h"):
        wowflow.sw_mmd(GOOD, GOOD, kernel="gaussian", h=-1.0)
    with pytest.raises(ValueError, match=r"p: must be a finite number ≥ 1"):
        wowflow.sliced_wasserstein(GOOD[0], GOOD[1], p=0.5)
    with pytest.raises(ValueError, match=r"projections: expected shape \(L, 3\)"):
        wowflow.sw_mmd(GOOD, GOOD, projections=np.ones((3, 5)))
    with pytest.raises(ValueError, match=r"class_weights: expected shape \(2,\) \(one weight per class"):
        wowflow.sw_mmd(GOOD, GOOD, class_weights=np.ones(3))
    with pytest.raises(ValueError, match=r"weight -1"):
        wowflow.sliced_wasserstein(GOOD[0], GOOD[1], a=-np.ones(5))
    with pytest.raises(ValueError, match="lr"):
        wowflow.flow(GOOD, GOOD, steps=2, lr=-1.0)
    with pytest.raises(ValueError, match=r"target has no class 2 \(its classes: \[0, 1\]\)"):
        wowflow.flow(np.zeros((3, 4, 2)), np.zeros((2, 4, 2)), method="dm", steps=1)
    with pytest.raises(ValueError, match="clip"):
        wowflow.flow(GOOD, GOOD, steps=2, clip=(1, 0))


def test_missing_files_are_file_not_found_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.ckpt.npz"):
        wowflow.flow(GOOD, GOOD, steps=2, resume=str(tmp_path / "missing.ckpt.npz"))
    with pytest.raises(ValueError, match="unknown; known datasets"):
        wowflow.datasets.load("imagenet")


def test_a_diverging_flow_is_a_wowflow_error():
    with pytest.raises(wowflow.WowflowError, match="diverged at step 1"):
        wowflow.flow(GOOD, GOOD + 1, steps=5, lr=1e38)
    assert issubclass(wowflow.WowflowError, RuntimeError)
