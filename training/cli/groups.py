"""The group commands: `run --repeats N` and `sweep`, queued through a launcher and followed.

Each prints every run id, one per line, then the group id last. Without
`--detach` the command then shows the group's progress until every run has
ended (terminal.py); the maths of `compare` on groups is `training/analysis/stats.py`.
"""

from __future__ import annotations

import sys

from training.cli import exports
from training.cli.parser import launcher_from_args
from training.config import SWEEP_FIELDS, RunConfig
from training.launch import Launcher, sweeps
from training.store import RunError, RunStore


def plan_repeats(config: RunConfig, repeats: int) -> list[tuple[int, RunConfig]]:
    return sweeps.plan(config, repeats=repeats)


def queue_and_follow(store: RunStore, args, planned: list[tuple[int, RunConfig]], kind: str, name: str,
                     launcher: Launcher) -> int:
    exports.check_live(args)
    group, runs = sweeps.queue(store, planned, kind, name, launcher)
    for run in runs:
        print(run.id)
    print(group, flush=True)
    if args.detach:
        return 0
    return exports.follow_runs(runs, args)


def cmd_sweep(store: RunStore, args) -> int:
    launcher = launcher_from_args(args)
    settings = {name: getattr(args, name) for name in RunConfig.__dataclass_fields__}
    values = {name: settings.pop(name) for name in SWEEP_FIELDS}
    defaults = RunConfig()
    base = RunConfig(**settings, **{name: getattr(defaults, name) for name in SWEEP_FIELDS})
    planned = sweeps.plan(base, {k: v for k, v in values.items() if v}, args.repeats or 1)
    if problem := sweeps.device_problem([config for _, config in planned], launcher):
        raise RunError(f"nothing queued: {problem}")  # before the estimate: nothing will run
    seconds, basis = sweeps.estimate(store, [config for _, config in planned])
    print(f"{len(planned)} runs, about {seconds / 60:,.1f} min ({basis})", file=sys.stderr)
    if args.dry_run:
        for repeat, config in planned:
            print(f"repeat {repeat + 1}: {config.name or config.device}")
        return 0
    return queue_and_follow(store, args, planned, "sweep", base.name, launcher)
