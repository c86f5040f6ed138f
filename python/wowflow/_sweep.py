"""The table runner's executors: the whole table in this process (``local``), or every
piece of every cell as a Ray task (``ray``).

A table cell is computed in *pieces* (``wowflow experiment table --plan`` lists them): a
trial's flow (``flow:T``), one network trained on a stored flow's training set
(``net:T:E``), or the whole cell (``cell``, for the experiments whose pieces are not
independent). Each piece reads a few files of the table's output directory and writes a few
more; the Rust side computes exactly one piece with ``--cell KEY --piece P``.

The Ray executor ships a piece's input files to the task as bytes, runs the piece in a
scratch directory on whichever node Ray picks, and returns the files the piece wrote (bytes
again: no shared filesystem is assumed). The driver writes each piece's files into the
output directory as soon as the piece finishes, atomically, so a driver stopped at any
moment keeps every finished piece and a rerun plans only what is missing; a network task
takes its trial's flow task's result as an argument, so Ray schedules it after the flow
without a round trip through the driver. When every piece is stored, the local table runner
assembles the cells and the table files from them (computing nothing). Pieces are
deterministic (same seeds, same bits, whatever the node or its thread count), so a piece
computed twice — a retried task, a rerun after the driver died between a task's end and
its write — writes the same bytes: nothing is counted twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import _native


@dataclass(frozen=True)
class TableRun:
    """What one :func:`wowflow.experiments.run_table` call did.

    Attributes
    ----------
    out : pathlib.Path
        The table's output directory (``table.md``, ``table.csv``, ``table.png``,
        ``cells/``).
    computed : int
        Ray: pieces computed by this call (flows, networks, whole cells). Local: cells.
    reused : int
        Ray: pieces of the selected unfinished cells found stored in ``out`` and kept.
        Local: selected cells found finished.
    seconds : float
        Wall time of the call.
    executor : str
        ``"local"`` or ``"ray"``.
    complete : bool
        Whether every selected cell is finished (``False`` after ``max_pieces`` stopped the
        call early).
    """

    out: Path
    computed: int
    reused: int
    seconds: float
    executor: str
    complete: bool


def table_args(
    config: Path,
    profile: Optional[str],
    out: Optional[Path],
    experiment_config: Optional[Path],
    data_dir: Optional[str],
    only: Sequence[str],
    skip: Sequence[str],
    device: Optional[str],
) -> List[str]:
    """The options of ``wowflow experiment table`` for these settings."""
    args = ["--config", str(config)]
    if out is not None:
        args += ["--out", str(out)]
    if profile is not None:
        args += ["--profile", profile]
    if experiment_config is not None:
        args += ["--experiment-config", str(experiment_config)]
    if data_dir is not None:
        args += ["--data-dir", str(data_dir)]
    for text in only:
        args += ["--only", text]
    for text in skip:
        args += ["--skip", text]
    if device is not None:
        args += ["--device", device]
    return args


def plan(args: Sequence[str]) -> Dict[str, Any]:
    """The work left in the table of ``args`` (``wowflow experiment table --plan``)."""
    return json.loads(_native.table_plan(list(args)))


def _safe_relative(rel: str, allowed: Optional[Sequence[str]] = None) -> Path:
    """``rel`` as a path inside the output directory — and, with ``allowed``, under one of
    those prefixes (``dir/``) or equal to one (a file): results arrive over the network."""
    posix = PurePosixPath(rel)
    if (
        not rel
        or posix.is_absolute()
        or ".." in posix.parts
        or "\\" in rel
        or ":" in rel
        or not posix.parts
    ):
        raise ValueError(f"piece result: {rel!r} is not a path inside the output directory")
    if allowed is not None and not any(
        rel.startswith(a) if a.endswith("/") else rel == a for a in allowed
    ):
        raise ValueError(
            f"piece result: {rel!r} is outside what the piece may write ({', '.join(allowed)})"
        )
    return Path(*posix.parts)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def apply_files(
    out: Path, files: Dict[str, Optional[bytes]], allowed: Optional[Sequence[str]] = None
) -> None:
    """Writes a piece's files into ``out`` (``None``: the piece removed that file, e.g. a
    flow's segment once the flow is stored), each atomically, in the order a local run
    writes them: every path checked first (``allowed``: see :func:`_safe_relative`), then
    arrays and pictures, then records (``*.json``) with a cell's ``cells/KEY.json`` last,
    then removals — so a driver stopped in between never holds a record without its arrays,
    nor loses a flow's segment before the flow is stored."""
    paths = {rel: out / _safe_relative(rel, allowed) for rel in files}

    def rank(rel: str) -> tuple:
        cell_record = rel.count("/") == 1 and rel.startswith("cells/") and rel.endswith(".json")
        return (files[rel] is None, cell_record, rel.endswith(".json"), rel)

    for rel in sorted(files, key=rank):
        data = files[rel]
        if data is None:
            paths[rel].unlink(missing_ok=True)
        else:
            _write_atomic(paths[rel], data)


