"""Figure builders and dashboard tables, without Streamlit."""

from __future__ import annotations

import pytest

from dashboard.state import default_picks
from training.analysis import scaling, tables
from training.analysis.figures import (
    make_metric_figure,
    make_system_figure,
    make_throughput_figure,
    system_keys,
    system_peaks,
)
from training.analysis.series import RunSeries, assign_colors, legend_label
from training.store import RunStore


@pytest.fixture
def runs(tmp_path) -> list[RunSeries]:
    published = RunStore(tmp_path / "runs")  # the shipped reference runs, start records included
    colors = assign_colors(["cpu", "gpu", "mine"])
    mine = [{"epoch": 1, "loss": 0.5, "accuracy": 0.8, "val_loss": 0.4, "val_accuracy": 0.9,
             "epoch_time_s": 12.0, "samples_per_s": 5000.0, "elapsed_s": 12.0, "samples": 60_000},
            {"epoch": 2, "loss": 0.2, "accuracy": 0.95, "val_loss": 0.1, "val_accuracy": 0.991,
             "epoch_time_s": 10.0, "samples_per_s": 6000.0, "elapsed_s": 22.0, "samples": 60_000}]
    cpu_log, gpu_log = (published.open(i).log() for i in ("ref-keras-cpu", "ref-tensorflow-gpu"))
    return [
        RunSeries("cpu", "Keras CPU (published) · CPU · fit", colors["cpu"], cpu_log.epochs,
                  reference=True, meta=published.open("ref-keras-cpu").meta, start=cpu_log.start),
        RunSeries("gpu", "TensorFlow GPU (published) · GPU · loop", colors["gpu"], gpu_log.epochs,
                  reference=True, meta=published.open("ref-tensorflow-gpu").meta, start=gpu_log.start),
        RunSeries("mine", "Mine · CPU · fit/tensorflow", colors["mine"], mine,
                  system=[{"elapsed_s": 1.0, "process_cpu_percent": 180.0, "rss_mb": 700.0}],
                  meta={"name": "Mine", "device": "cpu", "config": {"batch_size": 128, "lr": 0.05,
                                                                    "momentum": 0.9, "precision": "float32"}},
                  start={"train_samples": 60_000, "test_samples": 10_000}),
    ]


def test_one_trace_per_run_with_label_and_colour_kept_across_figures(runs):
    figures = [make_metric_figure(runs, "val_accuracy"), make_metric_figure(runs, "loss", log_y=True),
               make_metric_figure(runs, "val_loss", x="elapsed_s"), make_throughput_figure(runs)]
    for figure in figures:
        assert [t.name for t in figure.data] == [r.label for r in runs]
        assert [t.line.color for t in figure.data] == [r.color for r in runs]
    assert len({r.color for r in runs}) == 3
    assert [t.line.dash for t in figures[0].data] == ["dash", "dash", "solid"]


def test_epoch_axis_and_wall_clock_axis(runs):
    by_epoch = make_metric_figure(runs, "val_accuracy")
    assert list(by_epoch.data[1].x) == list(range(1, 31))
    assert by_epoch.data[1].y[1] == 0.9905
    assert by_epoch.layout.xaxis.title.text == "Epoch"
    race = make_metric_figure(runs, "val_accuracy", x="elapsed_s")
    assert race.data[0].x[0] == 112 and race.data[1].x[-1] == 118.17 and list(race.data[2].x) == [12, 22]
    assert "wall-clock" in race.layout.xaxis.title.text.lower()


def test_log_scale_only_when_asked(runs):
    assert make_metric_figure(runs, "loss", log_y=True).layout.yaxis.type == "log"
    assert make_metric_figure(runs, "loss").layout.yaxis.type is None
    race = make_metric_figure(runs, "val_accuracy", x="elapsed_s", log_x=True)
    assert race.layout.xaxis.type == "log" and race.layout.yaxis.type is None


def test_throughput_uses_samples_per_second(runs):
    figure = make_throughput_figure(runs)
    assert figure.data[0].y[0] == pytest.approx(60000 / 112, abs=0.01)
    assert list(figure.data[2].y) == [5000.0, 6000.0]


