"""Contention: /proc/stat maths on recorded samples, NVML interference on recorded answers, the words.

The /proc/stat texts are this machine's own (tests/fixtures/README.md) or hand-made lines whose
deltas are worked out in the comments. The NVML answers are a stand-in: this machine has no
NVIDIA GPU or driver, so `fake_pynvml` below replays answers in nvidia-ml-py's types from
tests/fixtures/nvml_answers.json (the one thing here that cannot be real). A real CPU-burning
process beside a real run is tests/test_contention_run.py.
"""

from __future__ import annotations

import json
import os
import sys
import time
import types

import pytest
from conftest import FIXTURES

from training.analysis import contention as words
from training.store.logwriter import LogWriter
from training.system import contention, nvml
from training.worker import engines, sampler
from training.worker.engines import EpochClock, StopFlag

# Two hand-made readings 2 s apart on 2 CPUs at USER_HZ 100: capacity 400 ticks.
# Deltas: user +250, system +50, idle +80, iowait +10, softirq +10 -> busy 310, total 400.
BEFORE = "cpu  1000 0 500 8000 100 0 0 0 0 0\ncpu0 500 0 250 4000 50 0 0 0 0 0\nintr 1 2 3\n"
AFTER = "cpu  1250 0 550 8080 110 0 10 0 0 0\ncpu0 625 0 275 4040 55 0 5 0 0 0\nintr 4 5 6\n"


def test_shares_of_the_machine_from_two_readings_and_our_own_cpu_time():
    before, after = contention.parse_proc_stat(BEFORE), contention.parse_proc_stat(AFTER)
    assert (after.total - before.total, after.busy - before.busy) == (400, 310)
    # We used 1.5 CPU-seconds = 150 ticks: others 160 of 400 ticks.
    found = contention.shares(before, after, own_cpu_s=1.5, ticks=100)
    assert found == {"others_cpu_share": 0.4, "own_cpu_share": 0.375, "steal_share": 0.0}
    assert contention.reasons(found) == ["others_cpu"]


def test_guest_time_is_not_counted_twice_and_steal_is_its_own_share():
    # A VM: user +200 (of which guest +50, already inside user), system +20, idle +140, steal +40.
    before = contention.parse_proc_stat("cpu 100 0 100 100 0 0 0 0 0 0")
    after = contention.parse_proc_stat("cpu 300 0 120 240 0 0 0 40 50 0")
    found = contention.shares(before, after, own_cpu_s=2.0, ticks=100)  # 200 ticks ours
    assert found == {"others_cpu_share": 0.05, "own_cpu_share": 0.5, "steal_share": 0.1}
    assert contention.reasons(found) == ["steal"]  # others 5% < 10%; steal 10% >= 5%


def test_the_recorded_yes_beside_another_job():
    before = contention.parse_proc_stat((FIXTURES / "proc_stat_yes_before.txt").read_text())
    after = contention.parse_proc_stat((FIXTURES / "proc_stat_yes_after.txt").read_text())
    found = contention.shares(before, after, own_cpu_s=0.0, ticks=100)
    # By hand (fixtures/README.md): busy 589 of 598 ticks, steal 4; the reader slept.
    assert found["others_cpu_share"] == pytest.approx(589 / 598, abs=1e-4)
    assert found["steal_share"] == pytest.approx(4 / 598, abs=1e-4)
    assert contention.reasons(found) == ["others_cpu"]


def test_our_own_time_above_the_ticks_never_makes_a_negative_share():
    before, after = contention.parse_proc_stat(BEFORE), contention.parse_proc_stat(AFTER)
    found = contention.shares(before, after, own_cpu_s=3.5, ticks=100)  # more than all busy ticks
    assert found["others_cpu_share"] == 0.0 and found["own_cpu_share"] == 0.875


