"""Groups of runs: N repeats of one configuration, or a sweep over several, by a shared id.

A group is not a folder. Each of its runs is an ordinary run whose config.json
carries, beside the settings, `group` (the id, "g-" then a run-id-like stamp),
`group_kind` ("repeats" or "sweep"), `group_name` and `repeat` (0-based).
Queueing goes through a launcher (this machine's by default), so local runs wait in
the ordinary one-at-a-time queue and start in creation order; on a Ray cluster, Ray
schedules them. A sweep is created interleaved
(every configuration once, then again, repeat by repeat), so slow drift of a
shared machine spreads over all configurations instead of biasing the last one.

A *cell* is the runs of one group with the same swept settings: what a median
and a min-max band are taken over. Framework-free; the GPU check is NVML's and
the backend probe's (`training/gpucheck.py`).
"""

from __future__ import annotations

import dataclasses
import itertools
import statistics

from training import comparison
from training.config import ConfigError, RunConfig, make_config
from training.launch import Launcher, launcher_for
from training.store.runs import Run, RunError, RunNotFound, RunStore, new_run_id

GROUP_PREFIX = "g-"  # run ids start with a digit and reference runs with "ref-": no clash
MAX_REPEATS = 50
SWEEP_FIELDS = ("device", "backend", "batch_size", "precision", "threads")
# The time estimate's guess when no past run has the same settings (docs/benchmarks.md):
# a 2-vCPU VM trains 3,000-4,500 MNIST images/s with this CNN; a current GPU 30,000 or more.
ROUGH_SAMPLES_PER_S = {"cpu": 3_000.0, "gpu": 30_000.0}
STARTUP_S = 15.0  # per run: importing the backend, loading MNIST, building the model


def new_group_id() -> str:
    return GROUP_PREFIX + new_run_id()


def is_group_id(text: str) -> bool:
    return text.startswith(GROUP_PREFIX)


def check_repeats(repeats: int) -> None:
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= MAX_REPEATS:
        raise ConfigError("repeats", f"must be from 1 to {MAX_REPEATS}, got {repeats!r}")


def sweep_key(config: dict) -> tuple:
    """The swept settings of a run's config dict: runs with the same key are one cell."""
    return tuple(config.get(name) for name in SWEEP_FIELDS)


def _sweep_name(base: RunConfig, config: RunConfig, varied: list[str]) -> str:
    """A name that tells a sweep's configurations apart: the user's name plus what varies."""
    short = {"device": lambda v: v.upper(), "backend": str, "batch_size": lambda v: f"batch {v}",
             "precision": str, "threads": lambda v: f"{v or 'all'} threads"}
    parts = [short[name](getattr(config, name)) for name in varied]
    return " · ".join([base.name, *parts] if base.name else parts)[:100]


def plan(base: RunConfig, values: dict[str, list] | None = None,
         repeats: int = 1) -> list[tuple[int, RunConfig]]:
    """(repeat, config) in queue order: the product of `values`, round-robin, repeat by repeat.

    Args:
        base: the settings every run shares.
        values: for some of SWEEP_FIELDS, the values to try; others keep `base`'s.
        repeats: runs of each configuration (1 to 50).
    Raises `ConfigError` naming the field for a bad value, before anything is made.
    """
    check_repeats(repeats)
    values = {k: list(dict.fromkeys(v)) for k, v in (values or {}).items() if v}  # no duplicates
    for name in values:
        if name not in SWEEP_FIELDS:
            raise ConfigError(name, f"cannot be swept; sweep one of {', '.join(SWEEP_FIELDS)}")
    varied = [name for name in SWEEP_FIELDS if len(values.get(name, [])) > 1]
    combos = []
    for combo in itertools.product(*(values.get(name, [getattr(base, name)]) for name in SWEEP_FIELDS)):
        config = make_config(**{**base.to_dict(), **dict(zip(SWEEP_FIELDS, combo))})
        if varied:
            config = dataclasses.replace(config, name=_sweep_name(base, config, varied))
        combos.append(config)
    return [(repeat, config) for repeat in range(repeats) for config in combos]


def device_problem(configs: list[RunConfig], launcher: Launcher | None = None) -> str | None:
    """Why a GPU the configs ask for is missing where they would run, or None."""
    return (launcher or launcher_for(None)).check(configs)


