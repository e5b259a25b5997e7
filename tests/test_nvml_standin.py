"""GPU telemetry and detection against a stand-in NVML.

This machine has no NVIDIA GPU or driver, so these tests put a fake `pynvml`
module in `sys.modules`: the one mock in the suite, standing in for the driver
that cannot run here. It checks our use of NVML (which GPUs, which fields,
what happens when a field is unsupported), not NVML itself.
"""

from __future__ import annotations

import json
import sys
import time
import types

import pytest

from training.system import hardware
from training.worker import sampler


class FakeNvmlError(Exception):
    pass


def fake_pynvml(count: int = 2, power_supported: bool = True) -> types.ModuleType:
    module = types.ModuleType("pynvml")
    module.nvmlInit = lambda: None
    module.nvmlShutdown = lambda: None
    module.nvmlDeviceGetCount = lambda: count
    module.nvmlDeviceGetHandleByIndex = lambda i: i
    module.nvmlDeviceGetName = lambda h: f"NVIDIA H100 #{h}"
    module.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=90 + h)
    module.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=2 * 2**30, total=80 * 2**30)
    module.nvmlDeviceGetTemperature = lambda h, sensor: 50

    def power(handle):
        if not power_supported:
            raise FakeNvmlError("Not Supported")
        return 250_000  # milliwatts

    module.nvmlDeviceGetPowerUsage = power
    return module


@pytest.fixture
def nvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    hardware.gpu_availability.cache_clear()
    yield
    hardware.gpu_availability.cache_clear()


def test_gpu_buttons_would_be_enabled_with_names(nvml, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    available, reason = hardware.gpu_availability()
    assert available and "2 GPU(s)" in reason and "NVIDIA H100 #1" in reason


def test_hidden_gpus_disable_the_buttons(nvml, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert hardware.gpu_availability() == (False, "CUDA_VISIBLE_DEVICES hides every GPU from this dashboard")


def test_sampler_records_only_the_visible_gpus(nvml, monkeypatch, tmp_path):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    path = tmp_path / "system.jsonl"
    with sampler.SystemSampler(path, interval_s=0.05):
        time.sleep(0.3)
    samples = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(samples) >= 2
    [gpu] = samples[0]["gpus"]
    assert gpu == {"index": 1, "util_percent": 91, "memory_used_mb": 2048.0, "memory_total_mb": 81920.0,
                   "power_w": 250.0, "temperature_c": 50}


def test_unsupported_field_is_absent_not_fatal(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(count=1, power_supported=False))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    path = tmp_path / "system.jsonl"
    with sampler.SystemSampler(path, interval_s=0.05):
        time.sleep(0.2)
    gpu = json.loads(path.read_text().splitlines()[0])["gpus"][0]
    assert "power_w" not in gpu and gpu["util_percent"] == 90


def test_cpu_run_sampler_never_touches_nvml(nvml, tmp_path):
    path = tmp_path / "system.jsonl"
    with sampler.SystemSampler(path, interval_s=0.05, use_gpus=False):
        time.sleep(0.2)
    assert all("gpus" not in json.loads(line) for line in path.read_text().splitlines())
