"""The Ray launcher: runs on a Ray cluster's nodes, through Ray's Jobs API.

    launch       check the address (10 s at most) and the request, make the local run
                 folder, submit `python -m training remote-work` as a Ray job, start
                 a follower (follower.py) that copies the job's records home
    request_stop stop_job; the worker on the node gets SIGTERM and writes `stopped`
    nodes        the cluster's nodes, CPUs, GPUs and GPU models (Ray's state API)

The local run folder stays the truth: the job's entrypoint runs the ordinary
worker in a scratch folder on the node, which echoes every record on stdout,
and the follower appends them to the local metrics.jsonl. Ray does the
scheduling (`entrypoint_num_cpus`, `entrypoint_num_gpus`, `accelerator_type:*`);
the local one-at-a-time queue is not involved. Ray is imported only here and in
the follower, so the dashboard works without it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shlex
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from training import PROJECT_ROOT
from training.config import ConfigError, RunConfig, data_kind, model_kind
from training.launch import local, workload
from training.store import FAILED, Run, RunError, RunStore, process

CONNECT_TIMEOUT_S = 5.0  # an unreachable address fails well inside 10 s
NODES_TIMEOUT_S = 8
ACCELERATOR_PREFIX = "accelerator_type:"  # Ray's resource naming a node's GPU model
NO_AGENT = "No available agent to submit job"  # a head whose job agent has not registered yet
AGENT_WAIT_S = 60.0  # how long a launch waits for that agent before it gives up
MNIST_CACHE = PROJECT_ROOT / "data" / "mnist.npz"
MAX_CARRY_BYTES = 64 * 2**20  # a model file, data file or module a job carries; Ray uploads it per job
CARRY_DIR = "workload"  # in the job's working dir: a model or data file travels here
log = logging.getLogger(__name__)


def _size(path: Path) -> int:
    """Bytes of a file, or of every file under a folder (a package)."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def carried(config: RunConfig) -> tuple[dict[str, Path], RunConfig]:
    """What the job takes with it (working-dir path -> local path), and the config as the node sees it.

    A .keras file and an .npz file go under workload/, a function's module (or its whole
    top-level package) into the working dir itself, which the node's worker searches first.
    Each is capped at MAX_CARRY_BYTES, refused before the run folder exists, naming the option.
    """
    config = workload.resolve(config)
    files, node = {}, {}
    if model_kind(config.model) == "file":
        files[f"{CARRY_DIR}/model-{Path(config.model).name}"] = Path(config.model)
        node["model"] = f"{CARRY_DIR}/model-{Path(config.model).name}"
    if model_kind(config.model) == "function":
        top = config.model.split(":")[0].split(".")[0]
        root = workload.module_root(top, workload.search_folders())
        if root is not None:
            source = Path(root, top) if Path(root, top).is_dir() else Path(root, f"{top}.py")
            files[source.name] = source
    if data_kind(config.data) == "file":
        files[f"{CARRY_DIR}/data-{Path(config.data).name}"] = Path(config.data)
        node["data"] = f"{CARRY_DIR}/data-{Path(config.data).name}"
    for name, source in files.items():
        if source.exists() and (size := _size(source)) > MAX_CARRY_BYTES:
            option = "data" if name.startswith(f"{CARRY_DIR}/data-") else "model"
            raise ConfigError(option, f"{source} is {size / 2**20:,.1f} MiB; a Ray job carries at most "
                              f"{MAX_CARRY_BYTES / 2**20:.0f} MiB: put it on the nodes and run there, or use "
                              "Slurm with a shared file system")
    return files, dataclasses.replace(config, **node)


def carry(stage: Path, files: dict[str, Path]) -> None:
    for name, source in files.items():
        target = stage / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, target)


def normalise_address(address: str) -> str:
    """`127.0.0.1:8265` or `http://host:8265/` -> `http://host:8265` (Ray's dashboard address)."""
    address = address.strip().rstrip("/")
    if not address:
        raise RunError("the Ray cluster address is empty: give the Ray dashboard's address, "
                       "e.g. http://127.0.0.1:8265")
    return address if "://" in address else f"http://{address}"


def check_reachable(address: str) -> None:
    """Raise `RunError` unless the Ray dashboard at `address` answers within a few seconds."""
    try:
        with urllib.request.urlopen(f"{address}/api/version", timeout=CONNECT_TIMEOUT_S) as answer:
            json.load(answer)
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise RunError(f"cannot reach the Ray cluster at {address}: {reason}. Is `ray start --head` "
                       "running there, and is its dashboard port reachable (an SSH tunnel)?") from error


