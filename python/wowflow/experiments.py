"""The papers' experiments (``wowflow experiment ...``) from Python.

:func:`run` runs one experiment: a profile of its TOML config (``quick`` for a CPU,
``paper`` for the paper's protocol), writing its result files (CSV, plots, image grids) to
``out`` exactly as the command does; options are the command's, with ``_`` for ``-``.

:func:`run_table` fills a paper's table, in this process or as Ray tasks on a cluster
(``executor="ray"``), resuming what is stored; ``python -m wowflow table ...`` is the same
from a shell.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, List, Optional, Sequence, Union

from . import _native, _sweep
from ._sweep import TableRun

#: The experiments there are.
NAMES = ("domain-adaptation", "generate", "transfer", "distill", "table")


def _args(name: str, options: dict) -> List[str]:
    if name not in NAMES:
        raise ValueError(f"experiment: unknown name {name!r}; expected one of {NAMES}")
    args = [name]
    for key, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif isinstance(value, (list, tuple)):
            args += [flag, ",".join(str(v) for v in value)]
        else:
            args += [flag, str(value)]
    return args


def run(
    name: str,
    profile: str = "quick",
    out: Optional[str] = None,
    config: Optional[str] = None,
    data_dir: Optional[str] = None,
    **options: Any,
) -> None:
    """Runs experiment ``name`` to the end and writes its files.

    Parameters
    ----------
    name : {"domain-adaptation", "generate", "transfer", "distill", "table"}
    profile : str
        Profile of the config: ``quick`` or ``paper``.
    out : str, optional
        Output directory (default: ``runs/<experiment>-...-<profile>``).
    config : str, optional
        A TOML config replacing the built-in one.
    data_dir : str, optional
        Where datasets are looked for first.
    **options
        The experiment's own options, as on the command line (``source="fashion-mnist"``
        for ``--source fashion-mnist``; ``True`` for a flag).

    Raises
    ------
    ValueError
        Unknown experiment or option (the message is the command's usage error).
    FileNotFoundError
        A dataset the experiment needs is not found.
    """
    _native.run_experiment(
        _args(name, dict(profile=profile, out=out, config=config, data_dir=data_dir, **options))
    )


def run_table(
    config: Union[str, Path],
    profile: Optional[str] = None,
    out: Optional[Union[str, Path]] = None,
    *,
    executor: str = "local",
    address: Optional[str] = None,
    data_dir: Optional[Union[str, Path]] = None,
    experiment_config: Optional[Union[str, Path]] = None,
    only: Sequence[str] = (),
    skip: Sequence[str] = (),
    device: Optional[str] = None,
    max_retries: int = 3,
    cpus_per_task: float = 1,
    max_pieces: Optional[int] = None,
    verbose: bool = False,
) -> TableRun:
    """Fills a paper's table (``experiments/table1.toml``, ``table2.toml``, …) cell by cell,
    here or on a Ray cluster, and writes ``out/table.md``, ``table.csv``, ``table.png`` and
    the per-trial results under ``out/cells`` — the same files, with the same numbers, either
    way. A table partly computed before (by either executor) is resumed, not recomputed.

    Parameters
    ----------
    config : str or Path
        The table config.
    profile : str, optional
        Profile of the experiment's config (``quick``, ``paper``, …; default: the table's).
    out : str or Path, optional
        Output directory (default: ``runs/<table>-<profile>``, as the command).
    executor : {"local", "ray"}
        ``local``: every cell in this process, one after the other (``wowflow experiment
        table``). ``ray``: every piece of every missing cell — a trial's flow, one network
        trained on it, or a whole cell where pieces are not independent — is a Ray task
        with ``cpus_per_task`` CPUs (and one GPU for the SW-MMD flows with
        ``device="cuda"``); a network task waits for its flow's task inside Ray. Inputs and results travel through Ray (no
        shared filesystem); the driver (this process) writes each finished piece into
        ``out`` at once, then assembles the cells and table files locally.
    address : str, optional
        The Ray cluster (``"HOST:PORT"`` of a ``ray start --head``, or ``"auto"``); default:
        the cluster this process is connected to, else what ``ray.init()`` finds
        (``$RAY_ADDRESS``, a cluster started on this machine) or a new local one.
    data_dir : str or Path, optional
        Where datasets are looked for first — on every node (the workers read them there).
    experiment_config : str or Path, optional
        The experiment's config with the profiles (default: the built-in one).
    only, skip : sequence of str
        Cells whose key contains every ``only`` text and no ``skip`` text.
    device : {"cpu", "cuda"}, optional
        Where Table 2's SW-MMD flows run.
    max_retries : int
        Ray: how many times a task whose worker or node died is run again (a piece that
        fails by itself is not retried: it would fail the same way).
    cpus_per_task : float
        Ray: CPUs each task reserves; its rayon threads are limited to as many (fixed by
        the first piece a worker process runs; the numbers do not depend on it).
    max_pieces : int, optional
        Ray: submit at most this many pieces, then stop (the next call goes on).
    verbose : bool
        Ray: forward the workers' logs to this process.

    Returns
    -------
    TableRun
        Where the table is, what was computed and what was reused.

    Raises
    ------
    ValueError
        Unknown executor or bad options (the message is the command's); ``address`` of
        another cluster than the one this process is connected to.
    FileNotFoundError
        The config or a dataset is missing.
    ImportError
        ``executor="ray"`` without Ray installed.
    RuntimeError
        Some pieces failed (the others are stored; the message lists the failed ones).
    WowflowError
        Settings the table runner refuses before any work (a ``RuntimeError`` too).
    """
    if executor not in ("local", "ray"):
        raise ValueError(f"run_table: executor {executor!r}; expected 'local' or 'ray'")
    if executor == "local" and (address is not None or max_pieces is not None):
        raise ValueError("run_table: address and max_pieces are options of executor='ray'")
    if max_retries < 0:
        raise ValueError(f"run_table: max_retries must be >= 0, got {max_retries}")
    if not cpus_per_task > 0:
        raise ValueError(f"run_table: cpus_per_task must be > 0, got {cpus_per_task}")
    config = Path(config)
    if not config.is_file():
        raise FileNotFoundError(f"run_table: table config {config} not found")
    if experiment_config is not None:
        experiment_config = Path(experiment_config)
        if not experiment_config.is_file():
            raise FileNotFoundError(
                f"run_table: experiment config {experiment_config} not found"
            )
    started = time.perf_counter()
    # Absolute: the workers resolve it on their node, not in this process's directory.
    data = None if data_dir is None else str(Path(data_dir).resolve())

    def table_args(out_dir: Optional[Path]) -> List[str]:
        return _sweep.table_args(
            config, profile, out_dir, experiment_config, data, only, skip, device
        )

    # The command's default directory, resolved once so both executors write the same place.
    out_dir = Path(out) if out is not None else Path(_sweep.plan(table_args(None))["out"])
    if executor == "local":
        before = _sweep.plan(table_args(out_dir))
        _native.run_experiment(["table"] + table_args(out_dir))
        return TableRun(
            out=out_dir,
            computed=len(before["cells"]),
            reused=before["done_cells"],
            seconds=time.perf_counter() - started,
            executor="local",
            complete=True,
        )
    options: List[str] = []
    if profile is not None:
        options += ["--profile", profile]
    if data is not None:
        options += ["--data-dir", data]
    if device is not None:
        options += ["--device", device]
    computed, reused, complete = _sweep.run_with_ray(
        table_args(out_dir),
        options,
        config,
        experiment_config,
        out_dir,
        address=address,
        max_retries=max_retries,
        cpus_per_task=cpus_per_task,
        max_pieces=max_pieces,
        verbose=verbose,
    )
    if complete:
        # Every piece is stored: the local runner assembles the cells and the table files
        # from them, computing nothing.
        _native.run_experiment(["table"] + table_args(out_dir))
    return TableRun(
        out=out_dir,
        computed=computed,
        reused=reused,
        seconds=time.perf_counter() - started,
        executor="ray",
        complete=complete,
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m wowflow table ...``: :func:`run_table` from a shell (the ``wowflow
    experiment table`` options, plus the executor's)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m wowflow",
        description="Fill a paper's table here or on a Ray cluster (wowflow.experiments.run_table).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("table", help="fill a table (experiments/table*.toml)")
    t.add_argument("--config", required=True, help="the table config")
    t.add_argument("--profile", help="profile of the experiment's config (default: the table's)")
    t.add_argument("--out", help="output directory (default: runs/TABLE-PROFILE)")
    t.add_argument("--executor", choices=("local", "ray"), default="local")
    t.add_argument("--address", help="Ray cluster HOST:PORT (or 'auto'); default: a new local one")
    t.add_argument("--data-dir", help="where datasets are looked for first, on every node")
    t.add_argument("--experiment-config", help="the experiment's config with the profiles")
    t.add_argument("--only", action="append", default=[], help="cells whose key contains this")
    t.add_argument("--skip", action="append", default=[], help="leave out cells whose key contains this")
    t.add_argument("--device", choices=("cpu", "cuda"))
    t.add_argument("--max-retries", type=int, default=3, help="Ray: reruns of a task whose worker died")
    t.add_argument("--cpus-per-task", type=float, default=1, help="Ray: CPUs per task")
    t.add_argument("--max-pieces", type=int, help="Ray: stop after submitting this many pieces")
    t.add_argument("--verbose", action="store_true", help="Ray: forward the workers' logs")
    args = parser.parse_args(argv)
    run = run_table(
        args.config,
        profile=args.profile,
        out=args.out,
        executor=args.executor,
        address=args.address,
        data_dir=args.data_dir,
        experiment_config=args.experiment_config,
        only=args.only,
        skip=args.skip,
        device=args.device,
        max_retries=args.max_retries,
        cpus_per_task=args.cpus_per_task,
        max_pieces=args.max_pieces,
        verbose=args.verbose,
    )
    unit = "pieces" if run.executor == "ray" else "cells"
    print(
        f"{run.out / 'table.md'}: {run.computed} {unit} computed, {run.reused} reused "
        f"({run.seconds:.1f} s, {run.executor}){'' if run.complete else '; not complete'}",
    )
    return 0
