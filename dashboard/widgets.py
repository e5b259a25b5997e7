"""Streamlit pieces more than one page uses: the settings form, the run card, Stop.

The form validates through `training.config.make_config`, the same check the
command line and the worker use, and shows the message under the widget it
is about. Bad input disables the start buttons, so it never reaches a run.
"""

from __future__ import annotations

import os

import streamlit as st

from dashboard import progress, state
from training import launch
from training.analysis import listing
from training.analysis.display import MISSING, number
from training.config import (
    ENGINES,
    JIT_MODES,
    MAX_NAME_LENGTH,
    PRECISIONS,
    PROFILE_EPOCH,
    ConfigError,
    RunConfig,
    make_config,
)
from training.launch import Launcher, launcher_for, request_stop
from training.store import ACTIVE_STATES, STOPPING, Run, RunError

DEFAULTS = RunConfig()
STATUS_TEXT = {STOPPING: "stopping…"}


def settings_form() -> tuple[RunConfig | None, ConfigError | None]:
    """Render the run settings; returns (config, None) or (None, the first error)."""
    inline: dict[str, st.delta_generator.DeltaGenerator] = {}
    left, middle, right = st.columns(3)  # three settings each, so no column leaves a gap under it
    with left:
        epochs = st.number_input("Epochs", value=DEFAULTS.epochs, step=1, key="epochs")
        inline["epochs"] = st.empty()
        batch_size = st.number_input("Batch size", value=DEFAULTS.batch_size, step=1, key="batch_size")
        inline["batch_size"] = st.empty()
        lr = st.number_input("Learning rate", value=DEFAULTS.lr, step=0.01, format="%.4f", key="lr")
        inline["lr"] = st.empty()
    with middle:
        installed = state.installed_backends()
        backend = st.selectbox("Backend", [b for b, ok in installed.items() if ok], key="backend")
        inline["backend"] = st.empty()
        engine = st.selectbox("Engine", ENGINES, key="engine",
                              help="fit: Keras model.fit (the published Keras run). loop: a "
                                   "tf.GradientTape loop in tf.function (the published TensorFlow run).")
        inline["engine"] = st.empty()
        precision = st.selectbox("Precision", PRECISIONS, key="precision")
    with right:
        jit = st.selectbox("XLA / jit compile", JIT_MODES, key="jit")
        steps_per_execution = st.number_input(
            "Steps per call", value=DEFAULTS.steps_per_execution, min_value=1, step=1,
            key="steps_per_execution", help="Training steps per call into the compiled step (fit "
            "engine): the same maths with less per-step overhead, which matters on a fast GPU")
        inline["steps_per_execution"] = st.empty()
        threads = st.number_input("CPU threads (0 = all cores)", value=0, min_value=0, step=1, key="threads",
                                  help="Pin the backend's thread pools, so CPU timings compare like for like")
        inline["threads"] = st.empty()
    missing = [b for b, ok in installed.items() if not ok]
    if missing:
        st.caption(f"Backends not installed: {', '.join(missing)}. Add with "
                   "`pip install -r requirements-backends.txt`.")
    subset_left, subset_mid, subset_right = st.columns(3)
    use_subset = subset_left.toggle("Quick look on a subset", key="use_subset",
                                    help="Train on the first N images instead of all 60,000.")
    limit_train = limit_test = None
    if use_subset:
        limit_train = subset_mid.number_input("Training images", value=6000, step=1000, key="limit_train")
        inline["limit_train"] = subset_mid.empty()
        limit_test = subset_right.number_input("Test images", value=1000, step=500, key="limit_test")
        inline["limit_test"] = subset_right.empty()
    name = st.text_input("Name (optional)", key="name", max_chars=MAX_NAME_LENGTH)
    concurrent = st.checkbox("Start at once, without waiting for other runs (their timings then "
                             "compete for the same cores)", key="concurrent")
    profile_col, steps_col = st.columns([2, 1])
    profile_steps = None
    if profile_col.checkbox(f"Profile steps of epoch {PROFILE_EPOCH} with the backend's own profiler",
                            key="profile", help="A trace for TensorBoard's profile plugin or "
                                                "ui.perfetto.dev, in the run's profile/ folder; that epoch "
                                                "leaves the steady state. Needs 2 or more epochs."):
        profile_steps = steps_col.number_input("Steps to profile", value=5, step=1, key="profile_steps")
        inline["profile_steps"] = steps_col.empty()
    try:
        config = make_config(epochs=_whole(epochs), batch_size=_whole(batch_size), lr=float(lr),
                             engine=engine, backend=backend, precision=precision, jit=jit,
                             steps_per_execution=_whole(steps_per_execution),
                             limit_train=_whole(limit_train), limit_test=_whole(limit_test),
                             name=name.strip(), concurrent=concurrent, threads=_whole(threads) or None,
                             profile_steps=_whole(profile_steps))
    except ConfigError as error:
        where = inline.get(error.field)
        (where or st).error(f"**{_label(error.field)}** {error.message}")
        return None, error
    return config, None


