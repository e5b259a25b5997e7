"""Where runs start and how they stop: one small interface, and a launcher per place.

    local.py     LocalLauncher's work: a detached worker on this machine, one run at a time
    cluster.py   RayLauncher: a Ray job on a cluster node (follower.py copies its records home)
    slurm.py     SlurmLauncher: an sbatch job whose worker writes straight into the shared run folder
    sweeps.py    repeats and sweeps: plan (interleaved), refuse a missing GPU, queue as one group

Every launcher returns the same `Run`, whose folder on this machine is the truth,
so the store, the worker and the pages do not care where a run trains.
`launcher_for` picks one from an address; `launcher_of` finds the one that
started an existing run, which can stop it, reattach to it and say where it is.
The pages and the command line reach launchers only through this module.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from training.config import RunConfig
from training.launch import local
from training.launch.local import STOP_GRACE_S  # noqa: F401 - the pages reach it here
from training.store import END_STATES, LOST, Run, RunError, RunStore
from training.system import gpucheck

log = logging.getLogger(__name__)


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

    def stop(self, run: Run, grace: float) -> str | None:
        """Stop the run and wait (about `grace` s, then force); its end status, or None if not yet known."""

    def reattach(self, run: Run) -> str:
        """A run that looks `lost`: pick up whatever keeps it in step again; returns its status."""

    def describe(self, run: Run) -> str:
        """Where the run trained, in a few words ("this machine", "Ray cluster at ...")."""


class LocalLauncher:
    """This machine: `local.launch`, `local.request_stop` and `local.stop`."""

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

    def stop(self, run: Run, grace: float = local.STOP_GRACE_S) -> str | None:
        return local.stop(run, grace)

    def reattach(self, run: Run) -> str:
        return LOST  # a local worker that died cannot be brought back

    def describe(self, run: Run) -> str:
        if run.source == "imported-run":  # a whole run folder from another machine (import-runs)
            return f"imported run from {run.meta.get('imported_from') or 'another machine'}"
        return {"reference": "published run", "imported": "imported log"}.get(run.source, self.where)


def launcher_for(address: str | None = None, slurm: str | None = None, **options) -> Launcher:
    """This machine when `address` and `slurm` are None, the Ray cluster at `address`
    (`RayLauncher` options), or Slurm's partition `slurm` ("" for the default one;
    `SlurmLauncher` options)."""
    if slurm is not None:
        from training.launch.slurm import SlurmLauncher

        return SlurmLauncher(slurm or None, **options)
    if not address:
        return LocalLauncher()
    from training.launch.cluster import RayLauncher

    return RayLauncher(address, **options)


def launcher_of(run: Run) -> Launcher:
    """The launcher that started `run`: the one that can stop it and say where it is."""
    if run.source != "local":  # published, imported: nothing here started it or can stop it
        return LocalLauncher()
    if run.meta.get("slurm"):
        from training.launch.slurm import launcher_of_run

        return launcher_of_run(run)
    return launcher_for((run.meta.get("cluster") or {}).get("address"))


def launch_pair(launcher: Launcher, store: RunStore, config: RunConfig) -> list[Run]:
    """CPU then GPU with the same settings, wherever the launcher starts runs."""
    return [launcher.launch(store, local.paired(config, device)) for device in ("cpu", "gpu")]


def request_stop(run: Run) -> None:
    """Stop any run without waiting, through the launcher that started it."""
    launcher_of(run).request_stop(run)


def describe(run: Run) -> str:
    """Where `run` trained, through the launcher that started it."""
    return launcher_of(run).describe(run)


RECONCILE_S = 10.0  # a run that looks lost is asked of its launcher at most this often (per process)
_asked: dict[tuple[str, str], tuple[float, str]] = {}  # (runs folder, run id) -> (monotonic time, status)


def reconcile(runs: list[Run], statuses: dict[str, str], max_age_s: float = RECONCILE_S) -> dict[str, str]:
    """The one step that writes what launchers know and the folders cannot; the statuses, updated.

    Reading a status never writes (`Run.status`); this step does, and only for runs that
    look `lost`: a cluster run whose follower died gets a new one (it re-syncs), and every
    Slurm run is settled from one `squeue` call for all of them (a pending job is `queued`,
    a running one `running`, an ended one gets its end record with Slurm's cause). A run
    asked about less than `max_age_s` ago keeps the answer it got then, so a page that
    refreshes every second asks Slurm at most every 10 s. The pages (`dashboard.state.statuses`),
    `list`, `delete` and a followed run call it. Nothing is asked on a read-only runs folder.
    """
    statuses = dict(statuses)
    now = time.monotonic()
    due = []
    for run in runs:
        if statuses.get(run.id) != LOST:
            continue
        asked = _asked.get((str(run.store.root), run.id))
        if asked and now - asked[0] < max_age_s:
            statuses[run.id] = asked[1]
        elif not run.store.read_only_reason():
            due.append(run)
    slurm_runs = [run for run in due if run.source == "local" and run.meta.get("slurm")]
    found = {}
    if slurm_runs:
        from training.launch import slurm

        try:
            found.update(slurm.reconcile(slurm_runs))
        except RunError as error:  # squeue missing or slow: say `lost` now, ask again next time
            log.debug("Slurm could not be asked about %d runs: %s", len(slurm_runs), error)
    for run in (run for run in due if run not in slurm_runs):
        try:
            found[run.id] = launcher_of(run).reattach(run)
        except RunError as error:
            log.debug("run %s: its launcher could not be asked: %s", run.id, error)
    for run in due:
        _asked[(str(run.store.root), run.id)] = (now, found.get(run.id, LOST))
    return {**statuses, **found}


def reattach(runs: list[Run], statuses: dict[str, str]) -> dict[str, str]:
    """`reconcile` without its cache: every `lost` run's launcher is asked now."""
    return reconcile(runs, statuses, max_age_s=0)


def current_status(run: Run) -> str:
    """The run's status, asking its launcher when it looks `lost` (a Slurm job still pending)."""
    return reconcile([run], {run.id: run.status()})[run.id]


def slurm_partitions() -> list[dict]:
    """Slurm's partitions (sinfo): name, default?, nodes with CPUs, GRES, GPUs and state.

    Raises RunError when Slurm is not installed here or does not answer."""
    from training.launch.slurm import partitions

    return partitions()


def slurm_available() -> bool:
    """Whether `sinfo` is installed here and answers: the Train page then offers Slurm."""
    from training.launch.slurm import available

    return available()


def slurm_name(partition: str) -> str:
    """How the Train page names a Slurm partition: "Slurm partition debug"."""
    return f"Slurm partition {partition}"


def queued_note(run: Run) -> str:
    """What a queued run waits for: this machine's queue, or its cluster's scheduler."""
    if run.meta.get("slurm") or run.meta.get("cluster"):
        return f"waiting for its node: {describe(run)}"
    return "starts when no other run is training (fair timing)"


def cluster_nodes(address: str) -> list[dict]:
    """The live nodes of the Ray cluster at `address`: name, CPUs, GPUs and GPU models."""
    from training.launch.cluster import nodes

    return nodes(address)


def cluster_name(address: str) -> str:
    """How the Train page names a Ray cluster: "Ray cluster at http://host:8265"."""
    from training.launch.cluster import normalise_address

    return f"Ray cluster at {normalise_address(address)}"


def wait_for_end(run: Run, timeout: float) -> str | None:
    """The run's end status once it has one, or None after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (status := run.status()) in END_STATES:
            return status
        time.sleep(0.2)
    return None
