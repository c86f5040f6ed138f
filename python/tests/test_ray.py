"""The table runner on a real Ray cluster: a head and a second worker node started on
127.0.0.1 by this module (one CPU each, stopped at the end), against the local executor.

- a tiny Table 2 (2 cells × 2 flows × 2 networks) run through Ray writes the same per-trial
  files and the same table as the local run, bit for bit;
- a worker killed in the middle of a piece is retried by Ray, and the table completes with
  every piece once;
- a driver killed mid-run and started again computes only what it had not stored.

Skipped, visibly, where Ray is not installed (scripts/setup-python.sh installs it).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import wowflow
from wowflow._sweep import import_ray

try:
    ray = import_ray()
except ImportError as e:
    pytest.skip(str(e), allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).parent / "ray"
TABLE = """
name = "t"
title = "tiny transfer table"
experiment = "transfer"
profile = "tiny"
note = "two cells"
[[columns]]
id = "target-only"
title = "target only"
method = "target-only"
[[columns]]
id = "sw-mmd"
title = "SW-MMD flow"
method = "sw-mmd"
[[rows]]
label = "M→U"
dataset = "usps"
k = 1
paper = { target-only = "32.4 ± 7.9", sw-mmd = "37.4 ± 7.4" }
"""
# Both cells: 2 flows + 2 × 2 networks.
PIECES = 12


def tiny_configs(root: Path):
    """The tiny table's config and its experiment config (the `tiny` transfer profile with
    2 trials × 2 networks), written in `root`."""
    config = root / "table.toml"
    config.write_text(TABLE)
    experiment = (REPO / "experiments" / "transfer.toml").read_text()
    head, tail = experiment.split("[profile.tiny]", 1)
    tail = tail.replace("trials = 1", "trials = 2", 1).replace("evals = 1", "evals = 2", 1)
    experiment_config = root / "transfer.toml"
    experiment_config.write_text(head + "[profile.tiny]" + tail)
    return config, experiment_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_cli(*args: str, timeout: float = 120, log: Path = None) -> None:
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    if log is not None:
        # The workers inherit it: every piece started and ended is logged there.
        env["WOWFLOW_PIECE_LOG"] = str(log)
    done = subprocess.run(
        [str(RAY), *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"ray {' '.join(args)}:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def piece_log(tmp_path_factory) -> Path:
    """Where the cluster's workers log every piece they start and end."""
    return tmp_path_factory.mktemp("ray-log") / "pieces.jsonl"


@pytest.fixture(scope="module")
def cluster(piece_log):
    """`HOST:PORT` of a two-node Ray cluster on 127.0.0.1, one CPU per node. (`ray stop
    --force` at the end stops every Ray process of the machine: run the suite where no
    other Ray cluster lives.)"""
    if not RAY.exists():
        pytest.skip(f"{RAY} not found (Ray installed without its command)")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    try:
        _ray_cli(
            "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
            "--num-cpus=1", "--include-dashboard=false", "--disable-usage-stats",
            log=piece_log,
        )
        _ray_cli(
            "start", f"--address={address}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
            "--disable-usage-stats", log=piece_log,
        )
        ray.init(address=address, logging_level="WARNING", log_to_driver=False)
        deadline = time.time() + 60
        while sum(1 for n in ray.nodes() if n["Alive"]) < 2:
            assert time.time() < deadline, f"the worker node never joined: {ray.nodes()}"
            time.sleep(0.5)
        yield address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        _ray_cli("stop", "--force")


@pytest.fixture(scope="module")
def table(tmp_path_factory, data_dir):
    """The tiny table's configs (the `tiny` transfer profile with 2 trials × 2 networks) and
    its local run, the reference."""
    root = tmp_path_factory.mktemp("ray-table")
    config, experiment_config = tiny_configs(root)
    options = dict(profile="tiny", experiment_config=experiment_config, data_dir=data_dir)
    local = wowflow.experiments.run_table(config, out=root / "local", **options)
    assert local.complete and local.computed == 2 and local.executor == "local"
    return config, options, local.out


def _numbers(value):
    """A result file's content without its wall times and machine (which no two runs share)."""
    if isinstance(value, dict):
        return {
            k: _numbers(v) for k, v in value.items() if "seconds" not in k and k != "machine"
        }
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return value


def assert_same_table(ours: Path, reference: Path) -> None:
    files = sorted(p.relative_to(reference) for p in (reference / "cells").rglob("*") if p.is_file())
    theirs = sorted(p.relative_to(ours) for p in (ours / "cells").rglob("*") if p.is_file())
    assert theirs == files
    for rel in files:
        a, b = (ours / rel).read_bytes(), (reference / rel).read_bytes()
        if rel.suffix == ".json":
            assert _numbers(json.loads(a)) == _numbers(json.loads(b)), rel
        else:
            assert a == b, rel
    assert (ours / "table.md").read_text() == (reference / "table.md").read_text()
    for cell in (ours / "cells").glob("*.json"):
        assert json.loads(cell.read_text())["accuracy"]["n"] == 4, cell


def test_a_table_run_through_ray_equals_the_local_run_bit_for_bit(cluster, table, tmp_path):
    config, options, reference = table
    run = wowflow.experiments.run_table(
        config, out=tmp_path / "ray", executor="ray", address=cluster, **options
    )
    assert (run.executor, run.complete, run.computed, run.reused) == ("ray", True, PIECES, 0)
    assert_same_table(run.out, reference)
    # A second call finds everything stored and computes nothing.
    again = wowflow.experiments.run_table(
        config, out=tmp_path / "ray", executor="ray", address=cluster, **options
    )
    assert (again.computed, again.complete) == (0, True)


