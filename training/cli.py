"""`python -m training`: the command line over the worker, the launcher and the run store.

    run      train one run (foreground, --detach to queue it, or --cluster ADDRESS on Ray)
    list     every run, as a table or --json
    stop     stop a queued or running run (waits; --grace before SIGKILL)
    delete   remove a finished run
    import   turn a log from elsewhere into read-only runs
    export   a run's per-epoch table as CSV or JSON
    compare  steady-state speed, time to target and speedup of two runs, or of groups
    sweep    queue the product of comma lists of settings, with repeats, as one group
    report   one self-contained HTML file of runs or groups, charts included
    doctor   can every installed backend use every device here? (exit 1 names what is wrong)
    probe    what one backend sees: devices, GPUs, CUDA build (doctor and the dashboard ask it)
    work, remote-work, follow   (internal) a detached worker, a Ray job's worker, its follower

Exit codes: 0 success, 1 failure, 2 bad arguments or unknown run.
A framework is imported only by `run` in the foreground, `work` and `probe`.
`--verbose` on any command shows the debug log: what was skipped and why.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import shutil
import sys
import tempfile
import time

from training import cli_groups, comparison, doctor, groups
from training.config import BACKENDS, ConfigError, RunConfig, make_config
from training.display import number
from training.imports.parsers import ImportFormatError
from training.imports.runs import import_file
from training.launch import Launcher, launcher_for, launcher_of, local
from training.launch.cluster import is_remote, revive_followers
from training.store.runlog import NewerLogFormat
from training.store.runs import END_STATES, InvalidRunId, RunError, RunNotFound, RunStore

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_INT_TYPES = ("int", "int | None")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2: scriptable
        self.exit(EXIT_USAGE, f"error: {message}\n")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs-dir", help="runs folder (default: $TRAINING_RUNS_DIR, else ./runs)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log what is skipped or retried (debug messages) to stderr")


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per RunConfig field, with the help, choices and default it declares."""
    for spec in dataclasses.fields(RunConfig):
        rules = spec.metadata
        if spec.type == "bool":  # a switch that flips the default
            parser.add_argument(rules["flag"], dest=spec.name, action="store_const",
                                const=not spec.default, default=spec.default, help=rules["help"])
            continue
        kind = int if spec.type in _INT_TYPES else float if spec.type == "float" else str
        default_text = "" if spec.default in (None, "") else f" (default: {spec.default})"
        parser.add_argument("--" + spec.name.replace("_", "-"), dest=spec.name, type=kind,
                            choices=rules["choices"], default=spec.default,
                            help=rules["help"] + default_text)


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """--cluster and what a run asks the Ray cluster for (`run` and `sweep`)."""
    cluster = parser.add_argument_group("on a Ray cluster (runs are then always detached)")
    cluster.add_argument("--cluster", metavar="ADDRESS",
                         help="the Ray dashboard address, e.g. http://127.0.0.1:8265 (RAY_ADDRESS)")
    cluster.add_argument("--gpu-model", help="with --device gpu: a node with this GPU model, e.g. H100")
    cluster.add_argument("--cluster-cpus", type=float, default=1, help="CPUs to ask Ray for (default: 1)")
    cluster.add_argument("--cluster-pip", action="store_true",
                         help="install requirements.txt on the node (runtime_env pip; needs a package index)")


