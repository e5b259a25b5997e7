"""The run store: `RunStore` (every run under one folder) and `Run` (one of them, opened once).

A newcomer following a run from launch to chart meets `Run` everywhere: the
launcher creates it, the worker writes through it, the pages read it. Its state
is derived from disk (`state.py`), its writability and space reserve are
`space.py`'s, and what dead writers leave is swept by `debris.py`.

Disk is the truth: any process (the dashboard, the command line, a second
dashboard) sees the same runs. Folders are built under a dot-name and renamed
into place, so a half-made run never shows (docs/architecture.md).

Reading never writes: the built-in reference runs are folders shipped inside
this package (`builtin/`) that every store lists beside its own, so a store
on a read-only or full file system can be browsed.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import secrets
import shutil
import stat
import time
from pathlib import Path

from training import PROJECT_ROOT
from training.config import clean_name
from training.store import debris, layout, process, records, space
from training.store.layout import (
    END_SCAN_BYTES,
    NotAPlainFile,
    Unreadable,
    load_json,
    open_plain,
    write_json_atomic,
)
from training.store.logwriter import append_record
from training.store.runlog import RunLog
from training.store.state import ACTIVE_STATES, END_STATES, FAILED, LOST, QUEUED, UNREADABLE, derive

STDERR_LINE_BYTES = 200  # a generous average line length, for reading only the stderr tail
BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"  # the shipped reference runs

_JSON_FILES = {"config": layout.CONFIG_FILE, "status": layout.STATUS_FILE, "pid": layout.PID_FILE,
               "job": layout.JOB_FILE}
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
        folder: where its files are; a built-in run's lives inside the package.
    """

    def __init__(self, store: RunStore, run_id: str, folder: Path | None = None):
        self.store = store
        self.id = run_id
        self.folder = folder or store.root / run_id
        self._meta: dict | None = None
        self._meta_problem: str | None = None

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
    def profile_dir(self) -> Path:
        """Where --profile-steps puts the backend's trace."""
        return self.folder / layout.PROFILE_DIR

    @property
    def torch_trace_path(self) -> Path:
        return self.profile_dir / layout.TORCH_TRACE_FILE

    def profile_files(self) -> list[Path]:
        """The trace files a --profile-steps run left, sorted; [] for none.

        TensorFlow and JAX: `profile/plugins/profile/<stamp>/<host>.xplane.pb` (JAX also
        `perfetto_trace.json.gz` and `<host>.trace.json.gz`); torch: `profile/torch_trace.json`.
        """
        found = []
        # os.walk descends through no link, and a link to a file is left out: nothing outside the
        # run folder is listed (a profile/ that is itself a link is not walked at all).
        if self.profile_dir.is_symlink():
            return []
        for folder, _, files in os.walk(self.profile_dir):
            for name in files:
                try:
                    info = os.lstat(os.path.join(folder, name))
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode) and info.st_size > 0:
                    found.append(Path(folder, name))
        return sorted(found)

    def copy_files(self, into: Path) -> list[str]:
        """Copy the run's plain files and folders into the folder `into`; returns what was left out.

        Only what is inside the run folder leaves it: a link (to a file or a folder), a FIFO or a
        device is never followed or opened, and dot-files (the space reserve, temp files) stay.
        The MLflow export uploads what this copies."""
        left_out = []
        for folder, dirs, files in os.walk(self.folder):  # os.walk descends through no link
            here = Path(folder)
            target = into / here.relative_to(self.folder)
            for name in sorted([*dirs, *files]):
                path = here / name
                if here == self.folder and name.startswith("."):
                    dirs[:] = [d for d in dirs if d != name]
                    continue
                mode = os.lstat(path).st_mode
                if stat.S_ISDIR(mode):
                    (target / name).mkdir(parents=True, exist_ok=True)
                    continue
                if name in dirs:
                    dirs.remove(name)  # a link to a folder: not walked
                try:
                    with open_plain(path) as source, open(target / name, "wb") as copy:
                        shutil.copyfileobj(source, copy)
                except NotAPlainFile as error:
                    left_out.append(str(path.relative_to(self.folder)))
                    log.debug("run %s: %s not copied: %s", self.id, name, error.strerror)
        return left_out

    @property
    def stdout_path(self) -> Path:
        return self.folder / layout.STDOUT_FILE

    @property
    def stderr_path(self) -> Path:
        return self.folder / layout.STDERR_FILE

    @property
    def batch_script_path(self) -> Path:
        """A Slurm run's batch script (launch/slurm.py writes it at creation)."""
        return self.folder / layout.BATCH_SCRIPT_FILE

    @property
    def builtin(self) -> bool:
        return self.folder.parent == BUILTIN_DIR

    # -- what it is ------------------------------------------------------------
    @property
    def meta(self) -> dict:
        """config.json: written once at creation, so read once per handle.

        Checked against its schema (records.py): a config.json that is a folder, not JSON or of
        the wrong types gives {} and makes the run unreadable (`problem`). Names are cleaned of
        control characters and bytes that were not UTF-8, whoever wrote them."""
        if self._meta is None:
            meta, self._meta_problem = self._load("config")
            for key in ("name", "group_name"):
                if isinstance(meta.get(key), str):
                    meta[key] = clean_name(meta[key])
            self._meta = meta
        return self._meta

    def _load(self, what: str) -> tuple[dict, str | None]:
        """One of the run's JSON files (records.FILES), checked: (its object, None), or ({}, why not)."""
        path = self.folder / _JSON_FILES[what]
        try:
            data = load_json(path) or {}
        except Unreadable as error:
            log.debug("run %s: %s", self.id, error)
            return {}, str(error)
        if why := records.file_problem(what, data):
            log.debug("run %s: %s: %s", self.id, path.name, why)
            return {}, f"{path.name}: {why}"
        return data, None

    def problem(self) -> str | None:
        """Why this run folder cannot be read as a run (its status is then `unreadable`), or None:
        a file that is a folder, a link or not of its schema. Such a run is listed, shown and
        can be deleted."""
        return self._state_files()[2]

    def _state_files(self) -> tuple[dict, dict, str | None]:
        """status.json and pid.json as read (each {} when missing or bad), and the run's problem."""
        self.meta  # noqa: B018 - reads config.json once, noting its problem
        recorded, why_status = self._load("status")
        ident, why_pid = self._load("pid")
        why = self._meta_problem or why_status or why_pid
        for name in (layout.METRICS_FILE, layout.SYSTEM_FILE, layout.JOB_FILE):
            if why:
                break
            try:
                mode = os.lstat(self.folder / name).st_mode
            except OSError:
                continue
            if not stat.S_ISREG(mode):
                why = f"{name} is {layout.kind_of(mode)}, not a plain file"
        return recorded, ident, why

    @property
    def name(self) -> str:
        """The name it was given; a local run given none: "CPU · tensorflow · b128 · 5k images"."""
        meta = self.meta
        config = meta.get("config") or {}
        # launch/local.py stores "CPU fit (tensorflow)" for a run given no name; it tells no two apart.
        stored = f"{str(meta.get('device')).upper()} {meta.get('engine')} ({meta.get('backend')})"
        if meta.get("source", "local") == "local" and config and meta.get("name") in (None, "", stored):
            return default_name(meta, config)
        return meta.get("name") or self.id

    @property
    def source(self) -> str:
        return self.meta.get("source", "local")

    def log(self, system: bool = False) -> RunLog:
        """A reader of this run's log, brought up to date; `system=True` also reads system.jsonl."""
        run_log = RunLog(self.metrics_path, self.system_path)
        run_log.update(system=system)
        return run_log

    def end_record(self) -> dict | None:
        """The log's end record, if any; reads only the file's last END_SCAN_BYTES."""
        try:
            with open_plain(self.metrics_path) as handle:
                handle.seek(max(0, os.fstat(handle.fileno()).st_size - END_SCAN_BYTES))
                tail = handle.read()
        except (FileNotFoundError, NotAPlainFile):
            return None
        for line in reversed(tail.splitlines()):
            if b'"type":"end"' in line:
                try:
                    end = json.loads(line)
                except (ValueError, RecursionError) as error:
                    log.debug("run %s: torn end record skipped: %s", self.id, error)
                    return None
                if not isinstance(end, dict) or (why := records.record_problem(end)):
                    log.debug("run %s: end record skipped: %s", self.id, why or end)
                    return None
                return end
        return None

    def pid(self) -> dict | None:
        return self._load("pid")[0] or None

    def wait_for_exit(self, timeout: float) -> bool:
        """Wait until the run's recorded process (its worker, or a cluster run's follower) has exited,
        so its files are closed; False if it still lives after `timeout` seconds."""
        ident = self.pid()
        deadline = time.monotonic() + timeout
        while process.is_alive(ident):
            if time.monotonic() > deadline:
                return False
            process.reap_children()
            time.sleep(0.05)
        return True

    def job(self) -> dict:
        """job.json: a scheduler's job (Slurm's id, partition, node); {} for a run without one."""
        return self._load("job")[0]

    def write_job(self, **fields) -> None:
        """Add to job.json (atomically): the launcher writes the job id, the job itself its node."""
        write_json_atomic(self.folder / layout.JOB_FILE, {**self.job(), **fields})

    def recorded_state(self) -> str:
        return self._load("status")[0].get("state", QUEUED)

    def status(self) -> str:
        """The run's state, derived from its files and whether its process lives (state.derive).

        The end record is read only when the recorded process is gone; a run whose files
        cannot be read (`problem`) is `unreadable`.
        """
        recorded_file, ident_file, why = self._state_files()
        if why:
            return UNREADABLE
        recorded = recorded_file.get("state", QUEUED)
        ident = None if recorded in END_STATES else ident_file or None
        alive = recorded not in END_STATES and process.is_alive(ident)
        end = None if recorded in END_STATES or alive else self.end_record()
        return derive(recorded, alive, ident is not None, end, self.meta.get("created"))

    def stderr_tail(self, lines: int = 40) -> str:
        """The last lines the worker printed to stderr ('' if none)."""
        try:
            with open_plain(self.stderr_path) as handle:
                handle.seek(max(0, os.fstat(handle.fileno()).st_size - STDERR_LINE_BYTES * lines))
                text = handle.read().decode(errors="replace")
        except (FileNotFoundError, NotAPlainFile) as error:
            log.debug("run %s: no stderr to show: %s", self.id, error)
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def cause(self, status: str, run_log: RunLog | None = None) -> str | None:
        """Why a run failed or was lost, as far as its files and its disk can tell."""
        if status == UNREADABLE:
            return f"unreadable: {self.problem()}"
        if status == FAILED:
            end = (run_log.end if run_log else None) or self.end_record() or {}
            return end.get("error") or self._load("status")[0].get("error")
        if status == LOST and space.free_mb(self.folder) < space.FULL_MB:
            # It died without an end record; a full disk is the one cause we can still see.
            return f"no space left on device on {self.folder} (the disk is full; it could not record why)"
        return None

    # -- changing it -----------------------------------------------------------
    def set_status(self, state: str, **extra) -> None:
        write_json_atomic(self.folder / layout.STATUS_FILE, {"state": state, "time": time.time(), **extra})

    def write_pid(self, ident: dict) -> None:
        write_json_atomic(self.folder / layout.PID_FILE, ident)

    def append_end(self, status: str, error: str | None = None, **extra) -> None:
        """An end record from someone other than the worker (a stop that had to kill it)."""
        append_record(self.metrics_path, {"type": "end", "status": status, "error": error, **extra})

    def reserve_space(self) -> bool:
        """Hold back a little of the run's disk, so a full disk can still record why (space.py)."""
        return space.reserve(self.folder / layout.RESERVE_FILE)

    def release_space(self) -> None:
        (self.folder / layout.RESERVE_FILE).unlink(missing_ok=True)


