"""The log writer: append-only JSON lines, one record per line.

Modelled on Keras's `CSVLogger`: open at the start, one line per event using
Keras's own metric names, flush every line so another process can follow the
file live, and fsync at the end of each epoch so a crash or power cut never
loses a finished epoch. The format is documented in docs/log-format.md.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

# Version of the log format (docs/log-format.md). Every start record carries it;
# readers refuse a newer one rather than guess. 1: no version field; 2: the field.
FORMAT_VERSION = 2


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


class LogWriter:
    """Appends records to one log file. Every line is flushed as written."""

    def __init__(self, path: Path):
        # Unbuffered binary append: each write() is one write(2) of a whole line.
        self._file = open(path, "ab", buffering=0)

    def write(self, record: dict, sync: bool = False) -> None:
        record.setdefault("time", time.time())
        self._file.write(encode(record))
        if sync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            os.fsync(self._file.fileno())
            self._file.close()

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def append_record(path: Path, record: dict) -> None:
    """Append one record and fsync: for the rare writer that is not the worker.

    If a killed writer left a torn last line, end it first, so that this record
    stands on a line of its own (the torn one is then skipped as corrupt).
    """
    torn = False
    if path.exists() and path.stat().st_size:
        with open(path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            torn = handle.read(1) != b"\n"
    record.setdefault("time", time.time())
    with open(path, "ab", buffering=0) as handle:
        handle.write((b"\n" if torn else b"") + encode(record))
        os.fsync(handle.fileno())