def test_target_line_only_when_asked(runs):
    assert make_metric_figure(runs, "val_accuracy").layout.shapes == ()
    [line] = make_metric_figure(runs, "val_accuracy", target=0.99).layout.shapes
    assert line.y0 == line.y1 == 0.99


def test_system_figure_has_no_gpu_traces_without_gpu_fields(runs):
    assert len(make_system_figure(runs, "gpu_util_percent").data) == 0
    assert system_keys(runs) == ["process_cpu_percent", "rss_mb"]
    cpu = make_system_figure(runs, "process_cpu_percent")
    assert [t.name for t in cpu.data] == [runs[2].label] and list(cpu.data[0].y) == [180.0]
    samples = [{"gpus": [{"util_percent": 40}, {"util_percent": 50}], "rss_mb": 1.0},
               {"gpus": [{"util_percent": 90}], "rss_mb": 3.0}]
    assert system_peaks(samples) == {"rss_mb": 3.0, "gpu_util_percent": 90}


def test_summary_rows_against_a_baseline(runs):
    rows = tables.comparison_rows(runs, baseline_id="cpu", target=0.99)
    cpu, gpu, mine = rows
    assert cpu["Speedup"] == "1.00×" and gpu["Speedup"] == "28.50×"
    assert cpu["Steady epoch"] == "110.00 s" and gpu["Steady epoch"] == "3.86 s"
    assert cpu["Time to 99.00%"] == "229.00 s (epoch 2)" and gpu["Time to 99.00%"] == "9.58 s (epoch 2)"
    assert gpu["Time-to-target speedup"] == f"{229 / 9.58:.2f}×"
    assert mine["Steady epoch"] == "10.00 s" and mine["Speedup"] == "11.00×"
    assert cpu["Best val acc"] == "0.9939 (epoch 11)"
    assert tables.comparison_rows(runs, "cpu", 0.995)[0]["Time to 99.50%"] == "not reached"


def test_single_epoch_run_has_no_steady_state():
    one = RunSeries("x", "x", "#000", [{"epoch": 1, "epoch_time_s": 3.0, "elapsed_s": 3.0,
                                       "val_accuracy": 0.5}])
    [row] = tables.comparison_rows([one], "x", 0.99)
    assert row["Steady epoch"] == "—" and row["Speedup"] == "—" and row["Total"] == "3.00 s"


def test_epochs_frame_stacks_every_run(runs):
    frame = tables.epochs_frame(runs)
    assert len(frame) == 30 + 30 + 2
    assert list(frame.columns[:4]) == ["run_id", "run", "epoch", "loss"]
    assert frame[frame.run_id == "gpu"].elapsed_s.iloc[-1] == 118.17


def test_legend_label_shows_device_engine_backend_and_precision():
    meta = {"name": "fast", "device": "gpu", "engine": "fit", "backend": "jax",
            "config": {"precision": "mixed_bfloat16", "jit": "on"}}
    assert legend_label(meta) == "fast · GPU · fit/jax · mixed_bfloat16 · jit on"
    meta["config"]["steps_per_execution"] = 64
    assert legend_label(meta) == "fast · GPU · fit/jax · mixed_bfloat16 · jit on · 64 steps/call"
    meta["config"]["steps_per_execution"] = 1  # the default is not worth a word
    assert legend_label(meta).endswith("jit on")


def test_default_picks_latest_cpu_and_gpu_and_references():
    metas = {"2026-a": {"source": "local", "device": "cpu"},
             "2026-b": {"source": "local", "device": "cpu"},
             "2026-c": {"source": "local", "device": "gpu"},
             "2026-d": {"source": "imported", "device": "gpu"},
             "ref-x": {"source": "reference"}}
    assert default_picks(metas, with_references=True) == ["2026-b", "2026-c", "ref-x"]
    assert default_picks(metas, with_references=False) == ["2026-b", "2026-c"]
    assert default_picks(metas, False, failed=frozenset({"2026-b"})) == ["2026-a", "2026-c"]