class RunStore:
    """All runs under one folder. Holds no state besides the folder's path.

    Args:
        root: the runs folder; default `$TRAINING_RUNS_DIR`, else `runs/`.
    """

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root else default_runs_dir()

    def open(self, run_id: str) -> Run:
        """An existing run; the one place a run id becomes a path."""
        check_run_id(run_id)
        if run_id in builtin_ids():
            return Run(self, run_id, BUILTIN_DIR / run_id)
        if not _is_run_folder(self.root / run_id):
            raise RunNotFound(f"no run {run_id!r} in {self.root}")
        return Run(self, run_id)

    def ids(self) -> list[str]:
        """Every run id, oldest first, the built-in ones last; half-made (dot) folders are not runs."""
        builtin = builtin_ids()
        return sorted(set(_run_folders(self.root)) - set(builtin)) + builtin

    def runs(self) -> list[Run]:
        """Every run, oldest first."""
        return [self.open(run_id) for run_id in self.ids()]

    def statuses(self, runs: list[Run] | None = None) -> dict[str, str]:
        """Each run's status, worked out once: what a page rerun asks for."""
        return {run.id: run.status() for run in (self.runs() if runs is None else runs)}

    # -- whether it can be written ----------------------------------------------
    def read_only_reason(self) -> str | None:
        """Why runs cannot be started, stopped or deleted here; None when they can."""
        why = space.read_only_reason(self.root)
        return f"the runs folder {self.root} is read-only: {why}" if why else None

    def folder_problem(self) -> str | None:
        """Why the runs folder cannot be one (a file, /proc, a path whose parent is missing), or None."""
        return space.runs_folder_problem(self.root)

    def start_problem(self) -> str | None:
        """Why a new run cannot start here: a read-only folder or too little disk space."""
        return self.read_only_reason() or space.space_problem(self.root)

    def check_writable(self) -> None:
        """Raise `RunError` naming why nothing can be written here."""
        if reason := self.read_only_reason():
            raise RunError(reason)

    def sweep_debris(self, max_age_s: float = debris.DEBRIS_AGE_S) -> list[Path]:
        """Remove what dead writers left (debris.py); nothing on a read-only or missing folder."""
        if not self.root.is_dir() or self.read_only_reason():
            return []
        return debris.sweep(self.root, max_age_s)

    # -- making and removing runs -------------------------------------------------
    def create(self, meta: dict, state: str, files: dict[str, bytes] | None = None,
               run_id: str | None = None) -> Run:
        """Write a complete run folder under a temp name, then rename it into place.

        Args:
            meta: what goes into config.json (the id is added, and the creation time
                unless `meta` has its own "created").
            state: the first status, `queued` for a local run.
            files: extra files by layout name, e.g. `{layout.METRICS_FILE: b"..."}`.
            run_id: a fixed id; an existing run of that id is then left as it is.
        """
        self.check_writable()
        self.root.mkdir(parents=True, exist_ok=True)
        while True:
            wanted = run_id or new_run_id()
            tmp = self.root / f"{debris.TMP_PREFIX}{wanted}-{secrets.token_hex(4)}"
            tmp.mkdir()
            try:
                write_json_atomic(tmp / layout.CONFIG_FILE, {"created": time.time(), **meta, "id": wanted})
                write_json_atomic(tmp / layout.STATUS_FILE, {"state": state, "time": time.time()})
                for name, data in (files or {}).items():
                    (tmp / name).write_bytes(data)
                try:
                    os.rename(tmp, self.root / wanted)  # fails if the id exists
                    return Run(self, wanted)
                except OSError as error:
                    if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                        raise  # a full disk, a read-only remount: the caller must hear it
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
        self.check_writable()
        # Rename first so that no reader ever sees a half-deleted run.
        doomed = self.root / f"{debris.DELETED_PREFIX}{run_id}-{secrets.token_hex(3)}"
        try:
            os.rename(run.folder, doomed)
        except FileNotFoundError:  # another delete renamed it a moment ago
            raise RunNotFound(f"run {run_id} was already deleted") from None
        shutil.rmtree(doomed, ignore_errors=True)  # rmtree removes links, never what they point to


