"""The command line's parser: every subcommand, its options built from RunConfig's fields.

`add_config_options` turns each `RunConfig` field's metadata (help, choices,
range, switch) into an option; with `sweep=True` the fields a sweep may vary
(`config.SWEEP_FIELDS`) take comma lists instead, parsed by their own type.
The commands the launchers start (INTERNAL_COMMANDS) live in a parser of their
own, chosen by the first word, so help and errors name only what people type.
No private argparse state is touched.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from training.analysis.comparison import DEFAULT_TARGET
from training.config import (
    BACKENDS,
    DEVICES,
    MAX_REPEATS,
    PRECISIONS,
    SWEEP_FIELDS,
    ConfigError,
    RunConfig,
    make_config,
)
from training.exports.mlflow import EXPERIMENT
from training.launch import Launcher, launcher_for
from training.launch.local import STOP_GRACE_S

EXIT_USAGE = 2
_INT_TYPES = ("int", "int | None")
SWEEP_HELP = "comma list, e.g. 32,128,512"


# Started by the launchers, never typed: a parser of their own, so that `--help`, the usage line
# and an unknown command's error list only the commands people use.
INTERNAL_COMMANDS = ("work", "remote-work", "follow", "check-workload")


class Parser(argparse.ArgumentParser):
    commands: dict[str, argparse.ArgumentParser]  # the top-level parser's subcommands, by name

    def error(self, message: str):  # one line, exit 2: scriptable
        self.exit(EXIT_USAGE, f"error: {message}\n")


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs-dir", help="runs folder (default: $TRAINING_RUNS_DIR, else ./runs)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log what is skipped or retried (debug messages) to stderr, and show the "
                             "backend's own log lines")


def _optional_int(text: str) -> int | None:
    """A --threads value of a sweep: a number, or all/none for the default (every core)."""
    return None if text.lower() in ("", "none", "all") else int(text)


def comma_list(kind):
    """An argparse type: "a,b,c" -> [kind(a), kind(b), kind(c)], one clear error otherwise."""
    def parse(text: str) -> list:
        try:
            return [kind(part.strip()) for part in text.split(",") if part.strip()]
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"not a comma list of values: {text!r}") from error
    parse.__name__ = f"comma list of {kind.__name__}"
    return parse


def _value_type(spec: dataclasses.Field):
    if spec.name == "threads":
        return _optional_int if spec.type in _INT_TYPES else str
    return int if spec.type in _INT_TYPES else float if spec.type == "float" else str


def add_config_options(parser: argparse.ArgumentParser, sweep: bool = False) -> None:
    """One option per RunConfig field, with the help, choices and default it declares.

    With `sweep=True`, each of SWEEP_FIELDS takes a comma list (default: the base value).
    """
    for spec in dataclasses.fields(RunConfig):
        rules = spec.metadata
        if spec.type == "bool":  # a switch that flips the default
            parser.add_argument(rules["flag"], dest=spec.name, action="store_const",
                                const=not spec.default, default=spec.default, help=rules["help"])
            continue
        option = "--" + spec.name.replace("_", "-")
        if sweep and spec.name in SWEEP_FIELDS:
            choices = f" (one or more of {', '.join(rules['choices'])})" if rules["choices"] else ""
            parser.add_argument(option, dest=spec.name, type=comma_list(_value_type(spec)), default=None,
                                help=f"{rules['help']}{choices} ({SWEEP_HELP})")
            continue
        kind = int if spec.type in _INT_TYPES else float if spec.type == "float" else str
        default_text = "" if spec.default in (None, "") else f" (default: {spec.default})"
        parser.add_argument(option, dest=spec.name, type=kind, choices=rules["choices"],
                            default=spec.default, help=rules["help"] + default_text)


def add_repeats_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=None,
                        help=f"queue N runs of this configuration as one group (1-{MAX_REPEATS}); prints "
                             "each run id, then the group id")


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """--cluster and what a run asks the Ray cluster for (`run` and `sweep`)."""
    cluster = parser.add_argument_group("on a Ray cluster")
    cluster.add_argument("--cluster", metavar="ADDRESS",
                         help="the Ray dashboard address, e.g. http://127.0.0.1:8265 (RAY_ADDRESS)")
    cluster.add_argument("--gpu-model", help="with --device gpu: a node with this GPU model, e.g. H100")
    cluster.add_argument("--cluster-cpus", type=float, default=1, help="CPUs to ask Ray for (default: 1)")
    cluster.add_argument("--cluster-pip", action="store_true",
                         help="install requirements.txt on the node (runtime_env pip; needs a package index)")
    batch = parser.add_argument_group("on Slurm (from a login node; the runs folder on the shared file "
                                      "system)")
    batch.add_argument("--slurm", nargs="?", const="", default=None, metavar="PARTITION",
                       help="submit through sbatch to this partition (none named: Slurm's default one); "
                            "--device gpu asks for --gres=gpu:1 (gpu:MODEL:1 with --gpu-model), the CPU "
                            "for --cpus-per-task (--threads, else one node's CPUs)")
    batch.add_argument("--slurm-args", default="", metavar='"OPTIONS"',
                       help='more sbatch options, e.g. --slurm-args="--account=lab --qos=short --time=30 '
                            '--constraint=avx512"')
    batch.add_argument("--exclusive", dest="slurm_exclusive", action="store_true", default=None,
                       help="a whole node per run (sbatch --exclusive), so timings are not shared; the "
                            "default for --repeats and sweeps")
    batch.add_argument("--no-exclusive", dest="slurm_exclusive", action="store_false",
                       help="share nodes with other jobs, even for --repeats and sweeps")


def add_mlflow_options(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--mlflow", metavar="URI", help=help_text)
    parser.add_argument("--experiment", default=EXPERIMENT,
                        help="with --mlflow: the MLflow experiment (default: %(default)s; made if missing)")


def add_follow_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--detach", action="store_true",
                        help=f"queue {what} in the background and return at once; print the ids")


def launcher_from_args(args: argparse.Namespace) -> Launcher:
    """This machine, the Ray cluster that --cluster names, or Slurm (--slurm)."""
    if args.slurm is not None:
        if args.cluster:
            raise ConfigError("slurm", "give --cluster or --slurm, not both: one place for the runs")
        return launcher_for(slurm=args.slurm, gpu_model=args.gpu_model, args=args.slurm_args,
                            exclusive=args.slurm_exclusive)
    if args.slurm_args or args.slurm_exclusive is not None:
        raise ConfigError("slurm", "--slurm-args, --exclusive and --no-exclusive go with --slurm")
    return launcher_for(args.cluster, gpu_model=args.gpu_model, cpus=args.cluster_cpus,
                        pip=args.cluster_pip) if args.cluster else launcher_for(None)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    return make_config(**{spec.name: getattr(args, spec.name) for spec in dataclasses.fields(RunConfig)})


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line's arguments; the bare command prints the usage and the commands, exit 2."""
    if not argv:
        build_parser().print_help(sys.stderr)
        raise SystemExit(EXIT_USAGE)
    return build_parser(internal=argv[0] in INTERNAL_COMMANDS).parse_args(argv)


