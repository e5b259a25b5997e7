"""Live pages that cost almost nothing to watch: poll cheaply, redraw only when something changed.

A page that shows running runs draws its figures and tables once, notes a
*signature* of what it drew (the run ids in the store, and each shown run's
status and epoch count), and leaves behind one small fragment that polls every
`REFRESH_S`, active runs or not (a run started elsewhere must show within 3 s
even on a loaded machine, and an idle poll costs a directory listing and a few
stat calls). The poll reads only
the bytes appended to the shown runs' logs (the per-session followers) and the
runs folder's listing; it reruns the whole page only when the signature
changed: a new epoch record, a status change, a new or deleted run. So an epoch
still shows within about a second of being written, while between epochs the
browser receives nothing but the small progress line (issue 23: watching must
not slow the run it watches).
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from dashboard import state
from training.store import Run, RunStore

REFRESH_S = state.REFRESH_S  # poll period: an epoch or a new run shows within about a second


def signature(store: RunStore, runs: list[Run], statuses: dict[str, str] | None = None) -> tuple:
    """What a redraw depends on: every run id, and each shown run's status and epochs so far."""
    statuses = statuses or state.statuses(store, runs)
    return (tuple(store.ids()),
            tuple((run.id, statuses[run.id], state.follower(run).epochs_done) for run in runs))


def remember(key: str, store: RunStore, runs: list[Run]) -> None:
    """Note what the page just drew; the watcher compares against it."""
    st.session_state[f"_live_{key}"] = signature(store, runs)


def watch(key: str, store: RunStore, runs: list[Run], every: float = REFRESH_S,
          tick: Callable[[list[Run], dict[str, str]], None] | None = None) -> None:
    """The page's one polling fragment: `tick(runs, statuses)` draws what may change every second
    (progress bars and lines), and nothing else is redrawn between changes.

    Reruns the whole page (`st.rerun`) only when `signature` differs from what
    `remember` noted. Call it last on the page, after `remember`.
    """
    _watcher(key, store, runs, tick, run_every=every)


def _watcher(key: str, store: RunStore, runs: list[Run], tick, run_every: float) -> None:
    @st.fragment(run_every=run_every)
    def poll() -> None:
        try:
            statuses = state.statuses(store, runs)
            now = signature(store, runs, statuses)
        except OSError:  # a shown run deleted meanwhile: the whole page works it out again
            now = None
        if now is None or now != st.session_state.get(f"_live_{key}"):
            st.rerun()
        if tick:
            tick(runs, statuses)

    poll()
