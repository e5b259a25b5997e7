"""Runs: the history table, one run's details (stop, delete), and log imports."""

import streamlit as st

from dashboard import panels, state
from training import launch
from training.analysis import listing, tables

store = state.get_store()
st.title("Runs")
runs = {run.id: run for run in store.runs()}
statuses = state.statuses(store, list(runs.values()))  # once per rerun
rows = [listing.row(run, launch.describe(run), state.follower(run), statuses[run.id])
        for run in runs.values()]

status_col, device_col = st.columns(2)
wanted_status = status_col.multiselect("Status", sorted({r["status"] for r in rows}), key="filter_status")
devices = device_col.multiselect("Device", sorted({r["device"] or "unknown" for r in rows}),
                                 key="filter_device")
shown = [r for r in rows if (not wanted_status or r["status"] in wanted_status)
         and (not devices or (r["device"] or "unknown") in devices)]
st.dataframe(tables.history_rows(shown), hide_index=True, key="history")

st.subheader("Run details")
newest_first = sorted(rows, key=lambda r: r.get("created") or 0, reverse=True)
names = {r["id"]: f"{r['name']} · {r['status']} · {r['id']}" for r in newest_first}
run_id = st.selectbox("Run", list(names), format_func=names.get, key="detail_run")
if run_id:
    panels.run_detail(runs[run_id], statuses[run_id])

st.subheader("Import a log")
panels.import_form(store)
