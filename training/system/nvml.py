"""The one way into NVML (`nvidia-ml-py`), and whether the environment hides the GPUs.

`session()` opens NVML and always closes it; it yields None, with the reason
logged at debug level, when there is no driver or no `pynvml`. Every reader of
GPU facts (hardware.py, the system sampler) goes through it, so no caller
repeats the init-shutdown dance or its error handling.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

log = logging.getLogger(__name__)

HIDING_VALUES = ("", "-1")  # CUDA_VISIBLE_DEVICES values that hide every GPU


def gpus_hidden(env=None) -> str | None:
    """The CUDA_VISIBLE_DEVICES value when it hides every GPU ("" or "-1"), else None."""
    value = (os.environ if env is None else env).get("CUDA_VISIBLE_DEVICES")
    return value if value in HIDING_VALUES else None


@contextlib.contextmanager
def session(errors: list[str] | None = None) -> Iterator:
    """`pynvml`, initialised, for the duration of the block; None without a driver.

    Args:
        errors: if given, why NVML could not start is appended to it (`doctor` shows it).
    """
    try:
        import pynvml  # from nvidia-ml-py
        pynvml.nvmlInit()
    except Exception as error:  # ImportError, or NVMLError_LibraryNotFound / DriverNotLoaded
        log.debug("NVML unavailable: %s", error)
        if errors is not None:
            errors.append(str(error) or type(error).__name__)
        yield None
        return
    try:
        yield pynvml
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception as error:
            log.debug("nvmlShutdown failed: %s", error)


def text(value) -> str:
    """NVML returns bytes from older bindings and str from newer ones."""
    return value if isinstance(value, str) else value.decode()


# -- what slows a GPU down from outside the run: other processes, clocks, throttle reasons --------
# nvmlClocksEventReasons / nvmlClocksThrottleReasons bits (nvml.h; the names are ours, the bits NVIDIA's).
THROTTLE_BITS = {0x1: "gpu_idle", 0x2: "applications_clocks", 0x4: "sw_power_cap", 0x8: "hw_slowdown",
                 0x10: "sync_boost", 0x20: "sw_thermal", 0x40: "hw_thermal", 0x80: "hw_power_brake",
                 0x100: "display_clocks", 0x200: "board_limit", 0x400: "reliability"}
# The reasons that slow a run for causes outside it (heat, the board's power brake, an external
# slowdown signal). Not sw_power_cap: a GPU at full load normally runs at its power limit, which is
# that device's speed, not interference; not gpu_idle (between epochs), nor clock settings.
SLOWDOWN_REASONS = ("hw_slowdown", "sw_thermal", "hw_thermal", "hw_power_brake")
NVML_CLOCK_SM = 1  # nvmlClockType_t: NVML_CLOCK_GRAPHICS 0, NVML_CLOCK_SM 1, NVML_CLOCK_MEM 2


def throttle_names(mask: int) -> list[str]:
    """The names of the set bits of a clocks-event (throttle) reasons mask, lowest bit first."""
    return [name for bit, name in THROTTLE_BITS.items() if mask & bit]


def _throttle_mask(pynvml, handle) -> int:
    """NVML ≥ 12.535 calls it ClocksEventReasons; older bindings only have ClocksThrottleReasons."""
    read = (getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
            or pynvml.nvmlDeviceGetCurrentClocksThrottleReasons)
    return int(read(handle))


def _other_processes(pynvml, handle, own_pids: set[int]) -> list[dict]:
    """Compute processes on this GPU that are not the run's own, with their memory in MiB."""
    found = []
    for process in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
        if process.pid in own_pids:
            continue
        used = getattr(process, "usedGpuMemory", None)  # None where the driver does not say (no root, MIG)
        found.append({"pid": int(process.pid),
                      "memory_mb": None if used is None else round(used / 2**20, 1)})
    return found


def read_interference(pynvml, handle, own_pids: set[int], skip: set[str] | None = None) -> dict:
    """What else is happening to one GPU: `other_processes`, `sm_clock_mhz`, `throttle_reasons`.

    Args:
        pynvml: an open `session()`.
        handle: the GPU's NVML handle.
        own_pids: the run's own process ids (its worker), which are not "other".
        skip: fields this GPU refused before; a field NVML refuses now is added to it and left out.
    """
    skip = set() if skip is None else skip
    entry: dict = {}
    for key, read in (("other_processes", lambda: _other_processes(pynvml, handle, own_pids)),
                      ("sm_clock_mhz", lambda: int(pynvml.nvmlDeviceGetClockInfo(handle, NVML_CLOCK_SM))),
                      ("throttle_reasons", lambda: throttle_names(_throttle_mask(pynvml, handle)))):
        if key in skip:
            continue
        try:
            entry[key] = read()
        except Exception as error:  # NVMLError_NotSupported / NoPermission, or an old binding
            log.debug("GPU does not report %s: %s", key, error)
            skip.add(key)
    return entry