def _whole(value):
    """Number inputs give floats for whole values typed as 3.0; keep real fractions visible."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _label(field: str) -> str:
    return field.replace("_", " ").capitalize() + ":"


def run_card(run: Run, status: str) -> None:
    """Status, the epochs and batch progress bars (`dashboard/progress.py`) and a Stop button."""
    meta = run.meta
    with st.container(border=True):
        title, button = st.columns([5, 1])
        title.markdown(f"**{run.name}** · {meta.get('device', '?').upper()} · "
                       f"`{STATUS_TEXT.get(status, status)}` · `{run.id}`")
        stop_button(button, run, status, key=f"stop_{run.id}", read_only=run.store.read_only_reason())
        progress.bars(run, state.follower(run), status)


def stop_button(where, run: Run, status: str, key: str, read_only: str | None = None) -> None:
    """A Stop button that asks the run to stop and returns at once.

    The stop happens in the click's callback, with the run the page showed,
    so a run that ended after the page was drawn is reported by `stop_notice`
    rather than silently ignored or raised. On a read-only runs folder it is
    off, and its help says why.
    """
    where.button("Stop", key=key, disabled=status == STOPPING or bool(read_only), help=read_only,
                 on_click=_request_stop, args=(run,))


def _request_stop(run: Run) -> None:
    try:
        request_stop(run)  # through the launcher that started it: this machine or Ray
    except RunError as error:  # it ended between the page being drawn and the click
        st.session_state["_stop_notice"] = str(error)


def stop_notice() -> None:
    """Say why the last Stop did nothing, once."""
    if notice := st.session_state.pop("_stop_notice", None):
        st.warning(notice)


def recent_runs(runs: list[Run], statuses: dict[str, str], limit: int = 3) -> None:
    """One line for each of the latest ended local runs, so a finished run does not just vanish."""
    ended = [run for run in reversed(runs)  # newest first
             if run.source == "local" and statuses[run.id] not in ACTIVE_STATES][:limit]
    if not ended:
        return
    st.caption("Recently ended (compare them on the Compare page):")
    for run in ended:
        row = listing.row(run, launch.describe(run), state.follower(run), statuses[run.id])
        st.markdown(ended_line(row))


def ended_line(row: dict) -> str:
    """One ended run in a line: only what it has (a run stopped before epoch 1 has no accuracy)."""
    parts = [f"**{row['name']}**", (row["device"] or "?").upper(), f"`{row['status']}`",
             f"{row['epochs_done']}/{row['epochs']} epochs"]
    if row["epochs_done"] == 0:
        parts[-1] = {"stopped": "stopped before its first epoch ended",
                     "failed": "failed before its first epoch ended (the Runs page says why)"}.get(
                         row["status"], "no epoch finished")
    if row["best_val_accuracy"] is not None:
        parts.append(f"best val accuracy {row['best_val_accuracy']:.4f}")
    if row["elapsed_s"] is not None:
        parts.append(number(row["elapsed_s"], ",.1f", " s"))
    return " · ".join(parts)


def gpu_tools() -> None:
    """Re-check GPUs, and the doctor's report on what each backend sees and what to fix."""
    recheck, doctor = st.columns([1, 4])
    recheck.button("Re-check GPUs", key="recheck_gpus", on_click=state.recheck_gpus,
                   help="Ask NVML and the backend again, e.g. after installing requirements-gpu.txt")
    with doctor.expander("GPU doctor: what each backend sees, and what to fix"):
        if st.button("Run the checks", key="run_doctor",
                     help="python -m training doctor: asks every installed backend in a subprocess"):
            with st.spinner("Asking every installed backend…"):
                st.session_state["doctor_report"] = state.doctor_report()
        if "doctor_report" in st.session_state:
            st.code(st.session_state["doctor_report"], language=None)


