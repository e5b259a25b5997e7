"""The local launcher: start runs on this machine, stop them, and cancel them.

Launching writes a complete run folder (status `queued`), starts the worker
detached (`python -m training work RUN_ID`), records its pid and returns at
once. The worker itself waits for its turn in the queue, so the dashboard
never waits on a training. Imports neither Streamlit nor TensorFlow.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import psutil

from training import PROJECT_ROOT
from training.analysis import workload as workloads
from training.config import RunConfig, validate
from training.launch import workload
from training.store import (
    ACTIVE_STATES,
    END_STATES,
    QUEUED,
    STOPPED,
    STOPPING,
    Run,
    RunError,
    RunStore,
    process,
)

STOP_GRACE_S = 10.0  # SIGTERM grace before SIGKILL
log = logging.getLogger(__name__)


def create_local(store: RunStore, config: RunConfig, run_id: str | None = None,
                 files: dict[str, bytes] | None = None, **extra) -> Run:
    """A queued run folder for `config`; nothing is started.

    Refused with `RunError`, before anything is written, when the runs folder
    is read-only or its disk has less than `MIN_FREE_MB` free. `extra` goes into
    config.json beside the settings (a group's id: training/analysis/groups.py; a cluster run's
    address: launch/cluster.py); `run_id` fixes the id; `files` are written with the
    folder, by layout name (a Slurm run's batch script: launch/slurm.py).
    """
    validate(config)
    config = workload.resolve(config)  # the worker runs in the project's folder, not the caller's
    checked = workload.check(config)  # a model or data that cannot train: refused before the folder
    if problem := store.start_problem():
        raise RunError(f"cannot start a run: {problem}")
    meta = {**extra,
        "name": config.name or default_name(config),
        "source": "local",
        "device": config.device,
        "engine": config.engine,
        "backend": config.backend,
        "epochs": config.epochs,
        "train_samples": config.train_samples or checked["train_samples"],
        "config": config.to_dict(),
        "workload": checked,
    }
    return store.create(meta, QUEUED, files=files, run_id=run_id)


def default_name(config: RunConfig) -> str:
    """"CPU fit (tensorflow)", and what it trains unless that is the published CNN on MNIST."""
    name = f"{config.device.upper()} {config.engine} ({config.backend})"
    settings = {"config": config.to_dict()}
    return name if workloads.is_default(settings) else f"{name} · {workloads.label(settings)}"


def spawn_cli(run: Run, *args: str):
    """`python -m training ARGS --runs-dir ROOT`, detached, its output in the run's logs."""
    env = {**os.environ, "TRAINING_RUNS_DIR": str(run.store.root), "PYTHONUNBUFFERED": "1"}
    return process.spawn_detached(["-m", "training", *args, "--runs-dir", str(run.store.root)],
                                  cwd=PROJECT_ROOT, stdout=run.stdout_path, stderr=run.stderr_path,
                                  env=env)


def launch(store: RunStore, config: RunConfig, **extra) -> Run:
    """Create the run and start its worker detached; returns at once. `extra`: see create_local."""
    run = create_local(store, config, **extra)
    child = spawn_cli(run, "work", run.id)
    # The worker writes the same identity itself; writing it here too closes
    # the window in which a just-launched run has no pid on disk.
    try:
        run.write_pid(process.identity(child.pid))
    except psutil.NoSuchProcess:
        log.debug("worker %d of run %s exited at once; its own records tell why", child.pid, run.id)
    return run


def paired(config: RunConfig, device: str) -> RunConfig:
    """One half of a CPU/GPU pair: the same settings on `device`, named after it."""
    name = f"{config.name} ({device.upper()})" if config.name else ""
    return dataclasses.replace(config, device=device, name=name)


def mark_stopping(run: Run, state: str | None = None) -> None:
    """Record that a stop was asked for; refused if the run already ended or the folder is read-only.

    `state`: the run's status when its launcher knows better than this machine (a Slurm job)."""
    state = state or run.status()
    if state not in ACTIVE_STATES:
        raise RunError(f"run {run.id} already ended: it is {state}")
    run.store.check_writable()
    run.set_status(STOPPING)  # a worker that has not started yet sees this and exits


def stop(run: Run, grace: float = STOP_GRACE_S) -> str:
    """Stop a queued or running run and wait for it; returns its final status.

    SIGTERM to the worker's process group lets it finish the current batch and
    write its own `stopped` record; after `grace` seconds SIGKILL. If the worker
    could not write an end record, this writes one. Raises `RunError` if the
    run had already ended.
    """
    if run.recorded_state() != STOPPING:  # a request_stop marked it already
        mark_stopping(run)
    ident = run.pid()
    killed = process.terminate(ident, grace) if ident else False
    end = run.end_record()
    if end is None:
        note = "killed after SIGTERM timeout" if killed else "stopped before training began"
        run.append_end(STOPPED, note=note)
    final = end["status"] if end and end.get("status") in END_STATES else STOPPED
    run.set_status(final)  # it may have finished just before the signal
    process.reap_children()
    return final


def request_stop(run: Run, grace: float | None = None) -> None:
    """Stop without waiting: what the dashboard's Stop buttons call.

    Marks the run `stopping` and hands the SIGTERM, the grace period and any
    SIGKILL to a detached `python -m training stop`, so a page returns at once
    and the stop completes even if the dashboard goes away meanwhile.
    """
    mark_stopping(run)
    grace = STOP_GRACE_S if grace is None else grace
    spawn_cli(run, "stop", run.id, "--grace", f"{grace:g}")
