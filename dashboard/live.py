"""Live pages that cost almost nothing to watch: redraw only when something changed.

A page that shows running runs draws its figures and tables once and notes a
*signature* of what it drew: the run ids in the store, and each shown run's status
and epoch count. The server then looks again every `REFRESH_S` (`dashboard/doorbell.py`:
a thread per session that lists the runs folder and reads the bytes appended to the
shown runs' logs) and reruns the page only when the signature changed: a new epoch
record, a status change, a new or deleted run. Between those, nothing goes to the
browser at all, so an open tab costs the run it watches next to nothing (issue 23,
docs/benchmarks.md "Watching costs"), while an epoch still shows within about a second
of being written. A page that draws its live part in a fragment (Compare) has only that
fragment rerun for a new epoch; the page's widgets are redrawn only for a new run or a
status change.

Progress that moves between epochs (the Train page's cards) asks the server for itself,
without a Streamlit run (`dashboard/progress.py`); where that route is not served, it
ticks in a small fragment every `TICK_S`, only while a shown run is active. Either way
a new epoch reruns nothing more there. Where the server cannot be rung
(AppTest's bare mode), a fragment polls the signature instead, as before.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from dashboard import doorbell, sharedlogs, state
from training.store import ACTIVE_STATES, Run, RunStore

REFRESH_S = state.REFRESH_S  # how often the server looks: an epoch or a new run shows within about 1 s
TICK_S = 2.0  # progress bars: every 2 s is live enough to read, half the cost of every second


def signature(store: RunStore, runs: list[Run], statuses: dict[str, str],
              epochs_done: Callable[[Run], int]) -> tuple[tuple, tuple]:
    """What a redraw depends on, in two parts: what the page drew (every run id, each shown
    run's status) and what a live fragment of it drew (each shown run's epochs so far)."""
    return ((tuple(store.ids()), tuple(statuses[run.id] for run in runs)),
            tuple(epochs_done(run) for run in runs))


def watch(key: str, store: RunStore, runs: list[Run], statuses: dict[str, str],
          tick: Callable[[list[Run], dict[str, str]], None] | None = None, count_epochs: bool = True) -> None:
    """Rerun this page when `signature` changes; `tick(runs, statuses)` draws what moves between
    epochs (progress bars), every `TICK_S` while a shown run is active. Call it after drawing.

    Called from inside a fragment, a new epoch reruns only that fragment; a new run or a
    status change still reruns the page (dashboard/doorbell.py). A page whose tick or whose
    elements draw new epochs themselves (`count_epochs=False`: dashboard/progress.py) is not
    rerun for an epoch at all."""
    epochs = (lambda run: state.follower(run).epochs_done) if count_epochs else (lambda run: 0)
    drawn = signature(store, runs, statuses, epochs)
    rung = doorbell.watch(key, _looker(store, runs, count_epochs), drawn, REFRESH_S)
    active = any(statuses[run.id] in ACTIVE_STATES for run in runs)
    if rung:
        if tick and active:
            _ticker(store, runs, tick, TICK_S)
        return
    _poller(key, store, runs, drawn, tick, REFRESH_S, epochs)


def _looker(store: RunStore, runs: list[Run], count_epochs: bool) -> Callable[[], tuple]:
    """`signature` as the server's thread reads it: its own log followers, no session state.
    Without `count_epochs` (a page whose tick draws them) every epoch count reads 0."""

    def epochs_done(run: Run) -> int:
        return sharedlogs.read(run.metrics_path, lambda log: log.epochs_done) if count_epochs else 0

    return lambda: signature(store, runs, state.statuses(store, runs), epochs_done)


def _ticker(store: RunStore, runs: list[Run], tick, every: float) -> None:
    @st.fragment(run_every=every)
    def progress() -> None:
        tick(runs, state.statuses(store, runs))

    progress()


def _poller(key: str, store: RunStore, runs: list[Run], drawn: tuple, tick, every: float,
            epochs: Callable[[Run], int]) -> None:
    """Without a doorbell: a fragment compares the signature every `every` and reruns on change."""
    st.session_state[f"_live_{key}"] = drawn

    @st.fragment(run_every=every)
    def poll() -> None:
        try:
            statuses = state.statuses(store, runs)
            now = signature(store, runs, statuses, epochs)
        except OSError:  # a shown run deleted meanwhile: the whole page works it out again
            now = None
        if now is None or now != st.session_state.get(f"_live_{key}"):
            st.rerun()
        if tick:
            tick(runs, statuses)

    poll()
