"""Compare: the verdict first, one convergence chart, a table that fits; the rest one click away. Live.

Reading order: `pick_runs` (what is compared: the default picks follow new runs until
the user picks), `read_controls` (every setting, into one `Controls`), then `live_view`, a
fragment: `draw_runs` or `draw_groups` with the series and the controls, and last the
watcher (`dashboard/live.py`), which reruns only the fragment when a picked run has a
new epoch, and the page when a run is added or changes status.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

import streamlit as st

from dashboard import charts, live, state, verdictcards
from training import launch
from training.analysis import grouping, groups, report, tables, timesplit, verdict
from training.analysis.comparison import DEFAULT_TARGET
from training.analysis.figures import (
    has_points,
    make_epoch_time_figure,
    make_metric_figure,
    make_system_figure,
    make_throughput_figure,
    system_keys,
    wants_log_time,
)
from training.exports import mlflow
from training.store import ACTIVE_STATES, FAILED, Run

PICKS = "_compare_picks"  # the runs compared; the multiselect's own state is dropped off this page
USER_PICKED = "_compare_user_picked"  # True once the user changed the picks: defaults stop following
KNOWN = "_compare_known"  # run ids the user has seen offered, so only newer ones get an "add" notice
ADD = state.COMPARE_ADD  # runs another page asks to add (an import on the Runs page)

# Chart choices, in the order offered; the first is drawn by default. Each draws only when chosen.
RUN_CHARTS = {"val_acc_time": "Accuracy · wall clock", "val_acc_epoch": "Accuracy · epoch",
              "val_loss_time": "Val loss · wall clock", "val_loss_epoch": "Val loss · epoch",
              "loss_epoch": "Training loss", "acc_epoch": "Training accuracy",
              "epoch_time": "Seconds per epoch", "throughput": "Samples/s",
              "time_split": "Where the time goes", "system": "System metrics"}
GROUP_CHARTS = {"val_acc_time": "Accuracy · wall clock", "val_acc_epoch": "Accuracy · epoch",
                "val_loss_epoch": "Val loss · epoch", "epoch_time": "Seconds per epoch",
                "throughput": "Samples/s", "time_split": "Where the time goes"}
DEFAULT_CHART = "val_acc_time"


@dataclass(frozen=True)
class Controls:
    """Every setting the drawing functions read; built once per rerun by `read_controls`."""

    target: float = DEFAULT_TARGET
    baseline: str | None = None
    grouped: bool = False
    charts: tuple[str, ...] = (DEFAULT_CHART,)
    log_loss: bool = True
    time_axis: str = "auto"  # "auto", "linear" or "log", as picked
    log_time: bool = False  # what "auto" means for the runs as drawn (live_view works it out)
    whole_accuracy: bool = False
    prices: dict = field(default_factory=dict)


# -- what is compared ------------------------------------------------------------------------------
def _user_picked() -> None:
    st.session_state[PICKS] = list(st.session_state["compare_runs"])
    st.session_state[USER_PICKED] = True


def _add(run_ids: list[str]) -> None:
    st.session_state[PICKS] = list(dict.fromkeys([*st.session_state.get(PICKS, []), *run_ids]))
    st.session_state[USER_PICKED] = True
    st.session_state[KNOWN] = sorted({*st.session_state.get(KNOWN, []), *run_ids})


def _dismiss(run_ids: list[str]) -> None:
    st.session_state[KNOWN] = sorted({*st.session_state.get(KNOWN, []), *run_ids})


def current_picks(choices: list[str], defaults: list[str], all_ids: set[str]) -> list[str]:
    """The picked run ids: the defaults, recomputed every rerun, until the user picks; then theirs.

    A run another page asked to add (an import) joins the picks, which then stay the user's.
    """
    session = st.session_state
    if pending := session.pop(ADD, None):
        base = session.get(PICKS, []) if session.get(USER_PICKED) else defaults
        session[PICKS], session[USER_PICKED] = list(dict.fromkeys([*base, *pending])), True
    if not session.get(USER_PICKED):
        session[PICKS] = defaults
        session[KNOWN] = sorted(all_ids)  # following the defaults: nothing to offer
    return [i for i in session[PICKS] if i in choices]


def new_run_notice(runs: dict[str, Run], picks: list[str]) -> None:
    """Runs made since the user picked: one click adds them (the picks are otherwise left alone)."""
    known = set(st.session_state.get(KNOWN, []))
    new = [i for i in runs if i not in known and i not in picks and runs[i].source != "reference"]
    if not new:
        return
    with st.container(border=True):
        text, add, dismiss = st.columns([6, 1, 1], vertical_alignment="center")
        names = ", ".join(f"**{runs[i].name}**" for i in new[-3:]) + (f" and {len(new) - 3} more"
                                                                      if len(new) > 3 else "")
        text.markdown(f"New since you picked: {names}.")
        add.button("Add", key="add_new_runs", on_click=_add, args=(new,), type="primary",
                   help="Add to the compared runs")
        dismiss.button("Dismiss", key="dismiss_new_runs", on_click=_dismiss, args=(new,))


def pick_runs(runs: dict[str, Run], statuses: dict[str, str]) -> list[Run]:
    """The runs multiselect, the groups, the references toggle and the new-run notice."""
    metas = {run_id: run.meta for run_id, run in runs.items()}
    runs_col, refs_col = st.columns([5, 1], vertical_alignment="bottom")
    show_refs = refs_col.toggle("Published runs", value=True, key="show_refs",
                                help="Offer the published 2018 reference runs")
    choices = [i for i, m in metas.items() if show_refs or m.get("source") != "reference"]
    failed = frozenset(i for i, status in statuses.items() if status == FAILED)
    picks = current_picks(choices, state.default_picks(metas, show_refs, failed), set(runs))
    st.session_state["compare_runs"] = picks  # before the widget: its state is ours to set
    runs_col.multiselect("Runs", choices, key="compare_runs", on_change=_user_picked,
                         format_func=lambda i: f"{runs[i].name} · {i}",
                         help="Until you change this, it follows the latest CPU run, the latest GPU "
                              "run and the published runs, so a run started anywhere joins by itself.")
    new_run_notice(runs, picks)
    group_members = groups.member_ids(list(runs.values()))
    picked_groups = []
    if group_members:
        picked_groups = st.multiselect(
            "Groups (repeats and sweeps: adds all their runs)", sorted(group_members, reverse=True),
            key="compare_groups",
            format_func=lambda g: f"{metas[group_members[g][0]].get('group_name') or g} · "
                                  f"{metas[group_members[g][0]].get('group_kind')} of "
                                  f"{len(group_members[g])} · {g}")
    ids = list(dict.fromkeys([*picks, *(i for g in picked_groups for i in group_members.get(g, []))]))
    return [runs[i] for i in ids if i in runs]


# -- the settings ------------------------------------------------------------------------------------
def read_controls(picked: list[Run]) -> Controls:
    """Baseline, target, chart choice and the rest, in that order on the page."""
    base_col, target_col, group_col = st.columns([3, 1, 1], vertical_alignment="bottom")
    baseline = base_col.selectbox("Speedup baseline", [run.id for run in picked], key="baseline",
                                  format_func=lambda i: next(r.name for r in picked if r.id == i))
    target = target_col.number_input("Target validation accuracy", min_value=0.5, max_value=1.0,
                                     value=DEFAULT_TARGET, step=0.001, format="%.3f", key="target")
    grouped = group_col.toggle("Group repeats", value=False, key="group_repeats",
                               help="Each group's runs of one configuration as a median line in its "
                                    "min–max band; click a legend entry to show a single run.")
    prices = {}
    with st.expander("Axes and prices"):
        axis_col, loss_col, acc_col = st.columns(3)
        time_axis = axis_col.radio("Time axis", ["auto", "linear", "log"], horizontal=True, key="time_axis",
                                   help="auto: log when the runs' durations differ by more than 10×, so "
                                        "a 30 s run and a 3,000 s run are both readable")
        log_loss = loss_col.toggle("Log-scale loss", value=True, key="log_loss")
        whole = acc_col.toggle("Whole accuracy range", value=False, key="whole_accuracy",
                               help="Off: the axis starts at the lowest accuracy after each run's first "
                                    "epoch, so the interesting part is readable")
        cpu_col, gpu_col = st.columns(2)
        for device, where in (("cpu", cpu_col), ("gpu", gpu_col)):
            prices[device] = where.number_input(f"{device.upper()} price per hour", min_value=0.0,
                                                value=0.0, step=0.1, key=f"price_{device}",
                                                help="0 = no price: cost is not shown") or None
    return Controls(target=target, baseline=baseline, grouped=grouped, log_loss=log_loss,
                    time_axis=time_axis, whole_accuracy=whole, prices=prices)


def choose_charts(options: dict[str, str]) -> tuple[str, ...]:
    """Which charts to draw: one by default; only the chosen are built and sent."""
    chosen = st.segmented_control("Charts", list(options), default=[DEFAULT_CHART], key="charts",
                                  selection_mode="multi", format_func=options.get,
                                  help="Click to add or remove a chart; only the chosen ones are drawn.")
    return tuple(key for key in options if key in (chosen or ()))


# -- drawing -----------------------------------------------------------------------------------------
def draw_verdict(where, items: list[dict], c: Controls) -> None:
    """Big numbers first: per run (or cell), its speedup over the baseline and its time to target,
    as one element (dashboard/verdictcards.py: a live page redraws it at every epoch)."""
    with where:
        st.html(verdictcards.cards(items, c.target))
        st.caption(verdict.basis_sentence(items))


def draw_grid(figures: list[tuple[str, object]], prefix: str) -> None:
    """Charts two to a row (one alone takes the width); an empty one is said in words, not drawn."""
    per_row = 1 if len(figures) == 1 else 2
    for row in range(0, len(figures), per_row):
        for column, (key, figure) in zip(st.columns(per_row), figures[row:row + per_row]):
            if isinstance(figure, str):
                column.info(figure)
            elif has_points(figure):
                charts.plotly_chart(figure, f"{prefix}_{key}", where=column)
            else:
                column.info(f"{figure.layout.title.text}: no picked run has these values yet.")


def run_figure(key: str, series, c: Controls):
    """One chart of the runs view, built only when chosen."""
    focus = not c.whole_accuracy
    if key == "val_acc_time":
        return make_metric_figure(series, "val_accuracy", x="elapsed_s", log_x=c.log_time, target=c.target,
                                  focus=focus)
    if key == "val_acc_epoch":
        return make_metric_figure(series, "val_accuracy", target=c.target, focus=focus)
    if key == "val_loss_time":
        return make_metric_figure(series, "val_loss", x="elapsed_s", log_y=c.log_loss, log_x=c.log_time)
    if key == "val_loss_epoch":
        return make_metric_figure(series, "val_loss", log_y=c.log_loss)
    if key == "loss_epoch":
        return make_metric_figure(series, "loss", log_y=c.log_loss)
    if key == "acc_epoch":
        return make_metric_figure(series, "accuracy", focus=focus)
    if key == "epoch_time":
        return make_epoch_time_figure(series)
    return make_throughput_figure(series)


def group_figure(key: str, cells, c: Controls):
    """One chart of the groups view, built only when chosen."""
    focus = not c.whole_accuracy
    if key == "val_acc_time":
        return grouping.make_band_figure(cells, "val_accuracy", x="elapsed_s", log_x=c.log_time, focus=focus)
    if key == "val_acc_epoch":
        return grouping.make_band_figure(cells, "val_accuracy", focus=focus)
    if key == "val_loss_epoch":
        return grouping.make_band_figure(cells, "val_loss", log_y=c.log_loss)
    return grouping.make_band_figure(cells, "epoch_time_s" if key == "epoch_time" else "samples_per_s")


def draw_charts(series, c: Controls, build, prefix: str) -> None:
    """The chosen charts: line or band charts in a grid, then the split bar and system metrics."""
    draw_grid([(key, build(key)) for key in c.charts if key not in ("time_split", "system")], prefix)
    if "time_split" in c.charts:
        time_split(series)
    if "system" in c.charts:
        keys = system_keys(series)
        draw_grid([(key, make_system_figure(series, key)) for key in keys]
                  or [("none", "System metrics: no picked run has samples (only runs trained here do).")],
                  "system")


def draw_table(rows: list[dict], c: Controls, key: str) -> None:
    """The few columns that answer the question; the others one click away; the basis said once."""
    shown = tables.default_columns(rows, c.target, c.grouped)
    more = st.multiselect("More columns", tables.other_columns(rows, c.target, c.grouped),
                          key=f"more_{key}", placeholder="Pick columns to add: the other rate, "
                          "time-to-target speedup, GFLOP/s, utilisation, total…")
    st.caption(tables.basis_caption(rows))
    st.dataframe(tables.select_columns(rows, [*shown, *more]), hide_index=True, key=key,
                 column_config={column: st.column_config.Column(tables.SHORT_HEADERS[column][0],
                                                                help=tables.SHORT_HEADERS[column][1])
                                for column in shown if column in tables.SHORT_HEADERS})


def draw_runs(picked: list[Run], series, c: Controls, verdict_box) -> None:
    """The verdict (into the box at the top), the chosen charts, the table, the downloads."""
    draw_verdict(verdict_box, verdict.verdict_items(series, c.baseline, c.target), c)
    draw_charts(series, c, lambda key: run_figure(key, series, c), "chart")
    draw_table(tables.comparison_rows(series, c.baseline, c.target), c, "comparison")
    downloads(picked, series, c)


def draw_groups(picked: list[Run], series, c: Controls, verdict_box) -> None:
    """Each cell of repeats as its median in a min–max band; the table shows median and spread."""
    cells = grouping.group_series(series)
    base = next((i for i, cell in enumerate(cells) if any(run.id == c.baseline for run in cell.runs)), 0)
    draw_verdict(verdict_box, verdict.group_items(cells, base, c.target), c)
    draw_charts(series, c, lambda key: group_figure(key, cells, c), "band")
    prices = dict(c.prices)
    with st.expander("Price per hour of one group (instead of its device's)"):
        for column, cell in zip(st.columns(3) * len(cells), cells):
            if price := column.number_input(cell.label, min_value=0.0, value=0.0, step=0.1,
                                            key=f"price_{cell.key}", help="0 = use the device's price"):
                prices[cell.key] = price
    draw_table(grouping.group_rows(cells, c.target, base, prices), c, "group_summary")
    downloads(picked, series, c)


def time_split(series) -> None:
    """Where each run's steady-state epoch goes: one stacked bar per run, or why there is none."""
    if not timesplit.any_split(series):
        st.info(timesplit.empty_reason(series))
        return
    charts.plotly_chart(timesplit.make_time_split_figure(series), "chart_time_split")
    st.caption("Median of each part over the steady epochs (not epoch 1, not a profiled one); the diamond "
               "is the median epoch time. Steps include waiting for the device; the first step's wait is "
               "the input pipeline's start and first copy; \"not recorded\": the run's log has no split "
               "(published and imported runs, logs before format 3). Definitions: docs/log-format.md.")