def _top_parser() -> tuple[Parser, argparse.Action]:
    from training.cli import __doc__ as summary

    parser = Parser(prog="python -m training", description=summary.split("\n\n")[0])
    # A metavar, so the usage line does not spell out every choice.
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser, title="commands",
                                     metavar="COMMAND", description="`python -m training COMMAND --help` "
                                     "lists a command's options")
    parser.commands = commands.choices
    return parser, commands


def build_parser(internal: bool = False) -> Parser:
    """Every command people type (with `internal=True`: build_internal_parser's instead)."""
    if internal:
        return build_internal_parser()
    parser, commands = _top_parser()

    run = commands.add_parser("run", help="train one run, showing its progress (or --detach)")
    add_config_options(run)
    add_follow_options(run, "the run")
    add_mlflow_options(run, "also stream each epoch to this MLflow tracking URI as it happens; the "
                           "run never waits for it, and the end says what did not arrive")
    add_repeats_option(run)
    add_cluster_options(run)
    add_common(run)

    listing = commands.add_parser("list", help="list runs")
    listing.add_argument("--json", action="store_true")
    add_common(listing)

    stop = commands.add_parser("stop", help="stop a queued or running run")
    stop.add_argument("run_id")
    stop.add_argument("--grace", type=float, default=STOP_GRACE_S,
                      help="seconds to wait after SIGTERM before SIGKILL (default: %(default)s)")
    add_common(stop)

    delete = commands.add_parser("delete", help="delete a run")
    delete.add_argument("run_id")
    add_common(delete)

    importing = commands.add_parser("import", help="import a log file, or a TensorBoard log")
    importing.add_argument("file", help="a text log (Keras console, CSVLogger), a TensorBoard event file, "
                                        "a folder of them (one run per log root), or a zip of one")
    importing.add_argument("--map", action="append", metavar="TAG=FIELD",
                           help="TensorBoard: read this scalar tag as loss, accuracy, val_loss or "
                                "val_accuracy (repeatable; the import names the tags it skipped)")
    importing.add_argument("--name")
    importing.add_argument("--device", choices=("cpu", "gpu"))
    importing.add_argument("--samples", type=int,
                           help="training images per epoch, for a log that does not say (for samples/s)")
    add_common(importing)

    annotating = commands.add_parser("annotate", help="set an imported run's training images per epoch "
                                     "and device, where its log did not say")
    annotating.add_argument("run_id")
    annotating.add_argument("--samples", type=int,
                            help="training images per epoch (for images/s and speedups)")
    annotating.add_argument("--device", choices=("cpu", "gpu"))
    add_common(annotating)

    import_runs = commands.add_parser("import-runs", help="add run folders made on another machine "
                                      "(a .tgz or a folder), as read-only runs under their own ids")
    import_runs.add_argument("source", metavar="ARCHIVE_OR_FOLDER")
    add_common(import_runs)

    export = commands.add_parser("export", help="per-epoch table of a run, or runs and groups to MLflow")
    export.add_argument("run_id", metavar="RUN|GROUP", help="a run id; with --mlflow also a group id")
    export.add_argument("--format", choices=("csv", "json"), default="csv",
                        help="the per-epoch table on stdout (default: csv)")
    add_mlflow_options(export, "send the run, or the group with its runs nested, to this MLflow "
                               "tracking URI (e.g. http://127.0.0.1:5000); again updates, never duplicates")
    export.add_argument("--no-report", action="store_true", help="with --mlflow: no report.html artifact")
    add_common(export)

    compare = commands.add_parser("compare", help="compare two runs, or groups of runs")
    compare.add_argument("ids", nargs="+", metavar="ID", help="two run ids, or run and group ids")
    compare.add_argument("--target", type=float, default=DEFAULT_TARGET)
    compare.add_argument("--json", action="store_true")
    add_common(compare)

    sweep = commands.add_parser("sweep", help="queue the product of comma lists as one group")
    add_config_options(sweep, sweep=True)
    add_repeats_option(sweep)
    sweep.add_argument("--dry-run", action="store_true",
                       help="print the plan and the estimate; queue nothing")
    add_follow_options(sweep, "the sweep")
    add_mlflow_options(sweep, "also stream each epoch to this MLflow tracking URI as it happens; the "
                           "run never waits for it, and the end says what did not arrive")
    add_cluster_options(sweep)
    add_common(sweep)

    report = commands.add_parser("report", help="write one self-contained HTML report of runs or groups")
    report.add_argument("ids", nargs="+", metavar="ID", help="run ids and group ids")
    report.add_argument("-o", "--output", default="report.html")
    report.add_argument("--target", type=float, default=DEFAULT_TARGET)
    report.add_argument("--price-cpu", type=float, help="price per hour of a CPU run (for cost)")
    report.add_argument("--price-gpu", type=float, help="price per hour of a GPU run (for cost)")
    report.add_argument("--title", default="Training benchmark report")
    add_common(report)

    doctoring = commands.add_parser("doctor", help="can every installed backend use every device here?")
    doctoring.add_argument("--json", action="store_true")
    doctoring.add_argument("--backend", action="append", choices=BACKENDS,
                           help="ask only this backend (repeatable; default: every installed one)")
    add_common(doctoring)

    probing = commands.add_parser("probe", help="what one backend sees (imports it)")
    probing.add_argument("backend", choices=BACKENDS)
    probing.add_argument("--json", action="store_true")
    add_common(probing)

    peaking = commands.add_parser("peak", help="measure the device's peak FLOP/s (a matrix product; imports "
                                               "the backend) and keep it in the cache")
    peaking.add_argument("--backend", choices=BACKENDS, default="tensorflow")
    peaking.add_argument("--device", choices=DEVICES, default="cpu")
    peaking.add_argument("--precision", choices=PRECISIONS, default="float32")
    peaking.add_argument("--json", action="store_true")
    add_common(peaking)
    return parser


def build_internal_parser() -> Parser:
    """`work`, `remote-work` and `follow`: what the launchers start (INTERNAL_COMMANDS)."""
    parser, commands = _top_parser()
    work = commands.add_parser("work", help="a detached worker: train RUN_ID")
    work.add_argument("run_id")
    work.add_argument("--slurm", action="store_true",
                      help="a Slurm job: record its node, stop on SIGTERM only when a stop was asked")
    add_common(work)

    remote = commands.add_parser("remote-work", help="a Ray job's entrypoint: train RUN_ID on the node")
    remote.add_argument("run_id")
    remote.add_argument("--config", required=True, help="the RunConfig as JSON")
    add_common(remote)

    checking = commands.add_parser("check-workload", help="check a model against its data")
    checking.add_argument("--config", required=True, help="the RunConfig as JSON")
    checking.add_argument("--shape", default="", help="the data's image shape, e.g. 28,28,1")
    checking.add_argument("--classes", type=int, default=0, help="the data's classes")
    checking.add_argument("--search", action="append", help="a folder to import a model function from")
    add_common(checking)

    follow = commands.add_parser("follow", help="copy a Ray job's records into its local run folder")
    follow.add_argument("run_id")
    add_common(follow)
    return parser
