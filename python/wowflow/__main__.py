"""``python -m wowflow table ...``: fill a paper's table here or on a Ray cluster (see
:func:`wowflow.experiments.run_table`)."""

from .experiments import main

if __name__ == "__main__":
    raise SystemExit(main())