def _log_since(log: Path, since: float) -> list:
    if not log.exists():
        return []
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [e for e in entries if e["time"] >= since]


def test_a_worker_killed_mid_piece_is_retried_and_every_piece_lands_once(
    cluster, table, tmp_path, piece_log
):
    config, options, reference = table
    result = {}
    since = time.time()

    def drive():
        try:
            result["run"] = wowflow.experiments.run_table(
                config, out=tmp_path / "ray", executor="ray", address=cluster,
                max_retries=3, **options,
            )
        except BaseException as e:  # reported by the assertion below
            result["error"] = e

    driver = threading.Thread(target=drive)
    driver.start()
    killed = None
    deadline = time.time() + 120
    # Kill the worker of the first SW-MMD flow seen running (seconds long), half a second
    # after it started, and only while the log still shows it running.
    while killed is None and driver.is_alive() and time.time() < deadline:
        entries = _log_since(piece_log, since)
        ended = {(e["key"], e["piece"], e["pid"]) for e in entries if e["event"] == "end"}
        for e in entries:
            running = (e["key"], e["piece"], e["pid"]) not in ended
            if (e["event"] == "start" and running and "sw-mmd" in e["key"]
                    and e["piece"].startswith("flow") and time.time() - e["time"] > 0.5):
                os.kill(e["pid"], signal.SIGKILL)
                killed = e
                break
        time.sleep(0.05)
    driver.join(timeout=300)
    assert not driver.is_alive(), "the Ray run did not finish"
    assert "error" not in result, result.get("error")
    assert killed is not None, "no SW-MMD flow was seen running"
    entries = _log_since(piece_log, since)
    same = [e for e in entries if (e["key"], e["piece"]) == (killed["key"], killed["piece"])]
    # The killed run never ended; Ray ran the piece again in another worker, to its end.
    assert not any(e["event"] == "end" and e["pid"] == killed["pid"] for e in same), same
    assert any(e["event"] == "end" and e["pid"] != killed["pid"] for e in same), same
    # Every piece ended exactly once.
    ends = [(e["key"], e["piece"]) for e in entries if e["event"] == "end"]
    assert len(ends) == len(set(ends)) == PIECES, ends
    run = result["run"]
    assert run.complete and run.computed == PIECES
    assert_same_table(run.out, reference)


def test_a_driver_killed_mid_run_resumes_from_the_stored_pieces(cluster, table, tmp_path):
    config, options, reference = table
    out = tmp_path / "ray"
    script = (
        "import sys, wowflow; from pathlib import Path; "
        "wowflow.experiments.run_table(Path(sys.argv[1]), out=Path(sys.argv[2]), "
        "executor='ray', address=sys.argv[3], profile='tiny', "
        "experiment_config=Path(sys.argv[4]), data_dir=sys.argv[5])"
    )
    driver = subprocess.Popen(
        [sys.executable, "-c", script, str(config), str(out), cluster,
         str(options["experiment_config"]), str(options["data_dir"])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 180
    while not list(out.glob("cells/*/trials/t*-e*.json")):
        assert driver.poll() is None, "the driver ended before storing a network"
        assert time.time() < deadline, "no network stored in time"
        time.sleep(0.05)
    driver.kill()
    driver.wait(timeout=30)
    stored = len(list(out.glob("cells/*/trials/t*-e*.json")))
    assert 1 <= stored < 8
    run = wowflow.experiments.run_table(
        config, out=out, executor="ray", address=cluster, **options
    )
    assert run.complete and run.reused >= stored + 1  # the networks and their flow
    assert run.computed + run.reused == PIECES
    assert_same_table(run.out, reference)


def test_bad_executor_options_are_caught_before_any_work(table, tmp_path):
    config, options, _ = table
    with pytest.raises(ValueError, match="executor"):
        wowflow.experiments.run_table(config, executor="slurm", **options)
    with pytest.raises(ValueError, match="address"):
        wowflow.experiments.run_table(config, address="127.0.0.1:1", **options)
    with pytest.raises(FileNotFoundError, match="no-such.toml"):
        wowflow.experiments.run_table(tmp_path / "no-such.toml", executor="ray")


def test_the_wowflow_command_hands_executor_ray_to_the_package(cluster, table, tmp_path, cli):
    config, options, reference = table
    out = tmp_path / "cli"
    done = subprocess.run(
        [str(cli), "experiment", "table", "--config", str(config), "--profile", "tiny",
         "--experiment-config", str(options["experiment_config"]),
         "--data-dir", str(options["data_dir"]), "--out", str(out), "--only", "target-only",
         "--executor", "ray", "--address", cluster],
        env=dict(os.environ, WOWFLOW_PYTHON=sys.executable), capture_output=True, text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "6 pieces computed" in done.stdout, done.stdout
    key = "cells/transfer-mnist-usps-k1-target-only.json"
    ours, theirs = (json.loads((d / key).read_text()) for d in (out, reference))
    assert _numbers(ours) == _numbers(theirs)
    # Without the package where WOWFLOW_PYTHON points, the error says what to set.
    done = subprocess.run(
        [str(cli), "experiment", "table", "--config", str(config), "--executor", "ray"],
        env=dict(os.environ, WOWFLOW_PYTHON=str(tmp_path / "no-python")),
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0 and "WOWFLOW_PYTHON" in done.stderr, done.stderr
