"""Shared test helpers: real subprocesses of `python -m training`, real files.

Workers train real TensorFlow on small MNIST subsets. MNIST itself is fetched
once per machine (into the project's data/ folder) by the `mnist_cached`
fixture, so no test pays for the download twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def mnist_cached() -> None:
    """Make sure the verified MNIST cache exists before workers need it."""
    from training import mnist
    mnist.load_arrays()


@pytest.fixture
def runs_dir(tmp_path: Path, monkeypatch) -> Path:
    path = tmp_path / "runs"
    monkeypatch.setenv("TRAINING_RUNS_DIR", str(path))
    return path
