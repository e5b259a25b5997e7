"""Live system metrics: a background thread that samples about once a second.

Each sample is one `{"type": "system"}` line in the run's `system.jsonl`:
CPU utilisation of the training process and of the whole machine (percent of
one core and of all cores), process RSS, and, through NVML when a driver is
present, per-GPU utilisation, memory, power and temperature. Without NVML the
GPU fields are simply absent. Where Linux RAPL is readable
(`training/system/power.py`), each sample also carries the CPU packages' energy since
sampling began and their mean power over the last interval. The thread sleeps between samples; one sample
costs well under a millisecond of CPU (see docs/benchmarks.md).

`ContentionMeter` says, per epoch, how much of the machine other processes took
(`training/system/contention.py`: /proc/stat against the worker's own CPU time, steal,
the CPUs' frequency) and, from the samples of a GPU run, who else used its GPUs and
why their clocks slowed (`training/system/nvml.py`). `EpochClock` merges its `lap()`
into each epoch record.
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
from training.system import contention, nvml
from training.system.power import RaplReader

INTERVAL_S = 1.0
log = logging.getLogger(__name__)


class ContentionMeter:
    """Contention fields for each epoch record: one `lap()` per epoch, from the epoch's end.

    A lap covers the time since the previous lap (the first: since the meter was made, just
    before training starts), so it includes the few milliseconds between two epochs. The
    sampler thread hands it what NVML said about the run's GPUs (`observe`), about once a second.

    Args:
        read_times: /proc/stat now (`contention.read_cpu_times`; a test passes recorded ones).
        own_cpu_s: this process's CPU seconds, all threads (`time.process_time`).
        read_mhz: the CPUs' mean frequency now, or None.
        ticks: USER_HZ.
    """

    def __init__(self, read_times=contention.read_cpu_times, own_cpu_s=time.process_time,
                 read_mhz=contention.read_cpu_mhz, ticks: int | None = None):
        self.read_times, self.own_cpu_s, self.read_mhz = read_times, own_cpu_s, read_mhz
        self.ticks = ticks or contention.clock_ticks()
        self._lock = threading.Lock()
        self._gpu: list[dict] = []  # NVML interference entries since the last lap
        self._times, self._own = self.read_times(), self.own_cpu_s()

    def observe(self, gpus: list[dict]) -> None:
        """From the sampler thread: one sample's GPU entries (`nvml.read_interference` fields)."""
        with self._lock:
            self._gpu.extend(gpus)

    def lap(self) -> dict:
        """The fields since the last lap (docs/log-format.md, "Contention"); {} without /proc/stat."""
        times, own = self.read_times(), self.own_cpu_s()
        with self._lock:
            gpu, self._gpu = self._gpu, []
        before, own_before = self._times, self._own
        self._times, self._own = times, own
        fields: dict = {}
        if before is not None and times is not None:
            shares = contention.shares(before, times, own - own_before, self.ticks)
            fields.update({k: v for k, v in shares.items() if k != "steal_share" or v is not None})
        mhz = self.read_mhz()
        if mhz is not None:
            fields["cpu_mhz"] = mhz
        fields.update(gpu_fields(gpu))
        if not fields:
            return {}
        reasons = contention.reasons(fields)
        if fields.get("gpu_other_processes"):
            reasons.append("gpu_others")
        if any(r in nvml.SLOWDOWN_REASONS for r in fields.get("gpu_throttle_reasons", ())):
            reasons.append("gpu_slowdown")
        return {**fields, "contended": bool(reasons), "contended_by": reasons}


def gpu_fields(entries: list[dict]) -> dict:
    """One epoch's GPU interference from its samples: other processes, mean SM clock, reasons seen."""
    if not entries:
        return {}
    others: dict[tuple[int, int], float | None] = {}
    for entry in entries:
        for process in entry.get("other_processes", ()):
            key = (entry["index"], process["pid"])
            memory, before = process.get("memory_mb"), others.get(key)
            others[key] = memory if before is None else before if memory is None else max(before, memory)
    fields: dict = {"gpu_other_processes": [{"gpu": gpu, "pid": pid, "memory_mb": memory}
                                            for (gpu, pid), memory in sorted(others.items())]}
    clocks = [e["sm_clock_mhz"] for e in entries if e.get("sm_clock_mhz") is not None]
    if clocks:
        fields["gpu_sm_clock_mhz"] = round(sum(clocks) / len(clocks), 1)
    seen = {name for e in entries for name in e.get("throttle_reasons", ())}
    if any("throttle_reasons" in e for e in entries):
        fields["gpu_throttle_reasons"] = [n for n in nvml.THROTTLE_BITS.values() if n in seen]
    if not any("other_processes" in e for e in entries):
        del fields["gpu_other_processes"]  # NVML never answered: unknown, not "none"
    return fields


class _GpuReader:
    """Per-GPU samples from an open NVML session (`system.nvml.session`); no session, no GPUs."""

    def __init__(self, pynvml, indices: list[int] | None):
        self.nvml = pynvml
        self.handles = []
        self.unsupported: set[tuple[int, str]] = set()  # (GPU, field) pairs NVML refused once
        self.refused: dict[int, set[str]] = {}  # interference fields each GPU refused once
        self.own_pids = {os.getpid()}
        if pynvml is None:
            return
        count = pynvml.nvmlDeviceGetCount()
        for index in indices if indices is not None else range(count):
            if 0 <= index < count:
                self.handles.append((index, pynvml.nvmlDeviceGetHandleByIndex(index)))

    def sample(self) -> list[dict]:
        gpus = []
        nvml_ = self.nvml
        for index, handle in self.handles:
            entry = {"index": index}
            for key, read in (
                ("util_percent", lambda h: nvml_.nvmlDeviceGetUtilizationRates(h).gpu),
                ("memory_used_mb", lambda h: nvml_.nvmlDeviceGetMemoryInfo(h).used / 2**20),
                ("memory_total_mb", lambda h: nvml_.nvmlDeviceGetMemoryInfo(h).total / 2**20),
                ("power_w", lambda h: nvml_.nvmlDeviceGetPowerUsage(h) / 1000.0),
                ("temperature_c", lambda h: nvml_.nvmlDeviceGetTemperature(h, 0)),
            ):
                if (index, key) in self.unsupported:
                    continue
                try:
                    entry[key] = read(handle)
                except Exception as error:  # NVMLError_NotSupported and kin
                    # A field this GPU does not report stays absent, and is not asked again.
                    log.debug("GPU %d does not report %s: %s", index, key, error)
                    self.unsupported.add((index, key))
            entry.update(nvml.read_interference(nvml_, handle, self.own_pids,
                                                self.refused.setdefault(index, set())))
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
        contention: a `ContentionMeter` to hand each sample's GPU interference to.
    """

    def __init__(self, path: Path, interval_s: float = INTERVAL_S, use_gpus: bool = True,
                 on_error: Callable[[str], None] | None = None, echo: str | None = None,
                 contention: ContentionMeter | None = None):
        self.contention = contention
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
                        if self.contention is not None:
                            self.contention.observe(record["gpus"])
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
