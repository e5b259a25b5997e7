"""The Slurm launcher: runs as batch jobs (`sbatch`) on a Slurm cluster's nodes.

    launch       refuse before anything is submitted: a GPU run on a partition whose nodes
                 have no GPU (sinfo's GRES), options sbatch would refuse (`sbatch --test-only`,
                 its own message), a runs folder the nodes cannot see (`shared_problem`);
                 then the run folder with its batch script (slurm-job.sh) and `sbatch`.
                 job.json gets the job id; the job itself adds its node when it starts
    stop         `scancel --signal=TERM --full`: the worker stops after its batch and writes
                 `stopped`; plain `scancel` after the grace period
    reattach     what Slurm knows and the folder cannot: pending, running, or ended and why
                 (time limit, out of memory, cancelled from outside, node failure)
    partitions   sinfo's partitions, with their nodes, CPUs, GPUs (GRES) and states

Login and compute nodes share a file system, so the job runs the ordinary worker
(`python -m training work RUN_ID --runs-dir DIR --slurm`) straight into the run
folder: no follower, and the folder stays the truth. Slurm is the queue: the run is
recorded `concurrent` (it never waits in this machine's one-at-a-time queue), each job
asks for its own CPUs (`--cpus-per-task`, its --threads or one node's worth) and
`--exclusive` keeps other jobs off its node, the default for groups (repeats, sweeps).

The worker of a Slurm job stops on SIGTERM only when the folder says `stopping`; any
other SIGTERM (a time limit, a `scancel` from outside) is left to Slurm's kill, and
whoever looks next (`reattach`, through `list`, the pages or a followed run) writes
the end record with Slurm's cause. Slurm is asked with one `squeue` for all the runs
that look lost (`reconcile`), and `scontrol show job` only for a job that has left it, not
`sacct`: without an accounting database (slurmdbd) sacct answers nothing,
and scontrol remembers an ended job for MinJobAge (300 s by default); a job Slurm
has forgotten with no end record in its folder ends `failed`, saying so.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

from training import PROJECT_ROOT
from training.config import ConfigError, RunConfig, data_kind, model_kind, validate
from training.launch import local, workload
from training.store import (
    END_STATES,
    FAILED,
    LOST,
    QUEUED,
    RUNNING,
    STOPPED,
    STOPPING,
    Run,
    RunError,
    RunStore,
    layout,
    new_run_id,
)

SLURM_TIMEOUT_S = 20  # sinfo, squeue, scontrol, sbatch: a controller that does not answer fails
SQUEUE_POLL_S = 1.0  # a stopper's look at squeue: one stopper per run, so a 50-run sweep asks 50/s
PROBE_WAIT_S = 20  # srun --immediate: how long the file-system check waits for a node
KILL_WAIT_S = 120  # after the last scancel: how long stop waits for the job to leave squeue
SINFO_FORMAT = "%P|%N|%c|%G|%T"
PENDING_STATES = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"}
# Shared by construction: a folder on one of these is the same folder on every node.
NETWORK_FS = {"nfs", "nfs4", "lustre", "gpfs", "beegfs", "cephfs", "ceph", "glusterfs", "fuse.glusterfs",
              "cifs", "smb3", "panfs", "wekafs", "orangefs", "pvfs2", "afs", "fuse.sshfs"}
CAUSES = {  # why a job ended, for a run whose worker could not say (scontrol's JobState)
    "TIMEOUT": "reached its time limit ({TimeLimit})",
    "OUT_OF_MEMORY": "ran out of memory (the node's limit killed it)",
    "CANCELLED": "was cancelled without a stop request (scancel from outside, or an administrator)",
    "NODE_FAIL": "lost its node {NodeList}",
    "PREEMPTED": "was preempted by another job",
    "BOOT_FAIL": "could not boot its node",
    "DEADLINE": "missed its deadline",
    "FAILED": "exited with code {ExitCode} before the worker recorded an end",
    "COMPLETED": "exited without the worker's end record",
}
PROBE_OPTIONS = ("--account", "-A", "--qos", "-q", "--reservation", "--constraint", "-C", "--clusters", "-M")
CHECKED_FILE = ".slurm-checked.json"  # in a runs folder: partitions whose nodes were seen to read it


def slurm(*args: str, check: bool = True, timeout: float = SLURM_TIMEOUT_S,
          stdin: str | None = None) -> subprocess.CompletedProcess:
    """One Slurm command; RunError naming it when missing, silent, or (with `check`) refusing."""
    try:
        result = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                                input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL)
    except FileNotFoundError as error:
        raise RunError(f"Slurm's `{args[0]}` is not installed here: run from a login node of the "
                       "cluster (or apt-get install slurm-client, with its slurm.conf)") from error
    except subprocess.TimeoutExpired as error:
        raise RunError(f"`{args[0]}` got no answer from Slurm in {timeout:g} s: is slurmctld up "
                       "(`scontrol ping`)?") from error
    if check and result.returncode != 0:
        raise RunError(f"`{' '.join(args[:2])}` failed: {message(result)}")
    return result


def message(result: subprocess.CompletedProcess) -> str:
    """A Slurm command's own words, on one line."""
    text = (result.stderr or "").strip() or (result.stdout or "").strip() or f"exit code {result.returncode}"
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


