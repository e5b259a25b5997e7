"""What the Slurm launcher reads from Slurm's own words, without a Slurm: sinfo's GRES and
the GPU request made from it,
`scontrol show job` of jobs that ended in ways a test cannot wait for (a time limit is a
minute at least; an OOM kill needs cgroups). The lines are Slurm 22.05's format."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.config import make_config
from training.launch.slurm import check_request, ended_cause, gpus_of, job_options, parse_job, probe_args
from training.store import RunError

TIMED_OUT = ("JobId=41 JobName=training-20261127-070000-000001-abcdef UserId=ana(1000) GroupId=ana(1000) "
             "JobState=TIMEOUT Reason=TimeLimit Dependency=(null) ExitCode=0:0 RunTime=00:30:04 "
             "TimeLimit=00:30:00 Partition=gpu NodeList=g07 TRES=cpu=8,mem=32G,node=1,gres/gpu=1 "
             "Command=/shared/runs/my run/slurm-job.sh")


@pytest.mark.parametrize(("gres", "expected"), [
    ("(null)", (0, [])),
    ("gpu:4", (4, [])),
    ("gpu:a100:4(S:0-1)", (4, ["a100"])),
    ("gpu:tesla:2,gpu:h100:1(S:0),mps:200", (3, ["h100", "tesla"])),
])
def test_gpus_are_counted_from_sinfos_gres(gres, expected):
    assert gpus_of(gres) == expected


def test_a_scontrol_line_parses_with_spaces_and_equals_in_values():
    job = parse_job(TIMED_OUT)
    assert job["JobState"] == "TIMEOUT" and job["NodeList"] == "g07"
    assert job["TRES"] == "cpu=8,mem=32G,node=1,gres/gpu=1"
    assert job["Command"] == "/shared/runs/my run/slurm-job.sh"


def test_a_time_limit_an_oom_kill_and_a_forgotten_job_are_named():
    assert ended_cause("41", parse_job(TIMED_OUT)) == (
        "Slurm job 41 reached its time limit (00:30:00) (JobState=TIMEOUT, Reason=TimeLimit, ExitCode=0:0)")
    oom = parse_job("JobId=42 JobState=OUT_OF_MEMORY Reason=OutOfMemory ExitCode=0:125 NodeList=c3")
    assert ended_cause("42", oom).startswith("Slurm job 42 ran out of memory")
    node = parse_job("JobId=43 JobState=NODE_FAIL Reason=NodeDown ExitCode=0:0 NodeList=c9")
    assert "lost its node c9" in ended_cause("43", node)
    assert "no longer remembers why" in ended_cause("44", None)


def test_the_file_system_check_keeps_only_who_may_run_where():
    args = ["--hold", "--account=lab", "-q", "short", "--time=30", "-Cavx512", "--reservation", "r1",
            "--begin=now+1hour"]
    assert probe_args(args) == ["--account=lab", "-q", "short", "-Cavx512", "--reservation", "r1"]


GPU_PARTITION = {"name": "gpu", "default": False, "nodes": [
    {"node": "g1", "cpus": 32, "gres": "gpu:a100:4(S:0-1)", "gpus": 4, "gpu_models": ["a100"],
     "state": "mixed"},
    {"node": "g2", "cpus": 32, "gres": "", "gpus": 0, "gpu_models": [], "state": "idle"}]}


def test_a_gpu_run_asks_for_one_gpu_of_a_model_some_node_has():
    gpu = make_config(device="gpu")
    check_request(gpu, GPU_PARTITION, "a100")  # g1 has them
    options = job_options("r1", Path("/shared/runs/r1"), "gpu", gpu, 8, False, "a100")
    assert "--gres=gpu:a100:1" in options and "--cpus-per-task=8" in options
    assert "--gres=gpu:1" in job_options("r1", Path("/shared/runs/r1"), "gpu", gpu, 8, True, None)
    with pytest.raises(RunError, match="has a h100 GPU .models in its GRES: a100"):
        check_request(gpu, GPU_PARTITION, "h100")
    cpu = make_config(device="cpu")
    assert not any(o.startswith("--gres") for o in job_options("r1", Path("/r"), "gpu", cpu, 2, False, None))


def test_a_slurm_that_does_not_answer_leaves_a_run_lost_for_now_and_takes_no_page_down(tmp_path, monkeypatch):
    # A shared runs folder with a Slurm run, looked at from a machine whose Slurm cannot answer
    # (no slurm.conf here; or no squeue at all): the listing must go on, the run unchanged.
    from training import launch
    from training.store import RunStore

    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "no-such-slurm.conf"))
    store = RunStore(tmp_path / "runs")
    run = store.create({"name": "on the cluster", "source": "local", "slurm": {"partition": "debug"}},
                       "running")
    run.write_job(job_id="42", partition="debug")
    assert run.status() == "lost"  # its worker is on a node, not here
    assert launch.reattach([run], {run.id: "lost"}) == {run.id: "lost"}
    assert run.recorded_state() == "running" and run.end_record() is None  # nothing was decided
