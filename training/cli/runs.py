"""The run commands: `run`, `list`, `stop`, `delete`, and the internal `work`, `remote-work`, `follow`.

A foreground `run` starts its worker detached, like `--detach`, and then
follows it on the terminal (terminal.py) until it ends: the same path for this
machine and a Ray cluster, so Ctrl-C stops either, and the backend's own log
lines stay in the run's stderr.log unless `--verbose`.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import tempfile

from training import launch
from training.analysis import listing
from training.analysis.display import number
from training.cli import exports, groups
from training.cli.parser import config_from_args, launcher_from_args
from training.config import RunConfig
from training.launch import local
from training.store import ACTIVE_STATES, RunError, RunStore


def cmd_run(store: RunStore, args) -> int:
    config = config_from_args(args)  # ConfigError -> exit 2 before anything is written
    exports.check_live(args)
    launcher = launcher_from_args(args)
    if args.repeats is not None:
        return groups.queue_and_follow(store, args, groups.plan_repeats(config, args.repeats), "repeats",
                                       config.name, launcher)
    run = launcher.launch(store, config)
    if args.detach:
        print(run.id)
        return 0
    print(f"run {run.id}: {run.folder} ({launcher.where})", file=sys.stderr, flush=True)
    code = exports.follow_runs([run], args)  # returns once the worker has exited
    print(run.id)
    return code


def cmd_work(store: RunStore, args) -> int:
    from training.worker.work import work  # imports the backend: this process exists for it

    run = store.open(args.run_id)
    if args.slurm:  # the batch script of launch/slurm.py: the job says where it runs
        from training.launch.slurm import record_start

        record_start(run)
    return work(run, asked_stops_only=args.slurm)


def cmd_remote_work(store: RunStore, args) -> int:
    """On a cluster node: train in a scratch run folder and echo every record on stdout."""
    from training.worker.work import work

    config = RunConfig.from_dict(json.loads(args.config))
    scratch = tempfile.mkdtemp(prefix="training-remote-")
    try:
        run = local.create_local(RunStore(scratch), dataclasses.replace(config, concurrent=True),
                                 run_id=args.run_id)
        return work(run, echo=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # the records went home through stdout


def cmd_check_workload(store: RunStore, args) -> int:
    """Build the run's model for its data in this short process (launch/workload.py asks); one JSON line.

    Exit 0 with {"input_shape", "classes", "params"}, or 2 with {"field", "message"}.
    """
    from training.config import ConfigError
    from training.worker.device import pin_device

    config = dataclasses.replace(RunConfig.from_dict(json.loads(args.config)), device="cpu", threads=None)
    pin_device(config)  # the backend before Keras; never a GPU for a check
    shape = tuple(int(d) for d in args.shape.split(",") if d)
    try:
        from training.worker.workload import check  # imports Keras: this process exists for it

        answer = check(config, shape, args.classes, args.search or [])
    except ConfigError as error:
        print(json.dumps({"field": error.field, "message": error.message}))
        return 2
    print(json.dumps(answer))
    return 0


def cmd_follow(store: RunStore, args) -> int:
    from training.launch.follower import follow

    return follow(store.open(args.run_id))


def cmd_list(store: RunStore, args) -> int:
    runs = store.runs()
    statuses = launch.reconcile(runs, store.statuses(runs))  # a cluster run's follower may have died
    rows = [listing.row(run, launch.describe(run), status=statuses[run.id]) for run in runs]
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
        return 0
    print(f"{'ID':34} {'STATUS':9} {'DEVICE':6} {'ENGINE':6} {'EPOCHS':>7} {'BEST VAL':>8}  NAME")
    for row in rows:
        best = number(row["best_val_accuracy"], ".4f")
        epochs = f"{row['epochs_done']}/{row['epochs'] or '?'}"
        name = row["name"] + (f"  [{row['error']}]" if row["error"] else "")
        print(f"{row['id']:34} {row['status']:9} {row['device'] or '-':6} {row['engine'] or '-':6} "
              f"{epochs:>7} {best:>8}  {name}")
    return 0


def cmd_stop(store: RunStore, args) -> int:
    run = store.open(args.run_id)
    ended = launch.launcher_of(run).stop(run, args.grace)
    print(f"{args.run_id}: {ended or 'stopping (its end is recorded when the cluster has stopped it)'}")
    return 0


def cmd_delete(store: RunStore, args) -> int:
    run = store.open(args.run_id)
    if (status := launch.current_status(run)) in ACTIVE_STATES:  # a Slurm job on another node too
        raise RunError(f"run {run.id} is {status}; stop it before deleting it")
    store.delete(args.run_id)  # a delete that lost a race says "already deleted"
    print(f"{args.run_id}: deleted")
    return 0