def launcher_from_args(args: argparse.Namespace) -> Launcher:
    """This machine, or the Ray cluster that --cluster names."""
    return launcher_for(args.cluster, gpu_model=args.gpu_model, cpus=args.cluster_cpus,
                        pip=args.cluster_pip) if args.cluster else launcher_for(None)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    return make_config(**{spec.name: getattr(args, spec.name) for spec in dataclasses.fields(RunConfig)})


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m training", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="train one run")
    add_config_options(run)
    run.add_argument("--detach", action="store_true", help="queue it in the background; print its id")
    cli_groups.add_repeats_option(run)
    add_cluster_options(run)
    _add_common(run)

    work = commands.add_parser("work", help=argparse.SUPPRESS)
    work.add_argument("run_id")
    _add_common(work)

    remote = commands.add_parser("remote-work", help=argparse.SUPPRESS)  # a Ray job's entrypoint
    remote.add_argument("run_id")
    remote.add_argument("--config", required=True, help="the RunConfig as JSON")
    _add_common(remote)

    follow = commands.add_parser("follow", help=argparse.SUPPRESS)  # copies a Ray job's records home
    follow.add_argument("run_id")
    _add_common(follow)

    listing = commands.add_parser("list", help="list runs")
    listing.add_argument("--json", action="store_true")
    _add_common(listing)

    stop = commands.add_parser("stop", help="stop a queued or running run")
    stop.add_argument("run_id")
    stop.add_argument("--grace", type=float, default=local.STOP_GRACE_S,
                      help="seconds to wait after SIGTERM before SIGKILL (default: %(default)s)")
    _add_common(stop)

    delete = commands.add_parser("delete", help="delete a run")
    delete.add_argument("run_id")
    _add_common(delete)

    importing = commands.add_parser("import", help="import a log file")
    importing.add_argument("file")
    importing.add_argument("--name")
    importing.add_argument("--device", choices=("cpu", "gpu"))
    importing.add_argument("--samples", type=int,
                           help="training images per epoch, for a log that does not say (for samples/s)")
    _add_common(importing)

    export = commands.add_parser("export", help="per-epoch table of a run")
    export.add_argument("run_id")
    export.add_argument("--format", choices=("csv", "json"), default="csv")
    _add_common(export)

    compare = commands.add_parser("compare", help="compare two runs, or groups of runs")
    compare.add_argument("ids", nargs="+", metavar="ID", help="two run ids, or run and group ids")
    compare.add_argument("--target", type=float, default=comparison.DEFAULT_TARGET)
    compare.add_argument("--json", action="store_true")
    _add_common(compare)

    doctoring = commands.add_parser("doctor", help="can every installed backend use every device here?")
    doctoring.add_argument("--json", action="store_true")
    doctoring.add_argument("--backend", action="append", choices=BACKENDS,
                           help="ask only this backend (repeatable; default: every installed one)")
    _add_common(doctoring)

    probing = commands.add_parser("probe", help="what one backend sees (imports it)")
    probing.add_argument("backend", choices=BACKENDS)
    probing.add_argument("--json", action="store_true")
    _add_common(probing)
    cli_groups.add_commands(commands, add_config_options, _add_common, add_cluster_options)
    return parser


# -- subcommands -------------------------------------------------------------
def cmd_run(store: RunStore, args) -> int:
    config = config_from_args(args)  # ConfigError -> exit 2 before anything is written
    if args.repeats is not None:
        return cli_groups.cmd_run_repeats(store, args, config, launcher_from_args(args))
    if args.cluster:
        print(launcher_from_args(args).launch(store, config).id)
        return EXIT_OK
    if args.detach:
        print(local.launch(store, config).id)
        return EXIT_OK
    from training.worker.work import work  # imports TensorFlow only now
    run = local.create_local(store, config)
    print(f"run {run.id}: {run.folder}", file=sys.stderr, flush=True)
    code = work(run)
    print(run.id)
    if code != EXIT_OK:
        row = run.row()
        print(f"error: run {run.id} {row['status']}: {row['error']}", file=sys.stderr)
    return code


def cmd_work(store: RunStore, args) -> int:
    from training.worker.work import work
    return work(store.open(args.run_id))


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


def cmd_follow(store: RunStore, args) -> int:
    from training.launch.follower import follow
    return follow(store.open(args.run_id))


def cmd_list(store: RunStore, args) -> int:
    runs = store.runs()
    statuses = revive_followers(runs, store.statuses(runs))  # a cluster run's follower may have died
    rows = [run.row(status=statuses[run.id]) for run in runs]
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
        return EXIT_OK
    print(f"{'ID':34} {'STATUS':9} {'DEVICE':6} {'ENGINE':6} {'EPOCHS':>7} {'BEST VAL':>8}  NAME")
    for row in rows:
        best = number(row["best_val_accuracy"], ".4f")
        epochs = f"{row['epochs_done']}/{row['epochs'] or '?'}"
        name = row["name"] + (f"  [{row['error']}]" if row["error"] else "")
        print(f"{row['id']:34} {row['status']:9} {row['device'] or '-':6} {row['engine'] or '-':6} "
              f"{epochs:>7} {best:>8}  {name}")
    return EXIT_OK


def cmd_stop(store: RunStore, args) -> int:
    run = store.open(args.run_id)
    if not is_remote(run):
        print(f"{args.run_id}: {local.stop(run, args.grace)}")
        return EXIT_OK
    launcher_of(run).request_stop(run)  # Ray gives the worker SIGTERM, then SIGKILL
    ended = wait_for_end(run, args.grace + 10)
    print(f"{args.run_id}: {ended or 'stopping (the follower records the end when Ray has)'}")
    return EXIT_OK


