"""The run store: one folder per run, and a run's status derived from disk.

    runs/<id>/config.json    who and what: name, source, device, engine, RunConfig
              status.json    queued | running | finished | stopped | failed (rewritten atomically)
              pid.json       the worker's (pid, start time)
              metrics.jsonl  the append-only metrics log (docs/log-format.md)
              system.jsonl   CPU / memory / GPU samples, about one a second
              stdout.log, stderr.log, tb/ (TensorBoard events)

Disk is the truth: any process (the dashboard, the command line, a second
dashboard) sees the same runs. Folders are built under a dot-name and renamed
into place, so a half-made run never shows; files rewritten in place go
through a temp file in the same folder and `os.replace`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from pathlib import Path

from training import process
from training.runlog import METRICS_FILE, RunLog

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
PID_FILE = "pid.json"
STDOUT_FILE = "stdout.log"
STDERR_FILE = "stderr.log"
TENSORBOARD_DIR = "tb"

QUEUED, RUNNING, FINISHED, STOPPED, FAILED, LOST = (
    "queued", "running", "finished", "stopped", "failed", "lost")
ACTIVE_STATES = (QUEUED, RUNNING)
END_STATES = (FINISHED, STOPPED, FAILED)
SOURCES = ("local", "imported", "reference")
LAUNCH_GRACE_S = 60  # a queued folder with no pid yet is a launch in progress

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")


class RunError(Exception):
    """A run operation that cannot be done; the message says why."""


class InvalidRunId(RunError, ValueError):
    pass


class RunNotFound(RunError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


def default_runs_dir() -> Path:
    return Path(os.environ.get("TRAINING_RUNS_DIR") or PROJECT_ROOT / "runs")


def new_run_id() -> str:
    """UTC time to the microsecond, then random hex: sorts by creation time."""
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    return f"{stamp}-{int(now % 1 * 1e6):06d}-{secrets.token_hex(3)}"


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}.tmp")
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class RunStore:
    """All runs under one folder. Holds no state besides the folder's path."""

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root else default_runs_dir()

    # -- paths ---------------------------------------------------------------
    def path(self, run_id: str) -> Path:
        """The folder of an existing run; every run path is built here."""
        if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
            raise InvalidRunId(f"invalid run id {run_id!r}: use the id printed by 'list' "
                               "(letters, digits, '-' and '_'; no path separators or '..')")
        folder = self.root / run_id
        if not (folder / CONFIG_FILE).is_file():
            raise RunNotFound(f"no run {run_id!r} in {self.root}")
        return folder

    def ids(self) -> list[str]:
        """Every run id, oldest first; half-made (dot) folders are not runs."""
        if not self.root.is_dir():
            return []
        return sorted(entry.name for entry in os.scandir(self.root)
                      if entry.is_dir() and not entry.name.startswith(".")
                      and os.path.exists(os.path.join(entry.path, CONFIG_FILE)))

    # -- creation ------------------------------------------------------------
    def create(self, meta: dict, state: str, files: dict[str, bytes] | None = None,
               run_id: str | None = None) -> str:
        """Write a complete run folder under a temp name, then rename it into place.

        With `run_id` given, an existing run of that id is left as it is.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        while True:
            wanted = run_id or new_run_id()
            tmp = self.root / f".tmp-{wanted}-{secrets.token_hex(4)}"
            tmp.mkdir()
            try:
                write_json_atomic(tmp / CONFIG_FILE, {**meta, "id": wanted, "created": time.time()})
                write_json_atomic(tmp / STATUS_FILE, {"state": state, "time": time.time()})
                for name, data in (files or {}).items():
                    (tmp / name).write_bytes(data)
                try:
                    os.rename(tmp, self.root / wanted)  # fails if the id exists
                    return wanted
                except OSError:
                    if run_id:
                        return run_id
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)

    # -- reading -------------------------------------------------------------
    def meta(self, run_id: str) -> dict:
        return read_json(self.path(run_id) / CONFIG_FILE) or {}

    def end_record(self, run_id: str) -> dict | None:
        """The log's end record, if any; reads only the file's last 64 KiB."""
        try:
            with open(self.path(run_id) / METRICS_FILE, "rb") as handle:
                handle.seek(max(0, os.fstat(handle.fileno()).st_size - 65536))
                tail = handle.read()
        except FileNotFoundError:
            return None
        for line in reversed(tail.splitlines()):
            if b'"type":"end"' in line:
                try:
                    return json.loads(line)
                except ValueError:
                    return None
        return None

    def pid(self, run_id: str) -> dict | None:
        return read_json(self.path(run_id) / PID_FILE)

    def status(self, run_id: str) -> str:
        """The run's state, derived from its files and whether its process lives."""
        folder = self.path(run_id)
        recorded = (read_json(folder / STATUS_FILE) or {}).get("state", QUEUED)
        if recorded in END_STATES:
            return recorded
        ident = read_json(folder / PID_FILE)
        if process.is_alive(ident):
            return recorded
        end = self.end_record(run_id)
        if end and end.get("status") in END_STATES:
            return end["status"]
        if ident is None and recorded == QUEUED:
            created = (read_json(folder / CONFIG_FILE) or {}).get("created", 0)
            if time.time() - created < LAUNCH_GRACE_S:
                return QUEUED  # launched a moment ago; its pid is not written yet
        return LOST

    def log(self, run_id: str) -> RunLog:
        log = RunLog(self.path(run_id))
        log.update()
        return log

    def summary(self, run_id: str, log: RunLog | None = None) -> dict:
        """The row `list --json` prints for a run."""
        meta = self.meta(run_id)
        log = log or self.log(run_id)
        config = meta.get("config") or {}
        return {
            "id": run_id,
            "name": meta.get("name") or run_id,
            "status": self.status(run_id),
            "source": meta.get("source", "local"),
            "device": meta.get("device"),
            "engine": meta.get("engine"),
            "backend": meta.get("backend"),
            "precision": config.get("precision"),
            "batch_size": config.get("batch_size"),
            "lr": config.get("lr"),
            "train_samples": meta.get("train_samples"),
            "epochs": meta.get("epochs"),
            "epochs_done": log.epochs_done,
            "best_val_accuracy": log.best_val_accuracy,
            "elapsed_s": log.elapsed_s,
            "created": meta.get("created"),
        }

    # -- changing ------------------------------------------------------------
    def set_status(self, run_id: str, state: str, **extra) -> None:
        write_json_atomic(self.path(run_id) / STATUS_FILE, {"state": state, "time": time.time(), **extra})

    def write_pid(self, run_id: str, ident: dict) -> None:
        write_json_atomic(self.path(run_id) / PID_FILE, ident)

    def delete(self, run_id: str) -> None:
        """Remove a run; refused for reference runs and while it is active."""
        folder = self.path(run_id)
        if self.meta(run_id).get("source") == "reference":
            raise RunError(f"run {run_id} is a built-in reference run and cannot be deleted")
        state = self.status(run_id)
        if state in ACTIVE_STATES:
            raise RunError(f"run {run_id} is {state}; stop it before deleting it")
        # Rename first so that no reader ever sees a half-deleted run.
        doomed = self.root / f".deleted-{run_id}-{secrets.token_hex(3)}"
        os.rename(folder, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
