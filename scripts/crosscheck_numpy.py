#!/usr/bin/env python3
"""Independent cross-check of wowflow's SW-MMD value and WoW gradient, written in numpy.

It shares no code with wowflow: projections by matrix product, 1-D transport by numpy's
sort/argsort, the MMD and its gradient assembled from docs/math.md §5 directly. Equal class sizes
and uniform weights (the (C, n, d) case of the paper), any kernel of docs/math.md §4 on SW_2².

Usage: crosscheck_numpy.py SOURCE.npy TARGET.npy DIRECTIONS.npy OUT.npz KERNEL [PARAM]
  SOURCE (C, n, d), TARGET (K, n, d), DIRECTIONS (L, d) unit rows.
  OUT.npz: wowflow's output of ONE plain gradient step with lr = 1 and these fixed
  directions, so that its gradient is x0 - x1 and its loss[0] is F.
Prints the relative errors; exits 1 if they exceed f32 tolerances.
"""
import sys

import numpy as np


def kernel_fns(name, param):
    if name == "riesz":
        r = param if param is not None else 1.0
        return (lambda s: -s ** (r / 2)), (lambda s: np.where(s > 0, -(r / 2) * np.maximum(s, 1e-300) ** (r / 2 - 1), 0.0))
    if name == "gaussian":
        h = param if param is not None else 0.1
        return (lambda s: np.exp(-s / (2 * h))), (lambda s: -np.exp(-s / (2 * h)) / (2 * h))
    if name == "imq":
        h = param if param is not None else 1.0
        return (lambda s: (h + s) ** -0.5), (lambda s: -0.5 * (h + s) ** -1.5)
    raise SystemExit(f"kernel {name} not covered by this check")


def sw2_and_grad(x, y, theta):
    """SW_2^2(x, y) with the given directions, and its gradient in x (n, d)."""
    px, py = x @ theta.T, y @ theta.T  # (n, L)
    order = np.argsort(px, axis=0, kind="stable")
    sx = np.take_along_axis(px, order, axis=0)
    sy = np.sort(py, axis=0)
    n, L = px.shape
    value = np.mean((sx - sy) ** 2)
    gproj = np.zeros_like(px)
    np.put_along_axis(gproj, order, 2.0 / n * (sx - sy), axis=0)
    return value, gproj @ theta / L


def main():
    src, tgt, dirs = (np.load(p).astype(np.float64) for p in sys.argv[1:4])
    out = np.load(sys.argv[4])
    kappa, dkappa = kernel_fns(sys.argv[5], float(sys.argv[6]) if len(sys.argv) > 6 else None)
    C, n, d = src.shape
    K = tgt.shape[0]
    a, b = np.full(C, 1 / C), np.full(K, 1 / K)
    F = 0.0
    grad = np.zeros_like(src)
    for c in range(C):
        for c2 in range(C):
            s, g = sw2_and_grad(src[c], src[c2], dirs)
            F += 0.5 * a[c] * a[c2] * kappa(s)
            if c2 != c:
                grad[c] += a[c] * a[c2] * dkappa(s) * g
        for k in range(K):
            s, g = sw2_and_grad(src[c], tgt[k], dirs)
            F -= a[c] * b[k] * kappa(s)
            grad[c] -= a[c] * b[k] * dkappa(s) * g
    for k in range(K):
        for k2 in range(K):
            s, _ = sw2_and_grad(tgt[k], tgt[k2], dirs)
            F += 0.5 * b[k] * b[k2] * kappa(s)
    wow = grad / (a[:, None, None] / n)  # WoW gradient: divide by the particle mass a_c / n
    x0 = src.reshape(C * n, d)
    got = (x0 - out["x"].astype(np.float64)).reshape(C, n, d)  # one GD step with lr = 1
    grad_err = np.linalg.norm(got - wow) / np.linalg.norm(wow)
    value_err = abs(out["loss"][0] - F) / max(abs(F), 1e-12)
    print(f"numpy F = {F:.8e}, wowflow F = {out['loss'][0]:.8e}, relative error {value_err:.2e}")
    print(f"WoW gradient relative error (L2) {grad_err:.2e}")
    sys.exit(0 if grad_err < 1e-4 and value_err < 1e-5 else 1)


if __name__ == "__main__":
    main()