def test_old_kernels_without_steal_and_an_interval_without_ticks():
    old = contention.parse_proc_stat("cpu 10 0 10 100")  # Linux 2.4: four columns
    assert old.steal is None and old.total == 120
    newer = contention.parse_proc_stat("cpu 20 0 10 130")
    assert contention.shares(old, newer, 0.0, 100) == {"others_cpu_share": 0.25, "own_cpu_share": 0.0,
                                                       "steal_share": None}
    assert contention.shares(old, old, 0.0, 100)["others_cpu_share"] is None
    with pytest.raises(ValueError, match="no aggregate 'cpu' line"):
        contention.parse_proc_stat("cpu0 1 2 3 4\n")
    assert contention.read_cpu_times(FIXTURES / "no-such-file") is None


def test_threshold_edges():
    assert contention.reasons({"others_cpu_share": 0.10, "steal_share": 0.0}) == ["others_cpu"]
    assert contention.reasons({"others_cpu_share": 0.0999, "steal_share": 0.0499}) == []
    assert contention.reasons({"others_cpu_share": None, "steal_share": None}) == []


def test_cpu_frequency_from_cpufreq_else_cpuinfo(tmp_path):
    for cpu, khz in (("cpu0", "2400000\n"), ("cpu1", "3000000\n")):
        (tmp_path / cpu / "cpufreq").mkdir(parents=True)
        (tmp_path / cpu / "cpufreq" / "scaling_cur_freq").write_text(khz)
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\ncpu MHz\t\t: 2596.122\nprocessor\t: 1\ncpu MHz\t\t: 2000.000\n")
    assert contention.read_cpu_mhz(tmp_path, info) == 2700.0
    assert contention.read_cpu_mhz(tmp_path / "none", info) == 2298.1  # a VM without cpufreq
    assert contention.read_cpu_mhz(tmp_path / "none", tmp_path / "missing") is None


# -- NVML: recorded answers through a stand-in module --------------------------------------
class FakeNvmlError(Exception):
    pass


def fake_pynvml(samples: list[dict], event_reasons: bool = True, clocks: bool = True) -> types.ModuleType:
    """A stand-in `pynvml` that replays the recorded answers, one sample per call of the processes."""
    module = types.ModuleType("pynvml")
    state = {"i": -1}

    def current() -> dict:
        return samples[min(state["i"], len(samples) - 1)]

    def processes(handle):
        state["i"] += 1
        return [types.SimpleNamespace(**p) for p in current()["processes"]]

    def clock(handle, kind):
        if not clocks:
            raise FakeNvmlError("Not Supported")
        assert kind == nvml.NVML_CLOCK_SM
        return current()["sm_clock_mhz"]

    module.nvmlInit = module.nvmlShutdown = lambda: None
    module.nvmlDeviceGetCount = lambda: 1
    module.nvmlDeviceGetHandleByIndex = lambda i: i
    module.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=99)
    module.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=2**30, total=80 * 2**30)
    module.nvmlDeviceGetPowerUsage = lambda h: 300_000
    module.nvmlDeviceGetTemperature = lambda h, sensor: 70
    module.nvmlDeviceGetComputeRunningProcesses = processes
    module.nvmlDeviceGetClockInfo = clock
    reasons = lambda h: current()["reasons"]  # noqa: E731
    if event_reasons:
        module.nvmlDeviceGetCurrentClocksEventReasons = reasons
    else:  # bindings before 12.535 only have the old name
        module.nvmlDeviceGetCurrentClocksThrottleReasons = reasons
    return module


@pytest.fixture
def answers() -> dict:
    return json.loads((FIXTURES / "nvml_answers.json").read_text())


def test_throttle_bits_have_names():
    assert nvml.throttle_names(0) == []
    assert nvml.throttle_names(0x4 | 0x20) == ["sw_power_cap", "sw_thermal"]
    assert nvml.throttle_names(0x7FF) == list(nvml.THROTTLE_BITS.values())