def _client(address: str):
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError as error:
        raise RunError("Ray is not installed here: pip install -r requirements-cluster.txt") from error
    # Ray's INFO lines ("Uploading package ...") and its advice to exclude the MNIST cache
    # (which we send on purpose) would bury our one-line answer; --verbose shows them.
    if not log.isEnabledFor(logging.DEBUG):
        logging.getLogger("ray").setLevel(logging.ERROR)
    return JobSubmissionClient(address)


def nodes(address: str) -> list[dict]:
    """The cluster's live nodes: name, address, CPUs, GPUs and GPU models."""
    address = normalise_address(address)
    check_reachable(address)
    try:
        from ray.util.state import list_nodes
    except ImportError as error:
        raise RunError("Ray is not installed here: pip install -r requirements-cluster.txt") from error
    found = []
    for node in list_nodes(address=address, detail=True, timeout=NODES_TIMEOUT_S):
        if node.state != "ALIVE":
            continue
        resources = node.resources_total or {}
        found.append({
            "node": node.node_name or node.node_ip, "ip": node.node_ip, "head": node.is_head_node,
            "cpus": resources.get("CPU", 0), "gpus": resources.get("GPU", 0),
            "gpu_models": sorted(k.removeprefix(ACCELERATOR_PREFIX) for k in resources
                                 if k.startswith(ACCELERATOR_PREFIX)),
        })
    return found


def check_request(address: str, config: RunConfig, gpu_model: str | None, cluster_nodes: list[dict]) -> None:
    """Refuse, before submitting, a GPU request no node of the cluster could ever meet, or a profile.

    A job trains in a scratch folder on its node that is removed when it ends, and only the
    records come home, so a `--profile-steps` trace would be lost.
    """
    if config.profile_steps:
        raise RunError("--profile-steps needs a run on this machine: on a Ray cluster its trace would "
                       "stay in the node's scratch folder, which is removed when the job ends")
    if config.device != "gpu":
        return
    with_gpus = [n for n in cluster_nodes if n["gpus"] >= 1]
    if not with_gpus:
        raise RunError(f"no node of the Ray cluster at {address} has a GPU; run on the CPU, or add a "
                       "GPU node")
    if gpu_model and not any(gpu_model in n["gpu_models"] for n in with_gpus):
        models = sorted({m for n in with_gpus for m in n["gpu_models"]}) or ["none named"]
        raise RunError(f"no node of the Ray cluster at {address} has a {gpu_model} GPU "
                       f"(models there: {', '.join(models)})")


