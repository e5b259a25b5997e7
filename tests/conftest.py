"""Shared test helpers: real subprocesses of `python -m training`, real files.

Workers train real TensorFlow on small MNIST subsets. MNIST itself is fetched
once per machine (into the project's data/ folder) by the `mnist_cached`
fixture, so no test pays for the download twice.

Tests have speeds (pyproject.toml declares the markers): a test that trains (it
asks for `mnist_cached`) is `slow`, a test that mounts file systems (`tmpfs`) is
`root` and `slow`; modules that start Ray or drive Chromium mark themselves
`cluster` or `browser` (and `slow`). `make quick` runs the rest in under a minute.
Tests of pages and maths use `finished_run`: a run folder written as a worker
would have written it, with epoch records whose numbers the test chooses.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from training.store.logwriter import FORMAT_VERSION

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TEST_OUTPUT = ROOT / "test-output"

# Small, fast runs: 8 batches of 128 and a 512-image test set.
TINY = ["--limit-train", "1024", "--limit-test", "512"]


class Result:
    """What `run_cli` gives back: the fields of a CompletedProcess that tests read."""

    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_cli(*args: str, runs_dir: Path) -> Result:
    """`python -m training ARGS --runs-dir RUNS_DIR`, in this process: `main(argv)` with its output caught.

    For commands that only read or write run folders; `cli` (a real subprocess) stays
    for one smoke test per command and wherever a worker or a signal is involved.
    """
    import contextlib
    import io

    from training.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([*args, "--runs-dir", str(runs_dir)])
        except SystemExit as exit_:  # argparse's usage errors
            code = exit_.code if isinstance(exit_.code, int) else 1
    return Result(code, out.getvalue(), err.getvalue())


def finished_run(store, name: str = "done", device: str = "cpu", epoch_s: tuple = (3.0, 2.0, 2.0),
                 train: int = 1024, test: int = 512, source: str = "local", status: str = "finished",
                 **config):
    """A run folder as a worker would have left it: config, start, one record per epoch, end.

    Epoch e takes `epoch_s[e-1]` seconds (80% training, 20% evaluation); accuracy rises
    with the epoch, so time to target and best accuracy are known by hand.
    """
    from training.config import make_config
    from training.store.layout import METRICS_FILE
    from training.store.logwriter import encode

    settings = make_config(device=device, epochs=len(epoch_s), limit_train=train, limit_test=test,
                           name=name, **config)
    meta = {"name": name, "source": source, "device": device, "engine": settings.engine,
            "backend": settings.backend, "epochs": len(epoch_s), "train_samples": train,
            "config": settings.to_dict()}
    log = encode({"type": "start", "config": settings.to_dict(), "train_samples": train, "test_samples": test,
                  "hardware": {"cpu_model": "test CPU", "cpu_logical_cores": 2, "device": device,
                               "gpu_names": []},
                  "versions": {"python": "3.11", "keras": "3.15.1", "backend": settings.backend,
                               "backend_version": "2.21.0"}})
    elapsed = 0.0
    for epoch, seconds in enumerate(epoch_s, start=1):
        elapsed += seconds
        log += encode({"type": "epoch", "epoch": epoch, "loss": 1.0 / epoch, "accuracy": 0.9 + 0.02 * epoch,
                       "val_loss": 1.2 / epoch, "val_accuracy": 0.95 + 0.02 * epoch,
                       "train_s": 0.8 * seconds, "eval_s": 0.2 * seconds, "epoch_time_s": seconds,
                       "samples": train, "samples_per_s": train / (0.8 * seconds), "elapsed_s": elapsed,
                       "cpu_s": 1.5 * seconds, "time": 1.7e9 + elapsed})
    log += encode({"type": "end", "status": status, "error": None if status != "failed" else "boom"})
    return store.create(meta, status, files={METRICS_FILE: log})


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


def chart_specs(at) -> list[str]:
    """The figure JSON of every chart an AppTest page drew (dashboard/charts.py's component)."""
    return [json.loads(element.proto.json)["figure"] for element in at.get("bidi_component")
            if element.proto.component_name == "dashboard.chart"]


def progress_data(at) -> list[dict]:
    """What every Train card's bars were drawn with on an AppTest page (dashboard/progress.py's
    component): {"bars": [...], "url": where it asks, or None, ...}."""
    return [json.loads(element.proto.json) for element in at.get("bidi_component")
            if element.proto.component_name == "dashboard.progress"]


def progress_texts(at) -> list[str]:
    """The words of every Train card's bars an AppTest page drew."""
    return [bar["text"] for data in progress_data(at) for bar in data["bars"]]


class _Cards(HTMLParser):
    """Text of the verdict cards' parts, by class: words, figure labels and values, tooltips."""

    def __init__(self) -> None:
        super().__init__()
        self.cards: list[dict] = []
        self._classes: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        attrs = dict(attrs)
        self._classes.append(attrs.get("class") or "")
        if attrs.get("class") == "verdict-card":
            self.cards.append({"words": "", "labels": [], "values": [], "tips": []})
        elif attrs.get("class") == "figure":
            self.cards[-1]["tips"].append(attrs.get("title") or "")

    def handle_endtag(self, tag) -> None:
        self._classes.pop()

    def handle_startendtag(self, tag, attrs) -> None:  # <br>: a line break in the words
        if self.cards:
            self.cards[-1]["words"] += "\n"

    def handle_data(self, data) -> None:
        where = next((c for c in reversed(self._classes) if c in ("words", "label", "value")), None)
        if not self.cards or where is None:
            return
        if where == "words":
            self.cards[-1]["words"] += data
        else:
            self.cards[-1][where + "s"].append(data)


def verdict_cards(at) -> list[dict]:
    """The Compare verdict's cards (dashboard/verdictcards.py) an AppTest page drew, baseline first:
    {"words", "labels", "values", "tips"}, the last three per figure (speedup, time to target)."""
    parser = _Cards()
    for element in at.get("html"):
        parser.feed(element.proto.body)
    return parser.cards


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
    assert [layer["class"] for layer in start["layers"]][:2] == ["Conv2D", "BatchNormalization"]
    assert start["peak"]["flops_per_s"] > 0 and start["peak"]["backend"] == backend  # cached or measured
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


def pytest_collection_modifyitems(items) -> None:
    """Speeds by fixture: what trains is slow; what mounts file systems needs root and is slow."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "mnist_cached" in names:
            item.add_marker(pytest.mark.slow)
        if "tmpfs" in names:
            item.add_marker(pytest.mark.root)
            item.add_marker(pytest.mark.slow)


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


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a fresh tmpfs; `mount(size)` returns its path. Unmounted at the end."""
    mounted = []

    def mount(size: str) -> Path:
        where = tmp_path / f"fs{len(mounted)}"
        where.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                                capture_output=True, text=True)
        if result.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip() or result.returncode} "
                        "(needs root with CAP_SYS_ADMIN)")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every entry under `root` (not through links) and what it holds: to see that nothing changed."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            path = Path(folder, name)
            if path.is_symlink():
                found[str(path)] = "-> " + os.readlink(path)
            elif path.is_file():
                found[str(path)] = path.read_bytes()
            else:
                found[str(path)] = "dir" if path.is_dir() else "other"
    return found
