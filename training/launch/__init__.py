"""Where runs start and how they stop: one small interface, two launchers.

    local.py     LocalLauncher: a detached worker on this machine, one run at a time
    cluster.py   RayLauncher: a Ray job on a cluster node (follower.py copies its records home)

Both return the same `Run`, whose folder on this machine is the truth either
way, so the store, the worker and the pages do not care where a run trains.
`launcher_for` picks one from an address; `launcher_of` finds the one that
started an existing run (to stop it).
"""

from __future__ import annotations

from typing import Protocol

from training import gpucheck
from training.config import RunConfig
from training.launch import local
from training.store.runs import Run, RunStore


class Launcher(Protocol):
    """What the CLI and the Train page need of a launcher."""

    @property
    def where(self) -> str: ...

    def check(self, configs: list[RunConfig]) -> str | None:
        """Why these runs could never start here (a GPU nobody has), or None."""

    def launch(self, store: RunStore, config: RunConfig, **extra) -> Run:
        """Create the run folder (with `extra` in its config.json) and start it; returns at once."""

    def request_stop(self, run: Run) -> None:
        """Ask the run to stop without waiting; raises RunError if it already ended."""


class LocalLauncher:
    """This machine: `local.launch` and `local.request_stop`."""

    where = "this machine"

    def check(self, configs: list[RunConfig]) -> str | None:
        """A GPU run needs NVML to see a GPU and the backend to use it (gpucheck's probe)."""
        for backend in sorted({c.backend for c in configs if c.device == "gpu"}):
            available, reason = gpucheck.availability(backend)
            if not available:
                return f"--device gpu with {backend}: {reason}"
        return None

    def launch(self, store: RunStore, config: RunConfig, **extra) -> Run:
        return local.launch(store, config, **extra)

    def request_stop(self, run: Run) -> None:
        local.request_stop(run)


def launcher_for(address: str | None = None, **options) -> Launcher:
    """This machine when `address` is empty, else the Ray cluster there (`RayLauncher` options)."""
    if not address:
        return LocalLauncher()
    from training.launch.cluster import RayLauncher

    return RayLauncher(address, **options)


def launcher_of(run: Run) -> Launcher:
    """The launcher that started `run`: the one that can stop it."""
    return launcher_for((run.meta.get("cluster") or {}).get("address"))


def launch_pair(launcher: Launcher, store: RunStore, config: RunConfig) -> list[Run]:
    """CPU then GPU with the same settings, wherever the launcher starts runs."""
    return [launcher.launch(store, local.paired(config, device)) for device in ("cpu", "gpu")]


def request_stop(run: Run) -> None:
    """Stop any run without waiting, through the launcher that started it."""
    launcher_of(run).request_stop(run)
