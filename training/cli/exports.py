"""MLflow on the command line: `export RUN|GROUP --mlflow URI` and `run --mlflow URI` (exports/mlflow.py).

`export` sends finished (or running) runs and groups; `run` and `sweep` with `--mlflow`
stream each epoch from a thread of this process while the run is followed, then export
the run in full and print what did not arrive. The run folder stays the truth either way.
"""

from __future__ import annotations

import logging
import sys

from training import launch
from training.analysis import groups
from training.cli import terminal
from training.config import ConfigError
from training.exports.mlflow import (
    INSTALL_HINT,
    Exporter,
    ExportError,
    LiveExport,
    client_available,
    describe_error,
)
from training.store import Run, RunStore


def check_live(args) -> None:
    """`--mlflow` on run/sweep: refused with --detach, or without the client, before anything is queued."""
    if not getattr(args, "mlflow", None):
        return
    if args.detach:
        raise ConfigError("mlflow", "streams epochs only while the run is followed: drop --detach, or send "
                                    "the run afterwards with: python -m training export RUN --mlflow URI")
    if not client_available():
        raise ConfigError("mlflow", INSTALL_HINT)


WORKER_EXIT_WAIT_S = 30  # after its end record a worker closes its files and exits: a second or two


def follow_runs(runs: list[Run], args) -> int:
    """terminal.follow, with the epochs streamed to MLflow when --mlflow was given; returns once
    every worker has exited too, so nothing holds a run folder when the command ends."""
    uri = getattr(args, "mlflow", None)
    live = LiveExport(runs, uri, args.experiment, where=launch.describe).start() if uri else None
    try:
        code = terminal.follow(runs, verbose=args.verbose)
    finally:
        for line in live.finish() if live else ():
            print(line, file=sys.stderr, flush=True)
    for run in runs:
        if not run.wait_for_exit(WORKER_EXIT_WAIT_S):
            print(f"run {run.id}: its worker still runs {WORKER_EXIT_WAIT_S} s after its end",
                  file=sys.stderr)
    return code


def export_mlflow(store: RunStore, args) -> int:
    runs = groups.resolve(store, [args.run_id])
    if not args.verbose:  # urllib3 logs each retry of a refused connection; the error below says it once
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    exporter = Exporter(args.mlflow, args.experiment, where=launch.describe)
    try:
        results = exporter.export(runs, report=not args.no_report)
    except ExportError:
        raise
    except Exception as error:  # MLflow's own errors: a server away, a request refused
        raise ExportError(f"MLflow at {args.mlflow}: {describe_error(error)}") from error
    ours = {run.id for run in runs}
    for done in results:
        what = (f"{done.epochs} epochs, {done.system} system samples" if done.run_id in ours
                else "group parent, " + ("finished" if done.terminated else "running"))
        print(f"{done.run_id}\t{done.mlflow_run_id}\t{done.name}: {what}")
    print(f"exported {len(runs)} run(s) to {args.mlflow}, experiment {args.experiment!r}", file=sys.stderr)
    return 0
