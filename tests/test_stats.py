"""Pure maths of groups, energy, cost and the group/scaling figures, on hand-made records."""

from __future__ import annotations

import math

import pytest

from training.analysis import energy, grouping, scaling, stats
from training.analysis.series import RunSeries
from training.system.power import RaplReader, counter_delta


# -- olympic mean and spread ------------------------------------------------------------
def test_olympic_mean_drops_one_fastest_and_one_slowest():
    assert stats.olympic_mean([5.0, 1.0, 3.0, 2.0, 10.0]) == pytest.approx((2 + 3 + 5) / 3)
    assert stats.olympic_mean([1.0, 2.0]) is None  # fewer than 3 runs
    assert stats.olympic_mean([1.0, 4.0, math.inf]) == 4.0  # the unreached run is dropped as slowest
    assert stats.olympic_mean([1.0, math.inf, math.inf]) == math.inf  # MLPerf: one kept, infinitely slow


def test_summary_counts_unreached_runs_as_infinitely_slow():
    measures = [{"steady_epoch_s": s, "steady_samples_per_s": 1000 / s, "time_to_target_s": t,
                 "total_s": 10 * s, "cores_busy": 1.0} for s, t in ((2.0, 8.0), (4.0, None), (3.0, 9.0))]
    summary = stats.public(stats.summarize(measures))
    assert summary["n"] == 3 and summary["not_reached"] == 1
    assert summary["steady_epoch_s"] == {"median": 3.0, "min": 2.0, "max": 4.0, "olympic_mean": 3.0}
    assert summary["time_to_target_s"] == {"median": 9.0, "min": 8.0, "max": None, "olympic_mean": 9.0}


def test_group_speedup_is_the_ratio_of_medians_with_the_extremes_beside_it():
    cpu = stats.summarize([{"steady_epoch_s": s, "time_to_target_s": None} for s in (10.0, 12.0, 20.0)])
    gpu = stats.summarize([{"steady_epoch_s": s, "time_to_target_s": None} for s in (1.0, 2.0, 4.0)])
    speed = stats.speedup(cpu, gpu)
    assert speed == {"median": 6.0, "low": 10.0 / 4.0, "high": 20.0 / 1.0}
    assert stats.speedup(cpu, gpu, "time_to_target_s") == {"median": None, "low": None, "high": None}


# -- energy -------------------------------------------------------------------------------
T0 = 1_000_000.0  # Unix seconds at which training began


def _epochs() -> list[dict]:
    # Two 10 s epochs: epoch 1 over [T0, T0+10], epoch 2 over [T0+10, T0+20].
    return [{"epoch": 1, "epoch_time_s": 10.0, "elapsed_s": 10.0, "time": T0 + 10, "val_accuracy": 0.5},
            {"epoch": 2, "epoch_time_s": 10.0, "elapsed_s": 20.0, "time": T0 + 20, "val_accuracy": 0.9}]


def test_gpu_power_is_integrated_with_the_trapezoid_rule():
    # Power rises linearly 100 W -> 300 W over 20 s, sampled every 5 s, two GPUs sharing it.
    system = [{"time": T0 + t, "gpus": [{"power_w": (100 + 10 * t) / 2}, {"power_w": (100 + 10 * t) / 2}]}
              for t in range(0, 21, 5)]
    found = energy.run_energy(_epochs(), system, target=0.9)
    # Epoch 2: 200 -> 300 W over 10 s = 2,500 J; to target (end of epoch 2): 100 -> 300 W over 20 s = 4 kJ.
    assert found["gpu"]["joules_per_epoch"] == pytest.approx(2500.0)
    assert found["gpu"]["joules_to_target"] == pytest.approx(4000.0)
    assert found["measured"] == ["gpu"] and found["cpu"]["joules"] is None
    assert found["total_joules_to_target"] == pytest.approx(4000.0)
    # Samples that start late are held flat back to the window's start: 150 W over [T0, T0+5].
    late = [s for s in system if s["time"] >= T0 + 5]
    assert energy.integrate_power(energy.gpu_power_points(late), T0, T0 + 5) == pytest.approx(750.0)


def test_cpu_energy_comes_from_the_rapl_counter_between_instants():
    # 40 W for the first 10 s, then 60 W: a cumulative counter sampled every 4 s.
    def joules(t):
        return 40 * t if t <= 10 else 400 + 60 * (t - 10)
    system = [{"time": T0 + t, "cpu_energy_j": joules(t)} for t in (2, 6, 10, 14, 18)]
    found = energy.run_energy(_epochs(), system, target=0.9)
    assert found["cpu"]["joules_per_epoch"] == pytest.approx(600.0)  # epoch 2: 60 W x 10 s
    assert found["cpu"]["joules_to_target"] == pytest.approx(1000.0)  # 400 J + 600 J
    assert found["measured"] == ["cpu"]


