"""The table runner on Ray against the local executor, and what a cluster would take for
Table 2 at the paper's protocol.

1. A tiny Table 2 (2 cells × 2 flows × 2 networks, the `tiny` transfer profile with 2 × 2)
   computed three ways in one run, each into a fresh directory: the local executor (one
   process, all cores), and the Ray executor on a local cluster of a head and a second
   worker node on 127.0.0.1 (1 CPU each, as the tests start it), the cluster's start-up
   excluded. Rounds alternate the two (this machine drifts by ±30 % within an hour).
2. Ray's overhead per task: the round trip of an empty task, and of a task carrying a
   piece-sized payload (a paper-protocol Table 2 training set, 2 200 × 784 float32).
3. The whole Table 2 at the paper's protocol on N nodes, from the per-piece wall times
   committed under results/table2-paper (flows: `tT.json` flow_seconds; networks:
   `tT-eE.json` train_seconds; measured on this 2-core machine): total work, the longest
   chain (a flow, then its longest network), and a greedy longest-first schedule of the
   pieces on N nodes of 2 cores (one piece per node at a time, as each piece uses both).

Usage: .venv/bin/python python/benchmarks/bench_ray.py [--rounds 2] [--data-dir ../shared/data]
(build with --release: scripts/setup-python.sh --release).
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import wowflow

REPO = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).parent / "ray"
sys.path.insert(0, str(REPO / "python" / "tests"))
from test_ray import tiny_configs  # noqa: E402  (the tests' tiny table)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_cli(*args: str) -> None:
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    subprocess.run([str(RAY), *args], env=env, check=True, capture_output=True, timeout=180)


def start_cluster() -> str:
    port = free_port()
    address = f"127.0.0.1:{port}"
    ray_cli("start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
            "--num-cpus=1",
            "--include-dashboard=false", "--disable-usage-stats")
    ray_cli("start", f"--address={address}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
            "--disable-usage-stats")
    return address


def overhead(ray) -> dict:
    @ray.remote(num_cpus=1)
    def empty():
        return None

    @ray.remote(num_cpus=1)
    def echo(files):
        return files

    ray.get([empty.remote() for _ in range(20)])  # warm the workers
    n = 200
    t0 = time.perf_counter()
    ray.get([empty.remote() for _ in range(n)])
    batch = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for _ in range(50):
        ray.get(empty.remote())
    serial = (time.perf_counter() - t0) / 50
    payload = {"t0.npz": np.zeros((2200, 784), np.float32).tobytes()}
    t0 = time.perf_counter()
    for _ in range(20):
        ray.get(echo.remote(payload))
    carried = (time.perf_counter() - t0) / 20
    return {"empty task, 200 in flight (ms/task)": 1e3 * batch,
            "empty task, one at a time (ms)": 1e3 * serial,
            "6.9 MB there and back, one at a time (ms)": 1e3 * carried}


def paper_pieces() -> list:
    """(cell, "flow" | "draw" | "net", seconds) of every stored piece of Table 2 at the
    paper's protocol."""
    pieces = []
    for trials in sorted((REPO / "results" / "table2-paper" / "cells").glob("*/trials")):
        cell = trials.parent.name
        for record in trials.glob("t*.json"):
            value = json.loads(record.read_text())
            if "-e" in record.stem:
                pieces.append((cell, "net", value["train_seconds"]))
            elif value.get("flow_steps", 0) > 0:
                pieces.append((cell, "flow", value["flow_seconds"]))
            else:  # the k-shot images drawn, for the columns without a flow
                pieces.append((cell, "draw", value.get("flow_seconds", 0.0)))
    return pieces


def schedule(durations: list, nodes: int) -> float:
    """Makespan of a greedy longest-first assignment of independent pieces to `nodes`."""
    load = [0.0] * nodes
    heapq.heapify(load)
    for d in sorted(durations, reverse=True):
        heapq.heappush(load, heapq.heappop(load) + d)
    return max(load)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    args = parser.parse_args()
    import ray

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"ray {ray.__version__}; wowflow {wowflow.__version__}")
    root = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    config, experiment_config = tiny_configs(root)
    options = dict(profile="tiny", experiment_config=experiment_config, data_dir=args.data_dir)
    address = start_cluster()
    times = {"local": [], "ray (2 nodes × 1 CPU)": []}
    try:
        ray.init(address=address, logging_level="WARNING", log_to_driver=False)
        for r in range(args.rounds):
            t0 = time.perf_counter()
            wowflow.experiments.run_table(config, out=root / f"local{r}", **options)
            times["local"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            run = wowflow.experiments.run_table(
                config, out=root / f"ray{r}", executor="ray", address=address, **options
            )
            times["ray (2 nodes × 1 CPU)"].append(time.perf_counter() - t0)
            assert run.complete and run.computed == 12
        print("\n## Tiny Table 2 (2 cells, 12 pieces), wall time (s)")
        for name, ts in times.items():
            print(f"{name:>24}: median {statistics.median(ts):.1f} (runs: "
                  + ", ".join(f"{t:.1f}" for t in ts) + ")")
        print("\n## Ray overhead")
        for name, ms in overhead(ray).items():
            print(f"{name:>44}: {ms:.2f}")
    finally:
        ray.shutdown()
        ray_cli("stop", "--force")
        shutil.rmtree(root, ignore_errors=True)

    pieces = paper_pieces()
    flows = [s for _, kind, s in pieces if kind == "flow"]
    draws = sum(1 for _, kind, _ in pieces if kind == "draw")
    nets = [s for _, kind, s in pieces if kind == "net"]
    total = sum(flows) + sum(nets)
    print(f"\n## Table 2 at the paper's protocol, from {len(flows)} flows, {draws} draws and "
          f"{len(nets)} networks stored under results/table2-paper (this machine)")
    print(f"flow: median {statistics.median(flows):.0f} s, max {max(flows):.0f} s; "
          f"network: median {statistics.median(nets):.1f} s, max {max(nets):.1f} s")
    # The full table: 12 rows × 5 columns (3 with a flow) × 3 trials × 5 networks; missing
    # pieces estimated by the mean of the stored pieces of their kind.
    full_flows, full_nets = 12 * 3 * 3, 12 * 5 * 3 * 5
    mean_flow, mean_net = statistics.mean(flows), statistics.mean(nets)
    est = flows + [mean_flow] * max(0, full_flows - len(flows))
    est_nets = nets + [mean_net] * max(0, full_nets - len(nets))
    work = sum(est) + sum(est_nets)
    chain = max(flows) + max(nets)
    print(f"stored pieces: {total / 3600:.1f} h of work; the full table (est.): "
          f"{work / 3600:.1f} h; longest chain (flow + network): {chain / 60:.0f} min")
    for n in (1, 4, 16, 64):
        # Each node runs one piece at a time; a network can start only after its flow,
        # which the longest chain bounds.
        span = max(schedule(est + est_nets, n), chain)
        print(f"{n:>3} nodes of 2 cores: ≈ {span / 3600:.2f} h")


if __name__ == "__main__":
    main()
