"""A run's lifecycle states, and how its state is derived from what its folder says.

Nothing is cached: the state is worked out each time from status.json, the
log's end record and whether the recorded process still lives (pid and start
time). `lost` is never written; it is what a dead process without an end
record leaves; nor is `unreadable`, what a folder with a broken file gives.
"""

from __future__ import annotations

import time

QUEUED, RUNNING, STOPPING, FINISHED, STOPPED, FAILED, LOST = (
    "queued", "running", "stopping", "finished", "stopped", "failed", "lost")
# A folder whose files cannot be read as a run (a config.json that is a folder, a record file of
# the wrong types): never written, neither active nor ended; listed, shown and deletable.
UNREADABLE = "unreadable"
ACTIVE_STATES = (QUEUED, RUNNING, STOPPING)
END_STATES = (FINISHED, STOPPED, FAILED)
LAUNCH_GRACE_S = 60  # a queued folder with no pid yet is a launch in progress


def derive(recorded: str, alive: bool, has_pid: bool, end: dict | None, created: float | None) -> str:
    """The run's state from its recorded state, its process and its log's end record.

    Args:
        recorded: status.json's state (`queued` when there is none).
        alive: whether the recorded process (pid and start time) lives.
        has_pid: whether a process was recorded at all.
        end: the log's end record, if any.
        created: the run's creation time (Unix seconds).
    """
    if recorded in END_STATES:
        return recorded
    if alive:
        return recorded
    if end and end.get("status") in END_STATES:
        return end["status"]
    if recorded == STOPPING:
        return STOPPED  # the stopper's own record may still be on its way
    launching = time.time() - (created or 0) < LAUNCH_GRACE_S
    if not has_pid and recorded == QUEUED and launching:
        return QUEUED  # launched a moment ago; its pid is not written yet
    return LOST
