"""The run store: one folder per run, and a run's status derived from disk.

`RunStore` is every run under one folder; `Run` is one of them, opened once.
A newcomer following a run from launch to chart meets `Run` everywhere: the
launcher creates it, the worker writes through it, the pages read it.

Disk is the truth: any process (the dashboard, the command line, a second
dashboard) sees the same runs. Folders are built under a dot-name and renamed
into place, so a half-made run never shows (docs/architecture.md).
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import time
from pathlib import Path

from training import PROJECT_ROOT
from training.store import layout, process
from training.store.layout import read_json, write_json_atomic
from training.store.logwriter import append_record
from training.store.runlog import RunLog

QUEUED, RUNNING, STOPPING, FINISHED, STOPPED, FAILED, LOST = (
    "queued", "running", "stopping", "finished", "stopped", "failed", "lost")
ACTIVE_STATES = (QUEUED, RUNNING, STOPPING)
END_STATES = (FINISHED, STOPPED, FAILED)
LAUNCH_GRACE_S = 60  # a queued folder with no pid yet is a launch in progress
END_SCAN_BYTES = 65536  # the end record is the last line; never read more of the log for it

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
log = logging.getLogger(__name__)


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


class Run:
    """One run folder. Knows its files; every question about the run goes here.

    Args:
        store: the store it belongs to.
        run_id: its id (already validated by `RunStore.open`).
    """

    def __init__(self, store: RunStore, run_id: str):
        self.store = store
        self.id = run_id
        self.folder = store.root / run_id
        self._meta: dict | None = None

    def __repr__(self) -> str:
        return f"Run({self.id!r})"

    # -- the files, for the writers that need a path -------------------------
    @property
    def metrics_path(self) -> Path:
        return self.folder / layout.METRICS_FILE

    @property
    def system_path(self) -> Path:
        return self.folder / layout.SYSTEM_FILE

    @property
    def tensorboard_dir(self) -> Path:
        return self.folder / layout.TENSORBOARD_DIR

    @property
    def stdout_path(self) -> Path:
        return self.folder / layout.STDOUT_FILE

    @property
    def stderr_path(self) -> Path:
        return self.folder / layout.STDERR_FILE

    # -- what it is ------------------------------------------------------------
    @property
    def meta(self) -> dict:
        """config.json: written once at creation, so read once per handle."""
        if self._meta is None:
            self._meta = read_json(self.folder / layout.CONFIG_FILE) or {}
        return self._meta

    @property
    def name(self) -> str:
        return self.meta.get("name") or self.id

    @property
    def source(self) -> str:
        return self.meta.get("source", "local")

    def log(self) -> RunLog:
        """A reader of this run's log, brought up to date."""
        run_log = RunLog(self.metrics_path, self.system_path)
        run_log.update()
        return run_log

    def end_record(self) -> dict | None:
        """The log's end record, if any; reads only the file's last 64 KiB."""
        try:
            with open(self.metrics_path, "rb") as handle:
                handle.seek(max(0, os.fstat(handle.fileno()).st_size - END_SCAN_BYTES))
                tail = handle.read()
        except FileNotFoundError:
            return None
        for line in reversed(tail.splitlines()):
            if b'"type":"end"' in line:
                try:
                    return json.loads(line)
                except ValueError as error:
                    log.debug("run %s: torn end record skipped: %s", self.id, error)
                    return None
        return None

    def pid(self) -> dict | None:
        return read_json(self.folder / layout.PID_FILE)

    def recorded_state(self) -> str:
        return (read_json(self.folder / layout.STATUS_FILE) or {}).get("state", QUEUED)

    def status(self) -> str:
        """The run's state, derived from its files and whether its process lives.

        An end state on disk wins; `queued`, `running` and `stopping` hold only
        while the recorded process (pid and start time) is alive; a dead process
        leaves the log's end record, or else `lost`.
        """
        recorded = self.recorded_state()
        if recorded in END_STATES:
            return recorded
        ident = self.pid()
        if process.is_alive(ident):
            return recorded
        end = self.end_record()
        if end and end.get("status") in END_STATES:
            return end["status"]
        if recorded == STOPPING:
            return STOPPED  # the stopper's own record may still be on its way
        launching = time.time() - self.meta.get("created", 0) < LAUNCH_GRACE_S
        if ident is None and recorded == QUEUED and launching:
            return QUEUED  # launched a moment ago; its pid is not written yet
        return LOST

    def stderr_tail(self, lines: int = 40) -> str:
        """The last lines the worker printed to stderr ('' if none)."""
        try:
            with open(self.stderr_path, "rb") as handle:
                handle.seek(max(0, os.fstat(handle.fileno()).st_size - 200 * lines))
                text = handle.read().decode(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def row(self, run_log: RunLog | None = None, status: str | None = None) -> dict:
        """The row `list --json` prints and the Runs page's table shows."""
        meta = self.meta
        run_log = run_log or self.log()
        config = meta.get("config") or {}
        return {
            "id": self.id,
            "name": self.name,
            "status": status or self.status(),
            "source": self.source,
            "device": meta.get("device"),
            "engine": meta.get("engine"),
            "backend": meta.get("backend"),
            "precision": config.get("precision"),
            "batch_size": config.get("batch_size"),
            "lr": config.get("lr"),
            "train_samples": meta.get("train_samples"),
            "epochs": meta.get("epochs"),
            "epochs_done": run_log.epochs_done,
            "best_val_accuracy": run_log.best_val_accuracy,
            "elapsed_s": run_log.elapsed_s,
            "created": meta.get("created"),
            "error": run_log.format_error,
        }

    # -- changing it -----------------------------------------------------------
    def set_status(self, state: str, **extra) -> None:
        write_json_atomic(self.folder / layout.STATUS_FILE, {"state": state, "time": time.time(), **extra})

    def write_pid(self, ident: dict) -> None:
        write_json_atomic(self.folder / layout.PID_FILE, ident)

    def append_end(self, status: str, error: str | None = None, **extra) -> None:
        """An end record from someone other than the worker (a stop that had to kill it)."""
        append_record(self.metrics_path, {"type": "end", "status": status, "error": error, **extra})


class RunStore:
    """All runs under one folder. Holds no state besides the folder's path.

    Args:
        root: the runs folder; default `$TRAINING_RUNS_DIR`, else `runs/`.
    """

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root else default_runs_dir()

    def open(self, run_id: str) -> Run:
        """An existing run; the one place a run id becomes a path."""
        if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
            raise InvalidRunId(f"invalid run id {run_id!r}: use the id printed by 'list' "
                               "(letters, digits, '-' and '_'; no path separators or '..')")
        if not (self.root / run_id / layout.CONFIG_FILE).is_file():
            raise RunNotFound(f"no run {run_id!r} in {self.root}")
        return Run(self, run_id)

    def ids(self) -> list[str]:
        """Every run id, oldest first; half-made (dot) folders are not runs."""
        if not self.root.is_dir():
            return []
        return sorted(entry.name for entry in os.scandir(self.root)
                      if entry.is_dir() and not entry.name.startswith(".")
                      and os.path.exists(os.path.join(entry.path, layout.CONFIG_FILE)))

    def runs(self) -> list[Run]:
        """Every run, oldest first."""
        return [Run(self, run_id) for run_id in self.ids()]

    def statuses(self, runs: list[Run] | None = None) -> dict[str, str]:
        """Each run's status, worked out once: what a page rerun asks for."""
        return {run.id: run.status() for run in (self.runs() if runs is None else runs)}

    def create(self, meta: dict, state: str, files: dict[str, bytes] | None = None,
               run_id: str | None = None) -> Run:
        """Write a complete run folder under a temp name, then rename it into place.

        Args:
            meta: what goes into config.json (the id and creation time are added).
            state: the first status, `queued` for a local run.
            files: extra files by layout name, e.g. `{layout.METRICS_FILE: b"..."}`.
            run_id: a fixed id; an existing run of that id is then left as it is.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        while True:
            wanted = run_id or new_run_id()
            tmp = self.root / f".tmp-{wanted}-{secrets.token_hex(4)}"
            tmp.mkdir()
            try:
                write_json_atomic(tmp / layout.CONFIG_FILE, {**meta, "id": wanted, "created": time.time()})
                write_json_atomic(tmp / layout.STATUS_FILE, {"state": state, "time": time.time()})
                for name, data in (files or {}).items():
                    (tmp / name).write_bytes(data)
                try:
                    os.rename(tmp, self.root / wanted)  # fails if the id exists
                    return Run(self, wanted)
                except OSError:
                    if run_id:
                        return Run(self, run_id)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)

    def delete(self, run_id: str) -> None:
        """Remove a run; refused for reference runs and while it is active."""
        run = self.open(run_id)
        if run.source == "reference":
            raise RunError(f"run {run_id} is a built-in reference run and cannot be deleted")
        state = run.status()
        if state in ACTIVE_STATES:
            raise RunError(f"run {run_id} is {state}; stop it before deleting it")
        # Rename first so that no reader ever sees a half-deleted run.
        doomed = self.root / f".deleted-{run_id}-{secrets.token_hex(3)}"
        os.rename(run.folder, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
