"""Scaling: steady-state samples/s against batch size and threads, and where the GPU starts to win."""

import streamlit as st

from dashboard import charts, state
from training.analysis import groups, scaling

store = state.get_store()
st.title("Scaling")
st.caption("Each point is the median of a configuration's runs (steady-state samples/s, epoch 1 excluded), "
           "its bar the min–max. Queue a sweep on the Train page, or `python -m training sweep`.")
runs = {run.id: run for run in store.runs()}
sweeps = groups.member_ids(list(runs.values()))
source = st.radio("Runs", ["A sweep or group", "Picked runs"], horizontal=True, key="scaling_source")
if source == "A sweep or group":
    if not sweeps:
        st.info("No sweep or group yet. Queue one on the Train page, or pick runs instead.")
        st.stop()
    group = st.selectbox("Sweep or group", sorted(sweeps, reverse=True), key="scaling_group",
                         format_func=lambda g: f"{runs[sweeps[g][0]].meta.get('group_kind')} of "
                                               f"{len(sweeps[g])} runs · {g}")
    picked = [runs[i] for i in sweeps[group]]
else:
    ids = st.multiselect("Runs", [i for i in runs if runs[i].source == "local"], key="scaling_runs",
                         format_func=lambda i: f"{runs[i].name} · {i}")
    picked = [runs[i] for i in ids]
    if not picked:
        st.info("Pick runs trained here (above) to plot their samples/s against batch size.")
        st.stop()
points = scaling.scaling_points(state.series(picked))
if not points:
    st.info(f"None of these {len(picked)} run(s) has a steady state yet: it needs two finished epochs "
            "(epoch 1 is warm-up).")
    st.stop()
charts.plotly_chart(scaling.make_scaling_figure(points), "scaling_batch")
if scaling.speedup_lines(points):
    charts.plotly_chart(scaling.make_speedup_figure(points), "scaling_speedup")
else:
    st.caption("GPU-over-CPU speedup: needs CPU and GPU runs at the same batch sizes.")
if scaling.flops_speedup_lines(points):
    charts.plotly_chart(scaling.make_flops_speedup_figure(points), "scaling_flops")
else:
    st.caption("GPU-over-CPU speedup against model size: needs CPU and GPU runs of two or more models at one "
               "batch size (`sweep --model mnist-cnn,keras:mobilenet_v2,keras:resnet50 --device cpu,gpu`).")
if scaling.has_utilisation(points):
    charts.plotly_chart(scaling.make_efficiency_figure(points), "scaling_efficiency")
else:
    st.caption("Utilisation against batch size: needs runs whose logs have the model's layers and a measured "
               "peak (log format 3: `python -m training peak`).")
if len({p["threads"] for p in points if p["device"] == "cpu"}) > 1:
    charts.plotly_chart(scaling.make_scaling_figure(points, x="threads"), "scaling_threads")
else:
    st.caption("Samples/s against threads: needs CPU runs with different --threads.")
