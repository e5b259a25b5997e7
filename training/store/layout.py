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

import errno
import json
import logging
import os
import secrets
import stat
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
MAX_JSON_BYTES = 4 * 2**20  # config.json and the others are a few KiB; a bigger one is not read whole

log = logging.getLogger(__name__)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` whole: a temp file in the same folder, fsynced, then renamed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}{TEMP_SUFFIX}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a failed write leaves no debris
        raise


def write_json_atomic(path: Path, data: dict) -> None:
    write_bytes_atomic(path, json.dumps(data, indent=1).encode())


class NotAPlainFile(OSError):
    """A name in a run folder that is a link, a folder, a FIFO or a device where a file belongs."""


def kind_of(mode: int) -> str:
    """What a `stat` mode is, in words: "a folder", "a FIFO", "a character device"..."""
    for test, word in ((stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a symbolic link"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return word
    return "a plain file" if stat.S_ISREG(mode) else "not a file"


def open_plain(path: Path | str):
    """Open a run folder's file for reading only if it is a plain file: never through a symbolic
    link (O_NOFOLLOW), never a FIFO, device or folder (checked on the open file, so a FIFO
    cannot block: O_NONBLOCK). Raises FileNotFoundError, or `NotAPlainFile` naming what it is."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise NotAPlainFile(errno.ELOOP, "is a symbolic link, not a plain file", str(path)) from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotAPlainFile(errno.EISDIR if stat.S_ISDIR(mode) else errno.EINVAL,
                            f"is {kind_of(mode)}, not a plain file", str(path))
    return os.fdopen(fd, "rb")


class Unreadable(Exception):
    """A run folder's JSON file that is there but cannot be taken: the message says why."""


def load_json(path: Path) -> dict | None:
    """A run folder's JSON object; None if the file is missing, `Unreadable` naming what is wrong
    (a folder or link where the file belongs, not JSON, not an object)."""
    try:
        with open_plain(path) as handle:
            data = json.loads(handle.read(MAX_JSON_BYTES + 1))
    except FileNotFoundError:
        return None
    except NotAPlainFile as error:
        raise Unreadable(f"{path.name} {error.strerror}") from error
    except (ValueError, RecursionError) as error:
        raise Unreadable(f"{path.name} is not JSON ({error})") from error
    except OSError as error:
        raise Unreadable(f"{path.name} cannot be read ({error.strerror or error})") from error
    if not isinstance(data, dict):
        raise Unreadable(f"{path.name} holds {type(data).__name__}, not an object")
    return data


def read_json(path: Path) -> dict | None:
    """A JSON object from disk, or None if the file is missing, not an object or not a plain file."""
    try:
        return load_json(path)
    except Unreadable as error:
        log.debug("unreadable JSON in %s: %s", path, error)
        return None