# -- what the cluster has -----------------------------------------------------------------
def gpus_of(gres: str) -> tuple[int, list[str]]:
    """GPUs and GPU models in sinfo's GRES, e.g. "gpu:a100:4(S:0-1),gpu:2" -> (6, ["a100"])."""
    count, models = 0, set()
    for match in re.finditer(r"(?:^|,)gpu(?::([A-Za-z][^:(,]*))?:(\d+)", gres or ""):
        count += int(match.group(2))
        if match.group(1):
            models.add(match.group(1))
    return count, sorted(models)


def partitions() -> list[dict]:
    """Every partition sinfo shows: name, default?, and its nodes (CPUs, GRES, GPUs, state)."""
    found: dict[str, dict] = {}
    for line in slurm("sinfo", "--noheader", "--Node", f"--format={SINFO_FORMAT}").stdout.splitlines():
        if line.count("|") != SINFO_FORMAT.count("|"):
            continue
        name, node, cpus, gres, state = (part.strip() for part in line.split("|"))
        default = name.endswith("*")
        name = name.rstrip("*")
        gpus, models = gpus_of(gres)
        entry = found.setdefault(name, {"name": name, "default": False, "nodes": []})
        entry["default"] = entry["default"] or default
        entry["nodes"].append({"node": node, "cpus": int(cpus) if cpus.isdigit() else 0,
                               "gres": "" if gres == "(null)" else gres, "gpus": gpus,
                               "gpu_models": models, "state": state})
    return list(found.values())


def available() -> bool:
    """Whether `sinfo` is here and answers (the Train page then offers Slurm's partitions)."""
    try:
        return bool(partitions())
    except RunError:
        return False


def pick_partition(wanted: str | None, known: list[dict]) -> dict | None:
    """The partition asked for, or Slurm's default one; None for a name sinfo does not show
    (sbatch then refuses it in its own words)."""
    for entry in known:
        if entry["name"] == wanted or (not wanted and entry["default"]):
            return entry
    if not wanted:
        raise RunError("Slurm has no default partition: name one, --slurm PARTITION "
                       f"(sinfo shows: {', '.join(e['name'] for e in known) or 'none'})")
    return None


def check_request(config: RunConfig, partition: dict | None, gpu_model: str | None) -> None:
    """Refuse, from sinfo's GRES, a GPU request no node of the partition could ever meet."""
    if config.device != "gpu" or partition is None:
        return
    with_gpus = [n for n in partition["nodes"] if n["gpus"] >= 1]
    if not with_gpus:
        gres = ", ".join(f"{n['node']}: {n['gres'] or 'none'}" for n in partition["nodes"])
        raise RunError(f"no node of Slurm partition {partition['name']} has a GPU (sinfo's GRES: {gres}); "
                       "run on the CPU, or pick a partition with GPUs")
    if gpu_model and not any(gpu_model in n["gpu_models"] for n in with_gpus):
        models = sorted({m for n in with_gpus for m in n["gpu_models"]}) or ["none named"]
        raise RunError(f"no node of Slurm partition {partition['name']} has a {gpu_model} GPU "
                       f"(models in its GRES: {', '.join(models)})")


# -- the runs folder the nodes must see ---------------------------------------------------------
def fs_type(path: Path) -> str:
    """The file system type of the mount that holds `path` (/proc/self/mountinfo), or ''."""
    target, best, kind = os.path.realpath(path), "", ""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        point = fields[4].encode().decode("unicode_escape") if len(fields) > 4 else ""
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best) and right:
            best, kind = point, right.split()[0]
    return kind


