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
