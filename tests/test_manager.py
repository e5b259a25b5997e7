"""The run manager with real detached workers: finish, stop, lose, queue, recover."""

from __future__ import annotations

import os
import signal
import time

import pytest
from conftest import cli, records, wait_for

from training import manager
from training.config import make_config
from training.runlog import RunLog
from training.runstore import RunError, RunStore

TINY = {"limit_train": 1024, "limit_test": 512}
# Long enough to catch mid-epoch: 256 batches of 16 per epoch, many epochs.
SLOW = {"limit_train": 4096, "limit_test": 256, "batch_size": 16, "epochs": 50}


def wait_status(store: RunStore, run_id: str, wanted: set[str], timeout: float = 120) -> str:
    return wait_for(lambda: store.status(run_id) if store.status(run_id) in wanted else None,
                    timeout, what=f"{run_id} to become {wanted}")


def test_launch_returns_at_once_and_run_finishes(runs_dir, mnist_cached):
    store = RunStore(runs_dir)
    started = time.monotonic()
    run_id = manager.launch(store, make_config(epochs=2, **TINY))
    assert time.monotonic() - started < 2, "launch must not wait for the training"
    assert store.status(run_id) in ("queued", "running")
    assert wait_status(store, run_id, {"finished", "failed", "lost"}) == "finished"
    log = store.log(run_id)
    assert log.epochs_done == 2 and log.end["status"] == "finished"
    assert (runs_dir / run_id / "stderr.log").exists()


def test_stop_sigterm_records_stopped_and_keeps_epochs(runs_dir, mnist_cached):
    store = RunStore(runs_dir)
    run_id = manager.launch(store, make_config(**SLOW))
    wait_for(lambda: store.log(run_id).epochs_done >= 1 and store.log(run_id).progress, 120,
             what="a progress record after epoch 1")
    assert manager.stop(store, run_id) == "stopped"
    assert store.status(run_id) == "stopped"
    log = store.log(run_id)
    assert log.end["status"] == "stopped" and "note" not in log.end, "the worker wrote its own end"
    assert log.epochs_done >= 1
    with pytest.raises(RunError):
        manager.stop(store, run_id)


def test_kill_9_mid_epoch_is_lost_with_completed_epochs_intact(runs_dir, mnist_cached):
    store = RunStore(runs_dir)
    run_id = manager.launch(store, make_config(**SLOW))
    wait_for(lambda: store.log(run_id).epochs_done >= 2 and store.log(run_id).progress, 180,
             what="mid-epoch 3")
    before = store.log(run_id).epochs
    os.killpg(store.pid(run_id)["pid"], signal.SIGKILL)
    assert wait_status(store, run_id, {"lost"}, timeout=10) == "lost"
    after = store.log(run_id)
    assert after.end is None
    assert after.epochs[: len(before)] == before
    assert [e["epoch"] for e in after.epochs] == list(range(1, after.epochs_done + 1))


def test_new_store_instance_picks_up_a_running_run_and_its_progress(runs_dir, mnist_cached):
    launcher = RunStore(runs_dir)
    run_id = manager.launch(launcher, make_config(**SLOW))
    try:
        other = RunStore(runs_dir)  # as a restarted dashboard would
        wait_status(other, run_id, {"running"}, timeout=60)
        follower = RunLog(other.path(run_id))
        wait_for(lambda: follower.update() and follower.progress, 60, what="progress")
        first = follower.progress["elapsed_s"]
        wait_for(lambda: follower.update() and follower.progress
                 and follower.progress["elapsed_s"] > first, 30, what="more progress")
        assert other.summary(run_id)["status"] == "running"
    finally:
        manager.stop(RunStore(runs_dir), run_id)


def test_queued_runs_start_in_order_one_at_a_time(runs_dir, mnist_cached):
    store = RunStore(runs_dir)
    ids = [manager.launch(store, make_config(epochs=1, **TINY)) for _ in range(3)]
    statuses = [store.status(i) for i in ids]
    assert all(s in ("queued", "running") for s in statuses)
    for run_id in ids:
        assert wait_status(store, run_id, {"finished", "failed", "lost"}, timeout=180) == "finished"
    spans = []
    for run_id in ids:
        log = records(runs_dir / run_id)
        spans.append((log[0]["time"], log[-1]["time"]))  # start record .. end record
    for (_, end_a), (start_b, _) in zip(spans, spans[1:]):
        assert start_b >= end_a, f"runs overlapped: {spans}"


def test_stopping_a_queued_run_cancels_it(runs_dir, mnist_cached):
    store = RunStore(runs_dir)
    first = manager.launch(store, make_config(**SLOW))
    second = manager.launch(store, make_config(epochs=1, **TINY))
    try:
        wait_status(store, first, {"running"}, timeout=60)
        time.sleep(1)
        assert store.status(second) == "queued"
        assert manager.stop(store, second) == "stopped"
        assert records(runs_dir / second, "epoch") == []
        assert records(runs_dir / second)[-1]["status"] == "stopped"
    finally:
        manager.stop(store, first)


def test_pair_launch_queues_cpu_then_gpu_with_the_same_settings(runs_dir):
    store = RunStore(runs_dir)
    cpu, gpu = manager.launch_pair(store, make_config(epochs=3, batch_size=64, **TINY))
    try:
        a, b = store.meta(cpu), store.meta(gpu)
        assert (a["device"], b["device"]) == ("cpu", "gpu") and cpu < gpu
        same = {k: v for k, v in a["config"].items() if k not in ("device", "name")}
        assert same == {k: v for k, v in b["config"].items() if k not in ("device", "name")}
    finally:
        for run_id in (gpu, cpu):
            if store.status(run_id) in ("queued", "running"):
                manager.stop(store, run_id)


def test_detach_prints_the_run_id_last(runs_dir, mnist_cached):
    result = cli("run", "--epochs", "1", "--limit-train", "512", "--limit-test", "128", "--detach",
                 runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.strip().splitlines()[-1]
    store = RunStore(runs_dir)
    assert wait_status(store, run_id, {"finished", "failed", "lost"}) == "finished"


def test_concurrent_runs_do_not_wait_for_each_other(runs_dir, mnist_cached):
    store = RunStore(runs_dir)
    first = manager.launch(store, make_config(**SLOW))
    try:
        wait_status(store, first, {"running"}, timeout=60)
        second = manager.launch(store, make_config(epochs=1, concurrent=True, **TINY))
        assert wait_status(store, second, {"finished", "failed", "lost"}, timeout=120) == "finished"
        assert store.status(first) == "running", "the concurrent run had to wait for the first"
    finally:
        manager.stop(store, first)