def shared_problem(root: Path, partition: str, extra_args: list[str]) -> str | None:
    """Why the nodes of `partition` cannot see the runs folder `root`, or None.

    A network file system (NFS, Lustre, GPFS...) is shared by construction. Any other
    folder is checked for real: a marker with a random token is written here and a
    one-task `srun` on the partition must read it back. That catches a folder on this
    machine's own disk that the nodes do not mount, and one in a private mount namespace
    (a container) that even this machine's slurmd cannot see. A passed check is noted in
    the runs folder (CHECKED_FILE), so it costs one short job per folder and partition.
    """
    kind = fs_type(root)
    checked = root / CHECKED_FILE
    if kind in NETWORK_FS or partition in _checked(checked):
        return None
    token = secrets.token_hex(8)
    marker = root / f".slurm-probe-{token}"
    marker.write_text(token)
    try:
        result = slurm("srun", f"--partition={partition}", "--nodes=1", "--ntasks=1", "--time=1",
                       f"--immediate={PROBE_WAIT_S}", "--quiet", "--job-name=training-fs-check",
                       *probe_args(extra_args), "/bin/sh", "-c", 'echo "node=$SLURMD_NODENAME"; cat "$0"',
                       str(marker),
                       check=False, timeout=PROBE_WAIT_S + SLURM_TIMEOUT_S)
    finally:
        marker.unlink(missing_ok=True)
    lines = result.stdout.split()
    if token in lines:
        layout.write_json_atomic(checked, {**_checked(checked), partition: time.time()})
        return None
    node = next((line.removeprefix("node=") for line in lines if line.startswith("node=")), None)
    here = f"{kind or 'unknown'} file system here"
    if node:  # a node answered: the file was not there
        return (f"the runs folder {root} is not on a file system that node {node} of Slurm partition "
                f"{partition} sees (a file written here was not there; {here}). Put the runs folder on "
                "the cluster's shared file system (--runs-dir or TRAINING_RUNS_DIR)")
    return (f"could not check that the nodes of Slurm partition {partition} see the runs folder {root} "
            f"({here}): srun said: {message(result)}")


def workload_shared(config: RunConfig, search: list[str], partition: str, extra_args: list[str]) -> None:
    """A model file, data file or function's folder must be where the nodes see it, as the runs folder.

    The job reads them in place (nothing is copied), so each folder is checked like the
    runs folder (`shared_problem`); ConfigError names the option.
    """
    folders = {}
    if model_kind(config.model) == "file":
        folders[str(Path(config.model).parent)] = "model"
    folders.update({folder: "model" for folder in search})
    if data_kind(config.data) == "file":
        folders[str(Path(config.data).parent)] = "data"
    for folder, option in folders.items():
        try:
            problem = shared_problem(Path(folder), partition, extra_args)
        except OSError as error:  # the marker cannot be written there: nor can it be checked
            problem = f"could not check that the nodes see {folder}: {error}"
        if problem:
            raise ConfigError(option, problem.replace("the runs folder", "the folder").replace(
                "Put the runs folder on", "Put it on"))


def probe_args(extra_args: list[str]) -> list[str]:
    """The --slurm-args a file-system check also needs: who may run where (account, QOS,
    reservation, constraint), not what the run's job asks for (--hold, --time, --begin...)."""
    kept, take_next = [], False
    for arg in extra_args:
        if take_next:
            kept.append(arg)
            take_next = False
        elif arg in PROBE_OPTIONS:
            kept.append(arg)
            take_next = True
        elif arg.startswith(tuple(f"{o}=" for o in PROBE_OPTIONS if o.startswith("--"))) or \
                arg.startswith(tuple(o for o in PROBE_OPTIONS if not o.startswith("--"))):
            kept.append(arg)
    return kept


def _checked(path: Path) -> dict:
    return layout.read_json(path) or {}


# -- the job ------------------------------------------------------------------------------------
def job_options(run_id: str, folder: Path, partition: str, config: RunConfig, cpus: int,
                exclusive: bool, gpu_model: str | None) -> list[str]:
    """The #SBATCH options of a run's job; --slurm-args go on sbatch's command line, after them."""
    options = [f"--job-name=training-{run_id}", f"--partition={partition}", "--nodes=1", "--ntasks=1",
               f"--cpus-per-task={cpus}", f"--output={folder / layout.STDOUT_FILE}",
               f"--error={folder / layout.STDERR_FILE}", "--open-mode=append"]
    if exclusive:
        options.append("--exclusive")
    if config.device == "gpu":
        options.append(f"--gres=gpu:{gpu_model}:1" if gpu_model else "--gres=gpu:1")
    return options