def _remove_partial_writes(out: Path) -> None:
    """Temporary files of writes a killed driver left behind (never read as results)."""
    cells = out / "cells"
    if cells.is_dir():
        for leftover in cells.rglob(".*.tmp"):
            leftover.unlink(missing_ok=True)


def _log(event: str, key: str, piece: str) -> None:
    """One line per piece started or ended in ``$WOWFLOW_PIECE_LOG`` where it is set (on the
    nodes: in the environment of ``ray start``): which process ran what, for debugging a
    cluster and for the tests' check that a killed piece was run again."""
    path = os.environ.get("WOWFLOW_PIECE_LOG")
    if path:
        line = json.dumps(
            {"event": event, "key": key, "piece": piece, "pid": os.getpid(), "time": time.time()}
        )
        with open(path, "a") as f:
            f.write(line + "\n")


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run_piece(
    spec: Dict[str, Any],
    key: str,
    piece: str,
    inputs: Dict[str, bytes],
    *upstream: Dict[str, Any],
) -> Dict[str, Any]:
    """Computes one piece in a scratch directory and returns what it wrote.

    The body of a Ray task (also callable directly). ``spec`` holds the table's config text
    (``config``), its experiment config text or ``None`` (``experiment_config``), the table
    options that are not files (``options``: profile, data directory, device) and the
    threads a piece may use (``threads``, or ``None`` for all cores); ``inputs`` are the
    files the plan says the piece reads (relative to the output directory), ``upstream``
    the results of the pieces it waits for (their files are inputs too). Returns
    ``{"files": {relative path: bytes, or None where an input was removed}, "seconds",
    "node"}``.
    """
    if spec.get("threads"):
        # Read once, by the first parallel call of this worker process; the numbers do not
        # depend on it (the pieces are bit-identical on 1 or 2 threads).
        os.environ.setdefault("RAYON_NUM_THREADS", str(spec["threads"]))
    started = time.perf_counter()
    _log("start", key, piece)
    files: Dict[str, bytes] = dict(inputs)
    refs = [rel for rel, data in files.items() if not isinstance(data, bytes)]
    if refs:
        # The driver puts each input file in Ray's object store once and passes references.
        import ray

        for rel, data in zip(refs, ray.get([files[rel] for rel in refs])):
            files[rel] = data
    for result in upstream:
        files.update({rel: data for rel, data in result["files"].items() if data is not None})
    with tempfile.TemporaryDirectory(prefix="wowflow-piece-") as tmp:
        root = Path(tmp)
        out = root / "out"
        out.mkdir()
        config = root / "table.toml"
        config.write_text(spec["config"])
        args = ["table", "--config", str(config), "--out", str(out)]
        if spec.get("experiment_config") is not None:
            experiment_config = root / "experiment.toml"
            experiment_config.write_text(spec["experiment_config"])
            args += ["--experiment-config", str(experiment_config)]
        before = {}
        for rel, data in files.items():
            path = out / _safe_relative(rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            before[rel] = _digest(data)
        _native.run_experiment(args + list(spec["options"]) + ["--cell", key, "--piece", piece])
        written: Dict[str, Optional[bytes]] = {}
        for path in sorted(out.rglob("*")):
            if not path.is_file():
                continue
            rel = path.relative_to(out).as_posix()
            data = path.read_bytes()
            if before.get(rel) != _digest(data):
                written[rel] = data
        for rel in before:
            if not (out / rel).exists():
                written[rel] = None
    _log("end", key, piece)
    return {
        "files": written,
        "seconds": time.perf_counter() - started,
        "node": socket.gethostname(),
    }


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def import_ray():
    """Imports Ray, or raises an ImportError that says how to install it. A folder named
    ``ray`` on ``sys.path`` (Ray's own /tmp/ray session folder, when run from /tmp) imports
    as an empty namespace package: that is not Ray either."""
    needs_ray = (
        "executor='ray' needs Ray: pip install 'ray>=2.9' (scripts/setup-python.sh "
        "installs it into the project's .venv)"
    )
    try:
        import ray
    except ImportError as e:
        raise ImportError(needs_ray) from e
    if not hasattr(ray, "remote"):
        raise ImportError(f"{needs_ray}; 'import ray' found only the folder {list(ray.__path__)}")
    return ray


def run_with_ray(
    table_args: List[str],
    options: List[str],
    config: Path,
    experiment_config: Optional[Path],
    out: Path,
    address: Optional[str],
    max_retries: int,
    cpus_per_task: float,
    max_pieces: Optional[int],
    verbose: bool,
) -> Tuple[int, int, bool]:
    """Computes every missing piece of the table as Ray tasks and writes their files into
    ``out``; returns (pieces computed, pieces of unfinished cells found stored, whether
    none is left)."""
    ray = import_ray()
    _remove_partial_writes(out)
    work = plan(table_args)
    spec = {
        "config": config.read_text(),
        "experiment_config": (
            experiment_config.read_text() if experiment_config is not None else None
        ),
        "options": options,
        "threads": max(1, int(cpus_per_task)),
    }
    todo: List[Tuple[str, Dict[str, Any]]] = []
    reused = 0
    for cell in work["cells"]:
        for piece in cell["pieces"]:
            if piece["done"]:
                reused += 1
            else:
                todo.append((cell["key"], piece))
    left = len(todo)
    if max_pieces is not None:
        todo = todo[:max_pieces]
    if not todo:
        return 0, reused, left == 0
    started_here = False
    if ray.is_initialized():
        connected = ray.get_runtime_context().gcs_address
        # Ray reports the head by the address it chose (an interface's IP, not 127.0.0.1):
        # the port tells clusters apart.
        if address not in (None, "auto") and address.rsplit(":", 1)[-1] != connected.rsplit(
            ":", 1
        )[-1]:
            raise ValueError(
                f"run_table: address {address!r}, but this process is connected to the Ray "
                f"cluster at {connected!r} (ray.shutdown() first)"
            )
    else:
        ray.init(address=address, logging_level="WARNING", log_to_driver=verbose)
        started_here = True
    try:
        remote = ray.remote(run_piece)
        common = dict(
            num_cpus=cpus_per_task,
            max_retries=max_retries,
            # A piece that fails by itself (bad data, a diverged flow) fails the same way
            # again: only system failures (a dead worker or node) are retried.
            retry_exceptions=False,
        )
        task = remote.options(**common)
        gpu_task = remote.options(num_gpus=1, **common)
        submitted: Dict[Tuple[str, str], Any] = {}
        names: Dict[Any, Tuple[str, str, List[str]]] = {}
        stored: Dict[str, Any] = {}  # each input file put in the object store once
        for key, piece in todo:
            inputs = {}
            for rel in piece["inputs"]:
                if rel not in stored:
                    stored[rel] = ray.put((out / _safe_relative(rel)).read_bytes())
                inputs[rel] = stored[rel]
            after = piece["after"]
            after_key = piece.get("after_cell") or key
            upstream = []
            if after and (after_key, after) in submitted:
                upstream = [submitted[(after_key, after)]]
            elif after and not _piece_stored(work, after_key, after):
                # What it waits for is neither stored nor in this call (max_pieces).
                continue
            ref = (gpu_task if piece["gpu"] else task).remote(
                spec, key, piece["piece"], inputs, *upstream
            )
            submitted[(key, piece["piece"])] = ref
            names[ref] = (key, piece["piece"], piece["outputs"])
        # Ray keeps what the queued tasks need; the driver holds only what is pending.
        submitted.clear()
        stored.clear()
        pending = list(names)
        computed = 0
        failures: List[str] = []
        total = len(pending)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            ref = ready[0]
            key, piece, outputs = names.pop(ref)
            try:
                result = ray.get(ref)
                apply_files(out, result["files"], outputs)
            except Exception as e:  # the piece's own error, retries exhausted, a bad write
                failures.append(f"{key} {piece}: {e}")
                _say(f"wowflow table: {key} {piece} FAILED: {e}")
                continue
            finally:
                del ref, ready
            computed += 1
            _say(
                f"[{computed}/{total}] {key} {piece}: {result['seconds']:.1f} s on "
                f"{result['node']}"
            )
        if failures:
            raise RuntimeError(
                f"{len(failures)} of {total} pieces failed (the {computed} others are stored "
                f"in {out}; a rerun computes only what is missing):\n  " + "\n  ".join(failures)
            )
        return computed, reused, computed == left
    finally:
        if started_here:
            ray.shutdown()


def _piece_stored(work: Dict[str, Any], key: str, piece: str) -> bool:
    for cell in work["cells"]:
        if cell["key"] == key:
            return any(p["piece"] == piece and p["done"] for p in cell["pieces"])
    return False