def test_scaling_axes_tick_at_the_batch_sizes_used_not_at_powers_of_ten():
    points = [{"device": "cpu", "backend": "tensorflow", "batch_size": batch, "threads": 2,
               "samples_per_s": 1000.0 + batch, "run": str(batch)} for batch in (512, 32, 128, 32)]
    figure = scaling.make_scaling_figure(points)
    assert figure.layout.xaxis.type == "log"
    assert list(figure.layout.xaxis.tickvals) == [32, 128, 512]
    assert list(figure.layout.xaxis.ticktext) == ["32", "128", "512"]


def test_run_details_read_as_tables_of_settings_and_machine():
    settings = tables.settings_rows({"config": {"batch_size": 128, "limit_train": None, "concurrent": False}})
    assert settings == [{"Setting": "batch size", "Value": "128"}, {"Setting": "limit train", "Value": "—"},
                        {"Setting": "concurrent", "Value": "no"}]
    machine = tables.machine_rows({"hardware": {"device": "gpu", "gpu_names": ["H100", "H100"],
                                                "cpu_logical_cores": 16},
                                   "versions": {"keras": "3.15.1", "backend_version": "0.11.2"}})
    assert machine == [{"What": "device", "Value": "gpu"}, {"What": "GPUs used", "Value": "H100, H100"},
                       {"What": "logical cores", "Value": "16"}, {"What": "keras", "Value": "3.15.1"},
                       {"What": "backend version", "Value": "0.11.2"}]
    assert tables.machine_rows(None) == []


def test_a_run_keeps_its_colour_whatever_else_is_picked():
    from training.analysis.series import PALETTE, color_of

    ids = [f"2026-run-{i}" for i in range(40)]
    alone = {i: assign_colors([i])[i] for i in ids}
    assert alone == {i: color_of(i) for i in ids}  # a hash of the id: the same in every process
    pair = [i for i in ids if color_of(i) != color_of(ids[0])][:2]
    for picks in ([ids[0], *pair], [*reversed(pair), ids[0]], [pair[1], ids[0]]):
        assert all(assign_colors(picks)[i] == alone[i] for i in picks)  # order and company change nothing
    clash = next(i for i in ids[1:] if color_of(i) == color_of(ids[0]))
    both = assign_colors([clash, ids[0]])
    assert both[ids[0]] == alone[ids[0]] and both[clash] != both[ids[0]] and both[clash] in PALETTE
    assert assign_colors(["ref-keras-cpu", "x"])["ref-keras-cpu"] == assign_colors(["ref-keras-cpu"])[
        "ref-keras-cpu"]


def test_log_time_axis_by_default_only_when_durations_are_far_apart(runs):
    from training.analysis.figures import wants_log_time

    def run(seconds):
        return RunSeries(str(seconds), "r", "#000", [{"epoch": 1, "elapsed_s": seconds}])
    assert wants_log_time([run(30), run(3318)]) is True
    assert wants_log_time([run(30), run(290)]) is False  # under 10x: linear reads fine
    assert wants_log_time([run(30)]) is False
    assert wants_log_time(runs) is True  # the published CPU run took about 3,300 s, "mine" 22 s


def test_accuracy_axis_starts_where_the_curves_are_interesting(runs):
    from training.analysis.figures import accuracy_range

    small = RunSeries("small", "5k images", "#000", [
        {"epoch": 1, "val_accuracy": 0.68, "elapsed_s": 5},
        {"epoch": 2, "val_accuracy": 0.93, "elapsed_s": 9},
        {"epoch": 3, "val_accuracy": 0.95, "elapsed_s": 13}])
    low, high = accuracy_range([*runs, small], "val_accuracy", target=0.99)
    assert 0.9 < low < 0.93 and high > 0.99  # the early 0.68 no longer squashes the published curves
    focused = make_metric_figure([*runs, small], "val_accuracy", target=0.99, focus=True)
    assert list(focused.layout.yaxis.range) == [low, high]
    assert 0.68 in focused.data[3].y  # the early epoch is still in the data (hover, zoom, the toggle)
    assert make_metric_figure([*runs, small], "val_accuracy").layout.yaxis.range is None  # whole range
    # When nothing would be hidden, the axis is left to autorange.
    assert accuracy_range([small], "accuracy") is None