def batch_script(run_id: str, root: Path, options: list[str], extra_args: list[str]) -> str:
    """The batch script, kept in the run folder for people to read (slurm-job.sh)."""
    submitted = " ".join(["sbatch", *map(shlex.quote, extra_args), layout.BATCH_SCRIPT_FILE])
    return "\n".join([
        "#!/bin/bash",
        f"# Run {run_id}: written by `python -m training` (training/launch/slurm.py), submitted as",
        f"#   {submitted}",
        *(f"#SBATCH {option}" for option in options),
        "",
        "# The run folder is on the file system the nodes share: the worker writes straight into it.",
        "# It stops after its batch on the SIGTERM of `python -m training stop` (scancel --signal=TERM);",
        "# other signals are Slurm's, and `list` records why the job ended.",
        f"cd {shlex.quote(str(PROJECT_ROOT))}",
        f"export TRAINING_RUNS_DIR={shlex.quote(str(root))} PYTHONUNBUFFERED=1",
        f"exec {shlex.quote(sys.executable)} -m training work {run_id} --runs-dir {shlex.quote(str(root))} "
        "--slurm",
        "",
    ])


def job_id_of(run: Run) -> str | None:
    return run.job().get("job_id")


def queue_states(job_ids: list[str]) -> dict[str, tuple[str, str]]:
    """(state, node) of each of the jobs squeue still lists: one squeue call for all of them."""
    if not job_ids:
        return {}
    result = slurm("squeue", "--noheader", f"--jobs={','.join(job_ids)}", "--format=%i|%T|%N", check=False)
    if result.returncode != 0:
        if "Invalid job id" not in message(result):
            raise RunError(f"`squeue` failed: {message(result)}")
        if len(job_ids) == 1:
            return {}
        # Some Slurm versions refuse a whole list for one job they forgot: ask each, as before.
        return {job: (state, "") for job in job_ids if (state := queue_state(job)) is not None}
    found = {}
    for line in result.stdout.splitlines():
        job, _, rest = line.strip().partition("|")
        state, _, node = rest.partition("|")
        if job and state:
            found[job] = (state, node)
    return found


def reconcile(runs: list[Run]) -> dict[str, str]:
    """What Slurm says of these runs (each looks `lost` here), asking squeue once for all of them;
    their statuses, with an end recorded for a job that ended without one (`SlurmLauncher.settle`)."""
    jobs = {run.id: job_id_of(run) for run in runs}
    queued = queue_states(sorted({job for job in jobs.values() if job}))
    return {run.id: launcher_of_run(run).settle(run, jobs[run.id], queued.get(jobs[run.id] or ""))
            if jobs[run.id] else run.status() for run in runs}


def queue_state(job_id: str) -> str | None:
    """The job's state while squeue lists it (PENDING, RUNNING, COMPLETING...), else None."""
    result = slurm("squeue", "--noheader", f"--jobs={job_id}", "--format=%T|%N", check=False)
    if result.returncode != 0 and "Invalid job id" not in message(result):
        raise RunError(f"`squeue` failed: {message(result)}")
    line = result.stdout.strip()
    return line.split("|")[0] if line else None


def job_info(job_id: str) -> dict | None:
    """`scontrol show job` as a dict, or None once Slurm has forgotten the job (MinJobAge)."""
    result = slurm("scontrol", "--oneliner", "show", "job", job_id, check=False)
    if result.returncode != 0:
        if "Invalid job id" in message(result):
            return None
        raise RunError(f"`scontrol show job {job_id}` failed: {message(result)}")
    return parse_job(result.stdout)


def parse_job(text: str) -> dict:
    """`scontrol --oneliner show job`'s Key=Value pairs (a value may hold spaces or '=')."""
    return dict(re.findall(r"(\S+?)=(.*?)(?=\s+[^\s=]+=|$)", text.strip()))


