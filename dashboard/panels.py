"""The Runs page's two larger sections: one run's detail panel and the log import form.

Kept out of pages/runs.py so that the page reads as a table of contents.
"""

from __future__ import annotations

import streamlit as st

from dashboard import state, widgets
from training import launch
from training.analysis import tables
from training.analysis.figures import SYSTEM_LABELS, system_peaks
from training.config import ConfigError
from training.imports.annotate import annotate
from training.imports.parsers import ImportFormatError
from training.imports.runs import MAX_SAMPLES, import_upload
from training.store import ACTIVE_STATES, FAILED, LOST, UNREADABLE, Run, RunError, RunStore

STDERR_TAIL_LINES = 40
IMPORT_TYPES = ["txt", "log", "md", "csv", "out", "zip"]


def run_detail(run: Run, status: str) -> None:
    """Settings, hardware and versions, system peaks, the failure, Stop and Delete."""
    meta, log = run.meta, state.follower(run, system=True)
    if log.format_error:
        st.warning(f"This run's log cannot be read: {log.format_error}.")
    if meta.get("cluster"):
        st.caption(f"Trained on the {launch.describe(run)}; its records were copied here as they arrived.")
    settings_col, machine_col = st.columns(2)
    settings_col.markdown("**Settings**")
    settings_col.dataframe(tables.settings_rows(meta), hide_index=True, key="detail_settings")
    machine_col.markdown("**Hardware and versions**")
    machine_col.dataframe(tables.machine_rows(log.start) or [{"What": "recorded", "Value": "nothing"}],
                          hide_index=True, key="detail_machine")
    if log.system:
        peaks = system_peaks(log.system)
        st.markdown("**Peaks:** " + " · ".join(f"{SYSTEM_LABELS[k]}: {v:,.1f}" for k, v in peaks.items()))
    profile_panel(run, log.epochs)
    if run.source == "imported":
        annotate_form(run)
    for warning in log.warnings:
        source = warning.get("source")
        when = "When imported" if source == "import" else f"During training ({source})"
        st.warning(f"{when}: {warning.get('message')}")
    if status in (FAILED, LOST, UNREADABLE) and (cause := run.cause(status, log)):
        st.error(cause[0].upper() + cause[1:] if status == UNREADABLE else f"{status.capitalize()}: {cause}")
    if status == FAILED and (tail := run.stderr_tail(STDERR_TAIL_LINES)):
        st.code(tail, language="text")
    widgets.stop_notice()
    read_only = run.store.read_only_reason()
    stop_col, confirm_col, delete_col = st.columns(3)
    if status in ACTIVE_STATES:
        widgets.stop_button(stop_col, run, status, key="detail_stop", read_only=read_only)
    deletable = run.source != "reference" and status not in ACTIVE_STATES and not read_only
    confirmed = confirm_col.checkbox("Yes, delete this run and its files", key="confirm_delete",
                                     disabled=not deletable)
    if read_only:
        st.caption(f"Stop and Delete are off: {read_only}.")
    if delete_col.button("Delete", key="delete", disabled=not (deletable and confirmed)):
        try:
            run.store.delete(run.id)
        except RunError as error:
            st.error(str(error))
            return
        state.forget(run)
        st.toast(f"Deleted {run.name} ({run.id}).")
        st.rerun()


def annotate_form(run: Run) -> None:
    """What the imported log did not say: images per epoch (for images/s, speedups) and the device."""
    if notice := st.session_state.pop("_annotate_notice", None):
        st.success(notice)
    meta = run.meta
    known = meta.get("train_samples") or 0
    with st.expander("Images per epoch and device" + ("" if known else
                                                      ": not in this log, so images/s and speedups are —"),
                     expanded=not known):
        samples_col, device_col, save_col = st.columns([2, 1, 1], vertical_alignment="bottom")
        samples = samples_col.number_input("Training images per epoch", min_value=0, max_value=MAX_SAMPLES,
                                           value=int(known), step=1000, key=f"annotate_samples_{run.id}",
                                           help="0 = unknown. The published runs trained 60,000.")
        devices = ["cpu", "gpu"]
        device = device_col.selectbox("Device", devices, key=f"annotate_device_{run.id}",
                                      index=devices.index(meta.get("device")) if meta.get("device") in devices
                                      else 0)
        read_only = run.store.read_only_reason()
        if not save_col.button("Save", key=f"annotate_{run.id}", disabled=bool(read_only), help=read_only):
            return
        try:
            changed = annotate(run, samples=int(samples) or None, device=device)
        except (ConfigError, RunError, OSError) as error:
            st.error(f"Not saved: {error}")
            return
        state.forget(run)  # the log was rewritten: read it again from the start
        said = ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in changed.items())
        st.session_state["_annotate_notice"] = f"Saved for {run.name}: {said}."
        st.rerun()


