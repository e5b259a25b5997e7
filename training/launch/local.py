"""The run manager: launch, stop and cancel runs; what the dashboard calls.

Launching writes a complete run folder (status `queued`), starts the worker
detached (`python -m training work RUN_ID`), records its pid and returns at
once. The worker itself waits for its turn in the queue, so the dashboard
never waits on a training. Imports neither Streamlit nor TensorFlow.
"""

from __future__ import annotations

import dataclasses
import os

from training import process
from training.config import RunConfig, validate
from training.metricslog import append_record
from training.runlog import METRICS_FILE
from training.runstore import (
    ACTIVE_STATES,
    PROJECT_ROOT,
    QUEUED,
    STDERR_FILE,
    STDOUT_FILE,
    STOPPED,
    RunError,
    RunStore,
)

STOP_TIMEOUT_S = 10.0  # SIGTERM grace before SIGKILL


def create_local(store: RunStore, config: RunConfig) -> str:
    """A queued run folder for `config`; nothing is started."""
    validate(config)
    meta = {
        "name": config.name or f"{config.device.upper()} {config.engine} ({config.backend})",
        "source": "local",
        "device": config.device,
        "engine": config.engine,
        "backend": config.backend,
        "epochs": config.epochs,
        "train_samples": config.train_samples,
        "config": config.to_dict(),
    }
    return store.create(meta, QUEUED)


def launch(store: RunStore, config: RunConfig) -> str:
    """Create the run and start its worker detached; returns the run id at once."""
    run_id = create_local(store, config)
    folder = store.path(run_id)
    env = {**os.environ, "TRAINING_RUNS_DIR": str(store.root), "PYTHONUNBUFFERED": "1"}
    child = process.spawn_detached(
        ["-m", "training", "work", run_id, "--runs-dir", str(store.root)],
        cwd=PROJECT_ROOT, stdout=folder / STDOUT_FILE, stderr=folder / STDERR_FILE, env=env)
    # The worker writes the same identity itself; writing it here too closes
    # the window in which a just-launched run has no pid on disk.
    try:
        store.write_pid(run_id, process.identity(child.pid))
    except Exception:
        pass  # it already exited; the worker's own record or its end record tells
    return run_id


def launch_pair(store: RunStore, config: RunConfig) -> list[str]:
    """CPU then GPU with the same settings; the queue runs them one after the other."""
    return [launch(store, dataclasses.replace(config, device=device, name=_pair_name(config, device)))
            for device in ("cpu", "gpu")]


def _pair_name(config: RunConfig, device: str) -> str:
    return f"{config.name} ({device.upper()})" if config.name else ""


def stop(store: RunStore, run_id: str, timeout: float = STOP_TIMEOUT_S) -> str:
    """Stop a queued or running run; returns its final status.

    SIGTERM to the worker's process group lets it finish the current batch and
    write its own `stopped` record; after `timeout` seconds SIGKILL. Either way
    the run ends `stopped`: if the worker could not say so, this does.
    """
    state = store.status(run_id)
    if state not in ACTIVE_STATES:
        raise RunError(f"run {run_id} is {state}, not queued or running")
    store.set_status(run_id, STOPPED)  # a worker that has not started yet sees this and exits
    ident = store.pid(run_id)
    killed = process.terminate(ident, timeout) if ident else False
    if store.end_record(run_id) is None:
        note = "killed after SIGTERM timeout" if killed else "stopped before training began"
        append_record(store.path(run_id) / METRICS_FILE,
                      {"type": "end", "status": STOPPED, "error": None, "note": note})
    store.set_status(run_id, STOPPED)
    process.reap_children()
    return STOPPED
