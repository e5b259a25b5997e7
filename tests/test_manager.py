"""The local launcher with real detached workers: finish, stop, lose, queue, recover."""

from __future__ import annotations

import os
import signal
import time

import pytest
from conftest import cli, records, wait_for

from training.analysis import listing
from training.config import make_config
from training.launch import LocalLauncher, launch_pair, local
from training.store import RunError, RunStore
from training.store.runlog import RunLog

TINY = {"limit_train": 1024, "limit_test": 512}
# Long enough to catch mid-epoch: 256 batches of 16 per epoch, many epochs.
SLOW = {"limit_train": 4096, "limit_test": 256, "batch_size": 16, "epochs": 50}


def wait_status(store: RunStore, run_id: str, wanted: set[str], timeout: float = 120) -> str:
    return wait_for(lambda: store.open(run_id).status() if store.open(run_id).status() in wanted else None,
                    timeout, what=f"{run_id} to become {wanted}")


def test_launch_returns_at_once_and_run_finishes(runs_dir, mnist_cached):
    store = RunStore(runs_dir)
    started = time.monotonic()
    run_id = local.launch(store, make_config(epochs=2, **TINY)).id
    assert time.monotonic() - started < 2, "launch must not wait for the training"
    assert store.open(run_id).status() in ("queued", "running")
    assert wait_status(store, run_id, {"finished", "failed", "lost"}) == "finished"
    log = store.open(run_id).log()
    assert log.epochs_done == 2 and log.end["status"] == "finished"
    assert (runs_dir / run_id / "stderr.log").exists()


def test_stop_sigterm_records_stopped_and_keeps_epochs(runs_dir, mnist_cached):
    store = RunStore(runs_dir)
    run_id = local.launch(store, make_config(**SLOW)).id
    wait_for(lambda: store.open(run_id).log().epochs_done >= 1 and store.open(run_id).log().progress, 120,
             what="a progress record after epoch 1")
    assert local.stop(store.open(run_id)) == "stopped"
    assert store.open(run_id).status() == "stopped"
    log = store.open(run_id).log()
    assert log.end["status"] == "stopped" and "note" not in log.end, "the worker wrote its own end"
    assert log.epochs_done >= 1
    with pytest.raises(RunError):
        local.stop(store.open(run_id))


def test_kill_9_mid_epoch_is_lost_with_completed_epochs_intact(runs_dir, mnist_cached):
    store = RunStore(runs_dir)
    run_id = local.launch(store, make_config(**SLOW)).id
    wait_for(lambda: store.open(run_id).log().epochs_done >= 2 and store.open(run_id).log().progress, 180,
             what="mid-epoch 3")
    before = store.open(run_id).log().epochs
    os.killpg(store.open(run_id).pid()["pid"], signal.SIGKILL)
    assert wait_status(store, run_id, {"lost"}, timeout=10) == "lost"
    after = store.open(run_id).log()
    assert after.end is None
    assert after.epochs[: len(before)] == before
    assert [e["epoch"] for e in after.epochs] == list(range(1, after.epochs_done + 1))


def test_new_store_instance_picks_up_a_running_run_and_its_progress(runs_dir, mnist_cached):
    launcher = RunStore(runs_dir)
    run_id = local.launch(launcher, make_config(**SLOW)).id
    try:
        other = RunStore(runs_dir)  # as a restarted dashboard would
        wait_status(other, run_id, {"running"}, timeout=60)
        run = other.open(run_id)
        follower = RunLog(run.metrics_path)
        wait_for(lambda: follower.update() and follower.progress, 60, what="progress")
        first = follower.progress["elapsed_s"]
        wait_for(lambda: follower.update() and follower.progress
                 and follower.progress["elapsed_s"] > first, 30, what="more progress")
        assert listing.row(run, "this machine")["status"] == "running"
    finally:
        local.stop(RunStore(runs_dir).open(run_id))


def test_queued_runs_start_in_order_one_at_a_time(runs_dir, mnist_cached):
    store = RunStore(runs_dir)
    ids = [local.launch(store, make_config(epochs=1, **TINY)).id for _ in range(3)]
    statuses = [store.open(i).status() for i in ids]
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
    first = local.launch(store, make_config(**SLOW)).id
    second = local.launch(store, make_config(epochs=1, **TINY)).id
    try:
        wait_status(store, first, {"running"}, timeout=60)
        time.sleep(1)
        assert store.open(second).status() == "queued"
        assert local.stop(store.open(second)) == "stopped"
        assert records(runs_dir / second, "epoch") == []
        assert records(runs_dir / second)[-1]["status"] == "stopped"
    finally:
        local.stop(store.open(first))


def test_pair_launch_queues_cpu_then_gpu_with_the_same_settings(runs_dir):
    store = RunStore(runs_dir)
    config = make_config(epochs=3, batch_size=64, **TINY)
    cpu, gpu = [r.id for r in launch_pair(LocalLauncher(), store, config)]
    try:
        a, b = store.open(cpu).meta, store.open(gpu).meta
        assert (a["device"], b["device"]) == ("cpu", "gpu") and cpu < gpu
        same = {k: v for k, v in a["config"].items() if k not in ("device", "name")}
        assert same == {k: v for k, v in b["config"].items() if k not in ("device", "name")}
    finally:
        for run_id in (gpu, cpu):
            if store.open(run_id).status() in ("queued", "running"):
                local.stop(store.open(run_id))


def test_detach_prints_the_run_id_last(runs_dir, mnist_cached):
    result = cli("run", "--epochs", "1", "--limit-train", "512", "--limit-test", "128", "--detach",
                 runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.strip().splitlines()[-1]
    store = RunStore(runs_dir)
    assert wait_status(store, run_id, {"finished", "failed", "lost"}) == "finished"


def test_concurrent_runs_do_not_wait_for_each_other(runs_dir, mnist_cached):
    store = RunStore(runs_dir)
    first = local.launch(store, make_config(**SLOW)).id
    try:
        wait_status(store, first, {"running"}, timeout=60)
        second = local.launch(store, make_config(epochs=1, concurrent=True, **TINY)).id
        assert wait_status(store, second, {"finished", "failed", "lost"}, timeout=120) == "finished"
        assert store.open(first).status() == "running", "the concurrent run had to wait for the first"
    finally:
        local.stop(store.open(first))
