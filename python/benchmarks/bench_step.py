"""A domain-adaptation-size SW-MMD step called from Python, side by side with
`wowflow bench --config da` (10 × 500 vs 10 × 500, d = 784, L = 500).

Rounds alternate between the CLI's benchmark and the Python calls, so both see the same
machine state (this machine drifts by ±30 % within an hour). Timed from Python:

* ``SwMmd``: ``objective(source, seed)`` with ``objective = wowflow.SwMmd(target)`` — the
  source in (float32, C order), value and gradient out: what a user's own loop pays per step;
* ``sw_mmd``: one call of ``wowflow.sw_mmd(source, target)``, which also reads the target;
* ``flow``: ``wowflow.flow(..., steps=K)`` divided by K — the loop inside Rust.

Usage: .venv/bin/python python/benchmarks/bench_step.py [--rounds 3] [--reps 10]
(build both with --release: scripts/setup-python.sh --release; cargo build --release -p wowflow-cli).
"""

import argparse
import json
import platform
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np

import wowflow

REPO = Path(__file__).resolve().parents[2]


def cli_round(binary, reps):
    out = subprocess.run(
        [str(binary), "bench", "--config", "da", "--reps", str(reps), "--json"],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["times_ms"]


def py_round(source, target, reps, seed):
    wowflow.sw_mmd(source, target, n_projections=500, seed=seed)  # warm-up, as the CLI does
    times = []
    for k in range(reps):
        start = time.perf_counter()
        wowflow.sw_mmd(source, target, n_projections=500, seed=seed + k)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def obj_round(objective, source, reps, seed):
    objective(source, seed=seed)  # warm-up: the workspace is allocated once
    times = []
    for k in range(reps):
        start = time.perf_counter()
        objective(source, seed=seed + k)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def flow_round(source, target, steps):
    start = time.perf_counter()
    wowflow.flow(source, target, steps=steps, lr=0.1, seed=0)
    return (time.perf_counter() - start) * 1e3 / steps


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--binary", default=str(REPO / "target" / "release" / "wowflow"))
    args = p.parse_args()
    rng = np.random.default_rng(1)
    source = rng.standard_normal((10, 500, 784), dtype=np.float32)
    target = rng.standard_normal((10, 500, 784), dtype=np.float32) + 1.0
    objective = wowflow.SwMmd(target, n_projections=500)
    cli, py, ob, fl = [], [], [], []
    for r in range(args.rounds):
        cli += cli_round(args.binary, args.reps)
        ob += obj_round(objective, source, args.reps, seed=100 * r)
        py += py_round(source, target, args.reps, seed=100 * r)
        fl.append(flow_round(source, target, args.reps))
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print(f"wowflow bench --config da   median {statistics.median(cli):7.1f} ms  min {min(cli):7.1f} ms  ({len(cli)} steps)")
    print(f"wowflow.sw_mmd from Python  median {statistics.median(py):7.1f} ms  min {min(py):7.1f} ms  ({len(py)} calls)")
    print(f"wowflow.SwMmd(target)(x)    median {statistics.median(ob):7.1f} ms  min {min(ob):7.1f} ms  ({len(ob)} calls)")
    print(f"wowflow.flow, per step      median {statistics.median(fl):7.1f} ms  ({args.rounds} runs of {args.reps} steps)")
    for name, t in (("SwMmd", ob), ("sw_mmd", py)):
        print(f"{name} / CLI median: {statistics.median(t) / statistics.median(cli):.3f}")


if __name__ == "__main__":
    main()
