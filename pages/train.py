"""Train: choose settings, start CPU / GPU runs, and watch the active ones live."""

import streamlit as st

from dashboard import live, progress, state, sweepform, widgets, workloadform
from training.store import ACTIVE_STATES, RunError

store = state.get_store()
st.title("Train the published CNN")
st.caption("MNIST, the 2018 network (430,666 parameters), SGD with Nesterov momentum. "
           "Each run trains in its own process; runs queue one at a time so timings stay fair.")

config, error = widgets.settings_form()
config = workloadform.workload_choice(config)  # the model and data; None if refused
backend = config.backend if config else st.session_state.get("backend", "tensorflow")
launcher, gpu_ok, gpu_reason = widgets.where_choice(backend)  # this machine or a Ray cluster
cannot_start = store.start_problem()  # a read-only runs folder, or too little disk space
if cannot_start:
    st.warning(f"Runs cannot start: {cannot_start}. Runs already there can still be browsed.", icon="⚠️")
if cannot_start or launcher is None:
    config = None

repeats = sweepform.repeats_field(st.columns(3)[0])
cpu_col, gpu_col, pair_col = st.columns(3)
started = []
try:
    if cpu_col.button("Start CPU run", key="start_cpu", type="primary", disabled=config is None,
                      help=cannot_start):
        started = sweepform.start_runs(launcher, store, config, ("cpu",), repeats)
    if gpu_col.button("Start GPU run", key="start_gpu", disabled=config is None or not gpu_ok,
                      help=None if gpu_ok else gpu_reason):
        started = sweepform.start_runs(launcher, store, config, ("gpu",), repeats)
    if pair_col.button("Start CPU then GPU", key="start_pair", disabled=config is None or not gpu_ok,
                       help=None if gpu_ok else gpu_reason):
        started = sweepform.start_runs(launcher, store, config, ("cpu", "gpu"), repeats)
    started = started or sweepform.sweep_form(launcher, store, config, repeats)
except RunError as refused:  # a cluster that went away, a GPU model no node has
    st.error(f"Not started: {refused}")
if not gpu_ok:
    st.info(f"GPU runs are disabled: {gpu_reason}.", icon="ℹ️")
widgets.gpu_tools()
if started:
    group = started[0].meta.get("group")
    st.success(f"Queued {len(started)} run(s): {', '.join(run.id for run in started)}"
               + (f" as group {group}" if group else "") + ". Follow them below or on Compare.")

st.subheader("Queued and running")
runs = store.runs()
statuses = state.statuses(store, runs)  # once per rerun, shared by every card
active = [run for run in runs if statuses[run.id] in ACTIVE_STATES]
widgets.stop_notice()
if not active:
    st.caption("No run is queued or running.")
# A new epoch reruns nothing here: each card's bars ask the server for their run's progress
# every 1.5 s (dashboard/progress.py), or, where that is not served, tick in a small fragment.
# The page reruns only when a run starts or ends (dashboard/live.py: watching costs the run nothing).
if progress.served():
    for run in active:
        widgets.run_card(run, statuses[run.id])
    live.watch("train", store, active, statuses, count_epochs=False)
else:
    live.watch("train", store, active, statuses, count_epochs=False,
               tick=lambda shown, now: [widgets.run_card(run, now[run.id]) for run in shown])
widgets.recent_runs(runs, statuses)
