"""Live system metrics: a background thread that samples about once a second.

Each sample is one `{"type": "system"}` line in the run's `system.jsonl`:
CPU utilisation of the training process and of the whole machine (percent of
one core and of all cores), process RSS, and, through NVML when a driver is
present, per-GPU utilisation, memory, power and temperature. Without NVML the
GPU fields are simply absent. Where Linux RAPL is readable
(`training/system/power.py`), each sample also carries the CPU packages' energy since
sampling began and their mean power over the last interval. The thread sleeps between samples; one sample
costs well under a millisecond of CPU (see docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from training.store.logwriter import LogWriteError, LogWriter
from training.system import nvml
from training.system.power import RaplReader

INTERVAL_S = 1.0
log = logging.getLogger(__name__)


class _GpuReader:
    """Per-GPU samples from an open NVML session (`system.nvml.session`); no session, no GPUs."""

    def __init__(self, pynvml, indices: list[int] | None):
        self.nvml = pynvml
        self.handles = []
        self.unsupported: set[tuple[int, str]] = set()  # (GPU, field) pairs NVML refused once
        if pynvml is None:
            return
        count = pynvml.nvmlDeviceGetCount()
        for index in indices if indices is not None else range(count):
            if 0 <= index < count:
                self.handles.append((index, pynvml.nvmlDeviceGetHandleByIndex(index)))

    def sample(self) -> list[dict]:
        gpus = []
        nvml = self.nvml
        for index, handle in self.handles:
            entry = {"index": index}
            for key, read in (
                ("util_percent", lambda h: nvml.nvmlDeviceGetUtilizationRates(h).gpu),
                ("memory_used_mb", lambda h: nvml.nvmlDeviceGetMemoryInfo(h).used / 2**20),
                ("memory_total_mb", lambda h: nvml.nvmlDeviceGetMemoryInfo(h).total / 2**20),
                ("power_w", lambda h: nvml.nvmlDeviceGetPowerUsage(h) / 1000.0),
                ("temperature_c", lambda h: nvml.nvmlDeviceGetTemperature(h, 0)),
            ):
                if (index, key) in self.unsupported:
                    continue
                try:
                    entry[key] = read(handle)
                except Exception as error:  # NVMLError_NotSupported and kin
                    # A field this GPU does not report stays absent, and is not asked again.
                    log.debug("GPU %d does not report %s: %s", index, key, error)
                    self.unsupported.add((index, key))
            gpus.append(entry)
        return gpus


def visible_gpu_indices() -> list[int] | None:
    """The GPUs this process may use, from CUDA_VISIBLE_DEVICES; None = all."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    return [int(part) for part in value.split(",") if part.strip().isdigit()]


class SystemSampler:
    """Samples in a daemon thread until `stop()`; use as a context manager.

    Args:
        path: the run's system.jsonl.
        interval_s: seconds between samples.
        use_gpus: also sample the GPUs through NVML.
        on_error: called once, from the sampling thread, with a sentence, if
            system.jsonl cannot be written (a full disk); sampling then stops and
            training goes on.
        echo: also print each sample on stdout under this tag (a cluster worker).
    """

    def __init__(self, path: Path, interval_s: float = INTERVAL_S, use_gpus: bool = True,
                 on_error: Callable[[str], None] | None = None, echo: str | None = None):
        self.path = path
        self.interval_s = interval_s
        self.use_gpus = use_gpus
        self.on_error = on_error
        self.echo = echo
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="system-sampler", daemon=True)

    def __enter__(self) -> SystemSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        me = psutil.Process()
        me.cpu_percent(None)  # the first call only sets the baseline
        psutil.cpu_percent(None)
        with nvml.session() if self.use_gpus else contextlib.nullcontext() as pynvml:
            self._sample(me, _GpuReader(pynvml, visible_gpu_indices()))

    def _sample(self, me: psutil.Process, gpus: _GpuReader) -> None:
        rapl = RaplReader()
        start = last = time.monotonic()
        last_joules = 0.0
        try:
            with LogWriter(self.path, numbered=True, echo=self.echo) as writer:
                while not self._stop.wait(self.interval_s):
                    record = {
                        "type": "system",
                        "elapsed_s": round(time.monotonic() - start, 3),
                        "process_cpu_percent": me.cpu_percent(None),  # 100 = one full core
                        "system_cpu_percent": psutil.cpu_percent(None),  # 100 = every core
                        "rss_mb": round(me.memory_info().rss / 2**20, 1),
                    }
                    if gpus.handles:
                        record["gpus"] = gpus.sample()
                    joules = rapl.read()
                    if joules is not None:  # J since sampling began, and W over the last interval
                        now = time.monotonic()
                        record["cpu_energy_j"] = round(joules, 3)
                        record["cpu_power_w"] = round((joules - last_joules) / max(now - last, 1e-6), 2)
                        last, last_joules = now, joules
                    writer.write(record)
        except LogWriteError as error:  # a full disk must not end the training it measures
            log.debug("system sampler stopped: %s", error)
            if self.on_error:
                self.on_error(f"system metrics are no longer sampled: {error.describe()}")
