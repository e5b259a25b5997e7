"""A real single-node Slurm for the tests: munged, slurmctld and slurmd on this machine.

Everything lives in one temp folder (the `slurm.conf` that `SLURM_CONF` points at, the
munge key and socket, state, spool and logs), on ports picked free, so nothing of the
machine's own Slurm or munge set-up is used or changed. Each daemon runs in the
foreground in its own process group; at the end the jobs are cancelled and waited
for, then exactly those groups are ended. Needs root (slurmd runs jobs as their
user) and the Debian packages slurm-wlm and munge, which `make test` installs.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NEEDED = ("sbatch", "srun", "sinfo", "squeue", "scancel", "scontrol", "slurmctld", "slurmd", "munged",
          "mungekey")
PARTITION = "debug"
START_TIMEOUT_S = 60
CPUS = 2


def why_not() -> str | None:
    """Why the Slurm tests cannot run here, or None."""
    missing = [name for name in NEEDED if not shutil.which(name)]
    if missing:
        return (f"Slurm is not installed ({', '.join(missing)} missing): `make test` installs slurm-wlm and "
                "munge when run as root")
    if os.geteuid() != 0:
        return "the Slurm tests start munged, slurmctld and slurmd, which need root"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def slurm_conf(folder: Path, host: str) -> str:
    return "\n".join([
        "ClusterName=trainingtests",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={free_port()}",
        f"SlurmdPort={free_port()}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={folder / 'munge.socket'}",
        f"StateSaveLocation={folder / 'state'}",
        f"SlurmdSpoolDir={folder / 'spool'}",
        f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
        f"SlurmdPidFile={folder / 'slurmd.pid'}",
        f"SlurmctldLogFile={folder / 'slurmctld.log'}",
        f"SlurmdLogFile={folder / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU",
        "SchedulerType=sched/backfill",
        "MpiDefault=none",
        "ReturnToService=2",
        "KillWait=5",  # a job killed from outside is SIGKILLed 5 s after its SIGTERM
        "MinJobAge=300",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",  # no slurmdbd: no sacct
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={CPUS} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


def _start(args: list[str], log: Path, env: dict) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


def _wait(predicate, what: str, daemons: list[subprocess.Popen], folder: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if predicate():
            return
        dead = [d.args[0] for d in daemons if d.poll() is not None]
        if dead:
            break
        time.sleep(0.25)
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(folder.glob("*.log")))
    raise RuntimeError(f"the test Slurm did not come up ({what}; exited: {dead or 'none'}):\n{logs}")


def _jobs(env: dict) -> list[str]:
    result = subprocess.run(["squeue", "--noheader", "--format=%i"], capture_output=True, text=True,
                            env=env, timeout=20)
    return result.stdout.split()


@contextmanager
def single_node_slurm() -> Iterator[dict]:
    """Start the daemons; yields {"conf", "partition", "node", "env"}; ends them and their jobs."""
    folder = Path(tempfile.mkdtemp(prefix="slurm-", dir="/tmp"))
    folder.chmod(0o711)  # munge's socket must be reachable through it
    for name in ("state", "spool"):
        (folder / name).mkdir()
    host = socket.gethostname().split(".")[0]
    conf = folder / "slurm.conf"
    conf.write_text(slurm_conf(folder, host))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    daemons: list[subprocess.Popen] = []
    try:
        subprocess.run(["mungekey", "--create", f"--keyfile={folder / 'munge.key'}"], check=True,
                       capture_output=True, timeout=30)
        daemons.append(_start(
            ["munged", "--foreground", "--force", f"--socket={folder / 'munge.socket'}",
             f"--key-file={folder / 'munge.key'}", f"--pid-file={folder / 'munged.pid'}",
             f"--seed-file={folder / 'munged.seed'}", f"--log-file={folder / 'munged.log'}"],
            folder / "munged.out.log", env))
        _wait(lambda: (folder / "munge.socket").exists(), "munged's socket", daemons, folder)
        daemons.append(_start(["slurmctld", "-D", "-i"], folder / "slurmctld.out.log", env))
        daemons.append(_start(["slurmd", "-D", "-N", host], folder / "slurmd.out.log", env))

        def idle() -> bool:
            result = subprocess.run(["sinfo", "--noheader", "--Node", "--format=%T"], capture_output=True,
                                    text=True, env=env, timeout=20)
            return result.returncode == 0 and result.stdout.split() == ["idle"]
        _wait(idle, "sinfo showing the node idle", daemons, folder)
        yield {"conf": str(conf), "partition": PARTITION, "node": host, "env": env}
    finally:
        try:
            if daemons and daemons[-1].poll() is None and (jobs := _jobs(env)):
                subprocess.run(["scancel", "--signal=KILL", "--full", *jobs], env=env, timeout=20)
                deadline = time.monotonic() + 60
                while _jobs(env) and time.monotonic() < deadline:
                    time.sleep(0.5)
        finally:
            for daemon in reversed(daemons):  # slurmd, slurmctld, munged: each leads its own group
                if daemon.poll() is None:
                    os.killpg(daemon.pid, signal.SIGTERM)
                try:
                    daemon.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(daemon.pid, signal.SIGKILL)
                    daemon.wait()
            shutil.rmtree(folder, ignore_errors=True)
