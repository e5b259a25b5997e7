"""The dashboard server's CPU priority: below the training it watches.

Linux with autogroups on (`/proc/sys/kernel/sched_autogroup_enabled`, the default of most
distributions, and of this machine) shares CPU time first between sessions, and a thread's
own nice value only counts against threads of its own session. Every worker runs in a session
of its own (`store/process.spawn_detached`), so `os.nice` or `nice -n 10 streamlit run`
changes nothing against it; what does is the nice value of the server's autogroup
(`/proc/self/autogroup`, sched(7)). A worker the dashboard starts gets a fresh autogroup at
nice 0, so it never inherits the server's low priority.

Whose autogroup that is depends on how the server was started:
  its own session (a service, `setsid`, the benchmarks)   lowered; it is the server alone
  a terminal's session (`make run`, `streamlit run`)      lowered, and set back at exit: the
                                                          shell shares it
  another program's session, no terminal on stdin (pytest) left alone: lowering it would slow
                                                          that program and its browser too
Without autogroups the only lever left is the threads' nice value, which every process the
server starts inherits, the Train page's workers included, and an unprivileged process cannot
raise it back; so there the priority is left alone.

`TRAINING_DASHBOARD_NICE` (0 to 19, default 10; 0 = leave it) sets the nice value.
"""

from __future__ import annotations

import atexit
import os
import sys
import time
from pathlib import Path

DEFAULT_NICE = 10  # CFS weight 110 against 1024 at nice 0: about a tenth of a contended core
ENV = "TRAINING_DASHBOARD_NICE"
AUTOGROUP = Path("/proc/self/autogroup")
AUTOGROUP_SWITCH = Path("/proc/sys/kernel/sched_autogroup_enabled")

_done: str | None = None  # what lower_once did, once per process (navigation.py runs on every rerun)


def plan(autogroups: bool, session_leader: bool, terminal: bool, current: int,
         target: int) -> tuple[str, str]:
    """(action, why): action is "lower", "lower and restore" or "leave"."""
    if target <= current:
        return "leave", f"already at nice {current}"
    if not autogroups:
        return "leave", "no autogroups: a nice value would pass to the workers the dashboard starts"
    if session_leader:
        return "lower", "the server leads its own session"
    if terminal:
        return "lower and restore", "the terminal's session, set back when the server exits"
    return "leave", "started inside another program's session, which lowering would slow too"


def target_nice(environ: dict) -> int:
    """The wanted nice value from `TRAINING_DASHBOARD_NICE`; a clear error outside 0..19."""
    text = environ.get(ENV, "").strip()
    if not text:
        return DEFAULT_NICE
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 19:
        raise ValueError(f"{ENV} must be a whole number from 0 to 19, not {text!r}")
    return value


def autogroup_nice() -> int | None:
    """This process's autogroup nice value ("/autogroup-12 nice 0"), or None without autogroups."""
    try:
        if AUTOGROUP_SWITCH.read_text().strip() != "1":
            return None
        return int(AUTOGROUP.read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


def set_autogroup_nice(value: int) -> None:
    # The kernel takes at most one autogroup change per 0.1 s machine-wide (EAGAIN otherwise).
    for _ in range(20):
        try:
            AUTOGROUP.write_text(str(value))
            return
        except BlockingIOError:
            time.sleep(0.11)
    AUTOGROUP.write_text(str(value))


def lower_once(environ: dict | None = None) -> str:
    """Put this server below the training, once per process; returns what was done, in words."""
    global _done
    if _done is None:
        _done = _lower(os.environ if environ is None else environ)
        print(f"dashboard CPU priority: {_done}", file=sys.stderr, flush=True)
    return _done


def _lower(environ) -> str:
    target = target_nice(environ)
    current = autogroup_nice()
    terminal = os.isatty(0)  # stdin; pytest points a child's at /dev/null, a terminal's shell does not
    action, why = plan(current is not None, os.getsid(0) == os.getpid(), terminal, current or 0, target)
    if action == "leave":
        return f"left alone ({why})"
    try:
        set_autogroup_nice(target)
    except OSError as error:
        return f"left alone (could not write {AUTOGROUP}: {error})"
    if action == "lower and restore":
        atexit.register(_restore, current)
    return f"autogroup nice {target} ({why})"


def _restore(value: int) -> None:
    try:
        set_autogroup_nice(value)
    except OSError:
        pass  # the shell keeps nice 10 until it exits; nothing else is affected
