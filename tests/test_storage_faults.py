"""Storage faults on real, small file systems: a read-only runs folder, a full disk.

Each test mounts its own tmpfs (a real file system, in memory) and remounts it
read-only or fills it with a real file. Mounting needs root and CAP_SYS_ADMIN;
where that is refused the test is skipped with the mount's own error, never
passed silently.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FIXTURES, ROOT, TINY, cli, records, run_cli, wait_for
from streamlit.testing.v1 import AppTest

from training.analysis import listing
from training.config import make_config
from training.launch import local
from training.store import MIN_FREE_MB, RunError, RunStore, process
from training.store.logwriter import append_record

PAGES = ["navigation.py", "pages/train.py", "pages/compare.py", "pages/runs.py", "pages/scaling.py"]


def remount_read_only(where: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)


def fill(where: Path) -> Path:
    """Write a real file until the file system refuses: no space is left."""
    filler = where / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for chunk in (2**20, 2**12, 1):
            try:
                while True:
                    handle.write(b"\0" * chunk)
            except OSError:
                continue
    return filler


def debris(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".tmp-") or p.name.endswith(".tmp")]


def finished_local_run(store: RunStore) -> str:
    """A local run with two epochs and an end, as a worker would have left it."""
    run = local.create_local(store, make_config(epochs=2, name="done"))
    append_record(run.metrics_path, {"type": "start", "config": run.meta["config"]})
    for epoch in (1, 2):
        append_record(run.metrics_path, {"type": "epoch", "epoch": epoch, "loss": 0.5 / epoch,
                                         "accuracy": 0.9, "val_loss": 0.4, "val_accuracy": 0.95 + epoch / 100,
                                         "epoch_time_s": 2.0, "samples_per_s": 3000.0,
                                         "elapsed_s": 2.0 * epoch})
    run.append_end("finished")
    run.set_status("finished")
    return run.id


def test_a_read_only_runs_folder_can_be_browsed_but_nothing_written(tmpfs, monkeypatch):
    runs = tmpfs("128m") / "runs"  # imports keep the 64 MiB free-space rule too
    store = RunStore(runs)
    done = finished_local_run(store)
    [imported] = run_cli("import", str(FIXTURES / "keras2-fit-verbose2.txt"), runs_dir=runs).stdout.split()
    remount_read_only(runs.parent)
    before = sorted(str(p) for p in runs.rglob("*"))

    listing = run_cli("list", "--json", runs_dir=runs)
    assert listing.returncode == 0, listing.stderr
    rows = {row["id"]: row for row in json.loads(listing.stdout)}
    assert {done, imported, "ref-keras-cpu", "ref-tensorflow-gpu"} <= set(rows)
    assert rows[done]["status"] == "finished" and rows["ref-keras-cpu"]["epochs_done"] == 30
    assert run_cli("export", done, runs_dir=runs).returncode == 0
    assert run_cli("compare", done, "ref-keras-cpu", runs_dir=runs).returncode == 0
    report = runs.parent.parent / "report.html"  # written elsewhere: reading the runs wrote nothing
    assert run_cli("report", done, "ref-keras-cpu", "-o", str(report), runs_dir=runs).returncode == 0
    assert report.stat().st_size > 0
    for args in (["run", "--epochs", "1", *TINY], ["import", str(FIXTURES / "keras3-csvlogger.csv")],
                 ["delete", done]):
        refused = run_cli(*args, runs_dir=runs)
        assert refused.returncode == 1 and "read-only" in refused.stderr, (args, refused.stderr)

    monkeypatch.setenv("TRAINING_RUNS_DIR", str(runs))
    for path in PAGES:
        at = AppTest.from_file(str(ROOT / path), default_timeout=60).run()
        assert not at.exception, (path, [e.value for e in at.exception])
    train = AppTest.from_file(str(ROOT / "pages/train.py"), default_timeout=60).run()
    assert train.button(key="start_cpu").disabled is True
    assert any("read-only" in w.value for w in train.warning)
    runs_page = AppTest.from_file(str(ROOT / "pages/runs.py"), default_timeout=60).run()
    runs_page.selectbox(key="detail_run").set_value(done).run()
    assert runs_page.checkbox(key="confirm_delete").disabled is True
    assert any("Stop and Delete are off" in c.value and "read-only" in c.value for c in runs_page.caption)
    assert sorted(str(p) for p in runs.rglob("*")) == before  # reading wrote nothing


def test_a_run_is_refused_before_it_starts_on_a_nearly_full_disk(tmpfs):
    runs = tmpfs(f"{MIN_FREE_MB // 2}m") / "runs"
    result = cli("run", "--epochs", "1", *TINY, runs_dir=runs)
    assert result.returncode == 1
    assert "MiB free on the file system of" in result.stderr
    assert f"at least {MIN_FREE_MB} MiB" in result.stderr
    assert not runs.exists() or not list(runs.iterdir())
    with pytest.raises(RunError, match="MiB free"):
        local.launch(RunStore(runs), make_config(epochs=1))


def test_a_disk_that_fills_up_mid_run_ends_it_failed_with_the_cause(tmpfs, mnist_cached, monkeypatch):
    fs = tmpfs(f"{MIN_FREE_MB + 32}m")
    runs = fs / "runs"
    worker = subprocess.Popen(
        [sys.executable, "-m", "training", "run", "--epochs", "40", "--batch-size", "32", *TINY,
         "--runs-dir", str(runs)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        folder = wait_for(lambda: next((p for p in runs.glob("2*") if records(p, "epoch")), None), 120,
                          what="the first epoch")
        written = records(folder, "epoch")
        fill(fs)
        out, err = worker.communicate(timeout=60)
    finally:
        worker.kill()
    assert worker.returncode == 1
    assert "no space left on device on" in err, err[-2000:]

    # Still on the full disk: reading works, and the run says why it failed.
    listing = cli("list", "--json", runs_dir=runs)
    assert listing.returncode == 0, listing.stderr
    [row] = [r for r in json.loads(listing.stdout) if r["id"] == folder.name]
    assert row["status"] == "failed" and "no space left on device on" in row["error"]
    exported = json.loads(cli("export", folder.name, "--format", "json", runs_dir=runs).stdout)
    assert exported[: len(written)] == [{k: e.get(k) for k in exported[0]} for e in written]
    assert not debris(runs), debris(runs)
    assert not (folder / ".reserve").exists()  # given back to record the failure

    monkeypatch.setenv("TRAINING_RUNS_DIR", str(runs))
    at = AppTest.from_file(str(ROOT / "pages/runs.py"), default_timeout=60).run()
    at.selectbox(key="detail_run").set_value(folder.name).run()
    assert not at.exception
    assert any("no space left on device" in e.value for e in at.error)
    assert any("no space left on device" in note for note in at.dataframe[0].value["Note"])


def test_a_run_that_died_on_a_full_disk_is_lost_with_the_cause(tmpfs):
    fs = tmpfs(f"{MIN_FREE_MB + 8}m")
    store = RunStore(fs / "runs")
    run = local.create_local(store, make_config(epochs=3, name="died"))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    ident = process.identity(dead.pid)
    dead.wait()
    run.write_pid(ident)
    run.set_status("running")
    fill(fs)
    row = listing.row(run, "this machine")
    assert row["status"] == "lost"
    assert row["error"].startswith(f"no space left on device on {run.folder}")
    listed = cli("list", runs_dir=store.root)
    assert listed.returncode == 0 and "[no space left on device" in listed.stdout


def test_debris_of_a_dead_writer_is_swept_and_a_fresh_write_is_left(runs_dir):
    store = RunStore(runs_dir)
    run_id = finished_local_run(store)
    old = time.time() - 3600
    stale = [runs_dir / ".tmp-20260101-000000-000000-abcdef-1234",
             runs_dir / run_id / ".status.json.1.abc.tmp"]
    stale[0].mkdir()
    stale[1].write_text("{")
    fresh = runs_dir / run_id / ".pid.json.2.def.tmp"
    fresh.write_text("{")
    for path in stale:
        os.utime(path, (old, old))
    assert cli("import", str(FIXTURES / "keras3-csvlogger.csv"), runs_dir=runs_dir).returncode == 0
    assert not any(p.exists() for p in stale)
    assert fresh.exists()  # could be a write in progress in another process


def test_a_failing_tensorboard_writer_becomes_a_warning_and_training_goes_on(tmp_path):
    from training.store.logwriter import LogWriter
    from training.worker.engines import EpochClock, StopFlag

    def tensorboard(record):
        raise OSError(28, "No space left on device", str(tmp_path / "tb" / "events"))

    path = tmp_path / "metrics.jsonl"
    with LogWriter(path) as writer:
        clock = EpochClock(writer, make_config(epochs=2, limit_train=1024), StopFlag(), tensorboard)
        clock.begin_training()
        for epoch in (1, 2):
            clock.begin_epoch()
            clock.end_epoch(epoch, {"loss": 0.5, "accuracy": 0.9, "val_loss": 0.4, "val_accuracy": 0.9})
    log = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["type"] for r in log] == ["epoch", "warning", "epoch"]  # one warning, then no more tries
    assert log[1]["source"] == "tensorboard" and "No space left on device" in log[1]["message"]


def test_a_system_sampler_that_cannot_write_says_so_and_stops(tmp_path):
    from training.worker.sampler import SystemSampler

    said = []
    with SystemSampler(tmp_path / "gone" / "system.jsonl", interval_s=0.05, on_error=said.append):
        wait_for(lambda: said, 5, what="the sampler's error")
    assert said == [f"system metrics are no longer sampled: no such file or directory on {tmp_path / 'gone'} "
                    "(writing system.jsonl)"]
