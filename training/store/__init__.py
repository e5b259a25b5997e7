"""Disk is the truth: run folders, their logs, process identity and the run queue.

The rest of the project reaches the store through what this package exports:
`RunStore` (every run under one folder), `Run` (one run: files, meta, status,
log, end record), the lifecycle states and the errors. The modules behind them:

    runs.py       RunStore and Run
    records.py    one schema per record type and JSON file, checked where read
    state.py      the lifecycle states and how a state is derived from disk
    space.py      read-only and free-space checks, the worker's space reserve
    debris.py     sweeping what dead writers left
    layout.py     the file names of a run folder (their one owner) and atomic writes
    process.py    process identity (pid + start time), detached spawn, signals
    queue.py      one run at a time, oldest first (flock), and who is next
    logwriter.py  append-only JSON lines, with the log format version
    logreader.py  incremental reader: each new record once, a torn tail means "not yet"
    runlog.py     what a run's log says so far: start, progress, epochs, end, warnings
    builtin/      the reference runs, shipped as run folders that every store lists

Nothing in this package imports Streamlit or a deep-learning framework.
"""

from training.store.runlog import NewerLogFormat, RunLog
from training.store.runs import (
    END_SCAN_BYTES,
    InvalidRunId,
    Run,
    RunError,
    RunNotFound,
    RunStore,
    default_runs_dir,
    new_run_id,
)
from training.store.space import MIN_FREE_MB
from training.store.state import (
    ACTIVE_STATES,
    END_STATES,
    FAILED,
    FINISHED,
    LOST,
    QUEUED,
    RUNNING,
    STOPPED,
    STOPPING,
    UNREADABLE,
)

__all__ = ["ACTIVE_STATES", "END_SCAN_BYTES", "END_STATES", "FAILED", "FINISHED", "LOST", "MIN_FREE_MB",
           "QUEUED", "RUNNING", "STOPPED", "STOPPING", "UNREADABLE", "InvalidRunId", "NewerLogFormat", "Run",
           "RunError", "RunLog", "RunNotFound", "RunStore", "default_runs_dir", "new_run_id"]