def default_name(meta: dict, config: dict) -> str:
    """Device, backend, batch size and images per epoch: what tells two unnamed runs apart."""
    parts = [str(meta.get("device") or "?").upper(), str(meta.get("backend") or "?")]
    if config.get("batch_size"):
        parts.append(f"b{config['batch_size']}")
    images = meta.get("train_samples")
    if images:
        parts.append(f"{images // 1000}k images" if images % 1000 == 0 else f"{images:,} images")
    return " · ".join(parts)


def check_run_id(run_id) -> None:
    """Raise `InvalidRunId` unless `run_id` is a safe folder name (no separators, no '..')."""
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
        raise InvalidRunId(f"invalid run id {run_id!r}: use the id printed by 'list' "
                           "(letters, digits, '-' and '_'; no path separators or '..')")


def builtin_ids() -> list[str]:
    """The reference runs shipped with the package, in every store."""
    return sorted(_run_folders(BUILTIN_DIR))


def _run_folders(root: Path) -> list[str]:
    try:
        entries = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError):
        return []  # a runs folder not made yet holds no runs
    return [entry.name for entry in entries
            if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False)
            and os.path.lexists(os.path.join(entry.path, layout.CONFIG_FILE))]


def _is_run_folder(folder: Path) -> bool:
    """A real folder (not a link to one: its files could be anywhere) holding a config.json entry
    of any kind; one that is a folder or a link makes the run unreadable, not missing."""
    try:
        return stat.S_ISDIR(os.lstat(folder).st_mode) and os.path.lexists(folder / layout.CONFIG_FILE)
    except OSError:
        return False
