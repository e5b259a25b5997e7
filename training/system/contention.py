"""How much of the machine other processes took while a run trained: /proc/stat maths and readers.

The kernel's first `/proc/stat` line sums every CPU's time since boot, in clock ticks
(`USER_HZ`, `os.sysconf("SC_CLK_TCK")`, 100 on Linux) and in these columns:

    cpu  user nice system idle iowait irq softirq steal guest guest_nice

`guest` and `guest_nice` are already inside `user` and `nice`, so they are not added.
Between two readings the columns' deltas add up to (number of CPUs × wall seconds ×
USER_HZ): the machine's whole CPU capacity over the interval. Of it,

    busy    = user + nice + system + irq + softirq        (someone ran)
    steal   = what the hypervisor gave to other guests    (we were runnable, no CPU ran us)
    own     = the worker's CPU seconds (`time.process_time()`: all its threads) × USER_HZ
    others  = busy − own, never below 0

and the shares are those over the capacity: "other processes took 38% of the CPUs" means
38% of all the CPUs' time in the interval. `iowait` counts as idle (the CPU was free).
Steal exists only where the kernel reports the column (Linux ≥ 2.6.11; 0 on bare metal).

An interval is *contended* when others took at least `THRESHOLD["others_cpu_share"]` of the
CPUs or steal reached `THRESHOLD["steal_share"]` (`reasons`); GPU reasons (another process
on the run's GPU, a thermal or hardware clock slowdown) are added by the sampler's NVML
readings (`training/system/nvml.py`). Pure functions plus two tiny file readers; no framework.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# When an epoch counts as contended: the one place these numbers live (docs/log-format.md).
# 10% of the CPUs is a fifth of one core on this 2-core machine taken from a run that wants
# them all, about what the ±7% noise of docs/benchmarks.md cannot hide; 5% steal is
# where cloud providers' own guidance starts to call a VM's neighbours noisy.
THRESHOLD = {"others_cpu_share": 0.10, "steal_share": 0.05}

PROC_STAT = Path("/proc/stat")
CPU_ROOT = Path("/sys/devices/system/cpu")
CPUINFO = Path("/proc/cpuinfo")
BUSY_COLUMNS = ("user", "nice", "system", "irq", "softirq")
COLUMNS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


@dataclass(frozen=True)
class CpuTimes:
    """The all-CPUs line of /proc/stat, in clock ticks; `steal` None where the kernel has no column."""

    user: int
    nice: int
    system: int
    idle: int
    iowait: int
    irq: int
    softirq: int
    steal: int | None

    @property
    def busy(self) -> int:
        return sum(getattr(self, name) for name in BUSY_COLUMNS)

    @property
    def total(self) -> int:
        return self.busy + self.idle + self.iowait + (self.steal or 0)


def parse_proc_stat(text: str) -> CpuTimes:
    """The aggregate `cpu ` line of /proc/stat's text; ValueError if there is none."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            values = [int(v) for v in fields[1:9]]
            if len(values) < 4:
                raise ValueError(f"/proc/stat cpu line has {len(values)} columns, need at least 4")
            steal = values[7] if len(values) > 7 else None  # before Linux 2.6.11: no steal column
            values = (values + [0, 0, 0])[:7]  # before 2.6: no iowait, irq, softirq
            return CpuTimes(*values, steal=steal)
    raise ValueError("/proc/stat has no aggregate 'cpu' line")


def read_cpu_times(path: Path = PROC_STAT) -> CpuTimes | None:
    """/proc/stat now; None where it cannot be read (not Linux)."""
    try:
        return parse_proc_stat(path.read_text())
    except (OSError, ValueError) as error:
        log.debug("no CPU times from %s: %s", path, error)
        return None


def clock_ticks() -> int:
    """USER_HZ: /proc/stat's ticks per second."""
    try:
        return os.sysconf("SC_CLK_TCK")
    except (AttributeError, ValueError, OSError):
        return 100


def shares(before: CpuTimes, after: CpuTimes, own_cpu_s: float, ticks: int) -> dict:
    """Who used the machine's CPU time between two readings, as shares of all CPUs' time.

    Args:
        before, after: /proc/stat readings at the interval's ends.
        own_cpu_s: the worker's CPU seconds in the same interval (all its threads).
        ticks: USER_HZ (`clock_ticks()`).
    Returns:
        `others_cpu_share`, `own_cpu_share` and `steal_share` (None without the column),
        each in [0, 1]; all None when the interval is empty (no tick passed).
    """
    capacity = after.total - before.total
    if capacity <= 0:
        return {"others_cpu_share": None, "own_cpu_share": None, "steal_share": None}
    busy = after.busy - before.busy
    own = own_cpu_s * ticks
    # Ticks are sampled, process_time is exact: clamp so rounding never gives a negative share.
    others = min(max(busy - own, 0.0), capacity)
    steal = None if before.steal is None or after.steal is None else after.steal - before.steal
    return {"others_cpu_share": round(others / capacity, 4),
            "own_cpu_share": round(min(own / capacity, 1.0), 4),
            "steal_share": None if steal is None else round(max(steal, 0) / capacity, 4)}


def reasons(fields: dict, threshold: dict = THRESHOLD) -> list[str]:
    """Which CPU thresholds an interval's `shares` crossed: "others_cpu", "steal" (empty: none)."""
    found = []
    if (fields.get("others_cpu_share") or 0) >= threshold["others_cpu_share"]:
        found.append("others_cpu")
    if (fields.get("steal_share") or 0) >= threshold["steal_share"]:
        found.append("steal")
    return found


# -- CPU frequency ------------------------------------------------------------------------
def mean_mhz_from_scaling(khz_values: list[str]) -> float | None:
    """Mean MHz of the `scaling_cur_freq` files' texts (kHz); None if none parse."""
    values = []
    for text in khz_values:
        try:
            values.append(int(text.strip()) / 1000.0)
        except ValueError:
            continue
    return round(sum(values) / len(values), 1) if values else None


def mean_mhz_from_cpuinfo(text: str) -> float | None:
    """Mean of /proc/cpuinfo's `cpu MHz` lines (what a VM without cpufreq still reports)."""
    values = []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "cpu MHz":
            try:
                values.append(float(value))
            except ValueError:
                continue
    return round(sum(values) / len(values), 1) if values else None


def read_cpu_mhz(cpu_root: Path = CPU_ROOT, cpuinfo: Path = CPUINFO) -> float | None:
    """The CPUs' mean current frequency, MHz: cpufreq where the kernel has it, else /proc/cpuinfo."""
    texts = []
    for path in sorted(cpu_root.glob("cpu[0-9]*/cpufreq/scaling_cur_freq")):
        try:
            texts.append(path.read_text())
        except OSError:
            continue
    found = mean_mhz_from_scaling(texts)
    if found is not None:
        return found
    try:
        return mean_mhz_from_cpuinfo(cpuinfo.read_text())
    except OSError as error:
        log.debug("no CPU frequency: %s", error)
        return None