def profile_panel(run: Run, epochs: list[dict]) -> None:
    """A --profile-steps run's trace files, what the profile cost, and how to open them."""
    steps = (run.meta.get("config") or {}).get("profile_steps")
    traces = run.profile_files()
    if not steps and not traces:
        return
    profiled = next((e for e in epochs if e.get("profiled")), None)
    where = ""
    if profiled:
        where = (f" in epoch {profiled['epoch']}, costing {profiled['profile_s']:.2f} s to start, stop and "
                 "write; that epoch is left out of the steady state")
    st.markdown(f"**Profile** of {steps} training steps{where}")
    if not traces:
        st.caption("No trace yet: it is written when the profiled steps end (see any warning below).")
        return
    st.markdown("\n".join(f"- `{path}` ({path.stat().st_size / 2**20:,.1f} MiB)" for path in traces))
    if any(path.name.endswith(".xplane.pb") for path in traces):
        st.markdown(f"TensorBoard's profile plugin reads the `.xplane.pb`: `pip install "
                    f"tensorboard-plugin-profile`, then `tensorboard --logdir {run.profile_dir}` and open "
                    "its **Profile** tab (trace viewer, op statistics).")
    if any(path.name.endswith((".json", ".json.gz")) for path in traces):
        st.markdown("The `.json` / `.json.gz` files are Chrome-format traces: open them at "
                    "[ui.perfetto.dev](https://ui.perfetto.dev) (**Open trace file**; the trace stays in "
                    "your browser) or in `chrome://tracing`.")


def import_form(store: RunStore) -> None:
    """Upload a log; report the runs it made, or why nothing was imported."""
    st.caption("Keras fit console output (Keras 2 or 3, raw terminal captures too), the published "
               "TensorFlow format, or a Keras CSVLogger file. One file may hold several logs. "
               "A TensorBoard log: a zip of its folder (Keras's TensorBoard callback, PyTorch's "
               "SummaryWriter, tf.summary), one run per log root.")
    upload = st.file_uploader("Log file", key="upload", type=IMPORT_TYPES)
    name_col, device_col, samples_col = st.columns(3)
    name = name_col.text_input("Name (optional)", key="import_name")
    device = device_col.selectbox("Device", ["guess from the log", "cpu", "gpu"], key="import_device")
    samples = samples_col.number_input(
        "Training images per epoch (optional)", min_value=0, max_value=MAX_SAMPLES, value=0, step=1,
        key="import_samples", help="For logs that do not say how many images an epoch trained on "
                                   "(Keras 3, CSVLogger): lets the dashboard show samples/s. 0 = unknown.")
    maps = st.text_input("TensorBoard tags to map (optional)", key="import_maps",
                         placeholder="train/epoch_top5=accuracy, Loss/holdout=val_loss",
                         help="Scalar tags whose spelling is not recognised, as TAG=field with field "
                              "loss, accuracy, val_loss or val_accuracy; the import names the tags it "
                              "skipped.")
    if not st.button("Import", key="import", disabled=upload is None):
        return
    try:
        made = import_upload(store, upload.getvalue(), upload.name, name=name.strip() or None,
                             device=None if device.startswith("guess") else device,
                             samples=int(samples) or None,
                             maps=[item.strip() for item in maps.split(",") if item.strip()])
    except (ImportFormatError, RunError, ConfigError, OSError) as error:
        st.error(f"Nothing imported: {error}")
        return
    runs = [store.open(i) for i in made]
    state.add_to_compare(made)
    st.success(f"Imported {len(made)} run(s): " + ", ".join(f"{run.name} ({run.id})" for run in runs)
               + ". They are added to the runs on the Compare page.")
    for run in runs:
        for warning in run.log().warnings:
            st.warning(f"{run.name}: {warning.get('message')}")