def queue(store: RunStore, planned: list[tuple[int, RunConfig]], kind: str,
          name: str = "", launcher: Launcher | None = None) -> tuple[str, list[Run]]:
    """Queue every planned run, detached, as one group; returns (group id, runs in queue order).

    `launcher` is where they run: this machine by default, or a Ray cluster.
    Refused with `RunError` before anything is written when a GPU is asked for and
    missing, or the runs folder cannot take runs; `ConfigError` for concurrent runs,
    whose timings would compete.
    """
    launcher = launcher or launcher_for(None)
    configs = [config for _, config in planned]
    if any(config.concurrent for config in configs):
        raise ConfigError("concurrent", "a group's runs queue one at a time so their timings are fair")
    if problem := launcher.check(configs):
        raise RunError(f"nothing queued: {problem}")
    if problem := store.start_problem():
        raise RunError(f"nothing queued: {problem}")
    group = new_group_id()
    runs = [launcher.launch(store, config, group=group, group_kind=kind, group_name=name, repeat=repeat,
                            group_size=len(planned))
            for repeat, config in planned]
    return group, runs


def groups(store: RunStore) -> dict[str, list[Run]]:
    """Every group's runs, oldest first, by group id."""
    found: dict[str, list[Run]] = {}
    for run in store.runs():
        if group := run.meta.get("group"):
            found.setdefault(group, []).append(run)
    return found


def members(store: RunStore, group_id: str) -> list[Run]:
    """The runs of one group, in queue order; `RunNotFound` if there are none."""
    runs = groups(store).get(group_id)
    if not runs:
        raise RunNotFound(f"no group {group_id!r} in {store.root}")
    return runs


def resolve(store: RunStore, ids: list[str]) -> list[Run]:
    """Runs for a mix of run ids and group ids, each once, in the order given."""
    found: dict[str, Run] = {}
    for item in ids:
        for run in members(store, item) if is_group_id(item) else [store.open(item)]:
            found.setdefault(run.id, run)
    return list(found.values())


def cell_key(meta: dict, run_id: str) -> tuple:
    """Runs with the same key form one cell: a group's runs with the same swept settings."""
    group = meta.get("group")
    return (group, *sweep_key(meta.get("config") or {})) if group else (run_id,)


def cells(runs: list[Run]) -> list[list[Run]]:
    """Runs split into cells, in first-seen order; a run outside any group is a cell alone."""
    found: dict[tuple, list[Run]] = {}
    for run in runs:
        found.setdefault(cell_key(run.meta, run.id), []).append(run)
    return list(found.values())


def estimate(store: RunStore, configs: list[RunConfig]) -> tuple[float, str]:
    """Rough seconds to train `configs` one after another, and what the figure rests on.

    From past local runs with the same swept settings: their steady-state epoch time per
    training image, times this run's images and epochs; otherwise ROUGH_SAMPLES_PER_S.
    Each run also pays STARTUP_S.
    """
    wanted = {sweep_key(c.to_dict()) for c in configs}
    seconds_per_image: dict[tuple, list[float]] = {}
    for run in store.runs():
        config = run.meta.get("config") or {}
        key = sweep_key(config)
        if run.source != "local" or key not in wanted:
            continue
        steady = comparison.steady_epoch_s(run.log().epochs)
        if steady and run.meta.get("train_samples"):
            seconds_per_image.setdefault(key, []).append(steady / run.meta["train_samples"])
    total, from_past = 0.0, 0
    for config in configs:
        past = seconds_per_image.get(sweep_key(config.to_dict()))
        if past:
            from_past += 1
        per_image = statistics.median(past) if past else 1.0 / ROUGH_SAMPLES_PER_S[config.device]
        total += STARTUP_S + config.epochs * config.train_samples * per_image
    basis = (f"{from_past} of {len(configs)} runs from past runs with the same settings"
             if from_past else "no past runs with these settings")
    if from_past < len(configs):
        guesses = ", ".join(f"{d.upper()} {v:,.0f}" for d, v in ROUGH_SAMPLES_PER_S.items())
        basis += f"; the rest from a rough guess of images/s ({guesses}) plus {STARTUP_S:g} s start-up"
    return total, basis