def wait_for_end(run, timeout: float) -> str | None:
    """The run's end status once it has one, or None after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (status := run.status()) in END_STATES:
            return status
        time.sleep(0.2)
    return None


def cmd_delete(store: RunStore, args) -> int:
    store.delete(args.run_id)
    print(f"{args.run_id}: deleted")
    return EXIT_OK


def cmd_import(store: RunStore, args) -> int:
    for run_id in import_file(store, args.file, name=args.name, device=args.device, samples=args.samples):
        print(run_id)
    return EXIT_OK


def cmd_export(store: RunStore, args) -> int:
    rows = comparison.export_rows(store.open(args.run_id).log().check().epochs)
    if args.format == "json":
        json.dump(rows, sys.stdout, indent=1)
        print()
    else:
        writer = csv.DictWriter(sys.stdout, fieldnames=comparison.EXPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return EXIT_OK


def compare_runs(store: RunStore, run_a: str, run_b: str, target: float) -> dict:
    if not 0 < target <= 1:
        raise ConfigError("target", f"must be in (0, 1], got {target:g}")
    entries = []
    for run in (store.open(run_a), store.open(run_b)):
        entries.append({"id": run.id, "name": run.meta.get("name"), "device": run.meta.get("device"),
                        "engine": run.meta.get("engine"),
                        **comparison.measure(run.log().check().epochs, target)})
    return {"runs": entries, "target": target, "speedup": comparison.speedup(*entries)}


def cmd_compare(store: RunStore, args) -> int:
    if len(args.ids) != 2 or any(groups.is_group_id(i) for i in args.ids):
        return cli_groups.cmd_compare_groups(store, args)
    result = compare_runs(store, *args.ids, args.target)
    if args.json:
        json.dump(result, sys.stdout, indent=1)
        print()
        return EXIT_OK
    for label, run in zip("AB", result["runs"]):
        reached = ("not reached" if run["time_to_target_s"] is None else
                   f"{run['time_to_target_s']:.2f} s (epoch {run['time_to_target_epoch']})")
        print(f"{label}: {run['name']} [{run['id']}]\n"
              f"   steady-state epoch   {number(run['steady_epoch_s'], '.2f', ' s')}\n"
              f"   samples/s            {number(run['steady_samples_per_s'], ',.0f')}\n"
              f"   time to {args.target:.2%}     {reached}\n"
              f"   best val accuracy    {number(run['best_val_accuracy'], '.4f')} "
              f"(epoch {run['best_epoch']})\n"
              f"   total                {number(run['total_s'], '.2f', ' s')}")
    speed = result["speedup"]
    print(f"speedup of B over A: {number(speed['steady_epoch'], '.2f', 'x')} steady-state epoch, "
          f"{number(speed['time_to_target'], '.2f', 'x')} time to target")
    return EXIT_OK


def cmd_doctor(store: RunStore, args) -> int:
    found = doctor.report(tuple(args.backend) if args.backend else None)
    if args.json:
        json.dump(found, sys.stdout, indent=1)
        print()
    else:
        print(doctor.format_report(found))
    return EXIT_OK if found["ok"] else EXIT_FAILED


def cmd_probe(store: RunStore, args) -> int:
    from training.worker.probe import probe  # imports the backend only now
    answer = probe(args.backend)
    print(json.dumps(answer) if args.json else "\n".join(f"{k}: {v}" for k, v in answer.items()))
    return EXIT_FAILED if answer.get("error") else EXIT_OK


COMMANDS = {"run": cmd_run, "work": cmd_work, "remote-work": cmd_remote_work, "follow": cmd_follow,
            "list": cmd_list, "stop": cmd_stop,
            "delete": cmd_delete, "import": cmd_import, "export": cmd_export,
            "compare": cmd_compare, "doctor": cmd_doctor, "probe": cmd_probe,
            "sweep": lambda store, args: cli_groups.cmd_sweep(store, args, launcher_from_args(args)),
            "report": cli_groups.cmd_report}


WRITING_COMMANDS = ("run", "import", "delete", "sweep")  # these also clear a crashed writer's debris


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    store = RunStore(args.runs_dir)
    try:
        if args.command in WRITING_COMMANDS:
            store.sweep_debris()
        return COMMANDS[args.command](store, args)
    except ConfigError as error:
        print(f"error: {error.option}: {error.message}", file=sys.stderr)
        return EXIT_USAGE
    except (InvalidRunId, RunNotFound) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (RunError, ImportFormatError, NewerLogFormat, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
