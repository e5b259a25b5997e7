"""Where the time goes: the clock's split, the profiler's hooks, steady state, the stacked bar.

The clock is driven with a fake `perf_counter`, so the arithmetic is checked to
the microsecond without training anything; tests/test_profile.py trains for real.
"""

from __future__ import annotations

import json

import pytest

from training.analysis import comparison, report, timesplit
from training.analysis.series import RunSeries, assign_colors
from training.config import PROFILE_EPOCH, PROFILE_FIRST_BATCH, ConfigError, make_config
from training.imports.runs import reference_logs
from training.store.logwriter import LogWriter
from training.worker import engines
from training.worker.engines import EpochClock, StopFlag


class FakeTime:
    """Stands in for `time` inside engines: perf_counter is whatever the test set."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now

    def process_time(self) -> float:
        return self.now


@pytest.fixture
def fake_time(monkeypatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(engines, "time", fake)
    return fake


def read(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class Profiler:
    """Records when it was started and stopped; optionally fails."""

    def __init__(self, fake_time: FakeTime, cost: float = 0.25, fail: str | None = None):
        self.fake, self.cost, self.fail = fake_time, cost, fail
        self.calls: list[str] = []
        self.running = False

    def start(self):
        self.calls.append("start")
        self.fake.now += self.cost
        if self.fail == "start":
            raise RuntimeError("profiler busy")
        self.running = True

    def stop(self):
        self.calls.append("stop")
        self.fake.now += self.cost
        self.running = False


def run_epoch(clock: EpochClock, fake: FakeTime, steps: list[float], gap: float = 0.5,
              eval_s: float = 2.0, progress_at: int | None = None, progress_cost: float = 0.0,
              read_cost: float = 0.0):
    """One epoch with these step durations, as an engine would drive the clock."""
    clock.begin_epoch()
    fake.now += gap  # epoch begin to the first batch's hook: the iterator's setup
    write = clock.writer.write

    def slow_write(record, sync=False):
        if record["type"] == "progress":
            fake.now += progress_cost  # encoding and writing: the worker's own time
        write(record, sync)

    def read_metrics():
        fake.now += read_cost  # waiting for the device: step time
        return {"loss": 0.5, "accuracy": 0.8}

    clock.writer.write = slow_write
    for batch, step in enumerate(steps):
        clock.next_progress = fake.now if batch == progress_at else float("inf")
        clock.batch(clock.epoch, batch, read_metrics)
        fake.now += step
    clock.writer.write = write
    clock.begin_eval()
    fake.now += eval_s
    clock.end_eval()
    clock.end_epoch(clock.epoch, {"loss": 0.5, "accuracy": 0.8, "val_loss": 0.4, "val_accuracy": 0.9})


def test_the_split_of_an_epoch_to_the_microsecond(tmp_path, fake_time):
    config = make_config(limit_train=1024, limit_test=512, epochs=2)  # 8 batches of 128
    with LogWriter(tmp_path / "m.jsonl") as writer:
        clock = EpochClock(writer, config, StopFlag())
        clock.begin_training()
        # The first step takes 0.4 s (the pipeline's first batch), the others 0.1 s, the last
        # 0.3 s (the end-of-pass wait for the device); a progress record at batch 3 reads the
        # metrics (0.05 s waiting for the device) and costs 0.02 s to write.
        run_epoch(clock, fake_time, [0.4, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.3], progress_at=3,
                  progress_cost=0.02, read_cost=0.05)
    [record] = [r for r in read(tmp_path / "m.jsonl") if r["type"] == "epoch"]
    assert record["train_s"] == pytest.approx(0.5 + 1.3 + 0.05 + 0.02)
    assert record["eval_s"] == pytest.approx(2.0)
    assert record["first_step_wait_s"] == pytest.approx(0.5 + (0.4 - 0.1))
    assert record["outside_s"] == pytest.approx(0.02)
    assert record["steps_s"] == pytest.approx(8 * 0.1 + 0.2 + 0.05)  # the read and the last wait are steps
    parts = record["steps_s"] + record["first_step_wait_s"] + record["eval_s"] + record["outside_s"]
    assert parts == pytest.approx(record["epoch_time_s"], abs=3e-6)
    assert "profiled" not in record and "profile_s" not in record


def test_a_first_step_no_slower_than_the_others_waits_only_for_the_iterator(tmp_path, fake_time):
    with LogWriter(tmp_path / "m.jsonl") as writer:
        clock = EpochClock(writer, make_config(limit_train=1024, epochs=2), StopFlag())
        clock.begin_training()
        run_epoch(clock, fake_time, [0.05] + [0.1] * 7, gap=0.25)
    [record] = [r for r in read(tmp_path / "m.jsonl") if r["type"] == "epoch"]
    assert record["first_step_wait_s"] == pytest.approx(0.25)  # never negative
    assert record["steps_s"] == pytest.approx(0.75)


def test_the_profiler_runs_n_steps_of_the_profiled_epoch_between_syncs(tmp_path, fake_time):
    config = make_config(limit_train=1024, limit_test=512, epochs=3, profile_steps=3)
    events: list[tuple[str, int]] = []
    profiler = Profiler(fake_time)
    with LogWriter(tmp_path / "m.jsonl") as writer:
        clock = EpochClock(writer, config, StopFlag(), profiler=profiler)
        clock.sync = lambda: events.append(("sync", len(clock.batch_starts)))
        profiler.start = (lambda start: lambda: (events.append(("start", len(clock.batch_starts))), start())
                          )(profiler.start)
        profiler.stop = (lambda stop: lambda: (events.append(("stop", len(clock.batch_starts))), stop()))(
            profiler.stop)
        clock.begin_training()
        for _ in range(3):
            run_epoch(clock, fake_time, [0.1] * 8)
    first = PROFILE_FIRST_BATCH
    # Before batch `first` of epoch 2: sync, start; before batch first+3: sync, stop. One sync
    # at the end of every pass; none per batch.
    assert events == [("sync", 8),
                      ("sync", first + 1), ("start", first + 1), ("sync", first + 4), ("stop", first + 4),
                      ("sync", 8),
                      ("sync", 8)]
    epochs = [r for r in read(tmp_path / "m.jsonl") if r["type"] == "epoch"]
    assert [e.get("profiled", False) for e in epochs] == [e["epoch"] == PROFILE_EPOCH for e in epochs]
    profiled = epochs[PROFILE_EPOCH - 1]
    assert profiled["profile_s"] == pytest.approx(0.5)  # start and stop, 0.25 s each
    assert profiled["outside_s"] == pytest.approx(0.5)
    assert profiled["steps_s"] == pytest.approx(0.8)  # the profiler's own time is not step time
    parts = sum(profiled[k] for k in ("steps_s", "first_step_wait_s", "eval_s", "outside_s"))
    assert parts == pytest.approx(profiled["epoch_time_s"], abs=3e-6)
    # The profiled epoch is not steady: epoch 3 alone is.
    assert comparison.steady_epoch_s(epochs) == epochs[2]["epoch_time_s"]
    assert comparison.cores_busy(epochs) == pytest.approx(epochs[2]["cpu_s"] / epochs[2]["epoch_time_s"])


def test_a_profile_to_the_last_batch_stops_when_the_pass_ends(tmp_path, fake_time):
    config = make_config(limit_train=1024, epochs=2, profile_steps=8 - PROFILE_FIRST_BATCH)
    profiler = Profiler(fake_time)
    with LogWriter(tmp_path / "m.jsonl") as writer:
        clock = EpochClock(writer, config, StopFlag(), profiler=profiler)
        clock.begin_training()
        run_epoch(clock, fake_time, [0.1] * 8)
        run_epoch(clock, fake_time, [0.1] * 8)
        assert profiler.calls == ["start", "stop"] and not profiler.running
    epochs = [r for r in read(tmp_path / "m.jsonl") if r["type"] == "epoch"]
    assert epochs[1]["eval_s"] == pytest.approx(2.0)  # stopping is not evaluation time
    assert epochs[1]["outside_s"] == pytest.approx(0.5)


def test_a_profiler_that_fails_is_a_warning_not_the_runs_end(tmp_path, fake_time):
    config = make_config(limit_train=1024, epochs=3, profile_steps=2)
    profiler = Profiler(fake_time, fail="start")
    with LogWriter(tmp_path / "m.jsonl") as writer:
        clock = EpochClock(writer, config, StopFlag(), profiler=profiler)
        clock.begin_training()
        for _ in range(3):
            run_epoch(clock, fake_time, [0.1] * 8)
    log = read(tmp_path / "m.jsonl")
    [warning] = [r for r in log if r["type"] == "warning"]
    assert warning["source"] == "profiler" and "profiler busy" in warning["message"]
    assert profiler.calls == ["start"]  # never stopped, never tried again
    assert len([r for r in log if r["type"] == "epoch"]) == 3


@pytest.mark.parametrize(("settings", "message"), [
    ({"profile_steps": 0}, "from 1 to 200"),
    ({"profile_steps": 201}, "from 1 to 200"),
    ({"profile_steps": 5, "epochs": 1}, "needs --epochs 2 or more"),
    ({"profile_steps": 8, "limit_train": 1024}, "must be at most 7: an epoch has 8 batches"),
])
def test_profile_steps_out_of_range_is_refused_with_the_reason(settings, message):
    with pytest.raises(ConfigError) as error:
        make_config(**{"epochs": 3, **settings})
    assert error.value.field == "profile_steps" and message in str(error.value)
    assert error.value.option == "--profile-steps"


def test_profile_steps_is_off_by_default_and_round_trips():
    assert make_config().profile_steps is None
    config = make_config(profile_steps=5)
    assert type(config).from_dict(config.to_dict()).profile_steps == 5


# -- steady state and the figure ----------------------------------------------------------
def epoch(n: int, steps: float, wait: float = 0.1, evaluation: float = 0.5, outside: float = 0.01,
          **extra) -> dict:
    total = steps + wait + evaluation + outside
    return {"epoch": n, "epoch_time_s": total, "train_s": total - evaluation, "eval_s": evaluation,
            "steps_s": steps, "first_step_wait_s": wait, "outside_s": outside, "cpu_s": total,
            "elapsed_s": n * total, **extra}


def test_steady_split_takes_medians_over_steady_unprofiled_epochs():
    epochs = [epoch(1, 9.0, wait=3.0), epoch(2, 5.0, outside=1.0, profiled=True, profile_s=1.0),
              epoch(3, 2.0), epoch(4, 4.0), epoch(5, 3.0, wait=0.3)]
    split = timesplit.steady_split(epochs)
    assert split["steps_s"] == 3.0 and split["first_step_wait_s"] == 0.1
    assert split["eval_s"] == 0.5 and split["outside_s"] == 0.01 and split["epochs"] == 3
    # The median epoch (epoch 5's 3.81 s) is not the sum of the parts' medians (3.61 s).
    assert split["epoch_time_s"] == pytest.approx(3.81)
    assert comparison.steady_epoch_s(epochs) == pytest.approx(3.81)


def test_steady_split_is_none_where_it_was_not_recorded():
    assert timesplit.steady_split(reference_logs()["Keras CPU"].epochs) is None
    older = [{"epoch": 1, "epoch_time_s": 3.0, "train_s": 2.5, "eval_s": 0.5},
             {"epoch": 2, "epoch_time_s": 2.0, "train_s": 1.5, "eval_s": 0.5}]
    assert timesplit.steady_split(older) is None
    assert timesplit.steady_split([epoch(1, 1.0)]) is None  # no steady epoch yet
    assert timesplit.missing_reason([epoch(1, 1.0)]) == timesplit.NOT_YET
    assert timesplit.missing_reason(older) == timesplit.missing_reason([]) == timesplit.NOT_RECORDED


@pytest.fixture
def series() -> list[RunSeries]:
    colors = assign_colors(["ref", "mine", "other"])
    return [
        RunSeries("ref", "Keras CPU (published) · CPU · fit", colors["ref"],
                  reference_logs()["Keras CPU"].epochs, reference=True),
        RunSeries("mine", "Mine · CPU · fit/tensorflow", colors["mine"],
                  [epoch(1, 9.0), epoch(2, 2.0), epoch(3, 2.0)]),
        RunSeries("other", "Mine · CPU · fit/tensorflow", colors["other"],
                  [epoch(1, 9.0), epoch(2, 1.0, wait=0.2), epoch(3, 1.0, wait=0.2)]),
    ]


def test_the_stacked_bar_has_one_row_per_run_and_says_not_recorded(series):
    figure = timesplit.make_time_split_figure(series)
    bars = [trace for trace in figure.data if trace.type == "bar"]
    assert [bar.meta for bar in bars] == ["steps_s", "first_step_wait_s", "eval_s", "outside_s"]
    assert figure.layout.barmode == "stack"
    rows = ["Keras CPU (published) · CPU · fit", "Mine · CPU · fit/tensorflow · mine",
            "Mine · CPU · fit/tensorflow · other"]  # a shared label gets the run id
    for bar in bars:
        assert list(bar.y) == rows and bar.x[0] is None  # the published run: no bar, not a zero bar
    assert [bar.x[1] for bar in bars] == [2.0, 0.1, 0.5, 0.01]
    assert [bar.x[2] for bar in bars] == [1.0, 0.2, 0.5, 0.01]
    [total] = [trace for trace in figure.data if trace.type == "scatter"]
    assert list(total.y) == rows[1:] and list(total.x) == pytest.approx([2.61, 1.71])
    [note] = figure.layout.annotations
    assert note.text == timesplit.NOT_RECORDED and note.y == rows[0]


def test_the_report_carries_the_stacked_bar(series):
    page = report.build_report(series)
    assert "Where the time goes: steady-state epoch" in page
    assert timesplit.NOT_RECORDED in page
    assert "<dt><b>Where the time goes</b></dt>" in page


def test_a_ray_cluster_refuses_a_profile_it_would_lose():
    from training.launch.cluster import check_request
    from training.store import RunError

    with pytest.raises(RunError, match="--profile-steps needs a run on this machine"):
        check_request("http://127.0.0.1:8265", make_config(profile_steps=5), None, [])
    check_request("http://127.0.0.1:8265", make_config(), None, [])  # a CPU run without one is fine


def test_a_run_with_only_its_first_epoch_says_not_yet_rather_than_not_recorded():
    runs = [RunSeries("new", "Starting · CPU · fit/tensorflow", "#000", [epoch(1, 9.0)])]
    [note] = timesplit.make_time_split_figure(runs).layout.annotations
    assert note.text == timesplit.NOT_YET


def test_steady_energy_per_epoch_leaves_the_profiled_epoch_out_too():
    from training.analysis import energy

    t0 = 1_000_000.0
    epochs = [{"epoch": n, "epoch_time_s": 10.0, "elapsed_s": 10.0 * n, "time": t0 + 10 * n,
               "val_accuracy": 0.5, **({"profiled": True} if n == 2 else {})} for n in (1, 2, 3)]
    # A RAPL counter: 40 W in epochs 1 and 3, 100 W in the profiled epoch 2.
    def joules(t):
        return 40 * t if t <= 10 else 400 + 100 * (t - 10) if t <= 20 else 1400 + 40 * (t - 20)
    system = [{"time": t0 + t, "cpu_energy_j": joules(t)} for t in range(0, 31, 2)]
    found = energy.run_energy(epochs, system, target=0.99)
    assert found["cpu"]["joules_per_epoch"] == pytest.approx(400.0)  # epoch 3 only, not 700
