"""Runs through a real single-node Slurm (tests/slurm_support.py): sbatch, squeue, scontrol,
scancel and srun against munged, slurmctld and slurmd started for this session. No mocks.

The node is this machine with 2 CPUs and no GPU; runs train tiny MNIST subsets.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pytest
from conftest import ROOT, TINY, cli, records, wait_for
from slurm_support import single_node_slurm, why_not
from streamlit.testing.v1 import AppTest

from training.store import RunStore

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.xdist_group("slurm"),  # one cluster
              pytest.mark.skipif(why_not() is not None, reason=why_not() or "")]


@pytest.fixture(scope="session")
def slurm_cluster():
    with single_node_slurm() as cluster:
        yield cluster


@pytest.fixture
def slurm(slurm_cluster, monkeypatch):
    """The session's Slurm, with SLURM_CONF set for this test (and the CLIs it starts) only."""
    monkeypatch.setenv("SLURM_CONF", slurm_cluster["conf"])
    return slurm_cluster


def squeue(*args: str) -> list[str]:
    result = subprocess.run(["squeue", "--noheader", *args], capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def training_jobs() -> list[str]:
    return [name for name in squeue("--format=%j") if name.startswith("training-")]


def node_state(node: str) -> str:
    result = subprocess.run(["sinfo", "--noheader", "--nodes", node, "--format=%T"], capture_output=True,
                            text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def submit(runs_dir, *args: str) -> str:
    result = cli("run", "--slurm", "--detach", *args, runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.split()[-1]


def listed(runs_dir) -> dict[str, dict]:
    result = cli("list", "--json", runs_dir=runs_dir)  # also what records an end Slurm alone saw
    assert result.returncode == 0, result.stderr
    return {row["id"]: row for row in json.loads(result.stdout)}


def job_of(runs_dir, run_id: str) -> dict:
    return json.loads((runs_dir / run_id / "job.json").read_text())


def test_a_cpu_run_through_slurm_finishes_and_shows_its_job_and_node(slurm, runs_dir, mnist_cached):
    result = cli("run", "--slurm", "--epochs", "2", *TINY, runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    run_id = result.stdout.split()[-1]
    assert [r["epoch"] for r in records(runs_dir / run_id, "epoch")] == [1, 2]
    assert [r["status"] for r in records(runs_dir / run_id, "end")] == ["finished"]
    job = job_of(runs_dir, run_id)
    assert job["job_id"].isdigit() and job["node"] == slurm["node"] and job["partition"] == "debug"
    script = (runs_dir / run_id / "slurm-job.sh").read_text()  # kept for people to read
    assert "#SBATCH --cpus-per-task=2" in script and "--exclusive" not in script
    assert f"-m training work {run_id} --runs-dir {runs_dir} --slurm" in script
    where = f"Slurm job {job['job_id']} on {slurm['node']} (partition debug)"
    row = listed(runs_dir)[run_id]
    assert row["status"] == "finished" and row["where"] == where
    wait_for(lambda: job["job_id"] not in squeue("--format=%i"), 60, what="the job to leave squeue")

    at = AppTest.from_file(str(ROOT / "pages/runs.py"), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    history = at.dataframe[0].value  # the history table
    assert list(history.loc[history["id"] == run_id, "Where"]) == [where]


def test_stop_ends_a_slurm_run_stopped_through_the_workers_graceful_path(slurm, runs_dir, mnist_cached):
    run_id = submit(runs_dir, "--epochs", "50", "--batch-size", "16", "--threads", "1",
                    "--limit-train", "4096", "--limit-test", "256")
    wait_for(lambda: any(r["type"] == "progress" for r in records(runs_dir / run_id)), 120, what="training")
    # As if the worker ran on another node: its pid means nothing here, so only Slurm can say it runs.
    (runs_dir / run_id / "pid.json").write_text(json.dumps({"pid": 1, "create_time": 0}))
    assert RunStore(runs_dir).open(run_id).status() == "lost"
    assert listed(runs_dir)[run_id]["status"] == "running"
    result = cli("stop", run_id, runs_dir=runs_dir)
    assert result.returncode == 0 and result.stdout.strip() == f"{run_id}: stopped", result.stderr
    [end] = records(runs_dir / run_id, "end")
    assert end["status"] == "stopped" and "wall_s" in end  # the worker's own record, not the launcher's
    assert job_of(runs_dir, run_id)["job_id"] not in squeue("--format=%i")
    assert listed(runs_dir)[run_id]["status"] == "stopped"


def test_a_sweep_through_slurm_runs_every_configuration_twice(slurm, runs_dir, mnist_cached):
    # One CPU each and shared nodes, so two jobs run at once on the 2-CPU node.
    result = cli("sweep", "--slurm", "--no-exclusive", "--threads", "1", "--batch-size", "64,128",
                 "--repeats", "2", "--epochs", "1", *TINY, runs_dir=runs_dir, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    *run_ids, group = result.stdout.split()
    assert group.startswith("g-") and len(run_ids) == 4
    store = RunStore(runs_dir)
    batches = [store.open(run_id).meta["config"]["batch_size"] for run_id in run_ids]
    assert batches == [64, 128, 64, 128]  # interleaved, repeat by repeat
    rows = listed(runs_dir)
    for run_id in run_ids:
        assert rows[run_id]["status"] == "finished" and rows[run_id]["group"] == group
        assert [r["epoch"] for r in records(runs_dir / run_id, "epoch")] == [1]
        script = (runs_dir / run_id / "slurm-job.sh").read_text()
        assert "#SBATCH --cpus-per-task=1" in script and "--exclusive" not in script
    assert len({job_of(runs_dir, run_id)["job_id"] for run_id in run_ids}) == 4


def test_repeats_ask_for_whole_nodes_and_wait_pending_until_stopped(slurm, runs_dir):
    # --hold keeps the jobs pending in Slurm: nothing trains, and stop cancels them there.
    result = cli("run", "--slurm", "--slurm-args=--hold", "--repeats", "2", "--detach", "--epochs", "1",
                 *TINY, runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    *run_ids, _ = result.stdout.split()
    for run_id in run_ids:
        assert "#SBATCH --exclusive" in (runs_dir / run_id / "slurm-job.sh").read_text()  # a group's default
        assert "PENDING" in squeue(f"--jobs={job_of(runs_dir, run_id)['job_id']}", "--format=%T")
    # As if pending for an hour: past the launch's grace, only Slurm can say it still waits.
    config = runs_dir / run_ids[0] / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "created": time.time() - 3600}))
    assert RunStore(runs_dir).open(run_ids[0]).status() == "lost"
    assert [listed(runs_dir)[run_id]["status"] for run_id in run_ids] == ["queued", "queued"]
    for run_id in run_ids:
        stopped = cli("stop", run_id, runs_dir=runs_dir)
        assert stopped.stdout.strip() == f"{run_id}: stopped", stopped.stderr
        [end] = records(runs_dir / run_id, "end")
        assert end["note"] == "cancelled while pending in Slurm"
        assert job_of(runs_dir, run_id)["job_id"] not in squeue("--format=%i")


def test_a_gpu_run_on_a_partition_without_gpus_is_refused_before_submission(slurm, runs_dir):
    before = training_jobs()
    result = cli("run", "--slurm", "--device", "gpu", "--epochs", "1", *TINY, runs_dir=runs_dir)
    assert result.returncode == 1
    said = f"no node of Slurm partition debug has a GPU (sinfo's GRES: {slurm['node']}: none)"
    assert said in result.stderr
    assert not runs_dir.exists() and set(training_jobs()) <= set(before)


@pytest.mark.parametrize(("args", "said"), [
    (["--slurm-args=--time=abc"], "sbatch: error: Invalid --time specification"),
    (["--slurm", "nosuch"], "sbatch: error: invalid partition specified: nosuch"),
], ids=["bad-slurm-args", "bad-partition"])
def test_a_job_sbatch_refuses_fails_with_its_message_and_leaves_no_run(slurm, runs_dir, args, said):
    before = training_jobs()
    result = cli("run", "--slurm", *args, "--epochs", "1", *TINY, runs_dir=runs_dir)
    assert result.returncode == 1
    assert f"error: sbatch refused the job: {said}" in result.stderr
    assert not runs_dir.exists() or not list(runs_dir.iterdir())
    assert set(training_jobs()) <= set(before)


def test_a_job_cancelled_from_outside_ends_failed_with_slurms_cause(slurm, runs_dir, mnist_cached):
    run_id = submit(runs_dir, "--epochs", "50", "--batch-size", "16", "--threads", "1",
                    "--limit-train", "4096", "--limit-test", "256")
    wait_for(lambda: any(r["type"] == "progress" for r in records(runs_dir / run_id)), 120, what="training")
    job_id = job_of(runs_dir, run_id)["job_id"]
    subprocess.run(["scancel", job_id], check=True, timeout=20)  # not through `stop`
    wait_for(lambda: listed(runs_dir)[run_id]["status"] != "running", 120, interval=1, what="the job's end")
    row = listed(runs_dir)[run_id]
    assert row["status"] == "failed"
    assert f"Slurm job {job_id} was cancelled without a stop request" in row["error"]
    assert "JobState=CANCELLED" in row["error"]
    assert [r["status"] for r in records(runs_dir / run_id, "end")] == ["failed"]


@pytest.mark.root  # mounts a tmpfs, in a mount namespace of its own
def test_a_runs_folder_the_node_cannot_see_is_refused_before_submission(slurm, tmp_path):
    before = training_jobs()
    if not shutil.which("unshare") or subprocess.run(["unshare", "--mount", "true"]).returncode != 0:
        pytest.skip("needs `unshare --mount` for a folder in a mount namespace of its own")
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    # A tmpfs mounted in a private mount namespace: this process sees it, slurmd does not.
    script = (f"mount -t tmpfs none {hidden} && {sys.executable} -m training run --slurm --epochs 1 "
              f"{' '.join(TINY)} --runs-dir {hidden}/runs; echo exit=$?; ls -A {hidden}/runs")
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert "exit=1" in result.stdout, result.stderr
    assert (f"the runs folder {hidden}/runs is not on a file system that node {slurm['node']} of Slurm "
            "partition debug sees") in result.stderr
    assert result.stdout.split()[1:] == []  # nothing left in the folder: no run, no marker
    assert set(training_jobs()) <= set(before)


def test_the_train_page_offers_the_partition_with_its_nodes_and_starts_a_run_there(slurm, runs_dir,
                                                                                   mnist_cached):
    # An earlier test's job may still be ending on the session's one node ("mixed" or "completing"):
    # the page must show the state Slurm reports, so wait until Slurm itself says the node is idle.
    wait_for(lambda: node_state(slurm["node"]) == "idle", 60, interval=1, what="the node to be idle")
    at = AppTest.from_file(str(ROOT / "pages/train.py"), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    where = at.radio(key="where")
    assert where.options == ["This machine", "Slurm partition debug"]
    where.set_value("Slurm partition debug").run()
    [nodes] = [frame.value for frame in at.dataframe]
    assert list(nodes["Node"]) == [slurm["node"]] and list(nodes["CPUs"]) == [2]
    assert list(nodes["GPUs"]) == [0] and list(nodes["State"]) == ["idle"]
    assert at.button(key="start_gpu").disabled  # no GPU in this partition's GRES
    at.number_input(key="epochs").set_value(1)
    at.toggle(key="use_subset").set_value(True).run()
    at.number_input(key="limit_train").set_value(1024)
    at.number_input(key="limit_test").set_value(512).run()
    at.button(key="start_cpu").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    [run] = RunStore(runs_dir).runs()[:1]
    assert run.meta["slurm"]["partition"] == "debug" and run.meta["epochs"] == 1
    assert run.job()["job_id"].isdigit()
    wait_for(lambda: listed(runs_dir)[run.id]["status"] == "finished", 120, interval=1, what="finished")
    assert [r["epoch"] for r in records(run.folder, "epoch")] == [1]
