"""What pages share: the run store, per-session log followers, and probes.

Process state lives on disk; session state holds only UI choices plus one
`RunLog` follower per run, a cache of byte offsets so a refresh reads only
what was appended since the last one. A page works out the statuses of the
runs it shows once per rerun (`RunStore.statuses`) and passes them down.
"""

from __future__ import annotations

import importlib.util

import streamlit as st
from streamlit import config

from training import launch
from training.analysis.series import RunSeries, load_series
from training.config import BACKENDS
from training.store import Run, RunError, RunLog, RunStore, default_runs_dir
from training.system import doctor, gpucheck

REFRESH_S = 1.0  # live pages poll this often (dashboard/live.py): cheap, and redraw only on change


@st.cache_resource(show_spinner=False)
def _store_for(root: str) -> RunStore:
    store = RunStore(root)
    store.sweep_debris()  # once per dashboard process: what a crashed writer left behind
    return store


def url_path(path: str) -> str:
    """`path` (from "/") as the browser asks this server for it: below `server.baseUrlPath` if set."""
    base = config.get_option("server.baseUrlPath").strip("/")
    return f"/{base}{path}" if base else path


def get_store() -> RunStore:
    """The store of `$TRAINING_RUNS_DIR` (else runs/); it lists the built-in reference runs too."""
    return _store_for(str(default_runs_dir()))


def follower(run: Run, system: bool = False) -> RunLog:
    """This session's incremental reader of a run's log, brought up to date.

    `system=True` also reads system.jsonl; only the charts need it.
    """
    followers: dict = st.session_state.setdefault("_followers", {})
    key = (str(run.store.root), run.id)
    log = followers.get(key)
    if log is None:
        log = followers[key] = RunLog(run.metrics_path, run.system_path)
    log.update(system=system)
    return log


def forget(run: Run) -> None:
    st.session_state.get("_followers", {}).pop((str(run.store.root), run.id), None)


def series(runs: list[Run]) -> list[RunSeries]:
    """Figure input for the picked runs, colours fixed by pick order, read through the followers."""
    return load_series(runs, lambda run: follower(run, system=True))


def statuses(store: RunStore, runs: list[Run]) -> dict[str, str]:
    """Each run's status, once per rerun (read only), then the one explicit step that asks the
    launchers about runs that look lost (`launch.reconcile`: a new follower for a dead one, one
    squeue for every Slurm run), which asks each run at most every 10 s."""
    return launch.reconcile(runs, store.statuses(runs))


def gpu_availability(backend: str) -> tuple[bool, str]:
    """Does `backend` itself see a GPU? NVML here, then a probe subprocess; cached per backend.

    The probe imports the backend in its own process, so Streamlit never imports a framework.
    """
    return gpucheck.availability(backend)


@st.cache_data(ttl=10, show_spinner="Asking the Ray cluster for its nodes…")
def cluster_nodes(address: str) -> list[dict]:
    """The Ray cluster's live nodes (CPUs, GPUs, models); asked at most every 10 s."""
    return launch.cluster_nodes(address)


@st.cache_data(ttl=10, show_spinner=False)
def slurm_partitions(conf: str) -> list[dict]:
    """Slurm's partitions and their nodes when `sinfo` answers here, else none; asked at most every 10 s.

    `conf` ($SLURM_CONF) is only the cache's key: another configuration is another cluster."""
    try:
        return launch.slurm_partitions()
    except RunError:
        return []


def recheck_gpus() -> None:
    """The "Re-check GPUs" button: ask NVML and every backend again on this rerun."""
    gpucheck.forget()
    st.session_state.pop("doctor_report", None)


def doctor_report() -> str:
    """`python -m training doctor`'s text; each backend is asked in its own subprocess."""
    return doctor.format_report(doctor.report())


def installed_backends() -> dict[str, bool]:
    """Which Keras backends can be imported; each backend's module has its own name."""
    return {backend: importlib.util.find_spec(backend) is not None for backend in BACKENDS}


COMPARE_ADD = "_compare_add"  # run ids the Compare page adds to its picks on its next rerun


def add_to_compare(run_ids: list[str]) -> None:
    """Ask the Compare page to add these runs to its picks (an import made on the Runs page)."""
    st.session_state[COMPARE_ADD] = [*st.session_state.get(COMPARE_ADD, []), *run_ids]


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