def where_choice(backend: str) -> tuple[Launcher | None, bool, str]:
    """Where runs start: this machine, a Ray cluster (RAY_ADDRESS, or one entered), or a
    Slurm partition when `sinfo` answers here.

    Returns the launcher (None when the cluster cannot be reached) and whether
    a GPU run can start there, with the reason when not. For a cluster the
    page shows its nodes, from Ray's state API; for a partition its nodes, CPUs,
    GPUs (GRES) and states, from sinfo.
    """
    address = st.text_input("Ray cluster (optional)", value=os.environ.get("RAY_ADDRESS", ""),
                            key="ray_address", placeholder="http://127.0.0.1:8265",
                            help="The Ray dashboard's address. Reach a remote one through an SSH tunnel: "
                                 "its port has no authentication.").strip()
    cluster = launch.cluster_name(address) if address else None
    partitions = {launch.slurm_name(p["name"]): p
                  for p in state.slurm_partitions(os.environ.get("SLURM_CONF", ""))}
    places = ["This machine", *([cluster] if cluster else []), *partitions]
    where = st.radio("Where", places, key="where", horizontal=True) if len(places) > 1 else places[0]
    if where in partitions:
        return _slurm_choice(partitions[where])
    if where != cluster or cluster is None:
        with st.spinner(f"Asking {backend} whether it sees a GPU…"):  # a few seconds, once per backend
            gpu_ok, gpu_reason = state.gpu_availability(backend)
        return launcher_for(None), gpu_ok, gpu_reason
    try:
        nodes = state.cluster_nodes(address)
    except RunError as error:
        st.error(str(error))
        return None, False, str(error)
    st.dataframe([{"Node": n["node"], "Head": n["head"], "CPUs": n["cpus"], "GPUs": n["gpus"],
                   "GPU models": ", ".join(n["gpu_models"]) or MISSING} for n in nodes],
                 hide_index=True, key="cluster_nodes")
    models = sorted({m for n in nodes for m in n["gpu_models"]})
    model = st.selectbox("GPU model for GPU runs", ["any", *models], key="gpu_model") if models else "any"
    launcher = launcher_for(address, gpu_model=None if model == "any" else model)
    if any(n["gpus"] >= 1 for n in nodes):
        return launcher, True, ""
    return launcher, False, f"no node of the {cluster} has a GPU"


def _slurm_choice(partition: dict) -> tuple[Launcher, bool, str]:
    """A Slurm partition's nodes, its GPU model and sbatch options; the launcher for it."""
    nodes = partition["nodes"]
    st.dataframe([{"Node": n["node"], "CPUs": n["cpus"], "GPUs": n["gpus"],
                   "GPU models": ", ".join(n["gpu_models"]) or MISSING, "GRES": n["gres"] or MISSING,
                   "State": n["state"]} for n in nodes], hide_index=True, key="slurm_nodes")
    left, right = st.columns([3, 1])
    args = left.text_input("More sbatch options (optional)", key="slurm_args",
                           placeholder="--account=lab --qos=short --time=30",
                           help="Account, QOS, time limit, constraint…: added to sbatch's command line")
    exclusive = right.checkbox("Whole node (--exclusive)", key="slurm_exclusive", value=False,
                               help="No other job on the run's node, so timings are not shared. Repeats "
                                    "and sweeps ask for it anyway.")
    models = sorted({m for n in nodes for m in n["gpu_models"]})
    model = (st.selectbox("GPU model for GPU runs", ["any", *models], key="slurm_gpu_model")
             if models else "any")
    launcher = launcher_for(slurm=partition["name"], gpu_model=None if model == "any" else model,
                            args=args.strip(), exclusive=True if exclusive else None)
    if any(n["gpus"] >= 1 for n in nodes):
        return launcher, True, ""
    return launcher, False, f"no node of Slurm partition {partition['name']} has a GPU (sinfo's GRES)"