def stage_working_dir() -> Path:
    """What travels with the job: the `training` package and the verified MNIST cache.

    A scratch copy, so runs, virtual environments and caches never travel and the
    project's .gitignore (which Ray would honour) cannot drop the data. Nodes then
    need no internet for MNIST.
    """
    stage = Path(tempfile.mkdtemp(prefix="training-job-"))
    shutil.copytree(PROJECT_ROOT / "training", stage / "training",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if MNIST_CACHE.exists():
        (stage / "data").mkdir()
        shutil.copy2(MNIST_CACHE, stage / "data" / MNIST_CACHE.name)
    return stage


def runtime_env(stage: Path, pip: bool) -> dict:
    env = {"working_dir": str(stage),
           "env_vars": {"TRAINING_DATA_DIR": "data", "PYTHONUNBUFFERED": "1"}}
    if pip:  # for clusters that can reach a package index
        env["pip"] = [line.strip() for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines()
                      if line.strip() and not line.startswith("#")]
    return env


def entrypoint(run_id: str, config: RunConfig) -> str:
    return (f"python -m training remote-work {shlex.quote(run_id)} "
            f"--config {shlex.quote(json.dumps(config.to_dict()))}")


class RayLauncher:
    """Start runs on the Ray cluster whose dashboard is at `address`.

    Args:
        address: the Ray dashboard address, e.g. http://127.0.0.1:8265 (RAY_ADDRESS).
        gpu_model: a GPU run asks for a node with this model (e.g. "H100").
        cpus: CPUs a run asks Ray for when it sets no --threads (default 1; the backend
            may still use every core of its node then).
        pip: install requirements.txt on the node through runtime_env `pip`.
    """

    def __init__(self, address: str, gpu_model: str | None = None, cpus: float = 1, pip: bool = False):
        self.address = normalise_address(address)
        self.gpu_model = gpu_model or None
        self.cpus = cpus
        self.pip = pip

    @property
    def where(self) -> str:
        return f"the Ray cluster at {self.address}"

    def check(self, configs: list[RunConfig]) -> str | None:
        """Why the cluster could never take these runs (unreachable, no such GPU), or None."""
        try:
            cluster_nodes = nodes(self.address)
            for config in configs:
                check_request(self.address, config, self.gpu_model, cluster_nodes)
        except RunError as error:
            return str(error)
        return None

    def launch(self, store: RunStore, config: RunConfig, **extra) -> Run:
        """Check, create the run folder, submit the job, start the follower; returns at once."""
        check_reachable(self.address)  # nothing is written if the cluster is not there
        check_request(self.address, config, self.gpu_model, nodes(self.address))
        files, on_node = carried(config)  # a model file, data file or module over the cap: refused here
        client = _client(self.address)
        run = local.create_local(store, config, cluster={
            "address": self.address, "gpu_model": self.gpu_model, "cpus": self.cpus}, **extra)
        job_id = job_id_of(run)
        stage = stage_working_dir()
        try:
            carry(stage, files)
            submit_when_ready(
                client, entrypoint=entrypoint(run.id, on_node), submission_id=job_id,
                runtime_env=runtime_env(stage, self.pip),
                # --threads N: the run uses N cores, so it asks Ray for N (else --cluster-cpus)
                entrypoint_num_cpus=config.threads or self.cpus,
                entrypoint_num_gpus=1 if config.device == "gpu" else 0,
                entrypoint_resources={f"{ACCELERATOR_PREFIX}{self.gpu_model}": 0.001}
                if config.device == "gpu" and self.gpu_model else None,
                metadata={"training_run": run.id})
        except Exception as error:  # noqa: BLE001 - any refusal: leave nothing queued behind
            _discard(run)
            raise RunError(f"the Ray cluster at {self.address} refused the job: {error}") from error
        finally:
            shutil.rmtree(stage, ignore_errors=True)  # Ray uploaded its own copy
        start_follower(run)
        return run

    def request_stop(self, run: Run) -> None:
        """Ask Ray to stop the job; the follower records the end when it has."""
        local.mark_stopping(run)
        _client(run.meta["cluster"]["address"]).stop_job(job_id_of(run))

    def stop(self, run: Run, grace: float = local.STOP_GRACE_S) -> str | None:
        """Ray gives the worker SIGTERM, then SIGKILL; wait for the follower to record the end."""
        from training.launch import wait_for_end

        self.request_stop(run)
        return wait_for_end(run, grace + 10)

    def reattach(self, run: Run) -> str:
        """A new follower for a run whose follower died; it re-syncs from the job's full log."""
        start_follower(run)
        return run.recorded_state()  # queued, running or stopping, as the follower keeps it

    def describe(self, run: Run) -> str:
        return f"Ray cluster at {run.meta['cluster']['address']} (job {job_id_of(run)})"


def submit_when_ready(client, **job) -> None:
    """`submit_job`, retried while a just-started head has no job agent yet (AGENT_WAIT_S at most).

    Ray answers "No available agent to submit job, please try again later" for the
    first seconds after `ray start --head`, longer on a busy machine; any other
    refusal is final at once.
    """
    deadline = time.monotonic() + AGENT_WAIT_S
    while True:
        try:
            client.submit_job(**job)
            return
        except Exception as error:  # noqa: BLE001 - Ray raises RuntimeError with the server's text
            if NO_AGENT not in str(error) or time.monotonic() > deadline:
                raise
            log.debug("the Ray head has no job agent yet; trying again: %s", error)
            time.sleep(1.0)


def _discard(run: Run) -> None:
    """Remove a run folder whose job never existed (it is still `queued`, so end it first)."""
    run.set_status(FAILED, error="the job was not submitted")
    run.store.delete(run.id)


def job_id_of(run: Run) -> str:
    """The Ray submission id of a cluster run: its run id, prefixed (the one place it is built)."""
    return f"training-{run.id}"


def start_follower(run: Run) -> None:
    """A detached `python -m training follow RUN_ID`; its identity is the run's pid."""
    child = local.spawn_cli(run, "follow", run.id)
    run.write_pid(process.identity(child.pid))