def test_cost_to_target_and_of_the_run():
    assert energy.cost(1800.0, 2.40) == pytest.approx(1.20)  # half an hour at 2.40 an hour
    assert energy.cost(None, 2.40) is None and energy.cost(60.0, None) is None


def test_no_power_readings_are_not_measured_never_estimated():
    system = [{"time": T0 + t, "process_cpu_percent": 100.0} for t in range(20)]
    found = energy.run_energy(_epochs(), system, target=0.9)
    assert found["measured"] == [] and found["total_joules_per_epoch"] is None
    assert energy.format_joules(found["total_joules_per_epoch"]) == "not measured"
    run = RunSeries(id="r1", label="cpu run", color="#636EFA", epochs=_epochs(), system=system,
                    meta={"device": "cpu"})
    [row] = grouping.group_rows(grouping.group_series([run]), 0.9, prices={"cpu": 3.6})
    assert row["Energy / epoch"] == "not measured" and row["Energy to target"] == "not measured"
    assert row["Cost to target"] == "0.0200" and row["Cost of run"] == "0.0200"  # 20 s at 3.60/h
    [cell] = grouping.group_series([run])
    [row] = grouping.group_rows([cell], 0.9, prices={"cpu": 3.6, cell.key: 7.2})  # this group's own price
    assert row["Cost of run"] == "0.0400"  # 20 s at 7.20/h


def test_rapl_counter_wraps_around(tmp_path):
    package = tmp_path / "intel-rapl:0"
    package.mkdir()
    (tmp_path / "intel-rapl:0:0").mkdir()  # a sub-domain (core): not counted again
    (package / "max_energy_range_uj").write_text("1000000\n")
    (package / "energy_uj").write_text("900000\n")
    reader = RaplReader(tmp_path)
    assert reader.available and len(reader.domains) == 1
    (package / "energy_uj").write_text("100000\n")  # wrapped: 0.1 J to the top, then 0.1 J
    assert reader.read() == pytest.approx(0.2)
    assert counter_delta(5, 7, 10) == 2 and counter_delta(9, 1, 10) == 2
    assert not RaplReader(tmp_path / "absent").available


# -- figures ------------------------------------------------------------------------------
def _run(run_id: str, group: str | None, rates: list[float], device="cpu", batch=32, threads=None):
    epochs = [{"epoch": i + 1, "samples_per_s": r, "epoch_time_s": 1000 / r, "elapsed_s": i + 1.0,
               "val_accuracy": 0.5 + 0.1 * i} for i, r in enumerate(rates)]
    meta = {"device": device, "backend": "tensorflow", "group": group,
            "config": {"device": device, "backend": "tensorflow", "batch_size": batch, "threads": threads,
                       "precision": "float32"}}
    return RunSeries(id=run_id, label=f"{device} b{batch}", color="#636EFA", epochs=epochs, meta=meta,
                     start={"hardware": {"cpu_logical_cores": 2}})


def test_band_figure_draws_median_inside_min_max_and_hides_single_runs():
    runs = [_run(f"r{i}", "g-1", [100.0 * (i + 1), 200.0 * (i + 1)]) for i in range(3)]
    [group] = grouping.group_series(runs)
    figure = grouping.make_band_figure([group], "samples_per_s")
    low, high, median, *singles = figure.data
    assert list(low.y) == [100.0, 200.0] and list(high.y) == [300.0, 600.0] and high.fill == "tonexty"
    assert list(median.y) == [200.0, 400.0] and median.name.endswith("median")
    assert len(singles) == 3 and all(s.visible == "legendonly" for s in singles)


def test_scaling_and_speedup_with_the_crossover_marked():
    runs = [_run("c1", "g", [1, 1000], "cpu", 32), _run("c2", "g", [1, 2000], "cpu", 256),
            _run("g1", "g", [1, 500], "gpu", 32), _run("g2", "g", [1, 8000], "gpu", 256),
            _run("t1", "g", [1, 600], "cpu", 32, threads=1)]
    points = scaling.scaling_points(runs)
    figure = scaling.make_scaling_figure(points)
    assert figure.layout.xaxis.type == "log" and figure.layout.yaxis.type == "log"
    assert {trace.name for trace in figure.data} == {"CPU · tensorflow", "GPU · tensorflow"}
    assert scaling.speedup_lines(points) == {"tensorflow": [(32, 500 / 800), (256, 4.0)]}  # CPU at 32: median
    # Speedup 0.625 at 32 and 4 at 256: crosses 1 where log(batch) is 0.375/3.375 of the way.
    [where] = scaling.crossovers([32, 256], [0.625, 4.0])
    assert where == pytest.approx(math.exp(math.log(32) + 0.375 / 3.375 * math.log(8)))
    speedup = scaling.make_speedup_figure(points)
    assert any(trace.text and trace.text[0].startswith("crossover ≈") for trace in speedup.data)
    threads = scaling.make_scaling_figure(points, x="threads")
    [line] = threads.data
    assert list(line.x) == [1, 2]  # default threads sit at the machine's 2 cores
