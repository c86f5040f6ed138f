#!/usr/bin/env python3
"""Write a seeded class-balanced subset of an MNIST-format train split as .npz (x in [0, 1]).

    python3 scripts/mnist_subset.py ../shared/data/mnist 100 0 mnist100.npz

Arguments: the dataset folder (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz),
images per class, seed, output path. Needs numpy (scripts/setup-ci.sh installs it).
"""
import gzip
import sys

import numpy as np


def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    nd = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(data[4 + 4 * nd:], dtype=np.uint8).reshape(dims)


def main():
    folder, per, seed, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    images = idx(f"{folder}/train-images-idx3-ubyte.gz")
    labels = idx(f"{folder}/train-labels-idx1-ubyte.gz")
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(10):
        rows = rng.choice(np.where(labels == c)[0], per, replace=False)
        xs.append(images[rows])
        ys += [c] * per
    x = (np.concatenate(xs).reshape(-1, images.shape[1] * images.shape[2]) / 255).astype(np.float32)
    np.savez(out, x=x, y=np.array(ys, dtype=np.int64))


if __name__ == "__main__":
    main()