def downloads(picked: list[Run], series, c: Controls) -> None:
    """The epochs as CSV; one offline HTML report (built only when clicked); MLflow, when set up."""
    csv_col, report_col, mlflow_col = st.columns(3)
    csv_col.download_button("Download the compared epochs as CSV", key="download_csv", mime="text/csv",
                            data=lambda: tables.epochs_frame(series).to_csv(index=False),  # when clicked
                            file_name="comparison.csv")
    report_col.download_button(
        "Download report", key="download_report", mime="text/html", file_name="report.html",
        data=lambda: report.build_report(series, c.target, c.prices),
        help="Summary with spread, interactive charts, each run's hardware and settings, "
             "and the definitions: one file that works offline.")
    mlflow_button(mlflow_col, picked)


def mlflow_button(where, picked: list[Run]) -> None:
    """Send the compared runs (groups nested) to $MLFLOW_TRACKING_URI: shown only when it is set
    and the MLflow client is installed. Sending again updates the same MLflow runs."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri or not mlflow.client_available():
        return
    experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or mlflow.EXPERIMENT
    if not where.button(f"Send to MLflow ({experiment} at {uri})", key="send_mlflow",
                        help="Each run becomes an MLflow run (settings, tags, per-epoch and system "
                             "metrics, its files and report); a group becomes a parent with its runs "
                             "nested."):
        return
    try:
        with st.spinner(f"Sending {len(picked)} run(s) to MLflow…"):
            sent = mlflow.Exporter(uri, experiment, where=launch.describe).export(picked)
    except Exception as error:  # the server is away, or refused a request: say so, change nothing
        st.error(f"Not sent to MLflow at {uri}: {mlflow.describe_error(error)}")
        return
    st.success(f"Sent to MLflow at {uri}, experiment {experiment!r}: "
               + ", ".join(f"{done.name} ({done.mlflow_run_id})" for done in sent))


def live_progress(active: list[Run]) -> None:
    """Which picked runs are still training. Drawn with the page, so it says nothing that goes
    stale between epochs: the batch-by-batch progress is the Train page's (dashboard/live.py)."""
    lines = []
    for run in active:
        log = state.follower(run)
        total = run.meta.get("epochs")
        lines.append(f"**{run.name}**: {log.epochs_done}" + (f" of {total:,}" if total else "")
                     + " epochs done")
    if lines:
        st.caption("Live: " + " · ".join(lines) + ". The page redraws within about a second of each "
                   "epoch's end; the batch-by-batch progress is on the Train page.")


