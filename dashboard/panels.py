"""The Runs page's two larger sections: one run's detail panel and the log import form.

Kept out of pages/runs.py so that the page reads as a table of contents.
"""

from __future__ import annotations

import streamlit as st

from dashboard import state
from dashboard.figures import SYSTEM_LABELS, system_peaks
from training import manager
from training.importers import ImportFormatError
from training.importing import import_text
from training.runstore import ACTIVE_STATES, FAILED, STDERR_FILE, RunError, RunStore

STDERR_TAIL_LINES = 40
IMPORT_TYPES = ["txt", "log", "md", "csv", "out"]


def run_detail(store: RunStore, run_id: str) -> None:
    """Settings, hardware and versions, system peaks, the failure, Stop and Delete."""
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
        _failure(store, run_id, (log.end or {}).get("error"))
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
        except RunError as error:
            st.error(str(error))
            return
        state.forget(store, run_id)
        st.toast(f"Deleted {meta.get('name')} ({run_id}).")
        st.rerun()


def _failure(store: RunStore, run_id: str, error: str | None) -> None:
    st.error(f"Failed: {error}")
    stderr = store.path(run_id) / STDERR_FILE
    if stderr.exists():
        tail = stderr.read_text(errors="replace").splitlines()[-STDERR_TAIL_LINES:]
        st.code("\n".join(tail), language="text")


def import_form(store: RunStore) -> None:
    """Upload a log; report the runs it made, or why nothing was imported."""
    st.caption("Keras fit console output (Keras 2 or 3, raw terminal captures too), the published "
               "TensorFlow format, or a Keras CSVLogger file. One file may hold several logs.")
    upload = st.file_uploader("Log file", key="upload", type=IMPORT_TYPES)
    name_col, device_col = st.columns(2)
    name = name_col.text_input("Name (optional)", key="import_name")
    device = device_col.selectbox("Device", ["guess from the log", "cpu", "gpu"], key="import_device")
    if not st.button("Import", key="import", disabled=upload is None):
        return
    try:
        made = import_text(store, upload.getvalue().decode("utf-8", errors="replace"), upload.name,
                           name=name.strip() or None, device=None if device.startswith("guess") else device)
    except (ImportFormatError, RunError) as error:
        st.error(f"Nothing imported: {error}")
        return
    st.success(f"Imported {len(made)} run(s): " + ", ".join(f"{store.meta(i)['name']} ({i})" for i in made))
