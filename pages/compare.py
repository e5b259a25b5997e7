"""Compare: convergence, wall-clock race, throughput and the comparison table, live."""

import os

import streamlit as st

from dashboard import state
from training import launch
from training.analysis import grouping, groups, report, tables, timesplit
from training.analysis.comparison import DEFAULT_TARGET
from training.analysis.figures import (
    make_epoch_time_figure,
    make_metric_figure,
    make_system_figure,
    make_throughput_figure,
    system_keys,
)
from training.exports import mlflow
from training.store import ACTIVE_STATES, FAILED

store = state.get_store()
st.title("Compare runs")
runs = {run.id: run for run in store.runs()}
statuses = state.statuses(store, list(runs.values()))  # once per rerun
metas = {run_id: run.meta for run_id, run in runs.items()}


@st.fragment(run_every=state.NEW_RUNS_POLL_S)
def watch_for_new_runs() -> None:
    """Runs made elsewhere (the CLI, another dashboard) join the list without a reload."""
    if set(store.ids()) != set(runs):
        st.rerun()


watch_for_new_runs()
show_refs = st.toggle("Show the published 2018 reference runs", value=True, key="show_refs")
choices = [i for i, m in metas.items() if show_refs or m.get("source") != "reference"]
failed = frozenset(i for i, status in statuses.items() if status == FAILED)
# The widget's identity is its key, so new choices keep the user's picks.
picked = st.multiselect("Runs", choices, default=state.default_picks(metas, show_refs, failed),
                        key="compare_runs", format_func=lambda i: f"{metas[i].get('name')} · {i}")
group_members = groups.member_ids(list(runs.values()))
picked_groups = st.multiselect(
    "Groups (repeats and sweeps: adds all their runs)", sorted(group_members, reverse=True),
    key="compare_groups", format_func=lambda g: f"{metas[group_members[g][0]].get('group_name') or g} · "
    f"{metas[group_members[g][0]].get('group_kind')} of {len(group_members[g])} · {g}")
picked = list(dict.fromkeys([*picked, *(i for g in picked_groups for i in group_members.get(g, []))]))
picked = [runs[i] for i in picked if i in choices or i in runs and metas[i].get("group")]
if not picked:
    st.info("Pick at least one run. Start one on the Train page, or import a log on the Runs page.")
    st.stop()

target_col, base_col, log_col, time_col = st.columns([1, 2, 1, 1])
target = target_col.number_input("Target validation accuracy", min_value=0.5, max_value=1.0,
                                 value=DEFAULT_TARGET, step=0.001, format="%.3f", key="target")
baseline = base_col.selectbox("Speedup baseline", [run.id for run in picked], key="baseline",
                              format_func=lambda i: runs[i].name)
log_loss = log_col.toggle("Log-scale loss", value=True, key="log_loss")
log_time = time_col.toggle("Log-scale time", value=False, key="log_time",
                           help="Puts a 100 s GPU run and a 3,000 s CPU run on one readable axis.")
group_col, cpu_price_col, gpu_price_col = st.columns([2, 1, 1])
grouped = group_col.toggle("Group repeats", value=False, key="group_repeats",
                           help="Each group's runs of one configuration as a median line in its min–max "
                                "band; click a legend entry to show a single run.")
prices = {"cpu": cpu_price_col.number_input("CPU price per hour", min_value=0.0, value=0.0, step=0.1,
                                            key="price_cpu", help="0 = no price: cost is not shown") or None,
          "gpu": gpu_price_col.number_input("GPU price per hour", min_value=0.0, value=0.0, step=0.1,
                                            key="price_gpu", help="0 = no price: cost is not shown") or None}


was_active = any(statuses[run.id] in ACTIVE_STATES for run in picked)