# -- the page ----------------------------------------------------------------------------------------
@st.fragment
def live_view(picked: list[Run], controls: Controls, verdict_box) -> None:
    """What a new epoch changes: the verdict (into the box at the top), the charts, the table, the
    downloads and the "Live:" line. A new epoch of a picked run reruns this alone, not the page's
    widgets (dashboard/live.py); a new run or a status change reruns the page."""
    statuses = state.statuses(store, picked)
    series = state.series(picked)
    for unreadable in (s for s in series if s.note):
        st.warning(f"{unreadable.label}: {unreadable.note}.")
    controls = replace(controls, log_time=controls.time_axis == "log"
                       or (controls.time_axis == "auto" and wants_log_time(series)))  # durations grow
    (draw_groups if controls.grouped else draw_runs)(picked, series, controls, verdict_box)
    with verdict_box:  # under the answer, where it is read
        live_progress([run for run in picked if statuses[run.id] in ACTIVE_STATES])
    live.watch("compare", store, picked, statuses)  # last: reruns this when a picked run changes


store = state.get_store()
st.title("Compare runs")
verdict_box = st.container(key="verdict")  # the answer first
all_runs = {run.id: run for run in store.runs()}
statuses = state.statuses(store, list(all_runs.values()))  # once per rerun
picked = pick_runs(all_runs, statuses)
if picked:
    series = state.series(picked)
    controls = read_controls(picked)
    if note := tables.protocol_caption(series, controls.baseline):  # one line: what differs, what it means
        st.caption(f":orange[{note}]")
    options = GROUP_CHARTS if controls.grouped else RUN_CHARTS
    live_view(picked, replace(controls, charts=choose_charts(options)), verdict_box)
else:
    verdict_box.info("Pick at least one run. Start one on the Train page, or import a log on the Runs page.")
    live.watch("compare", store, picked, statuses)  # a new run joins the default picks
