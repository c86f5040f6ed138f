"""Ctrl-C stops a long flow after the current step and returns what it has (and
checkpoints it when asked); the checkpoint resumes to the same bits as an uninterrupted
run; a callback can stop a flow; an exception in a callback propagates. Ctrl-C during an
experiment (a table cell) is Python's KeyboardInterrupt, the cell's flow state saved."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import wowflow

SCRIPT = textwrap.dedent(
    """
    import signal, sys, warnings, numpy as np, wowflow
    # A test suite started as a background job (nohup, `&` without job control) hands its
    # children SIGINT ignored, and Python then installs no KeyboardInterrupt handler: put
    # back the one an interactive session has.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    rng = np.random.default_rng(0)
    src, tgt = rng.normal(size=(4, 200, 8)), rng.normal(size=(4, 200, 8)) + 1
    print("ready", flush=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = wowflow.flow(src, tgt, steps=10**7, lr=0.1, seed=3, checkpoint=sys.argv[1],
                         callback=lambda s: print("running", flush=True) if s.step == 1 else None)
    print(r.steps, r.interrupted, r.checkpoint, len(r.losses), bool(np.isfinite(r.x).all()))
    print("warned" if any("interrupted" in str(w.message) for w in caught) else "silent")
    """
)


def test_ctrl_c_stops_a_long_flow_and_returns_the_partial_result(tmp_path):
    ckpt = tmp_path / "run.ckpt.npz"
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(ckpt)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    # Signal only once the flow's loop runs (its second step has begun), however loaded
    # the machine is, and a little later, with the GIL released in between.
    assert proc.stdout.readline().strip() == "running"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    steps, interrupted, where, losses, finite = out.split("\n")[0].split()
    assert int(steps) > 0 and int(steps) < 10**7
    assert interrupted == "True" and int(losses) == int(steps) and finite == "True"
    assert where == str(ckpt) and ckpt.exists()
    assert out.split("\n")[1] == "warned"
    # The checkpoint continues the run where it stopped.
    rng = np.random.default_rng(0)
    src, tgt = rng.normal(size=(4, 200, 8)), rng.normal(size=(4, 200, 8)) + 1
    more = wowflow.flow(src, tgt, steps=int(steps) + 3, lr=0.1, seed=3, resume=str(ckpt))
    assert more.steps == int(steps) + 3 and len(more.losses) == int(steps) + 3


def test_a_resumed_flow_has_the_bits_of_an_uninterrupted_one(tmp_path):
    rng = np.random.default_rng(1)
    src, tgt = rng.normal(size=(3, 30, 2)), rng.normal(size=(3, 30, 2)) + 2
    whole = wowflow.flow(src, tgt, steps=20, lr=0.5, momentum=0.9, seed=4)
    ckpt = str(tmp_path / "c.npz")
    part = wowflow.flow(src, tgt, steps=20, lr=0.5, momentum=0.9, seed=4, checkpoint=ckpt,
                        callback=lambda s: s.step < 8)
    assert part.stopped and not part.interrupted and part.steps == 9 and part.checkpoint == ckpt
    rest = wowflow.flow(src, tgt, steps=20, lr=0.5, momentum=0.9, seed=4, resume=ckpt)
    np.testing.assert_array_equal(rest.x, whole.x)
    np.testing.assert_array_equal(rest.losses, whole.losses)
    # Other settings are refused, naming what differs.
    with pytest.raises(ValueError, match="seed"):
        wowflow.flow(src, tgt, steps=20, lr=0.5, momentum=0.9, seed=5, resume=ckpt)


def test_an_exception_in_the_callback_propagates():
    src = np.random.default_rng(2).normal(size=(2, 10, 2))

    def boom(step):
        if step.step == 3:
            raise KeyError("from the callback")

    with pytest.raises(KeyError, match="from the callback"):
        wowflow.flow(src, src + 1, steps=10, callback=boom)


def test_the_progress_bar_counts_every_step(capsys):
    src = np.random.default_rng(3).normal(size=(2, 10, 2))
    seen = []
    r = wowflow.flow(src, src + 1, steps=7, progress=True, callback=seen.append)
    assert [s.step for s in seen] == list(range(7)) and seen[-1].total == 7
    np.testing.assert_array_equal([s.loss for s in seen], r.losses)


TABLE_SCRIPT = textwrap.dedent(
    """
    import signal, sys, wowflow
    signal.signal(signal.SIGINT, signal.default_int_handler)
    repo, out, data = sys.argv[1:4]
    print("ready", flush=True)
    try:
        wowflow.experiments.run_table(repo + "/experiments/table2.toml", "quick", out,
                                      data_dir=data, only=["usps-k1-sw-mmd"])
        print("finished")
    except KeyboardInterrupt as e:
        print("interrupted:", e)
    # The process and its Ctrl-C survive the run: a second one is still Python's.
    try:
        signal.raise_signal(signal.SIGINT)
    except KeyboardInterrupt:
        print("still python's")
    """
)


def test_ctrl_c_in_an_experiment_is_a_keyboard_interrupt_and_saves_the_flow(tmp_path, data_dir):
    from conftest import REPO

    out = tmp_path / "t2"
    proc = subprocess.Popen(
        [sys.executable, "-c", TABLE_SCRIPT, str(REPO), str(out), data_dir],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    segment = out / "cells" / "transfer-mnist-usps-k1-sw-mmd" / "trials" / "t0.flow.npz"
    # Signal once the cell has started (its trials directory exists); a flow that has not
    # begun yet stops at its first step.
    deadline = time.monotonic() + 120
    while not segment.parent.is_dir() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    stdout, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    lines = stdout.splitlines()
    assert lines[0].startswith("interrupted: "), stdout + err
    assert "interrupted at flow step" in lines[0] and str(segment) in lines[0], lines[0]
    assert lines[1] == "still python's"
    assert segment.is_file()
