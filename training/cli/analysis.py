"""`compare`, `export` and `report`: the Definitions' numbers on the terminal and in files.

    compare A B        two runs: steady state, samples/s, time to target, speedup
    compare ID...      run and group ids: n, median, min, max, olympic mean per cell
    export RUN         the per-epoch table as CSV or JSON; RUN|GROUP --mlflow URI: to MLflow (cli/exports.py)
    report ID... -o    one self-contained HTML file (training/analysis/report.py)
"""

from __future__ import annotations

import csv
import json
import sys

from training.analysis import comparison, groups, stats
from training.analysis.display import number, spread_sentence
from training.config import ConfigError
from training.store import Run, RunStore


def _print_json(value) -> None:
    json.dump(value, sys.stdout, indent=1)
    print()


def check_target(target: float) -> None:
    if not 0 < target <= 1:
        raise ConfigError("target", f"must be in (0, 1], got {target:g}")


def cmd_export(store: RunStore, args) -> int:
    if args.mlflow:
        from training.cli.exports import export_mlflow  # the MLflow client only for this

        return export_mlflow(store, args)
    if groups.is_group_id(args.run_id):
        raise ConfigError("export", "a group goes only to MLflow (--mlflow URI); export its runs one by one")
    rows = comparison.export_rows(store.open(args.run_id).log().check().epochs)
    if args.format == "json":
        _print_json(rows)
    else:
        writer = csv.DictWriter(sys.stdout, fieldnames=comparison.EXPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return 0


def compare_runs(store: RunStore, run_a: str, run_b: str, target: float) -> dict:
    check_target(target)
    entries = []
    for run in (store.open(run_a), store.open(run_b)):
        entries.append({"id": run.id, "name": run.meta.get("name"), "device": run.meta.get("device"),
                        "engine": run.meta.get("engine"),
                        **comparison.measure(run.log().check().epochs, target)})
    return {"runs": entries, "target": target, "speedup": comparison.speedup(*entries)}


def cmd_compare(store: RunStore, args) -> int:
    if len(args.ids) != 2 or any(groups.is_group_id(i) for i in args.ids):
        return cmd_compare_groups(store, args)
    result = compare_runs(store, *args.ids, args.target)
    if args.json:
        _print_json(result)
        return 0
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
    return 0


def describe_cells(store: RunStore, ids: list[str], target: float) -> list[dict]:
    """One entry per cell of the given run and group ids, with its statistics."""
    entries = []
    for item in ids:
        for cell in groups.cells(groups.resolve(store, [item])):
            meta = cell[0].meta
            config = meta.get("config") or {}
            logs = [run.log(system=True).check() for run in cell]  # a newer format is refused, not misread
            entries.append({
                "id": item, "name": cell[0].name, "group": meta.get("group"),
                "device": meta.get("device"), "backend": meta.get("backend"),
                "batch_size": config.get("batch_size"), "threads": config.get("threads"),
                "precision": config.get("precision"), "runs": [run.id for run in cell],
                **stats.summarize_runs([(log.epochs, log.system) for log in logs], target)})
    return entries


def compare_groups(store: RunStore, ids: list[str], target: float) -> dict:
    """Statistics of every cell, and the speedup of each over the first (B over A = A / B)."""
    check_target(target)
    entries = describe_cells(store, ids, target)
    speedups = [{"a": entries[0]["runs"], "b": entry["runs"],
                 "steady_epoch": stats.speedup(entries[0], entry, "steady_epoch_s"),
                 "time_to_target": stats.speedup(entries[0], entry, "time_to_target_s")}
                for entry in entries[1:]]
    return stats.public({"target": target, "groups": entries, "speedups": speedups})


def _letter(index: int) -> str:
    return chr(65 + index) if index < 26 else str(index)


def cmd_compare_groups(store: RunStore, args) -> int:
    result = compare_groups(store, args.ids, args.target)
    if args.json:
        _print_json(result)
        return 0
    for index, entry in enumerate(result["groups"]):
        ttt = entry["time_to_target_s"]
        reached = "not reached by any run" if ttt["min"] is None else spread_sentence(ttt, ",.2f", " s")
        print(f"{_letter(index)}: {entry['name']} [{entry['id']}] n={entry['n']}\n"
              f"   steady-state epoch   {spread_sentence(entry['steady_epoch_s'], ',.2f', ' s')}\n"
              f"   samples/s            {spread_sentence(entry['steady_samples_per_s'], ',.0f')}\n"
              f"   time to {args.target:.2%}     {reached}; {entry['not_reached']} of {entry['n']} "
              "did not reach it\n"
              f"   cores kept busy      {spread_sentence(entry['cores_busy'], '.2f')}")
    for index, speed in enumerate(result["speedups"], start=1):
        epoch, ttt = speed["steady_epoch"], speed["time_to_target"]
        print(f"speedup of {_letter(index)} over A: "
              f"{number(epoch['median'], '.2f', 'x')} steady-state epoch "
              f"(range {number(epoch['low'], '.2f')}-{number(epoch['high'], '.2f', 'x')}), "
              f"{number(ttt['median'], '.2f', 'x')} time to target")
    return 0


def cmd_report(store: RunStore, args) -> int:
    from training.analysis.report import write_report  # plotly only for this command

    check_target(args.target)
    runs: list[Run] = groups.resolve(store, args.ids)
    prices = {"cpu": args.price_cpu, "gpu": args.price_gpu}
    print(write_report(runs, args.output, target=args.target, prices=prices, title=args.title))
    return 0
