#!/usr/bin/env python3
"""How far the flowed images end from the k-shot images they were flowed to.

For every computed flow cell of Table 2 (cells/KEY/trials/tT.npz: the k-shot images first,
then the flowed images, as the networks were trained on them), prints and writes to
collapse.csv, per trial:

- ``nearest_median`` / ``nearest_max``: squared Euclidean distance (pixels in [0, 1], d = 784)
  from each flowed image to its nearest k-shot image, median and maximum over the flowed
  images;
- ``kshot_median``: the median squared distance between two different k-shot images — the
  scale to read the first two against;
- ``same_label``: the fraction of flowed images whose nearest k-shot image carries the label
  the flowed image was given;
- ``per_image_min`` / ``per_image_max``: how many flowed images have each k-shot image as
  their nearest (fewest, most).

A flow that has converged to the minimiser of ½ MMD²(P, Q) puts every particle on a k-shot
image (P = Q): nearest distances near 0 and 200 / k flowed images per k-shot image.

The tT.npz files are git-ignored (they stay where the flows ran); `run.sh` recomputes them bit
for bit. Usage: python3 results/table2-paper/collapse.py [CELL_SUBSTRING ...]
"""
import csv
import glob
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FIELDS = ["cell", "trial", "k", "flowed", "nearest_median", "nearest_max", "kshot_median",
          "same_label", "per_image_min", "per_image_max"]


def k_of(cell: str) -> int:
    """The k of a cell key `transfer-SOURCE-TARGET-kK-METHOD`."""
    for part in cell.split("-"):
        if part.startswith("k") and part[1:].isdigit():
            return int(part[1:])
    raise ValueError(f"{cell}: no k in the cell key")


def trial_row(cell: str, trial: str, path: str) -> dict:
    z = np.load(path)
    x, y = z["x"].reshape(len(z["x"]), -1).astype(np.float64), z["y"]
    k = k_of(cell)
    n_target = k * (int(y.max()) + 1)
    target, flowed = x[:n_target], x[n_target:]
    y_target, y_flowed = y[:n_target], y[n_target:]
    # ‖f − t‖² = ‖f‖² + ‖t‖² − 2 f·t, in chunks to bound memory.
    t2 = (target ** 2).sum(1)
    nearest = np.empty(len(flowed))
    index = np.empty(len(flowed), dtype=int)
    for s in range(0, len(flowed), 512):
        f = flowed[s:s + 512]
        d = (f ** 2).sum(1)[:, None] + t2[None, :] - 2.0 * f @ target.T
        index[s:s + 512] = d.argmin(1)
        nearest[s:s + 512] = np.maximum(d.min(1), 0.0)
    pair = ((target[:, None, :] - target[None, :, :]) ** 2).sum(-1)
    off = pair[~np.eye(len(target), dtype=bool)]
    counts = np.bincount(index, minlength=len(target))
    return {
        "cell": cell, "trial": trial, "k": k, "flowed": len(flowed),
        "nearest_median": f"{np.median(nearest):.4g}", "nearest_max": f"{nearest.max():.4g}",
        "kshot_median": f"{np.median(off):.4g}" if len(off) else "",
        "same_label": f"{(y_target[index] == y_flowed).mean():.4f}",
        "per_image_min": int(counts.min()), "per_image_max": int(counts.max()),
    }


def main() -> None:
    wanted = sys.argv[1:]
    rows = []
    for path in sorted(glob.glob(os.path.join(HERE, "cells", "*", "trials", "t*.npz"))):
        name = os.path.basename(path)
        if name.endswith(".flow.npz"):
            continue
        cell = os.path.basename(os.path.dirname(os.path.dirname(path)))
        if cell.endswith(("target-only", "target-repeated")):
            continue
        if wanted and not any(w in cell for w in wanted):
            continue
        rows.append(trial_row(cell, name[:-len(".npz")], path))
    with open(os.path.join(HERE, "collapse.csv"), "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    print("| " + " | ".join(FIELDS) + " |")
    print("|" + " --- |" * len(FIELDS))
    for r in rows:
        print("| " + " | ".join(str(r[f]) for f in FIELDS) + " |")


if __name__ == "__main__":
    main()
