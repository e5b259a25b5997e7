"""What pages share: the run store, per-session log followers, and probes.

Process state lives on disk; session state holds only UI choices plus one
`RunLog` follower per run, a cache of byte offsets so a refresh reads only
what was appended since the last one.
"""

from __future__ import annotations

import importlib.util

import streamlit as st

from dashboard.figures import RunSeries, assign_colors, legend_label
from training import hardware
from training.config import BACKENDS
from training.importing import ensure_references
from training.runlog import RunLog
from training.runstore import ACTIVE_STATES, RunStore, default_runs_dir

REFRESH_S = 1.0  # live parts poll this often while a shown run is active


@st.cache_resource(show_spinner=False)
def _store_for(root: str) -> RunStore:
    store = RunStore(root)
    ensure_references(store)
    return store


def get_store() -> RunStore:
    """The store of `$TRAINING_RUNS_DIR` (else runs/), with the reference runs in it."""
    return _store_for(str(default_runs_dir()))


def follower(store: RunStore, run_id: str) -> RunLog:
    """This session's incremental reader of a run's log, brought up to date."""
    followers: dict = st.session_state.setdefault("_followers", {})
    key = (str(store.root), run_id)
    log = followers.get(key)
    if log is None:
        log = followers[key] = RunLog(store.path(run_id))
    log.update()
    return log


def forget(store: RunStore, run_id: str) -> None:
    st.session_state.get("_followers", {}).pop((str(store.root), run_id), None)


def series(store: RunStore, run_ids: list[str]) -> list[RunSeries]:
    """Figure input for the picked runs, colours fixed by pick order."""
    colors = assign_colors(run_ids)
    result = []
    for run_id in run_ids:
        meta = store.meta(run_id)
        log = follower(store, run_id)
        result.append(RunSeries(id=run_id, label=legend_label(meta), color=colors[run_id],
                                epochs=log.epochs, reference=meta.get("source") == "reference",
                                system=log.system))
    return result


def any_active(store: RunStore, run_ids: list[str]) -> bool:
    return any(store.status(run_id) in ACTIVE_STATES for run_id in run_ids)


def gpu_availability() -> tuple[bool, str]:
    """NVML in this process, cached: never imports TensorFlow into Streamlit."""
    return hardware.gpu_availability()


def installed_backends() -> dict[str, bool]:
    """Which Keras backends can be imported; each backend's module has its own name."""
    return {backend: importlib.util.find_spec(backend) is not None for backend in BACKENDS}


def default_picks(metas: dict[str, dict], with_references: bool,
                  failed: frozenset[str] = frozenset()) -> list[str]:
    """The latest local CPU run, the latest local GPU run (failed ones skipped), and the references."""
    picks = []
    for device in ("cpu", "gpu"):
        local = [i for i, m in metas.items()
                 if m.get("source") == "local" and m.get("device") == device and i not in failed]
        if local:
            picks.append(max(local))  # ids sort by creation time
    if with_references:
        picks += sorted(i for i, m in metas.items() if m.get("source") == "reference")
    return picks
