"""Runs: the history table, one run's details (stop, delete), and log imports."""

import streamlit as st

from dashboard import state, tables
from dashboard.figures import SYSTEM_LABELS, system_peaks
from training import manager
from training.importers import ImportFormatError
from training.importing import import_text
from training.runstore import ACTIVE_STATES, FAILED, STDERR_FILE, RunError

store = state.get_store()
st.title("Runs")
summaries = [store.summary(run_id, state.follower(store, run_id)) for run_id in store.ids()]

status_col, device_col = st.columns(2)
statuses = status_col.multiselect("Status", sorted({s["status"] for s in summaries}), key="filter_status")
devices = device_col.multiselect("Device", sorted({s["device"] or "unknown" for s in summaries}),
                                 key="filter_device")
shown = [s for s in summaries if (not statuses or s["status"] in statuses)
         and (not devices or (s["device"] or "unknown") in devices)]
st.dataframe(tables.history_rows(shown), hide_index=True, key="history")

st.subheader("Run details")
newest_first = sorted(summaries, key=lambda s: s.get("created") or 0, reverse=True)
names = {s["id"]: f"{s['name']} · {s['status']} · {s['id']}" for s in newest_first}
run_id = st.selectbox("Run", list(names), format_func=names.get, key="detail_run")
if run_id:
    meta, log, status = store.meta(run_id), state.follower(store, run_id), store.status(run_id)
    settings_col, machine_col = st.columns(2)
    settings_col.markdown("**Settings**")
    settings_col.json(meta.get("config") or {k: meta.get(k) for k in ("source", "origin", "format")})
    machine_col.markdown("**Hardware and versions**")
    start = log.start or {}
    machine_col.json({"hardware": start.get("hardware"), "versions": start.get("versions")})
    if log.system:
        peaks = system_peaks(log.system)
        st.markdown("**Peaks:** " + " · ".join(f"{SYSTEM_LABELS[k]}: {v:,.1f}" for k, v in peaks.items()))
    if status == FAILED:
        error = (log.end or {}).get("error")
        st.error(f"Failed: {error}")
        stderr = store.path(run_id) / STDERR_FILE
        if stderr.exists():
            st.code("\n".join(stderr.read_text(errors="replace").splitlines()[-40:]), language="text")
    stop_col, confirm_col, delete_col = st.columns(3)
    if status in ACTIVE_STATES and stop_col.button("Stop", key="detail_stop"):
        manager.stop(store, run_id)
        st.rerun()
    deletable = meta.get("source") != "reference" and status not in ACTIVE_STATES
    confirmed = confirm_col.checkbox("Yes, delete this run and its files", key="confirm_delete",
                                     disabled=not deletable)
    if delete_col.button("Delete", key="delete", disabled=not (deletable and confirmed)):
        try:
            store.delete(run_id)
            state.forget(store, run_id)
            st.success(f"Deleted {run_id}.")
            st.rerun()
        except RunError as error:
            st.error(str(error))

st.subheader("Import a log")
st.caption("Keras fit console output (Keras 2 or 3, raw terminal captures too), the published "
           "TensorFlow format, or a Keras CSVLogger file. One file may hold several logs.")
upload = st.file_uploader("Log file", key="upload", type=["txt", "log", "md", "csv", "out"])
name_col, device_col = st.columns(2)
import_name = name_col.text_input("Name (optional)", key="import_name")
import_device = device_col.selectbox("Device", ["guess from the log", "cpu", "gpu"], key="import_device")
if st.button("Import", key="import", disabled=upload is None):
    device = None if import_device.startswith("guess") else import_device
    try:
        made = import_text(store, upload.getvalue().decode("utf-8", errors="replace"), upload.name,
                           name=import_name.strip() or None, device=device)
        st.success(f"Imported {len(made)} run(s): "
                   + ", ".join(f"{store.meta(i)['name']} ({i})" for i in made))
    except (ImportFormatError, RunError) as error:
        st.error(f"Nothing imported: {error}")