def test_throttle_bits_are_the_installed_bindings_own():
    pynvml = pytest.importorskip("pynvml")  # the real nvidia-ml-py: its constants need no driver
    names = {"gpu_idle": "GpuIdle", "applications_clocks": "ApplicationsClocksSetting",
             "sw_power_cap": "SwPowerCap", "hw_slowdown": "HwSlowdown", "sync_boost": "SyncBoost",
             "sw_thermal": "SwThermalSlowdown", "hw_thermal": "HwThermalSlowdown",
             "hw_power_brake": "HwPowerBrakeSlowdown", "display_clocks": "DisplayClockSetting",
             "board_limit": "BoardLimit", "reliability": "Reliability"}
    for bit, name in nvml.THROTTLE_BITS.items():
        assert getattr(pynvml, f"nvmlClocksThrottleReason{names[name]}") == bit, name
    assert pynvml.NVML_CLOCK_SM == nvml.NVML_CLOCK_SM


@pytest.mark.parametrize("event_reasons", [True, False])
def test_interference_from_recorded_answers(answers, event_reasons):
    pynvml = fake_pynvml(answers["samples"], event_reasons=event_reasons)
    own = {answers["own_pid"]}
    first = nvml.read_interference(pynvml, 0, own)
    assert first == {"other_processes": [{"pid": 777, "memory_mb": 8192.0}], "sm_clock_mhz": 1980,
                     "throttle_reasons": ["sw_power_cap"]}
    second = nvml.read_interference(pynvml, 0, own)
    assert second["other_processes"] == [{"pid": 777, "memory_mb": 9216.0}, {"pid": 901, "memory_mb": None}]
    assert second["throttle_reasons"] == ["sw_power_cap", "sw_thermal"]


def test_a_field_nvml_refuses_is_left_out_and_not_asked_again(answers):
    pynvml = fake_pynvml(answers["samples"], clocks=False)
    refused: set[str] = set()
    assert "sm_clock_mhz" not in nvml.read_interference(pynvml, 0, set(), refused)
    assert refused == {"sm_clock_mhz"}
    pynvml.nvmlDeviceGetClockInfo = lambda h, k: pytest.fail("asked again")
    assert "other_processes" in nvml.read_interference(pynvml, 0, set(), refused)


def test_gpu_fields_of_an_epoch_from_its_samples(answers):
    pynvml = fake_pynvml(answers["samples"])
    entries = [{"index": 0, **nvml.read_interference(pynvml, 0, {answers["own_pid"]})} for _ in range(3)]
    fields = sampler.gpu_fields(entries)
    assert fields["gpu_other_processes"] == [{"gpu": 0, "pid": 777, "memory_mb": 9216.0},
                                             {"gpu": 0, "pid": 901, "memory_mb": None}]
    assert fields["gpu_sm_clock_mhz"] == pytest.approx((1980 + 1410 + 1755) / 3, abs=0.05)
    assert fields["gpu_throttle_reasons"] == ["sw_power_cap", "sw_thermal"]
    assert sampler.gpu_fields([]) == {}
    assert "gpu_other_processes" not in sampler.gpu_fields([{"index": 0, "sm_clock_mhz": 1500}])


def test_sampler_hands_gpu_interference_to_the_meter(answers, monkeypatch, tmp_path):
    for sample in answers["samples"]:  # the recorded worker's pid is this test's process
        for process in sample["processes"]:
            process["pid"] = os.getpid() if process["pid"] == answers["own_pid"] else process["pid"]
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(answers["samples"]))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    meter = sampler.ContentionMeter(read_times=lambda: None, read_mhz=lambda: None)
    path = tmp_path / "system.jsonl"
    with sampler.SystemSampler(path, interval_s=0.05, contention=meter):
        time.sleep(0.3)
    gpu = json.loads(path.read_text().splitlines()[0])["gpus"][0]
    assert gpu["other_processes"] == [{"pid": 777, "memory_mb": 8192.0}] and gpu["sm_clock_mhz"] == 1980
    lap = meter.lap()
    assert lap["contended"] and lap["contended_by"] == ["gpu_others", "gpu_slowdown"]  # sw_thermal seen
    assert {p["pid"] for p in lap["gpu_other_processes"]} == {777, 901}


