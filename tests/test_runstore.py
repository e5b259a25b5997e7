"""The run store: ids, atomic folders, status derived from disk, delete rules."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from conftest import ROOT

from training.config import make_config
from training.launch.local import create_local
from training.store import InvalidRunId, RunError, RunNotFound, RunStore, process
from training.store.logwriter import append_record

CREATE_ONE = """
import sys
from training.config import make_config
from training.launch.local import create_local
from training.store import RunStore
print(create_local(RunStore(sys.argv[1]), make_config(epochs=1)).id)
"""


def test_twenty_parallel_creates_get_unique_sorted_ids(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", CREATE_ONE, str(tmp_path)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True) for _ in range(20)]
    ids = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(ids)) == 20
    store = RunStore(tmp_path)
    assert sorted(ids) + ["ref-keras-cpu", "ref-tensorflow-gpu"] == store.ids()  # built-in runs last
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")], "half-made folders left"


def test_ids_sort_by_creation_time(tmp_path):
    store = RunStore(tmp_path)
    first = create_local(store, make_config()).id
    time.sleep(0.002)
    second = create_local(store, make_config()).id
    assert store.ids()[:2] == [first, second]


def test_folder_has_config_and_status_and_no_half_made_copy(tmp_path):
    store = RunStore(tmp_path)
    run_id = create_local(store, make_config(epochs=3, name="hello")).id
    meta = json.loads((tmp_path / run_id / "config.json").read_text())
    assert meta["name"] == "hello" and meta["config"]["epochs"] == 3 and meta["source"] == "local"
    assert json.loads((tmp_path / run_id / "status.json").read_text())["state"] == "queued"


@pytest.mark.parametrize("bad", ["../etc", "a/b", "..", "", ".hidden", "x" * 200, "a b"])
def test_bad_run_ids_are_refused(tmp_path, bad):
    with pytest.raises(InvalidRunId):
        RunStore(tmp_path).open(bad)


def test_unknown_run_id(tmp_path):
    with pytest.raises(RunNotFound):
        RunStore(tmp_path).open("20990101-000000-000000-abcdef")


def test_queued_without_pid_becomes_lost_after_grace(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    run_id = create_local(store, make_config()).id
    assert store.open(run_id).status() == "queued"  # a launch in progress
    monkeypatch.setattr("training.store.state.LAUNCH_GRACE_S", -1)
    assert store.open(run_id).status() == "lost"


def test_running_with_a_dead_or_reused_pid_is_lost(tmp_path):
    store = RunStore(tmp_path)
    run_id = create_local(store, make_config()).id
    store.open(run_id).set_status("running")
    me = process.identity()
    store.open(run_id).write_pid(me)
    assert store.open(run_id).status() == "running"
    # Same pid, different start time: the pid was reused by another process.
    store.open(run_id).write_pid({**me, "create_time": me["create_time"] - 100})
    assert store.open(run_id).status() == "lost"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    ident = process.identity(dead.pid)
    dead.wait()
    store.open(run_id).write_pid(ident)
    assert store.open(run_id).status() == "lost"


def test_end_record_wins_when_status_file_lags(tmp_path):
    store = RunStore(tmp_path)
    run_id = create_local(store, make_config()).id
    store.open(run_id).set_status("running")
    append_record(tmp_path / run_id / "metrics.jsonl", {"type": "end", "status": "finished"})
    assert store.open(run_id).status() == "finished"


def test_delete_refused_while_active_and_for_references(tmp_path):
    from training.store.runs import builtin_ids

    store = RunStore(tmp_path)
    run_id = create_local(store, make_config()).id
    store.open(run_id).set_status("running")
    store.open(run_id).write_pid(process.identity())
    with pytest.raises(RunError, match="stop it before deleting"):
        store.delete(run_id)
    store.open(run_id).set_status("stopped")
    store.delete(run_id)
    assert run_id not in store.ids() and not (tmp_path / run_id).exists()
    for ref in builtin_ids():
        with pytest.raises(RunError, match="reference run"):
            store.delete(ref)
    assert len(store.ids()) == 2
