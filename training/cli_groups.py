"""The command line's group commands: `run --repeats`, `sweep`, `compare` of groups, `report`.

    run --repeats N   queue N runs of one configuration as one group (detached)
    sweep             queue the product of comma lists (--device, --backend, --batch-size,
                      --precision, --threads) times --repeats, interleaved, as one group
    compare ID...     run ids and group ids: n, median, min, max, olympic mean, not reached
    report ID... -o   one self-contained HTML file (dashboard/report.py)

Each queueing command prints every run id, one per line, then the group id last.
`training/cli.py` registers these; the maths is `training/stats.py`.
"""

from __future__ import annotations

import argparse
import json
import sys

from training import comparison, groups, stats
from training.config import RunConfig
from training.display import number
from training.store.runlog import RunLog
from training.store.runs import Run, RunError, RunStore

SWEEP_HELP = "comma list, e.g. 32,128,512"


def _int_or_none(text: str):
    return None if text.lower() in ("", "none", "all") else int(text)


def _comma_list(kind):
    def parse(text: str) -> list:
        try:
            return [kind(part.strip()) for part in text.split(",") if part.strip()]
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"not a comma list of values: {text!r}") from error
    return parse


def add_repeats_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=None,
                        help="queue N runs of this configuration as one group, detached "
                             f"(1-{groups.MAX_REPEATS}); prints each run id, then the group id")


def add_commands(commands, add_config_options, add_common, add_cluster_options) -> None:
    """Register `sweep` and `report` on the CLI's subparsers."""
    sweep = commands.add_parser("sweep", help="queue the product of comma lists as one group")
    add_config_options(sweep)
    for action in sweep._actions:  # the swept settings take comma lists instead of one value
        if action.dest in groups.SWEEP_FIELDS:
            kind = _int_or_none if action.dest == "threads" else int if action.dest == "batch_size" else str
            action.type, action.choices, action.default = _comma_list(kind), None, None
            action.help = f"{action.help} ({SWEEP_HELP})"
    add_repeats_option(sweep)
    sweep.add_argument("--dry-run", action="store_true",
                       help="print the plan and the estimate; queue nothing")
    add_cluster_options(sweep)
    add_common(sweep)

    report = commands.add_parser("report", help="write one self-contained HTML report of runs or groups")
    report.add_argument("ids", nargs="+", metavar="ID", help="run ids and group ids")
    report.add_argument("-o", "--output", default="report.html")
    report.add_argument("--target", type=float, default=comparison.DEFAULT_TARGET)
    report.add_argument("--price-cpu", type=float, help="price per hour of a CPU run (for cost)")
    report.add_argument("--price-gpu", type=float, help="price per hour of a GPU run (for cost)")
    report.add_argument("--title", default="Training benchmark report")
    add_common(report)


def _print_queued(group: str, runs: list[Run]) -> None:
    for run in runs:
        print(run.id)
    print(group)


def cmd_run_repeats(store: RunStore, args, config: RunConfig, launcher=None) -> int:
    group, runs = groups.queue(store, groups.plan(config, repeats=args.repeats), "repeats", config.name,
                               launcher)
    _print_queued(group, runs)
    return 0


def cmd_sweep(store: RunStore, args, launcher=None) -> int:
    base = {name: getattr(args, name) for name in RunConfig.__dataclass_fields__}
    values = {name: base.pop(name) for name in groups.SWEEP_FIELDS}
    defaults = RunConfig()
    base = RunConfig(**{**base, **{name: getattr(defaults, name) for name in groups.SWEEP_FIELDS}})
    planned = groups.plan(base, {k: v for k, v in values.items() if v}, args.repeats or 1)
    if problem := groups.device_problem([config for _, config in planned], launcher):
        raise RunError(f"nothing queued: {problem}")  # before the estimate: nothing will run
    seconds, basis = groups.estimate(store, [config for _, config in planned])
    print(f"{len(planned)} runs, about {seconds / 60:,.1f} min ({basis})", file=sys.stderr)
    if args.dry_run:
        for repeat, config in planned:
            print(f"repeat {repeat + 1}: {config.name or config.device}")
        return 0
    group, runs = groups.queue(store, planned, "sweep", base.name, launcher)
    _print_queued(group, runs)
    return 0


