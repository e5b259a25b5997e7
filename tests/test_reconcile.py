"""Reading never writes, and a refresh never starts a process per run (issue 26).

The launchers are asked about runs that look `lost` in one explicit step,
`launch.reconcile`: one `squeue` for every Slurm run, each run at most every 10 s.
How often Slurm is asked can only be counted by a program that counts, so `squeue` and
`scontrol` here are stand-ins: small scripts on PATH that log each call and answer as
Slurm 22.05 does. What Slurm's real answers mean is tests/test_slurm.py's, against a real
Slurm.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from conftest import run_cli

from training import launch
from training.store import RunStore

SQUEUE = """#!/bin/sh
echo "squeue $*" >> "$CALLS"
for job in $(echo "$*" | sed -n 's/.*--jobs=\\([0-9,]*\\).*/\\1/p' | tr , ' '); do
  case $job in
    1*) echo "$job|RUNNING|node$job" ;;
    2*) echo "$job|PENDING|" ;;
  esac
done
"""
SCONTROL = """#!/bin/sh
echo "scontrol $*" >> "$CALLS"
echo "slurm_load_jobs error: Invalid job id specified" >&2
exit 1
"""


@pytest.fixture
def slurm_standin(tmp_path, monkeypatch) -> Path:
    """squeue and scontrol stand-ins first on PATH; returns the file each call is logged to."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("squeue", SQUEUE), ("scontrol", SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)
    calls = tmp_path / "calls.log"
    calls.write_text("")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CALLS", str(calls))
    getattr(launch, "_asked", {}).clear()  # what an earlier test in this process was told
    return calls


def slurm_runs(store: RunStore, jobs: list[str]) -> list:
    """Runs submitted to Slurm whose workers are on other nodes: here they look lost."""
    runs = []
    for job in jobs:
        run = store.create({"name": f"job {job}", "source": "local", "slurm": {"partition": "debug"}},
                           "running")
        run.write_job(job_id=job, partition="debug")
        runs.append(run)
    return runs


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines()


def test_list_asks_squeue_once_for_every_slurm_run_and_not_again_within_ten_seconds(slurm_standin, runs_dir):
    store = RunStore(runs_dir)
    runs = slurm_runs(store, ["11", "12", "13", "21", "22"])
    first = run_cli("list", "--json", runs_dir=runs_dir)
    assert first.returncode == 0, first.stderr
    assert [c.split()[0] for c in calls(slurm_standin)] == ["squeue"]  # one call, no scontrol per run
    statuses = {run.id: run.status() for run in runs}
    assert set(statuses.values()) == {"lost"}  # what the folders alone say
    settled = launch.reconcile(store.runs(), store.statuses())
    assert [settled[run.id] for run in runs] == ["running"] * 3 + ["queued"] * 2
    assert runs[0].job()["node"] == "node11"  # the node came with the same squeue answer
    run_cli("list", runs_dir=runs_dir)
    assert len(calls(slurm_standin)) == 1  # asked less than 10 s ago: the answer stands


def test_reading_statuses_never_asks_slurm_and_never_writes(slurm_standin, runs_dir):
    store = RunStore(runs_dir)
    slurm_runs(store, ["11", "31"])  # 31: a job squeue no longer lists

    def contents() -> dict:
        return {str(p): p.read_bytes() for p in runs_dir.rglob("*") if p.is_file()}

    before = contents()
    for _ in range(3):
        store.statuses()
    assert calls(slurm_standin) == [] and contents() == before
    launch.reconcile(store.runs(), store.statuses())  # the explicit step: it may write the ended job's end
    assert len([c for c in calls(slurm_standin) if c.startswith("squeue")]) == 1
    ended = next(run for run in store.runs() if run.job().get("job_id") == "31")
    assert ended.status() == "failed" and "no longer remembers" in ended.cause("failed")
