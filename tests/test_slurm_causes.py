"""What the Slurm launcher reads from Slurm's own words, without a Slurm: sinfo's GRES and
`scontrol show job` of jobs that ended in ways a test cannot wait for (a time limit is a
minute at least; an OOM kill needs cgroups). The lines are Slurm 22.05's format."""

from __future__ import annotations

import pytest

from training.launch.slurm import ended_cause, gpus_of, parse_job, probe_args

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