# -- the meter and the clock -----------------------------------------------------------------
def test_meter_laps_cover_the_time_between_epoch_ends():
    readings = iter([contention.parse_proc_stat(BEFORE), contention.parse_proc_stat(AFTER),
                     contention.parse_proc_stat(AFTER)])
    own = iter([10.0, 11.5, 11.5])
    meter = sampler.ContentionMeter(read_times=lambda: next(readings), own_cpu_s=lambda: next(own),
                                    read_mhz=lambda: 2596.1, ticks=100)
    assert meter.lap() == {"others_cpu_share": 0.4, "own_cpu_share": 0.375, "steal_share": 0.0,
                           "cpu_mhz": 2596.1, "contended": True, "contended_by": ["others_cpu"]}
    second = meter.lap()  # no tick passed: shares unknown, not contended
    assert second["others_cpu_share"] is None and second["contended"] is False
    blind = sampler.ContentionMeter(read_times=lambda: None, read_mhz=lambda: None)
    assert blind.lap() == {}  # not Linux: nothing recorded, so "not recorded"


def test_the_clock_merges_the_meter_into_each_epoch_record(tmp_path, monkeypatch):
    from training.config import make_config

    monkeypatch.setattr(engines.EpochClock, "sync", lambda self: None, raising=False)
    laps = iter([{"others_cpu_share": 0.38, "contended": True, "contended_by": ["others_cpu"]},
                 {"others_cpu_share": 0.02, "contended": False, "contended_by": []}])
    with LogWriter(tmp_path / "m.jsonl") as writer:
        clock = EpochClock(writer, make_config(limit_train=1024, epochs=2), StopFlag(),
                           contention=lambda: next(laps))
        clock.begin_training()
        for epoch in (1, 2):
            clock.begin_epoch()
            clock.batch(epoch, 0, dict)
            clock.end_epoch(epoch, {})
    epochs = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [(e["epoch"], e["contended"], e["others_cpu_share"]) for e in epochs] == [(1, True, 0.38),
                                                                                       (2, False, 0.02)]


# -- in words --------------------------------------------------------------------------------
def _epochs(shares: list[float | None], steal: float = 0.0) -> list[dict]:
    found = []
    for epoch, share in enumerate(shares, start=1):
        record = {"epoch": epoch, "epoch_time_s": 2.0}
        if share is not None:
            fields = {"others_cpu_share": share, "steal_share": steal}
            reasons = contention.reasons(fields)
            record.update(fields, contended=bool(reasons), contended_by=reasons)
        found.append(record)
    return found


def test_contention_in_words():
    found = words.summary(_epochs([0.5, 0.36, 0.38, 0.40, 0.02]))  # 41%: the mean of 50, 36, 38, 40
    assert found["text"] == ("other processes took 41% of the CPUs during epochs 1–4 "
                             "(3 of 4 steady epochs contended)")
    assert found["contended_epochs"] == [1, 2, 3, 4] and found["steady_contended"] == 3
    assert words.summary(_epochs([0.5, 0.02, 0.03]))["text"] == (
        "other processes took 50% of the CPUs during epoch 1 (0 of 2 steady epochs contended)")
    assert words.summary(_epochs([0.01, 0.02, 0.03]))["text"] == (
        "not contended (other processes took at most 3% of the CPUs)")
    assert "withheld 7% of the CPUs (steal) during epochs 1–2" in words.summary(_epochs([0, 0], 0.07))["text"]


def test_older_logs_read_as_not_recorded():
    found = words.summary(_epochs([None, None, None]))
    assert found["recorded"] is False and found["text"] == "not recorded"
    assert words.group_summary([_epochs([None, None])])["text"] == "not recorded"
    group = words.group_summary([_epochs([0.0, 0.3, 0.4]), _epochs([0.0, 0.01, 0.02]), _epochs([None])])
    assert group["runs_contended"] == 1 and group["text"].startswith("1 of 2 runs had contended steady")
    assert group["text"].endswith("1 runs not recorded")


def test_epoch_ranges():
    assert words.epoch_ranges([3]) == "epoch 3"
    assert words.epoch_ranges([2, 3, 4, 7, 9, 10]) == "epochs 2–4, 7, 9–10"
