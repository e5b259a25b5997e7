"""The files of a run folder, named here and nowhere else, and how they are written.

    runs/<id>/config.json    who and what: name, source, device, engine, RunConfig
              status.json    queued | running | stopping | finished | stopped | failed
              pid.json       the worker's (pid, start time)
              metrics.jsonl  the append-only metrics log (docs/log-format.md)
              system.jsonl   CPU / memory / GPU samples, about one a second
              stdout.log, stderr.log, tb/ (TensorBoard events)
              profile/       --profile-steps: the backend's own trace (docs/log-format.md)
              .reserve       a little disk space the worker holds back, freed to record a failure
              slurm-job.sh   a Slurm run's batch script, as submitted (kept for people to read)
              job.json       a Slurm run's job: id, partition, and the node once it starts

Only `store.runs.Run` joins these names to a folder; everything else asks a
`Run` for the path or, better, for what it wants to know. Files rewritten in
place go through a temp file in the same folder and `os.replace`, so a reader
sees the old or the new file, never half of one (MLflow's FileStore moves a
temp file from /tmp instead, which is not atomic across file systems).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path

CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
PID_FILE = "pid.json"
METRICS_FILE = "metrics.jsonl"
SYSTEM_FILE = "system.jsonl"
STDOUT_FILE = "stdout.log"
STDERR_FILE = "stderr.log"
TENSORBOARD_DIR = "tb"
PROFILE_DIR = "profile"  # TensorFlow and JAX write plugins/profile/<stamp>/ under it
TORCH_TRACE_FILE = "torch_trace.json"  # torch.profiler's Chrome trace, inside PROFILE_DIR
RESERVE_FILE = ".reserve"
BATCH_SCRIPT_FILE = "slurm-job.sh"
JOB_FILE = "job.json"
TEMP_SUFFIX = ".tmp"  # write_json_atomic's temp files: ".<name>.<pid>.<hex>.tmp"
END_SCAN_BYTES = 65536  # a log's last line is in its last 64 KiB: readers of the end never read more

log = logging.getLogger(__name__)


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}{TEMP_SUFFIX}")
    try:
        with open(tmp, "w") as handle:
            json.dump(data, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a failed write leaves no debris
        raise


def read_json(path: Path) -> dict | None:
    """A JSON object from disk, or None if the file is missing or not an object."""
    try:
        with open(path) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return None
    except ValueError as error:
        log.debug("unreadable JSON in %s: %s", path, error)
        return None
    return data if isinstance(data, dict) else None
