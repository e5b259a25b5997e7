"""`python -m training`: the command line over the worker and the run manager.

    run      train one run (foreground, or --detach to queue it and print its id)
    list     every run, as a table or --json
    stop     stop a queued or running run
    delete   remove a finished run
    import   turn a log from elsewhere into read-only runs
    export   a run's per-epoch table as CSV or JSON
    compare  steady-state speed, time to target and speedup of two runs
    work     (internal) what a detached launch runs

Exit codes: 0 success, 1 failure, 2 bad arguments or unknown run.
TensorFlow is imported only by `run` in the foreground and `work`.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys

from training import manager, summary
from training.config import (
    BACKENDS,
    DEVICES,
    ENGINES,
    JIT_MODES,
    PRECISIONS,
    ConfigError,
    RunConfig,
    make_config,
)
from training.importers import ImportFormatError
from training.importing import ensure_references, import_file
from training.runstore import InvalidRunId, RunError, RunNotFound, RunStore

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULTS = RunConfig()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2: scriptable
        self.exit(EXIT_USAGE, f"error: {message}\n")


def _add_runs_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs-dir", help="runs folder (default: $TRAINING_RUNS_DIR, else ./runs)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m training", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="train one run")
    run.add_argument("--device", choices=DEVICES, default=DEFAULTS.device)
    run.add_argument("--engine", choices=ENGINES, default=DEFAULTS.engine)
    run.add_argument("--backend", choices=BACKENDS, default=DEFAULTS.backend)
    run.add_argument("--epochs", type=int, default=DEFAULTS.epochs)
    run.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    run.add_argument("--lr", type=float, default=DEFAULTS.lr)
    run.add_argument("--momentum", type=float, default=DEFAULTS.momentum)
    run.add_argument("--seed", type=int, default=DEFAULTS.seed)
    run.add_argument("--limit-train", type=int, help="use the first N training images")
    run.add_argument("--limit-test", type=int, help="use the first N test images")
    run.add_argument("--precision", choices=PRECISIONS, default=DEFAULTS.precision)
    run.add_argument("--jit", choices=JIT_MODES, default=DEFAULTS.jit)
    run.add_argument("--name", default="")
    run.add_argument("--concurrent", action="store_true", help="do not wait for other runs")
    run.add_argument("--no-system-metrics", action="store_true", help="do not sample CPU/GPU")
    run.add_argument("--detach", action="store_true", help="queue it in the background; print its id")
    _add_runs_dir(run)

    work = commands.add_parser("work", help=argparse.SUPPRESS)
    work.add_argument("run_id")
    _add_runs_dir(work)

    listing = commands.add_parser("list", help="list runs")
    listing.add_argument("--json", action="store_true")
    _add_runs_dir(listing)

    for name, text in (("stop", "stop a queued or running run"), ("delete", "delete a run")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("run_id")
        _add_runs_dir(sub)

    importing = commands.add_parser("import", help="import a log file")
    importing.add_argument("file")
    importing.add_argument("--name")
    importing.add_argument("--device", choices=DEVICES)
    _add_runs_dir(importing)

    export = commands.add_parser("export", help="per-epoch table of a run")
    export.add_argument("run_id")
    export.add_argument("--format", choices=("csv", "json"), default="csv")
    _add_runs_dir(export)

    compare = commands.add_parser("compare", help="compare two runs")
    compare.add_argument("run_a")
    compare.add_argument("run_b")
    compare.add_argument("--target", type=float, default=summary.DEFAULT_TARGET)
    compare.add_argument("--json", action="store_true")
    _add_runs_dir(compare)
    return parser


def config_from_args(args: argparse.Namespace) -> RunConfig:
    return make_config(
        device=args.device, engine=args.engine, backend=args.backend, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, momentum=args.momentum, seed=args.seed,
        limit_train=args.limit_train, limit_test=args.limit_test, precision=args.precision,
        jit=args.jit, name=args.name, concurrent=args.concurrent,
        system_metrics=not args.no_system_metrics)


# -- subcommands -------------------------------------------------------------
def cmd_run(store: RunStore, args) -> int:
    config = config_from_args(args)  # ConfigError -> exit 2 before anything is written
    if args.detach:
        print(manager.launch(store, config))
        return EXIT_OK
    from training import worker  # imports TensorFlow only now
    run_id = manager.create_local(store, config)
    print(f"run {run_id}: {store.path(run_id)}", file=sys.stderr, flush=True)
    code = worker.work(store, run_id)
    print(run_id)
    return code


def cmd_work(store: RunStore, args) -> int:
    from training import worker
    return worker.work(store, args.run_id)


def cmd_list(store: RunStore, args) -> int:
    ensure_references(store)
    rows = [store.summary(run_id) for run_id in store.ids()]
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
        return EXIT_OK
    print(f"{'ID':34} {'STATUS':9} {'DEVICE':6} {'ENGINE':6} {'EPOCHS':>7} {'BEST VAL':>8}  NAME")
    for row in rows:
        best = f"{row['best_val_accuracy']:.4f}" if row["best_val_accuracy"] is not None else "-"
        epochs = f"{row['epochs_done']}/{row['epochs'] or '?'}"
        print(f"{row['id']:34} {row['status']:9} {row['device'] or '-':6} {row['engine'] or '-':6} "
              f"{epochs:>7} {best:>8}  {row['name']}")
    return EXIT_OK


def cmd_stop(store: RunStore, args) -> int:
    print(f"{args.run_id}: {manager.stop(store, args.run_id)}")
    return EXIT_OK


def cmd_delete(store: RunStore, args) -> int:
    store.delete(args.run_id)
    print(f"{args.run_id}: deleted")
    return EXIT_OK


def cmd_import(store: RunStore, args) -> int:
    for run_id in import_file(store, args.file, name=args.name, device=args.device):
        print(run_id)
    return EXIT_OK


def cmd_export(store: RunStore, args) -> int:
    rows = summary.export_rows(store.log(args.run_id).epochs)
    if args.format == "json":
        json.dump(rows, sys.stdout, indent=1)
        print()
    else:
        writer = csv.DictWriter(sys.stdout, fieldnames=summary.EXPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return EXIT_OK


def compare_runs(store: RunStore, run_a: str, run_b: str, target: float) -> dict:
    if not 0 < target <= 1:
        raise ConfigError("target", f"must be in (0, 1], got {target:g}")
    entries = []
    for run_id in (run_a, run_b):
        meta = store.meta(run_id)
        entries.append({"id": run_id, "name": meta.get("name"), "device": meta.get("device"),
                        "engine": meta.get("engine"),
                        **summary.summarise(store.log(run_id).epochs, target)})
    return {"runs": entries, "target": target, "speedup": summary.speedup(*entries)}


def _fmt(value, spec: str, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def cmd_compare(store: RunStore, args) -> int:
    ensure_references(store)
    result = compare_runs(store, args.run_a, args.run_b, args.target)
    if args.json:
        json.dump(result, sys.stdout, indent=1)
        print()
        return EXIT_OK
    for label, run in zip("AB", result["runs"]):
        reached = ("not reached" if run["time_to_target_s"] is None else
                   f"{run['time_to_target_s']:.2f} s (epoch {run['time_to_target_epoch']})")
        print(f"{label}: {run['name']} [{run['id']}]\n"
              f"   steady-state epoch   {_fmt(run['steady_epoch_s'], '.2f', ' s')}\n"
              f"   samples/s            {_fmt(run['steady_samples_per_s'], ',.0f')}\n"
              f"   time to {args.target:.2%}     {reached}\n"
              f"   best val accuracy    {_fmt(run['best_val_accuracy'], '.4f')} "
              f"(epoch {run['best_epoch']})\n"
              f"   total                {_fmt(run['total_s'], '.2f', ' s')}")
    speed = result["speedup"]
    print(f"speedup of B over A: {_fmt(speed['steady_epoch'], '.2f', 'x')} steady-state epoch, "
          f"{_fmt(speed['time_to_target'], '.2f', 'x')} time to target")
    return EXIT_OK


COMMANDS = {"run": cmd_run, "work": cmd_work, "list": cmd_list, "stop": cmd_stop,
            "delete": cmd_delete, "import": cmd_import, "export": cmd_export,
            "compare": cmd_compare}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    store = RunStore(args.runs_dir)
    try:
        return COMMANDS[args.command](store, args)
    except ConfigError as error:
        print(f"error: {error.option}: {error.message}", file=sys.stderr)
        return EXIT_USAGE
    except (InvalidRunId, RunNotFound) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (RunError, ImportFormatError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
