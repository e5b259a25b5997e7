"""The worker end to end: real TensorFlow in a real subprocess, tiny subsets."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, TINY, assert_well_formed, cli, only_run, records, wait_for


@pytest.mark.parametrize("engine", ["fit", "loop"])
def test_engine_trains_and_logs_every_record(engine, runs_dir, mnist_cached):
    result = cli("run", "--engine", engine, "--epochs", "2", *TINY, runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    run_dir = only_run(runs_dir)
    assert result.stdout.strip().splitlines()[-1] == run_dir.name
    assert_well_formed(run_dir, epochs=2, train=1024)
    assert (run_dir / "status.json").read_text().count('"finished"') == 1
    assert list((run_dir / "tb").glob("events.out.tfevents.*")), "TensorBoard events missing"
    # The terminal got one line per epoch and the summary, and none of the backend's own chatter,
    # which stays in the run's stderr.log.
    shown = result.stderr.splitlines()
    assert [line.split(": epoch ")[1][:3] for line in shown if ": epoch " in line] == ["1/2", "2/2"]
    assert any("finished: 2 epochs, steady epoch" in line for line in shown)
    chatter = [line for line in (run_dir / "stderr.log").read_text().splitlines() if line.strip()]
    assert not set(chatter) & set(shown), set(chatter) & set(shown)


def test_progress_records_move_within_an_epoch(runs_dir, mnist_cached):
    # Batch 8 over 4,096 images: 512 batches, a few seconds an epoch here.
    result = cli("run", "--epochs", "1", "--batch-size", "8", "--limit-train", "4096",
                 "--limit-test", "256", runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    progress = records(only_run(runs_dir), "progress")
    assert len(progress) >= 2, "expected about one progress record per second"
    batches = [p["batch"] for p in progress]
    assert batches == sorted(batches) and batches[-1] < 512
    assert all(p["batches"] == 512 and 0 <= p["accuracy"] <= 1 for p in progress)
    gaps = [b["elapsed_s"] - a["elapsed_s"] for a, b in zip(progress, progress[1:])]
    assert all(gap >= 0.9 for gap in gaps), gaps


def test_sigterm_mid_epoch_stops_cleanly(runs_dir, mnist_cached):
    worker = subprocess.Popen(
        [sys.executable, "-m", "training", "run", "--epochs", "50", "--batch-size", "16",
         "--limit-train", "4096", "--limit-test", "256", "--runs-dir", str(runs_dir)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        run_dir = wait_for(lambda: next((p for p in runs_dir.glob("2*")), None), 60, what="run folder")
        # Mid-epoch: a progress record after at least one complete epoch.
        in_epoch = wait_for(lambda: [r for r in records(run_dir, "progress") if r["epoch"] >= 2], 120,
                            what="progress in epoch 2")[-1]
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=30)
    finally:
        worker.kill()
    assert code == 0
    log = records(run_dir)
    assert log[-1]["type"] == "end" and log[-1]["status"] == "stopped"
    epochs = [r for r in log if r["type"] == "epoch"]
    assert len(epochs) >= 1 and [r["epoch"] for r in epochs] == list(range(1, len(epochs) + 1))
    # It stopped after a batch, not at the end of the epoch: the epoch it was in when the
    # signal came (256 batches, seconds long; a batch takes milliseconds) has no record.
    assert all(e["epoch"] < in_epoch["epoch"] for e in epochs)
    assert all(r["val_accuracy"] is not None for r in epochs)


def test_device_gpu_without_gpu_fails_fast_and_never_trains(runs_dir, mnist_cached):
    started = time.monotonic()
    result = cli("run", "--device", "gpu", "--epochs", "1", *TINY, runs_dir=runs_dir)
    took = time.monotonic() - started
    assert result.returncode == 1
    assert took < 30
    assert "sees no GPU" in result.stderr
    log = records(only_run(runs_dir))
    assert not [r for r in log if r["type"] in ("epoch", "progress")], "it trained on the CPU"
    assert log[-1]["status"] == "failed" and "GpuUnavailable" in log[-1]["error"]


def test_uncaught_error_records_failed_with_traceback_in_stderr(runs_dir, tmp_path, mnist_cached):
    # An unreadable data folder with a corrupt cache and no network source makes loading fail.
    data = tmp_path / "data"
    data.mkdir()
    (data / "mnist.npz").write_bytes(b"not an npz")
    env = {"TRAINING_DATA_DIR": str(data), "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
           "PIP_EXTRA_INDEX_URL": "", "PIP_FIND_LINKS": "", "PIP_NO_INDEX": "1"}
    result = cli("run", "--epochs", "1", *TINY, runs_dir=runs_dir, env=env)
    assert result.returncode == 1
    run_dir = only_run(runs_dir)
    end = records(run_dir)[-1]
    assert end["status"] == "failed" and "could not load MNIST" in end["error"]
    assert "Traceback" in result.stderr


def test_second_signal_kills_at_once(runs_dir, mnist_cached):
    worker = subprocess.Popen(
        [sys.executable, "-m", "training", "run", "--epochs", "50", *TINY, "--runs-dir", str(runs_dir)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # "running" is written just before TensorFlow's import, which takes seconds and
        # checks no stop flag: the case a second signal is for.
        def running() -> bool:
            return any('"running"' in p.read_text() for p in runs_dir.glob("2*/status.json"))
        wait_for(running, 60, interval=0.02, what="running")
        worker.send_signal(signal.SIGTERM)
        # Wait for the handler to have run: two signals pending at once would count as one.
        while b"stop requested" not in (line := worker.stderr.readline()):
            assert line, "the worker ended without acknowledging the first signal"
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=10)
    finally:
        worker.kill()
    assert code == -signal.SIGTERM  # killed by the signal, not a clean stop
