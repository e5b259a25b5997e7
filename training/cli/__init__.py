"""`python -m training`: the command line over the launchers, the run store and the analysis.

    run      train one run and show its progress (--detach to queue it; --cluster ADDRESS on Ray,
             --slurm [PARTITION] as a Slurm batch job)
    list     every run, as a table or --json
    stop     stop a queued or running run (waits; --grace before SIGKILL)
    delete   remove a finished run
    import   turn a log from elsewhere (a text log, TensorBoard events) into read-only runs
    import-runs  add run folders made on another machine (.tgz or folder), ids kept
    annotate set an imported run's images per epoch (--samples) and device, where its log did not say
    export   a run's per-epoch table as CSV or JSON; runs and groups to MLflow (--mlflow URI)
    compare  steady-state images/s, time to target, utilisation and speedup of two runs, or of groups
    sweep    queue the product of comma lists of settings, with repeats, as one group
    report   one self-contained HTML file of runs or groups, charts included
    doctor   can every installed backend use every device here? (exit 1 names what is wrong)
    probe    what one backend sees: devices, GPUs, CUDA build (doctor and the dashboard ask it)
    peak     the device's measured peak FLOP/s (a matrix product in one backend), cached per machine
    work, remote-work, follow   (internal, started by the launchers; not in --help) a detached
             worker, a Ray job's worker, its follower

Exit codes: 0 success, 1 failure, 2 bad arguments or unknown run.
A framework is imported only by `work`, `remote-work`, `probe` and `peak`, each its own process.
`--verbose` on any command shows the debug log: what was skipped and why.

The package: parser.py builds the options from RunConfig; runs.py, groups.py,
analysis.py, imports.py and system.py hold the commands; terminal.py draws progress.
"""

from __future__ import annotations

import logging
import sys

from training.cli import analysis, groups, imports, runs, system
from training.cli.parser import EXIT_USAGE, build_parser, parse_args
from training.config import ConfigError
from training.imports.parsers import ImportFormatError
from training.store import InvalidRunId, NewerLogFormat, RunError, RunNotFound, RunStore

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]
EXIT_OK, EXIT_FAILED = 0, 1

COMMANDS = {"run": runs.cmd_run, "work": runs.cmd_work, "remote-work": runs.cmd_remote_work,
            "follow": runs.cmd_follow, "list": runs.cmd_list, "stop": runs.cmd_stop,
            "delete": runs.cmd_delete, "check-workload": runs.cmd_check_workload,
            "import": imports.cmd_import, "import-runs": imports.cmd_import_runs,
            "annotate": imports.cmd_annotate,
            "export": analysis.cmd_export, "compare": analysis.cmd_compare,
            "report": analysis.cmd_report, "sweep": groups.cmd_sweep,
            "doctor": system.cmd_doctor, "probe": system.cmd_probe, "peak": system.cmd_peak}
# These also clear a crashed writer's debris.
WRITING_COMMANDS = ("run", "import", "import-runs", "annotate", "delete", "sweep")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    store = RunStore(args.runs_dir)
    if problem := store.folder_problem():  # checked once, here: one clear line, not an odd errno later
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
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
