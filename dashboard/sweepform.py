"""The Train page's repeats and sweep: starting runs as groups, and the sweep's preview.

Streamlit glue over `training.launch.sweeps`: the same planning, GPU refusal and time
estimate as `python -m training sweep`. A sweep is every combination of the
chosen devices, backends, batch sizes, precisions and thread counts, times the
page's Repeats, queued interleaved as one group.
"""

from __future__ import annotations

import dataclasses

import streamlit as st

from dashboard import state
from training.config import MAX_REPEATS, PRECISIONS, ConfigError, RunConfig
from training.launch import Launcher, launch_pair, sweeps
from training.store import Run, RunError, RunStore


def repeats_field(where=st) -> int:
    """The "Repeats" number: how many runs of each configuration to queue as one group."""
    return int(where.number_input("Repeats", min_value=1, max_value=MAX_REPEATS, value=1, step=1,
                                  key="repeats", help="Queue N runs of each configuration as one group: "
                                  "the Compare page then shows their median and min–max spread."))


def start_runs(launcher: Launcher, store: RunStore, config: RunConfig, devices: tuple[str, ...],
               repeats: int) -> list[Run]:
    """What a Start button queues, wherever `launcher` starts runs: one run or the
    CPU-then-GPU pair, or with repeats a group."""
    if repeats == 1:
        if len(devices) == 2:
            return launch_pair(launcher, store, config)
        return [launcher.launch(store, dataclasses.replace(config, device=devices[0]))]
    planned = sweeps.plan(config, {"device": list(devices)}, repeats)
    return sweeps.queue(store, planned, "repeats" if len(devices) == 1 else "sweep", config.name,
                        launcher)[1]


def _numbers(text: str, field: str) -> list[int | None]:
    values = []
    for part in (p.strip() for p in text.split(",")):
        if part.lower() in ("all", "none"):
            values.append(None)
        elif part:
            try:
                values.append(int(part))
            except ValueError:
                raise ConfigError(field, f"must be whole numbers separated by commas, got {part!r}") from None
    return values


def sweep_form(launcher: Launcher, store: RunStore, config: RunConfig | None, repeats: int) -> list[Run]:
    """The sweep expander: choices, a preview (runs, rough time) and its Queue button."""
    with st.expander("Sweep: every combination of several settings, each repeated"):
        if config is None:
            st.caption("Fix the settings above first.")
            return []
        installed = [b for b, ok in state.installed_backends().items() if ok]
        left, right = st.columns(2)
        devices = left.multiselect("Devices", ["cpu", "gpu"], default=[config.device], key="sweep_devices")
        backends = left.multiselect("Backends", installed, default=[config.backend], key="sweep_backends")
        precisions = left.multiselect("Precisions", PRECISIONS, default=[config.precision],
                                      key="sweep_precisions")
        batches = right.text_input("Batch sizes (comma list)", value=str(config.batch_size),
                                   key="sweep_batches")
        threads = right.text_input("CPU threads (comma list; all = every core)", value="all",
                                   key="sweep_threads")
        try:
            values = {"device": devices, "backend": backends, "precision": precisions,
                      "batch_size": _numbers(batches, "batch_size"), "threads": _numbers(threads, "threads")}
            planned = sweeps.plan(config, values, repeats)
        except ConfigError as error:
            st.error(f"**{error.field.replace('_', ' ').capitalize()}:** {error.message}")
            return []
        configs = [c for _, c in planned]
        seconds, basis = sweeps.estimate(store, configs)
        st.markdown(f"**{len(planned)} runs** ({len(planned) // repeats} configurations × {repeats} "
                    f"repeats, interleaved), about **{seconds / 60:,.1f} min** — {basis}.")
        problem = sweeps.device_problem(configs, launcher) or store.start_problem()
        if problem:
            st.warning(f"Cannot queue this sweep: {problem}.")
        if st.button("Queue sweep", key="start_sweep", disabled=bool(problem), help=problem):
            try:
                return sweeps.queue(store, planned, "sweep", config.name, launcher)[1]
            except (RunError, ConfigError) as error:
                st.error(str(error))
    return []