@st.fragment(run_every=state.REFRESH_S if was_active else None)
def live_comparison() -> None:
    if was_active and not any(s in ACTIVE_STATES for s in state.statuses(store, picked).values()):
        st.rerun()  # the last shown run ended: a full rerun turns this polling off
    series = state.series(picked)
    for unreadable in (s for s in series if s.note):
        st.warning(f"{unreadable.label}: {unreadable.note}.")
    if note := tables.protocol_caption(series, baseline):  # one line: what differs, what it means
        st.warning(note)
    if grouped:
        grouped_view(series)
        return
    st.dataframe(tables.comparison_rows(series, baseline, target), hide_index=True, key="comparison")
    time_split(series)
    charts = [
        ("val_acc_epoch", make_metric_figure(series, "val_accuracy", target=target)),
        ("val_acc_time", make_metric_figure(series, "val_accuracy", x="elapsed_s", log_x=log_time,
                                            target=target)),
        ("val_loss_epoch", make_metric_figure(series, "val_loss", log_y=log_loss)),
        ("val_loss_time", make_metric_figure(series, "val_loss", x="elapsed_s", log_y=log_loss,
                                             log_x=log_time)),
        ("loss_epoch", make_metric_figure(series, "loss", log_y=log_loss)),
        ("acc_epoch", make_metric_figure(series, "accuracy")),
        ("epoch_time", make_epoch_time_figure(series)),
        ("throughput", make_throughput_figure(series)),
    ]
    for row in range(0, len(charts), 2):
        for column, (key, figure) in zip(st.columns(2), charts[row:row + 2]):
            column.plotly_chart(figure, key=f"chart_{key}")
    if keys := system_keys(series):
        with st.expander("System metrics (sampled about once a second)", expanded=False):
            for column, key in zip(st.columns(2) * len(keys), keys):
                column.plotly_chart(make_system_figure(series, key), key=f"system_{key}")
    st.download_button("Download the compared epochs as CSV", key="download_csv", mime="text/csv",
                       data=tables.epochs_frame(series).to_csv(index=False), file_name="comparison.csv")
    report_button(series)


def report_button(series) -> None:
    """One offline HTML file (plotly.js inside), built only when clicked; and MLflow, when set up."""
    st.download_button("Download report", key="download_report", mime="text/html", file_name="report.html",
                       data=lambda: report.build_report(series, target, prices),
                       help="Summary with spread, interactive charts, each run's hardware and settings, "
                            "and the definitions: one file that works offline.")
    mlflow_button()


def mlflow_button() -> None:
    """Send the compared runs (groups nested) to $MLFLOW_TRACKING_URI: shown only when it is set
    and the MLflow client is installed. Sending again updates the same MLflow runs."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri or not mlflow.client_available():
        return
    experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or mlflow.EXPERIMENT
    if not st.button(f"Send to MLflow ({experiment} at {uri})", key="send_mlflow",
                     help="Each run becomes an MLflow run (settings, tags, per-epoch and system metrics, "
                          "its files and report); a group becomes a parent with its runs nested."):
        return
    try:
        with st.spinner(f"Sending {len(picked)} run(s) to MLflow…"):
            sent = mlflow.Exporter(uri, experiment, where=launch.describe).export(picked)
    except Exception as error:  # the server is away, or refused a request: say so, change nothing
        st.error(f"Not sent to MLflow at {uri}: {mlflow.describe_error(error)}")
        return
    st.success(f"Sent to MLflow at {uri}, experiment {experiment!r}: "
               + ", ".join(f"{done.name} ({done.mlflow_run_id})" for done in sent))


def time_split(series) -> None:
    """Where each run's steady-state epoch goes: one stacked bar per run."""
    st.plotly_chart(timesplit.make_time_split_figure(series), key="chart_time_split")
    st.caption("Median of each part over the steady epochs (not epoch 1, not a profiled one); the diamond "
               "is the median epoch time. Steps include waiting for the device; the first step's wait is "
               "the input pipeline's start and first copy; \"not recorded\": the run's log has no split "
               "(published and imported runs, logs before format 3). Definitions: docs/log-format.md.")


def grouped_view(series) -> None:
    """Each cell of repeats as its median in a min–max band; the table shows median and spread."""
    cells = grouping.group_series(series)
    base = next((i for i, cell in enumerate(cells) if any(run.id == baseline for run in cell.runs)), 0)
    with st.expander("Price per hour of one group (instead of its device's)"):
        for column, cell in zip(st.columns(3) * len(cells), cells):
            if price := column.number_input(cell.label, min_value=0.0, value=0.0, step=0.1,
                                            key=f"price_{cell.key}", help="0 = use the device's price"):
                prices[cell.key] = price
    st.dataframe(grouping.group_rows(cells, target, base, prices), hide_index=True, key="group_summary")
    time_split(series)
    charts = [
        ("val_acc_epoch", grouping.make_band_figure(cells, "val_accuracy")),
        ("val_acc_time", grouping.make_band_figure(cells, "val_accuracy", x="elapsed_s")),
        ("val_loss_epoch", grouping.make_band_figure(cells, "val_loss", log_y=log_loss)),
        ("epoch_time", grouping.make_band_figure(cells, "epoch_time_s")),
        ("throughput", grouping.make_band_figure(cells, "samples_per_s")),
    ]
    for row in range(0, len(charts), 2):
        for column, (key, figure) in zip(st.columns(2), charts[row:row + 2]):
            column.plotly_chart(figure, key=f"band_{key}")
    report_button(series)


live_comparison()