def _logs(run: Run) -> tuple[list[dict], list[dict]]:
    log = RunLog(run.metrics_path, run.system_path)
    log.update(system=True)
    log.check()  # a newer log format is refused, not misread
    return log.epochs, log.system


def describe_cells(store: RunStore, ids: list[str], target: float) -> list[dict]:
    """One entry per cell of the given run and group ids, with its statistics."""
    entries = []
    for item in ids:
        for cell in groups.cells(groups.resolve(store, [item])):
            meta = cell[0].meta
            config = meta.get("config") or {}
            entries.append({
                "id": item, "name": cell[0].name, "group": meta.get("group"),
                "device": meta.get("device"), "backend": meta.get("backend"),
                "batch_size": config.get("batch_size"), "threads": config.get("threads"),
                "precision": config.get("precision"), "runs": [run.id for run in cell],
                **stats.summarize_runs([_logs(run) for run in cell], target)})
    return entries


def compare_groups(store: RunStore, ids: list[str], target: float) -> dict:
    """Statistics of every cell, and the speedup of each over the first (B over A = A / B)."""
    entries = describe_cells(store, ids, target)
    speedups = [{"a": entries[0]["runs"], "b": entry["runs"],
                 "steady_epoch": stats.speedup(entries[0], entry, "steady_epoch_s"),
                 "time_to_target": stats.speedup(entries[0], entry, "time_to_target_s")}
                for entry in entries[1:]]
    return stats.public({"target": target, "groups": entries, "speedups": speedups})


def _spread_text(values: dict, spec: str, unit: str = "") -> str:
    if values["median"] is None:
        return number(None)
    text = (f"median {number(values['median'], spec, unit)}  (min {number(values['min'], spec)}, "
            f"max {number(values['max'], spec)}")
    if values.get("olympic_mean") is not None:
        text += f"; olympic mean {number(values['olympic_mean'], spec, unit)}"
    return text + ")"


def cmd_compare_groups(store: RunStore, args) -> int:
    result = compare_groups(store, args.ids, args.target)
    if args.json:
        json.dump(result, sys.stdout, indent=1)
        print()
        return 0
    for index, entry in enumerate(result["groups"]):
        ttt = entry["time_to_target_s"]
        reached = "not reached by any run" if ttt["min"] is None else _spread_text(ttt, ",.2f", " s")
        print(f"{chr(65 + index) if index < 26 else index}: {entry['name']} [{entry['id']}] n={entry['n']}\n"
              f"   steady-state epoch   {_spread_text(entry['steady_epoch_s'], ',.2f', ' s')}\n"
              f"   samples/s            {_spread_text(entry['steady_samples_per_s'], ',.0f')}\n"
              f"   time to {args.target:.2%}     {reached}; {entry['not_reached']} of {entry['n']} "
              "did not reach it\n"
              f"   cores kept busy      {_spread_text(entry['cores_busy'], '.2f')}")
    for index, speed in enumerate(result["speedups"], start=1):
        epoch, ttt = speed["steady_epoch"], speed["time_to_target"]
        print(f"speedup of {chr(65 + index) if index < 26 else index} over A: "
              f"{number(epoch['median'], '.2f', 'x')} steady-state epoch "
              f"(range {number(epoch['low'], '.2f')}-{number(epoch['high'], '.2f', 'x')}), "
              f"{number(ttt['median'], '.2f', 'x')} time to target")
    return 0


def cmd_report(store: RunStore, args) -> int:
    from dashboard.report import write_report  # plotly only for this command

    runs = groups.resolve(store, args.ids)
    prices = {"cpu": args.price_cpu, "gpu": args.price_gpu}
    path = write_report(runs, args.output, target=args.target, prices=prices, title=args.title)
    print(path)
    return 0