def ended_cause(job_id: str, info: dict | None) -> str:
    """Why the job ended, in Slurm's terms, for a run whose worker could not write its end."""
    if info is None:
        return (f"Slurm job {job_id} ended without the worker's end record, and Slurm no longer "
                "remembers why (scontrol forgets ended jobs after MinJobAge; no accounting database "
                "for sacct)")
    state = info.get("JobState", "?")
    cause = CAUSES.get(state, "ended ({JobState})").format_map({"TimeLimit": "?", "NodeList": "?",
                                                                "ExitCode": "?", **info})
    reason = info.get("Reason")
    detail = f"JobState={state}" + (f", Reason={reason}" if reason and reason != "None" else "")
    return f"Slurm job {job_id} {cause} ({detail}, ExitCode={info.get('ExitCode', '?')})"


def wait_until_gone(job_id: str, timeout: float) -> bool:
    """Poll squeue until the job has left it (ended and cleaned up); False after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if queue_state(job_id) is None:
            return True
        time.sleep(SQUEUE_POLL_S)
    return False


def record_start(run: Run) -> None:
    """The job's own first act on its node: its id and node into job.json (`work --slurm`)."""
    run.write_job(job_id=os.environ.get("SLURM_JOB_ID") or job_id_of(run),
                  node=os.environ.get("SLURMD_NODENAME") or socket.gethostname(), started=time.time())


def discard(run: Run) -> None:
    """Remove a run folder whose job does not exist (end it first: it is still `queued`)."""
    run.set_status(FAILED, error="the Slurm job was not submitted")
    run.store.delete(run.id)


