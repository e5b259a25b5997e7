"""Shared test helpers: real subprocesses of `python -m training`, real files.

Workers train real TensorFlow on small MNIST subsets. MNIST itself is fetched
once per machine (into the project's data/ folder) by the `mnist_cached`
fixture, so no test pays for the download twice.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from training.store.logwriter import FORMAT_VERSION

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TEST_OUTPUT = ROOT / "test-output"

# Small, fast runs: 8 batches of 128 and a 512-image test set.
TINY = ["--limit-train", "1024", "--limit-test", "512"]


def cli(*args: str, runs_dir: Path, timeout: float = 180,
        env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m training ARGS --runs-dir RUNS_DIR` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "training", *args, "--runs-dir", str(runs_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})})


def records(run_dir: Path, kind: str | None = None) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in lines if kind is None or r["type"] == kind]


def wait_for(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def only_run(runs_dir: Path) -> Path:
    runs = [p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith((".", "ref-"))]
    assert len(runs) == 1, runs
    return runs[0]


EPOCH_KEYS = {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "train_s", "eval_s",
              "epoch_time_s", "samples_per_s", "elapsed_s", "steps_s", "first_step_wait_s", "outside_s"}
TIME_SPLIT = ("steps_s", "first_step_wait_s", "eval_s", "outside_s")  # they sum to epoch_time_s


def assert_well_formed(run_dir: Path, epochs: int, train: int, backend: str = "tensorflow") -> None:
    """Start, one record per epoch with every field, end; values in range; it learned."""
    log = records(run_dir)
    assert log[0]["type"] == "start" and log[-1]["type"] == "end"
    start = log[0]
    assert start["format_version"] == FORMAT_VERSION
    assert start["params"] == {"total": 430_666, "trainable": 429_498, "non_trainable": 1_168}
    assert start["train_samples"] == train
    assert start["hardware"]["cpu_logical_cores"] >= 1 and start["hardware"]["cpu_model"]
    assert start["versions"]["keras"].startswith("3.") and start["versions"]["backend"] == backend
    assert start["versions"]["backend_version"]
    assert start["hardware"]["gpu_names"] == []
    epoch_records = [r for r in log if r["type"] == "epoch"]
    assert [r["epoch"] for r in epoch_records] == list(range(1, epochs + 1))
    previous_elapsed = 0.0
    for record in epoch_records:
        assert record.keys() >= EPOCH_KEYS
        assert 0 <= record["accuracy"] <= 1 and 0 <= record["val_accuracy"] <= 1
        assert math.isfinite(record["loss"]) and record["loss"] > 0
        assert record["epoch_time_s"] == pytest.approx(record["train_s"] + record["eval_s"], abs=1e-3)
        assert all(record[k] >= 0 for k in TIME_SPLIT)
        assert sum(record[k] for k in TIME_SPLIT) == pytest.approx(record["epoch_time_s"], abs=1e-5)
        assert record["steps_s"] > 0 and not record.get("profiled")
        assert record["samples_per_s"] == pytest.approx(train / record["train_s"], rel=1e-3)
        assert record["elapsed_s"] > previous_elapsed
        assert 0 < record["cpu_s"] <= record["epoch_time_s"] * (os.cpu_count() or 1) * 1.1
        previous_elapsed = record["elapsed_s"]
    assert log[-1]["status"] == "finished"
    # Training learns: the second epoch's training loss is below the first's.
    assert epoch_records[-1]["loss"] < epoch_records[0]["loss"]


def stop_active(store) -> None:
    """End every queued or running run a test left behind (their workers are real processes)."""
    from training.launch import local
    from training.store import ACTIVE_STATES

    for run in store.runs():
        if run.status() in ACTIVE_STATES:
            local.stop(run, grace=5)


@pytest.fixture(scope="session")
def mnist_cached() -> None:
    """Make sure the verified MNIST cache exists before workers need it."""
    from training.worker import mnist
    mnist.load_arrays()


@pytest.fixture
def runs_dir(tmp_path: Path, monkeypatch) -> Path:
    path = tmp_path / "runs"
    monkeypatch.setenv("TRAINING_RUNS_DIR", str(path))
    return path
