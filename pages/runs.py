"""Runs: the history table, one run's details (stop, delete), and log imports."""

import streamlit as st

from dashboard import panels, state, tables

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
    panels.run_detail(store, run_id)

st.subheader("Import a log")
panels.import_form(store)
