"""Fair timing: runs execute one at a time, oldest first.

A worker waits for its turn by holding an exclusive `flock` on
`<runs>/.queue.lock`. The kernel drops the lock when its holder dies, even by
SIGKILL or the OOM killer, so no supervisor process is needed and a dead run
never blocks the queue. `flock` alone is not first-in-first-out, so a worker
that gets the lock while an older run is still waiting lets go and retries:
`older_run_waiting` is that policy.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from training.store.runs import RunNotFound, RunStore
from training.store.state import QUEUED

LOCK_NAME = ".queue.lock"
POLL_S = 0.2  # how often a queued run looks again; a start costs at most this


class StopRequested(Exception):
    """The run was asked to stop (SIGTERM/SIGINT or a cancelled queue slot)."""


@contextmanager
def turn(runs_dir: Path, older_waiting: Callable[[], bool],
         should_stop: Callable[[], bool], on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Block until this run may train; hold the slot for the `with` body."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(runs_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        waited = False
        while True:
            if should_stop():
                raise StopRequested("stopped while queued")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass
            else:
                if not older_waiting():
                    break
                fcntl.flock(fd, fcntl.LOCK_UN)  # an older run goes first
            if not waited and on_wait:
                on_wait()
            waited = True
            time.sleep(POLL_S)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def older_run_waiting(store: RunStore, run_id: str) -> bool:
    """True while a run created before `run_id` is still queued for its turn.

    Concurrent runs never take a turn, so they are not waited for. Reads only
    status.json for most runs: the process check runs for queued ones alone.
    """
    for other in store.ids():
        if other >= run_id:  # ids sort by creation time
            return False
        try:
            run = store.open(other)
            if run.recorded_state() != QUEUED or (run.meta.get("config") or {}).get("concurrent"):
                continue
            if run.status() == QUEUED:
                return True
        except RunNotFound:
            continue  # deleted while we looked
    return False
