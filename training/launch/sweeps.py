"""Repeats and sweeps, planned and queued: N runs of one configuration, or a product of several.

Queueing goes through a launcher (this machine's by default), so local runs wait in
the ordinary one-at-a-time queue and start in creation order; on a cluster, its
scheduler takes them. A sweep is created interleaved (every configuration once,
then again, repeat by repeat), so slow drift of a shared machine spreads over all
configurations instead of biasing the last one. Every run of a group is an
ordinary run with the group's id in its config.json (`training/analysis/groups.py`
reads them back).
"""

from __future__ import annotations

import dataclasses
import itertools
import statistics

from training.analysis import comparison
from training.analysis import workload as workloads
from training.analysis.groups import GROUP_PREFIX, sweep_key
from training.config import (
    MAX_NAME_LENGTH,
    MNIST_TRAIN_SIZE,
    SWEEP_FIELDS,
    ConfigError,
    RunConfig,
    check_repeats,
    fitted_to_model,
    make_config,
)
from training.launch import Launcher, launcher_for, workload
from training.store import Run, RunError, RunStore, new_run_id

# The time estimate's guess when no past run has the same settings (docs/benchmarks.md):
# a 2-vCPU VM trains 3,000-4,500 MNIST images/s with this CNN; a current GPU 30,000 or more.
ROUGH_SAMPLES_PER_S = {"cpu": 3_000.0, "gpu": 30_000.0}
STARTUP_S = 15.0  # per run: importing the backend, loading MNIST, building the model


def new_group_id() -> str:
    return GROUP_PREFIX + new_run_id()


def _sweep_name(base: RunConfig, config: RunConfig, varied: list[str]) -> str:
    """A name that tells a sweep's configurations apart: the user's name plus what varies."""
    short = {"model": workloads.short, "data": workloads.short,
             "device": lambda v: v.upper(), "backend": str, "batch_size": lambda v: f"batch {v}",
             "precision": str, "threads": lambda v: f"{v or 'all'} threads"}
    parts = [short[name](getattr(config, name)) for name in varied]
    return " · ".join([base.name, *parts] if base.name else parts)[:MAX_NAME_LENGTH]


def plan(base: RunConfig, values: dict[str, list] | None = None,
         repeats: int = 1) -> list[tuple[int, RunConfig]]:
    """(repeat, config) in queue order: the product of `values`, round-robin, repeat by repeat.

    Args:
        base: the settings every run shares.
        values: for some of SWEEP_FIELDS, the values to try; others keep `base`'s.
        repeats: runs of each configuration (1 to MAX_REPEATS).
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
        settings = {**base.to_dict(), **dict(zip(SWEEP_FIELDS, combo))}
        config = make_config(**(fitted_to_model(settings) if len(values.get("model", [])) > 1 else settings))
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

    `launcher` is where they run: this machine by default, or a cluster.
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
    for config in dict.fromkeys(configs):  # every workload before any folder (cached: one check each)
        workload.check(workload.resolve(config))
    group = new_group_id()
    runs = [launcher.launch(store, config, group=group, group_kind=kind, group_name=name, repeat=repeat,
                            group_size=len(planned))
            for repeat, config in planned]
    return group, runs


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
        total += STARTUP_S + config.epochs * (config.train_samples or MNIST_TRAIN_SIZE) * per_image
    basis = (f"{from_past} of {len(configs)} runs from past runs with the same settings"
             if from_past else "no past runs with these settings")
    if from_past < len(configs):
        guesses = ", ".join(f"{d.upper()} {v:,.0f}" for d, v in ROUGH_SAMPLES_PER_S.items())
        basis += f"; the rest from a rough guess of images/s ({guesses}) plus {STARTUP_S:g} s start-up"
    return total, basis
