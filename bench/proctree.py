"""CPU-seconds of a changing set of processes over a time window, by sampling (bench helper).

A process tree changes while it is watched: Chromium starts and ends renderers, the
dashboard starts helpers. `TreeMeter` keeps each process (pid *and* start time, since the
kernel reuses pids) at its last sighting, so one that has ended keeps what it used; the
total over all of them is then a non-decreasing curve of (time, CPU-seconds), and the
CPU-seconds in a window are its rise between the window's ends, read by linear
interpolation between samples. Lost: what a process used between its last sighting and
its end, at most one sampling period of it.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable

import psutil


class TreeMeter:
    """The running CPU-seconds total of every process ever seen, one sample at a time."""

    def __init__(self) -> None:
        self.last: dict[tuple[int, float], float] = {}  # (pid, create_time) -> user + system s
        self.samples: list[tuple[float, float]] = []  # (time.time(), total CPU-seconds)

    def take(self, now: float, usage: dict[tuple[int, float], float]) -> float:
        for key, seconds in usage.items():
            self.last[key] = max(seconds, self.last.get(key, 0.0))  # CPU time never goes back
        total = sum(self.last.values())
        self.samples.append((now, total))
        return total


def total_at(samples: list[tuple[float, float]], when: float) -> float:
    """The running total at `when`, interpolated; clamped to the first and last samples."""
    if not samples:
        raise ValueError("no samples taken")
    times = [t for t, _ in samples]
    i = bisect.bisect_left(times, when)
    if i == 0:
        return samples[0][1]
    if i == len(samples):
        return samples[-1][1]
    (t0, v0), (t1, v1) = samples[i - 1], samples[i]
    return v0 + (v1 - v0) * (when - t0) / (t1 - t0) if t1 > t0 else v1


def cpu_seconds(samples: list[tuple[float, float]], start: float, end: float) -> float:
    """CPU-seconds the processes used between `start` and `end` (time.time() seconds)."""
    if not samples or samples[0][0] > start or samples[-1][0] < end:
        raise ValueError("the samples do not cover the window")
    return total_at(samples, end) - total_at(samples, start)


def usage_of(processes: list[psutil.Process]) -> dict[tuple[int, float], float]:
    """{(pid, create_time): user + system CPU-seconds} of those still alive."""
    usage = {}
    for process in processes:
        try:
            with process.oneshot():
                times = process.cpu_times()
                usage[(process.pid, process.create_time())] = times.user + times.system
        except psutil.Error:
            pass  # ended since it was listed: it keeps its last sighting
    return usage


def tree(root: psutil.Process | None) -> list[psutil.Process]:
    """`root` and all its descendants (empty if it has ended or is None)."""
    if root is None:
        return []
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


class Sampler(threading.Thread):
    """Samples each named group of processes every `period` seconds into its own TreeMeter."""

    def __init__(self, groups: dict[str, Callable[[], list[psutil.Process]]], period: float = 0.25):
        super().__init__(daemon=True)
        self.groups = groups
        self.meters = {name: TreeMeter() for name in groups}
        self.period = period
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.sample()
            self.stopping.wait(self.period)
        self.sample()

    def sample(self) -> None:
        for name, processes in self.groups.items():
            usage = usage_of(processes())
            self.meters[name].take(time.time(), usage)

    def stop(self) -> None:
        self.stopping.set()
        self.join()
