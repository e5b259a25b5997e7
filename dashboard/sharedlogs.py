"""Log followers the server's own threads share: each run's log is read once, not per reader.

The doorbells (`dashboard/live.py`) and the progress route (`dashboard/progress.py`) read
runs' logs outside any Streamlit session, many times a second between them. Each keeps
no follower of its own: they share one `RunLog` per log here, brought up to date under a
lock, so only the bytes appended since anyone last looked are read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from training.store import RunLog

T = TypeVar("T")
MAX_FOLLOWED = 256  # logs followed at once at most; the oldest is dropped (and read again if asked again)

_FOLLOWERS: dict[Path, RunLog] = {}  # metrics.jsonl path → its follower, most recently read last
_LOCK = threading.Lock()


def read(path: Path, what: Callable[[RunLog], T]) -> T:
    """`what(log)` of the log at `path`, brought up to date first; under the lock, so `what`
    sees a log no other thread is updating."""
    with _LOCK:
        log = _FOLLOWERS.pop(path, None) or RunLog(path)
        _FOLLOWERS[path] = log
        while len(_FOLLOWERS) > MAX_FOLLOWED:
            del _FOLLOWERS[next(iter(_FOLLOWERS))]
        log.update()
        return what(log)
