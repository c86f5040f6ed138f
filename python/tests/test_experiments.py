"""The papers' experiments run from Python exactly as `wowflow experiment` runs them."""

import json

import pytest

import wowflow


def test_an_experiment_cell_writes_the_clis_result(tmp_path, data_dir, cli):
    import subprocess

    args = dict(target="usps", k=5, method="target-only", data_dir=data_dir)
    wowflow.experiments.run("transfer", profile="tiny", out=str(tmp_path / "py"), **args)
    subprocess.run(
        [str(cli), "experiment", "transfer", "--profile", "tiny", "--target", "usps", "--k", "5",
         "--method", "target-only", "--data-dir", data_dir, "--out", str(tmp_path / "cli")],
        check=True, capture_output=True,
    )
    ours = json.loads((tmp_path / "py" / "result.json").read_text())
    theirs = json.loads((tmp_path / "cli" / "result.json").read_text())
    assert ours["accuracy"] == theirs["accuracy"]


def test_bad_experiment_options_are_value_errors():
    with pytest.raises(ValueError, match="unknown name"):
        wowflow.experiments.run("imagenet")
    with pytest.raises(ValueError, match="--no-such-option"):
        wowflow.experiments.run("transfer", no_such_option=3)