class SlurmLauncher:
    """Start runs as Slurm batch jobs on `partition` (Slurm's default partition when None).

    Args:
        partition: the partition to submit to.
        gpu_model: a GPU run asks for `--gres=gpu:MODEL:1` instead of `--gres=gpu:1`.
        args: more sbatch options, as one string ("--account=x --qos=y --time=30").
        exclusive: `--exclusive` (a whole node per run); None: on for groups, off otherwise.
    """

    def __init__(self, partition: str | None = None, gpu_model: str | None = None, args: str = "",
                 exclusive: bool | None = None):
        self.partition = partition or None
        self.gpu_model = gpu_model or None
        self.args = args or ""
        self.exclusive = exclusive

    @property
    def where(self) -> str:
        return f"Slurm partition {self.partition}" if self.partition else "Slurm (its default partition)"

    def extra_args(self) -> list[str]:
        try:
            return shlex.split(self.args)
        except ValueError as error:
            raise RunError(f"--slurm-args {self.args!r}: {error}") from error

    def check(self, configs: list[RunConfig]) -> str | None:
        """Why the partition could never take these runs (no such GPU), or None."""
        try:
            partition = pick_partition(self.partition, partitions())
            for config in configs:
                check_request(config, partition, self.gpu_model)
        except RunError as error:
            return str(error)
        return None

    def launch(self, store: RunStore, config: RunConfig, **extra) -> Run:
        """Check everything Slurm and the folder can tell, create the run folder, sbatch; returns at once."""
        validate(config)
        if problem := store.start_problem():
            raise RunError(f"cannot start a run: {problem}")
        checked = workload.check(workload.resolve(config))  # a bad model or data: before asking Slurm
        partition = pick_partition(self.partition, partitions())
        check_request(config, partition, self.gpu_model)
        name = partition["name"] if partition else self.partition
        exclusive = self.exclusive if self.exclusive is not None else bool(extra.get("group"))
        cpus = config.threads or min((n["cpus"] for n in partition["nodes"] if n["cpus"]), default=1) \
            if partition else config.threads or 1
        run_id = new_run_id()
        extra_args = self.extra_args()
        options = job_options(run_id, store.root / run_id, name, config, cpus, exclusive, self.gpu_model)
        script = batch_script(run_id, store.root, options, extra_args)
        test = slurm("sbatch", "--test-only", *extra_args, check=False, stdin=script)
        if test.returncode != 0:
            raise RunError(f"sbatch refused the job: {message(test)}")
        store.root.mkdir(parents=True, exist_ok=True)
        if problem := shared_problem(store.root, name, extra_args):
            raise RunError(problem)
        workload_shared(workload.resolve(config), checked["search"], name, extra_args)
        run = local.create_local(
            store, dataclasses.replace(config, concurrent=True), run_id=run_id,
            files={layout.BATCH_SCRIPT_FILE: script.encode()},
            slurm={"partition": name, "args": self.args, "exclusive": exclusive, "gpu_model": self.gpu_model,
                   "cpus": cpus}, **extra)
        result = slurm("sbatch", "--parsable", *extra_args, str(run.batch_script_path), check=False)
        if result.returncode != 0:
            discard(run)
            raise RunError(f"sbatch refused the job: {message(result)}")
        job_id = result.stdout.strip().split(";")[0]
        try:
            run.write_job(job_id=job_id, partition=name, submitted=time.time())
        except OSError:
            slurm("scancel", job_id, check=False)  # a job whose folder cannot say so must not run
            discard(run)
            raise
        return run

    def mark_stopping(self, run: Run) -> None:
        """`stopping`, if Slurm says the job still waits or runs (its worker may be on another node)."""
        state = run.status()
        local.mark_stopping(run, self.reattach(run) if state == LOST else state)

    def request_stop(self, run: Run) -> None:
        """Mark it `stopping` and hand the scancels and the wait to a detached `stop`."""
        self.mark_stopping(run)
        local.spawn_cli(run, "stop", run.id, "--grace", f"{local.STOP_GRACE_S:g}")

    def stop(self, run: Run, grace: float = local.STOP_GRACE_S) -> str | None:
        """SIGTERM through scancel (the worker writes `stopped`), plain scancel after `grace`."""
        if run.recorded_state() != STOPPING:  # a request_stop marked it already
            self.mark_stopping(run)
        job_id = job_id_of(run)
        note = "stopped before the job was submitted"
        if job_id and (state := queue_state(job_id)) is not None:
            if state in PENDING_STATES:
                slurm("scancel", job_id, check=False)
                note = "cancelled while pending in Slurm"
            else:
                slurm("scancel", "--signal=TERM", "--full", job_id, check=False)
                note = "stopped before training began"
                deadline = time.monotonic() + grace
                while run.end_record() is None and queue_state(job_id) is not None \
                        and time.monotonic() < deadline:
                    time.sleep(SQUEUE_POLL_S)
                if queue_state(job_id) is not None and run.end_record() is None:
                    slurm("scancel", job_id, check=False)
                    note = "killed by scancel after the SIGTERM grace period"
            wait_until_gone(job_id, KILL_WAIT_S)
        end = run.end_record()
        if end is None:
            run.append_end(STOPPED, note=note)
        final = end["status"] if end and end.get("status") in END_STATES else STOPPED
        run.set_status(final, error=(end or {}).get("error"))
        return final

    def reattach(self, run: Run) -> str:
        """A run whose worker is not seen here: Slurm says whether it waits, runs, or ended and why."""
        job_id = job_id_of(run)
        if not job_id:
            return run.status()  # queued a moment ago (sbatch answering), or lost
        return self.settle(run, job_id, queue_states([job_id]).get(job_id))

    def settle(self, run: Run, job_id: str, queued: tuple[str, str] | None) -> str:
        """The run's status from squeue's (state, node) of its job (None: squeue no longer lists it),
        recording what only Slurm knew: the node it started on, or why it ended."""
        recorded = run.recorded_state()
        state, node = queued or (None, "")
        if state in PENDING_STATES:
            return recorded if recorded == STOPPING else QUEUED
        if state is not None:  # RUNNING, COMPLETING, SUSPENDED...: the worker lives on its node
            if state == "RUNNING" and not run.job().get("node") and node and node != "(null)":
                run.write_job(node=node)
            return recorded if recorded == STOPPING else RUNNING
        end = run.end_record()
        if end is None:  # the job is over and nobody recorded it: say what Slurm says
            if recorded == STOPPING:
                status, error = STOPPED, None
            else:
                status, error = FAILED, ended_cause(job_id, job_info(job_id))
            run.append_end(status, error=error, note="recorded by the Slurm launcher")
            end = {"status": status, "error": error}
        status = end["status"] if end.get("status") in END_STATES else FAILED
        run.set_status(status, error=end.get("error"))
        return status

    def describe(self, run: Run) -> str:
        job, partition = run.job(), (run.meta.get("slurm") or {}).get("partition")
        if not job.get("job_id"):
            return f"Slurm partition {partition} (not submitted yet)"
        node = f" on {job['node']}" if job.get("node") else ""
        return f"Slurm job {job['job_id']}{node} (partition {partition})"


def launcher_of_run(run: Run) -> SlurmLauncher:
    """The launcher that started a Slurm run, rebuilt from its config.json."""
    options = run.meta.get("slurm") or {}
    return SlurmLauncher(options.get("partition"), options.get("gpu_model"), options.get("args") or "",
                         options.get("exclusive"))

