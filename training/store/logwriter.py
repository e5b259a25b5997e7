"""The log writer: append-only JSON lines, one record per line.

Modelled on Keras's `CSVLogger`: open at the start, one line per event using
Keras's own metric names, flush every line so another process can follow the
file live, and fsync at the end of each epoch so a crash or power cut never
loses a finished epoch. The format is documented in docs/log-format.md.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import time
from pathlib import Path

from training.store.layout import END_SCAN_BYTES

# Version of the log format (docs/log-format.md). Every start record carries it;
# readers refuse a newer one rather than guess. 1: no version field; 2: the field;
# 3: the start record's `layers` and `peak` (what FLOPs and utilisation come from), and new epoch
#    fields (where the time goes, the profiled epoch); older logs read as before;
# 4: epoch records say who else used the machine (contention fields); older logs: "not recorded".
FORMAT_VERSION = 4
log = logging.getLogger(__name__)


def _clean(value):
    """JSON has no NaN or infinity; a diverged loss is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def encode(record: dict) -> bytes:
    """One record as one JSON line; a start record is stamped with FORMAT_VERSION."""
    if record.get("type") == "start":
        record = {"type": "start", "format_version": FORMAT_VERSION, **record}
    return (json.dumps(_clean(record), separators=(",", ":")) + "\n").encode()


class LogWriteError(OSError):
    """A record could not be written to a run's log: the disk is full, say.

    Carries the OS error's errno and the file, so the worker can end the run
    `failed` with a cause a person understands (`describe`).
    """

    def __init__(self, path: Path, error: OSError):
        super().__init__(error.errno, error.strerror or str(error), str(path))
        self.path = Path(path)

    def describe(self) -> str:
        """e.g. "no space left on device on /data/runs/<id> (writing metrics.jsonl)"."""
        return describe_write_error(self)


DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)


def describe_write_error(error: OSError) -> str:
    """A failed write as a person would say it: what went wrong, where, and on which file."""
    what = (error.strerror or "write error").lower()
    if not error.filename:
        return what
    path = Path(error.filename)
    return f"{what} on {path.parent} (writing {path.name})"


def repair_torn_tail(path: Path) -> int:
    """Cut a last line that a killed writer left without its newline; returns bytes cut.

    The torn line can never be completed (its writer is gone) and readers skip
    it anyway, so the next record starts on a clean line and the log stays free
    of corrupt lines.
    """
    try:
        handle = open(path, "r+b")
    except FileNotFoundError:
        return 0
    with handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            return 0
        handle.seek(max(0, size - END_SCAN_BYTES))
        tail = handle.read()
        if tail.endswith(b"\n"):
            return 0
        keep = size - len(tail) + tail.rfind(b"\n") + 1  # 0 when the file has no newline at all
        handle.truncate(keep)
        return size - keep


ECHO_PREFIX = "@@training-record "  # marks a record echoed on stdout: "<prefix><tag> <json>"


class LogWriter:
    """Appends records to one log file. Every line is flushed as written.

    A write that fails (a full disk, an I/O error) raises `LogWriteError`.

    Args:
        path: the log file; a torn last line in it is cut first.
        numbered: give each record a `seq` (1, 2, ...), so a copy of the log
            made elsewhere (a Ray job's output) can be merged without gaps or
            duplicates.
        echo: a tag; each record is also printed on stdout as one marked line,
            `@@training-record <tag> <json>`, which is how a worker on a cluster
            node sends its records home (launch/follower.py reads them back).
    """

    def __init__(self, path: Path, numbered: bool = False, echo: str | None = None):
        self.path = Path(path)
        self.seq = 0 if numbered else None
        self._echo = f"{ECHO_PREFIX}{echo} ".encode() if echo else None
        try:
            repair_torn_tail(self.path)
            # Unbuffered binary append: each write() is one write(2) of a whole line. Opened for
            # reading too, to see whether the file still ends in a newline (`_on_a_new_line`).
            self._file = open(self.path, "a+b", buffering=0)
        except OSError as error:
            raise LogWriteError(self.path, error) from error

    def write(self, record: dict, sync: bool = False) -> None:
        record.setdefault("time", time.time())
        if self.seq is not None:
            self.seq += 1
            record["seq"] = self.seq
        line = encode(record)
        try:
            # A writer that died mid-line left a torn tail: it stays one corrupt line of its own.
            self._file.write(line if self._on_a_new_line() else b"\n" + line)
            if sync:
                os.fsync(self._file.fileno())
        except OSError as error:
            raise LogWriteError(self.path, error) from error
        if self._echo:
            os.write(1, self._echo + line)  # one write(2): lines from two threads never interleave


    def _on_a_new_line(self) -> bool:
        """Whether the file is empty or ends in a newline: one fstat and a one-byte pread a record."""
        fd = self._file.fileno()
        size = os.fstat(fd).st_size
        return size == 0 or os.pread(fd, 1, size - 1) == b"\n"

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            os.fsync(self._file.fileno())
        except OSError as error:  # the records themselves were written; only the sync failed
            log.debug("fsync of %s failed on close: %s", self.path, error)
        finally:
            self._file.close()

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_echoed(text: str) -> dict[str, list[dict]]:
    """The records a worker echoed (`LogWriter(echo=tag)`) in some output, by tag.

    Anything else in the output (warnings, tracebacks, Ray's own lines) is
    ignored, and so is a marked line that does not parse (a torn last line).
    """
    found: dict[str, list[dict]] = {}
    for line in text.splitlines():
        at = line.find(ECHO_PREFIX)
        if at < 0:
            continue
        tag, _, body = line[at + len(ECHO_PREFIX):].partition(" ")
        try:
            record = json.loads(body)
        except ValueError:
            continue
        if isinstance(record, dict):
            found.setdefault(tag, []).append(record)
    return found


def append_record(path: Path, record: dict) -> None:
    """Append one record and fsync: for the rare writer that is not the worker.

    A torn last line left by a killed writer is cut first (`repair_torn_tail`),
    so this record stands on a line of its own.
    """
    record.setdefault("time", time.time())
    with LogWriter(path) as writer:
        writer.write(record, sync=True)
