"""Process identity, detached launch and signalling, with the real OS calls.

A pid alone is not an identity: the kernel reuses pids. A process is the
pair (pid, start time), and it counts as alive only while both still match
and it is not a zombie.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

# Children this process launched, kept so that finished ones can be reaped
# instead of lingering as zombies while the dashboard lives.
_children: list[subprocess.Popen] = []


def identity(pid: int | None = None) -> dict:
    """`{"pid", "create_time"}` of a process, this one by default."""
    process = psutil.Process(pid or os.getpid())
    return {"pid": process.pid, "create_time": process.create_time()}


def is_alive(ident: dict | None) -> bool:
    """True while the process in `ident` still runs: same pid, same start time."""
    if not ident:
        return False
    try:
        process = psutil.Process(int(ident["pid"]))
        if abs(process.create_time() - float(ident["create_time"])) > 0.01:
            return False  # the pid was reused by another process
        return process.status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, KeyError, TypeError, ValueError):
        return False


def reap_children() -> None:
    for child in list(_children):
        if child.poll() is not None:
            _children.remove(child)


def spawn_detached(args: list[str], cwd: Path, stdout: Path, stderr: Path,
                   env: dict | None = None) -> subprocess.Popen:
    """Start `python args...` in its own session and process group.

    It outlives the caller (a Streamlit rerun, a closed tab, a restarted
    dashboard), writes its output to files, and the call returns at once.
    """
    reap_children()
    with open(stdout, "ab") as out, open(stderr, "ab") as err:
        child = subprocess.Popen(
            [sys.executable, *args], cwd=cwd, stdin=subprocess.DEVNULL,
            stdout=out, stderr=err, env=env, start_new_session=True, close_fds=True,
        )
    _children.append(child)
    return child


def _signal(ident: dict, signum: int) -> None:
    pid = int(ident["pid"])
    try:
        # A detached worker leads its own group, so the signal reaches any
        # helper it started too; a foreground CLI run gets a plain kill.
        if os.getpgid(pid) == pid:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)
    except ProcessLookupError:
        pass


def kill_group(ident: dict) -> None:
    """SIGKILL the recorded process (and its group, if it leads one) at once, if it still lives."""
    if is_alive(ident):
        _signal(ident, signal.SIGKILL)


def terminate(ident: dict, timeout: float = 10.0) -> bool:
    """SIGTERM, wait up to `timeout` s, then SIGKILL. True if it had to kill."""
    if not is_alive(ident):
        return False
    _signal(ident, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reap_children()
        if not is_alive(ident):
            return False
        time.sleep(0.05)
    _signal(ident, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while is_alive(ident) and time.monotonic() < deadline:
        reap_children()
        time.sleep(0.05)
    return True