def test_no_empty_figure_and_legends_below_the_axes(runs):
    from training.analysis import timesplit
    from training.analysis.figures import has_points

    assert has_points(make_metric_figure(runs, "val_accuracy"))
    assert not has_points(make_system_figure(runs[:2], "process_cpu_percent"))  # published: no samples
    assert not has_points(make_metric_figure([RunSeries("x", "x", "#000", [{"epoch": 1}])], "val_loss"))
    assert not timesplit.any_split(runs[:2])
    assert "not recorded" in timesplit.empty_reason(runs[:2])
    for figure in (make_metric_figure(runs, "loss"), timesplit.make_time_split_figure(runs)):
        legend = figure.layout.legend
        # In the figure's own bottom margin (container coordinates), never over the x-axis ticks.
        assert legend.yref == "container" and legend.y == 0 and legend.yanchor == "bottom"
        assert figure.layout.margin.b >= 60 + 22


def test_unnamed_local_runs_get_names_that_tell_them_apart(tmp_path):
    from training.config import make_config
    from training.launch import local

    store = RunStore(tmp_path / "runs")
    small = store.open(local.create_local(store, make_config(limit_train=5000, limit_test=500)).id)
    whole = store.open(local.create_local(store, make_config(batch_size=64, engine="loop")).id)
    named = store.open(local.create_local(store, make_config(name="mine")).id)
    assert small.name == "CPU · tensorflow · b128 · 5k images"
    assert whole.name == "CPU · tensorflow · b64 · 60k images"
    assert named.name == "mine"
    assert legend_label(whole.meta, whole.name) == "CPU · tensorflow · b64 · 60k images · loop"
    assert legend_label(named.meta, named.name) == "mine · CPU · fit/tensorflow"


def test_verdict_items_baseline_first_with_room_for_an_interval(runs):
    from training.analysis import verdict

    items = verdict.verdict_items(runs, "cpu", 0.99)
    assert [i["id"] for i in items] == ["cpu", "gpu", "mine"] and items[0]["baseline"]
    by_id = {i["id"]: i for i in items}
    rows = {r["Run"]: r for r in tables.comparison_rows(runs, "cpu", 0.99)}
    for run in runs:  # the verdict and the table never disagree
        assert verdict.speedup_text(by_id[run.id]["speedup"]) == rows[run.label]["Speedup"]
    assert by_id["gpu"]["claim"].startswith("is 28.50× faster than Keras CPU (published)")
    assert by_id["gpu"]["time_to_target_s"] == 9.58 and by_id["cpu"]["time_to_target_epoch"] == 2
    slower = verdict.verdict_items(runs, "gpu", 0.99)
    assert any(i["claim"].startswith("is 28.50× slower than TensorFlow GPU") for i in slower)
    # The bootstrap CI drops in as `interval`; the sentence then carries it.
    with_ci = verdict.verdict_items(runs, "cpu", 0.99, interval=lambda base, run, basis: (26.0, 31.0))
    assert with_ci[1]["interval"] == (26.0, 31.0) and "(95% CI 26.00–31.00×)" in with_ci[1]["sentence"]
    assert with_ci[0]["interval"] is None  # not for the baseline itself


def test_default_columns_by_name_and_basis_said_once(runs):
    rows = tables.comparison_rows(runs, "cpu", 0.99)
    assert tables.default_columns(rows, 0.99) == [
        "Run", "Epochs", "Steady epoch", "Images/s (epoch, eval incl.)", "Speedup", "Speedup 95% CI",
        "Time to 99.00%", "Best val acc"]
    rows = [{k: v for k, v in row.items() if k != "Speedup 95% CI"} for row in rows]
    assert "Speedup 95% CI" not in tables.default_columns(rows, 0.99)  # picked by name, only if there
    assert "Speedup from" not in tables.other_columns(rows, 0.99)
    assert "epoch images/s (eval incl.)" in tables.basis_caption(rows)
    epochs = [{**e, "train_s": 0.8 * e["epoch_time_s"]} for e in runs[2].epochs]
    timed = RunSeries("t", "timed", "#000", epochs)
    only_here = tables.comparison_rows([timed], "t", 0.99)  # training timed alone: the training rate
    assert tables.default_columns(only_here, 0.99)[3] == "Images/s (training)"
