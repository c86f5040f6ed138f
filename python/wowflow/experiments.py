"""The papers' experiments (``wowflow experiment ...``) from Python.

Each runs a profile of the experiment's TOML config (``quick`` for a CPU, ``paper`` for the
paper's protocol) and writes its result files (CSV, plots, image grids) to ``out``, exactly
as the command does; options are the command's, with ``_`` for ``-``.
"""

from __future__ import annotations

from typing import Any, List, Optional

from . import _native

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
