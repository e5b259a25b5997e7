"""Runs on a real local Ray cluster: `ray start --head --block` on 127.0.0.1, in its own
process group, with 2 CPUs and one logical GPU (no real GPU behind it). No mocks of Ray.

The cluster is started once for this module and its process group is ended after it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT, TINY, cli, records, wait_for
from streamlit.testing.v1 import AppTest

from training import launch
from training.analysis import listing
from training.launch.cluster import nodes
from training.store import RunError, RunStore

pytest.importorskip("ray", reason="Ray is not installed: pip install -r requirements-cluster.txt")
pytestmark = [pytest.mark.cluster, pytest.mark.ray, pytest.mark.slow]
RAY = Path(sys.executable).with_name("ray")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """The address of a fresh single-node Ray cluster on this machine."""
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    port, dashboard = free_port(), free_port()
    path = f"{RAY.parent}{os.pathsep}{os.environ['PATH']}"  # jobs run this venv's python
    env = {**os.environ, "PATH": path, "RAY_USAGE_STATS_ENABLED": "0"}
    head = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", f"--port={port}", f"--dashboard-port={dashboard}",
         "--dashboard-host=127.0.0.1", "--node-ip-address=127.0.0.1", "--num-cpus=2", "--num-gpus=1",
         "--include-dashboard=true", "--disable-usage-stats", f"--temp-dir={temp}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    address = f"http://127.0.0.1:{dashboard}"

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"{address}/api/jobs/", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return head.poll() is not None  # it died: stop waiting and fail below
    def resources_reported() -> bool:
        try:
            return any(node["gpus"] >= 1 for node in nodes(address))
        except RunError:
            return False
    try:
        wait_for(ready, 120, interval=0.5, what="the Ray head's job API")
        assert head.poll() is None, "ray start --head exited"
        wait_for(resources_reported, 60, interval=0.5, what="the head's CPUs and GPU in the state API")
        yield address
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # our own process group: the head and what it started
        try:
            head.wait(timeout=10)  # ray start --block does not always exit on SIGTERM
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()


def submit(runs_dir: Path, address: str, *args: str) -> str:
    result = cli("run", "--cluster", address, "--detach", *args, runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.split()[-1]


def status(runs_dir: Path, run_id: str) -> str:
    return RunStore(runs_dir).open(run_id).status()


def test_a_cpu_run_on_the_cluster_streams_home_and_finishes_with_every_epoch_once(cluster, runs_dir,
                                                                                     mnist_cached):
    run_id = submit(runs_dir, cluster, "--epochs", "3", "--batch-size", "32", *TINY)
    folder = runs_dir / run_id
    wait_for(lambda: records(folder, "epoch"), 120, what="the first epoch at home")
    assert status(runs_dir, run_id) == "running"  # records arrive while the job still runs
    wait_for(lambda: status(runs_dir, run_id) == "finished", 120, what="finished")
    log = records(folder)
    assert [r["epoch"] for r in log if r["type"] == "epoch"] == [1, 2, 3]
    seqs = [r["seq"] for r in log]
    assert seqs == sorted(set(seqs)) and seqs[0] == 1  # each record once, in order
    start = log[0]
    assert start["type"] == "start" and start["hardware"]["hostname"] and start["hardware"]["cpu_model"]
    meta = RunStore(runs_dir).open(run_id).meta
    assert meta["cluster"]["address"] == cluster
    listing = {r["id"]: r for r in json.loads(cli("list", "--json", runs_dir=runs_dir).stdout)}
    assert listing[run_id]["where"] == f"Ray cluster at {cluster} (job training-{run_id})"


def test_stop_on_a_cluster_run_ends_it_stopped_within_10_s(cluster, runs_dir, mnist_cached):
    run_id = submit(runs_dir, cluster, "--epochs", "50", "--batch-size", "16", "--limit-train", "4096",
                    "--limit-test", "256")
    wait_for(lambda: any(r["type"] == "progress" for r in records(runs_dir / run_id)), 120, what="training")
    began = time.monotonic()
    result = cli("stop", run_id, runs_dir=runs_dir)
    assert result.returncode == 0 and result.stdout.strip() == f"{run_id}: stopped", result.stderr
    assert time.monotonic() - began <= 10
    end = records(runs_dir / run_id, "end")
    assert [e["status"] for e in end] == ["stopped"]


def test_a_gpu_run_on_the_logical_gpu_fails_with_the_workers_reason(cluster, runs_dir, mnist_cached,
                                                                    monkeypatch):
    # Without --detach the command follows the cluster run to its end, as a local run.
    result = cli("run", "--cluster", cluster, "--device", "gpu", "--epochs", "1", *TINY, runs_dir=runs_dir)
    assert result.returncode == 1 and "sees no GPU" in result.stderr, result.stderr[-3000:]
    run_id = result.stdout.split()[-1]
    assert status(runs_dir, run_id) == "failed"
    row = listing.row(RunStore(runs_dir).open(run_id), launch.describe(RunStore(runs_dir).open(run_id)))
    assert "the tensorflow backend sees no GPU" in row["error"]
    monkeypatch.setenv("TRAINING_RUNS_DIR", str(runs_dir))
    at = AppTest.from_file(str(ROOT / "pages/runs.py"), default_timeout=60).run()
    at.selectbox(key="detail_run").set_value(run_id).run()
    assert not at.exception
    assert any("sees no GPU" in e.value for e in at.error)


def test_a_killed_follower_is_reattached_by_the_next_list_with_no_epoch_lost_or_doubled(
        cluster, runs_dir, mnist_cached):
    run_id = submit(runs_dir, cluster, "--epochs", "4", "--batch-size", "32", *TINY)
    store = RunStore(runs_dir)
    wait_for(lambda: records(runs_dir / run_id, "epoch"), 120, what="the first epoch")
    follower = store.open(run_id).pid()
    os.killpg(follower["pid"], signal.SIGKILL)  # the follower leads its own process group
    wait_for(lambda: store.open(run_id).status() == "lost", 10, what="lost while no one follows")
    time.sleep(3)  # the job goes on meanwhile
    assert cli("list", runs_dir=runs_dir).returncode == 0  # the next look starts a new follower
    assert store.open(run_id).pid() != follower
    wait_for(lambda: store.open(run_id).status() == "finished", 120, what="finished")
    epochs = [r["epoch"] for r in records(runs_dir / run_id, "epoch")]
    assert epochs == [1, 2, 3, 4]


def test_an_unreachable_cluster_fails_fast_and_creates_nothing(runs_dir):
    began = time.monotonic()
    result = cli("run", "--cluster", f"127.0.0.1:{free_port()}", "--epochs", "1", *TINY, runs_dir=runs_dir)
    assert time.monotonic() - began <= 10
    assert result.returncode == 1 and "cannot reach the Ray cluster at" in result.stderr
    assert not runs_dir.exists() or not list(runs_dir.iterdir())


def test_a_gpu_model_no_node_has_is_refused_before_submission(cluster, runs_dir):
    result = cli("run", "--cluster", cluster, "--device", "gpu", "--gpu-model", "H100", "--epochs", "1",
                 *TINY, runs_dir=runs_dir)
    assert result.returncode == 1 and "has a H100 GPU" in result.stderr
    assert not runs_dir.exists() or not list(runs_dir.iterdir())


def test_the_train_page_offers_the_cluster_and_shows_its_nodes(cluster, runs_dir, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", cluster)
    at = AppTest.from_file(str(ROOT / "pages/train.py"), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    where = at.radio(key="where")
    assert where.options == ["This machine", f"Ray cluster at {cluster}"]
    where.set_value(f"Ray cluster at {cluster}").run()
    [nodes] = [frame.value for frame in at.dataframe]
    assert list(nodes["CPUs"]) == [2] and list(nodes["GPUs"]) == [1]
    assert at.button(key="start_gpu").disabled is False  # the cluster has a (logical) GPU


def test_a_follower_whose_run_folder_was_deleted_ends_at_once(runs_dir):
    from training.launch.follower import follow

    run = RunStore(runs_dir).create({"name": "gone", "cluster": {"address": "http://127.0.0.1:9"}}, "running")
    assert run.meta["cluster"]  # read before the folder goes, as the follower's handle has it
    shutil.rmtree(run.folder)
    began = time.monotonic()
    assert follow(run) == 1
    assert time.monotonic() - began < 5  # not the GIVE_UP_S of an unreachable cluster


def test_a_head_without_its_job_agent_yet_is_asked_again_and_other_refusals_are_final():
    """Ray refuses jobs for the first seconds after `ray start --head` ("No available agent"),
    longer on a busy machine; that state cannot be held on demand, so a stand-in client that
    refuses twice and then accepts plays the head. Any other refusal is passed on at once."""
    from training.launch import cluster as ray_launch

    class Head:
        def __init__(self, refusals: list[str]):
            self.refusals, self.submitted = refusals, []

        def submit_job(self, **job):
            if self.refusals:
                raise RuntimeError(self.refusals.pop(0))
            self.submitted.append(job)

    agent = "Request failed with status code 500: No available agent to submit job, please try again later."
    head = Head([agent, agent])
    ray_launch.submit_when_ready(head, entrypoint="x", submission_id="j")
    assert head.submitted == [{"entrypoint": "x", "submission_id": "j"}] and not head.refusals
    with pytest.raises(RuntimeError, match="quota"):
        ray_launch.submit_when_ready(Head(["quota exceeded", agent]), entrypoint="x")
