"""`compare`, `export` and `report`: the Definitions' numbers on the terminal and in files.

    compare A B        two runs: steady state, images/s, time to target, FLOP/s and utilisation, contention,
                       speedup with its bootstrap 95% interval and verdict
    compare ID...      run and group ids: n, median, min, max, olympic mean per cell; intervals over runs
    export RUN         the per-epoch table as CSV or JSON; RUN|GROUP --mlflow URI: to MLflow (cli/exports.py)
    report ID... -o    one self-contained HTML file (training/analysis/report.py)
"""

from __future__ import annotations

import csv
import json
import sys

from training.analysis import comparison, flops, groups, stats, workload
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
        log = run.log().check()
        entries.append({"id": run.id, "name": run.meta.get("name"), "device": run.meta.get("device"),
                        "engine": run.meta.get("engine"), "backend": run.meta.get("backend"),
                        **comparison.describe(log.epochs, run.meta, log.start, target)})
    a, b = entries
    return {"runs": entries, "target": target,
            "speedup": comparison.speedup(a, b, a["protocol"], b["protocol"]),
            "protocol_note": comparison.protocol_note([("A", a["protocol"]), ("B", b["protocol"])])}


def flop_rate(value: float | None) -> str:
    return number(None if value is None else value / 1e9, ",.1f", " GFLOP/s")


def aligned(rows: list[tuple[str, str]]) -> str:
    """A run's or a group's rows, indented, every value starting in one column (the widest label's)."""
    width = max(len(label) for label, _ in rows) + 3
    return "\n".join(f"   {label:<{width}}{value}" for label, value in rows)


def efficiency_rows(run: dict) -> list[tuple[str, str]]:
    """The FLOPs, achieved FLOP/s, peak and utilisation rows of one run, for the terminal."""
    if run["flops_per_train_image"] is None:
        why = run["flops_error"] or "the log has no model layers"
        return [("FLOPs per image", f"unknown ({why})")]
    sheet = ""
    if run["datasheet_peak_flops_per_s"]:
        sheet = (f"; datasheet {flop_rate(run['datasheet_peak_flops_per_s'])}, "
                 f"{number(run['datasheet_utilisation'], '.2%')} of it")
    return [("FLOPs per image", f"{run['flops_per_train_image'] / 1e6:.2f} M trained, "
                                f"{run['flops_per_eval_image'] / 1e6:.2f} M evaluated"),
            ("achieved", f"{flop_rate(run['achieved_train_flops_per_s'])} training, "
                         f"{flop_rate(run['achieved_epoch_flops_per_s'])} whole epoch"),
            ("utilisation", f"{utilisation_text(run)}{sheet}")]


def utilisation_text(run: dict) -> str:
    if run["peak_flops_per_s"] is None:
        return "unknown: no measured peak in the log"
    text = f"{number(run['utilisation'], '.2%')} of the measured peak {flop_rate(run['peak_flops_per_s'])}"
    if flops.impossible(run["utilisation"]):
        text += f" ({flops.ABOVE_PEAK}); whole epoch {number(run['epoch_utilisation'], '.2%')}"
    return text


def speedup_sentence(speed: dict, over: str = "B over A") -> str:
    ttt = (f"not comparable ({speed['time_to_target_note']})" if speed["time_to_target_note"]
           else number(speed["time_to_target"], ".2f", "x"))
    if speed.get("images_per_s_note"):  # different workloads: never divided
        return f"speedup of {over}: {speed['images_per_s_note']}; time to target {ttt}"
    return (f"speedup of {over}: {number(speed['images_per_s'], '.2f', 'x')} in "
            f"{comparison.RATE_LABELS[speed['basis']]}; time to target {ttt}\n"
            f"verdict: {speed['verdict']}")


def best_text(run: dict) -> str:
    """The best validation accuracy and its epoch, or why there is none (synthetic data)."""
    if run.get("accuracy_note"):
        return run["accuracy_note"]
    return f"{number(run['best_val_accuracy'], '.4f')} (epoch {run['best_epoch']})"


def cmd_compare(store: RunStore, args) -> int:
    if len(args.ids) != 2 or any(groups.is_group_id(i) for i in args.ids):
        return cmd_compare_groups(store, args)
    result = compare_runs(store, *args.ids, args.target)
    if args.json:
        _print_json(result)
        return 0
    for label, run in zip("AB", result["runs"]):
        reached = (run["accuracy_note"] or "not reached" if run["time_to_target_s"] is None else
                   f"{run['time_to_target_s']:.2f} s (epoch {run['time_to_target_epoch']})")
        rows = [("steady-state epoch", number(run['steady_epoch_s'], '.2f', ' s')),
                ("images/s", f"{number(run['train_images_per_s'], ',.0f')} training, "
                             f"{number(run['epoch_images_per_s'], ',.0f')} per epoch second "
                             "(evaluation included)"),
                (f"time to {args.target:.2%}", reached),
                ("best val accuracy", best_text(run)),
                ("total", number(run['total_s'], '.2f', ' s')),
                ("contention", run['contention']['text']),
                *efficiency_rows(run)]
        print(f"{label}: {run['name']} [{run['id']}] {run['workload']}\n{aligned(rows)}")
    if result["protocol_note"]:
        print(result["protocol_note"])
    print(speedup_sentence(result["speedup"]))
    return 0


def describe_cells(store: RunStore, ids: list[str], target: float) -> list[dict]:
    """One entry per cell of the given run and group ids, with its statistics."""
    entries = []
    for item in ids:
        for cell in groups.cells(groups.resolve(store, [item])):
            meta = cell[0].meta
            config = meta.get("config") or {}
            logs = [run.log(system=True).check() for run in cell]  # a newer format is refused, not misread
            contexts = [(run.meta, log.start) for run, log in zip(cell, logs)]
            entries.append({
                "id": item, "name": cell[0].name, "group": meta.get("group"),
                "device": meta.get("device"), "backend": meta.get("backend"),
                "batch_size": config.get("batch_size"), "threads": config.get("threads"),
                "precision": config.get("precision"), "runs": [run.id for run in cell],
                **stats.summarize_runs([(log.epochs, log.system) for log in logs], target, contexts)})
    return entries


def compare_groups(store: RunStore, ids: list[str], target: float) -> dict:
    """Statistics of every cell, and the speedup of each over the first (images/s, B / A)."""
    check_target(target)
    entries = describe_cells(store, ids, target)
    speedups, basis = [], stats.rate_basis(entries)
    for entry in entries[1:]:
        note = comparison.time_to_target_blocker(entries[0]["protocol"], entry["protocol"])
        ttt = None if note else stats.speedup(entries[0], entry, "time_to_target_s")
        different = workload.blocker(entries[0]["protocol"], entry["protocol"])  # never divided
        rate = ({"median": None, "low": None, "high": None, "basis": basis, "ci_low": None,
                 "ci_high": None, "verdict": different} if different
                else stats.rate_speedup(entries[0], entry, basis, ("A", _letter(len(speedups) + 1))))
        speedups.append({"a": entries[0]["runs"], "b": entry["runs"], "images_per_s": rate,
                         "images_per_s_note": different, "time_to_target": ttt, "time_to_target_note": note})
    note = comparison.protocol_note([(_letter(i), e["protocol"]) for i, e in enumerate(entries)])
    return stats.public({"target": target, "groups": entries, "speedups": speedups, "protocol_note": note})


def group_utilisation(entry: dict) -> str:
    if entry["peak_flops_per_s"]["median"] is None:
        return "unknown: no measured peak in the logs"
    return (f"{spread_sentence(entry['utilisation'], '.2%')} of the measured peak "
            f"{flop_rate(entry['peak_flops_per_s']['median'])}")


def _giga(values: dict) -> dict:
    return {k: None if v is None else v / 1e9 for k, v in values.items()}


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
        reached += f"; {entry['not_reached']} of {entry['n']} did not reach it"
        if (entry.get("protocol") or {}).get("data") == workload.SYNTHETIC:
            reached = workload.SYNTHETIC_NOTE  # random labels: no accuracy to reach
        rows = [("steady-state epoch", spread_sentence(entry['steady_epoch_s'], ',.2f', ' s')),
                ("training images/s", spread_sentence(entry['train_images_per_s'], ',.0f')),
                ("epoch images/s", f"{spread_sentence(entry['epoch_images_per_s'], ',.0f')} "
                                   "(evaluation included)"),
                (f"time to {args.target:.2%}", reached),
                ("cores kept busy", spread_sentence(entry['cores_busy'], '.2f')),
                ("contention", entry['contention']['text']),
                ("achieved", f"{spread_sentence(_giga(entry['achieved_flops_per_s']), ',.1f')} GFLOP/s"),
                ("utilisation", group_utilisation(entry))]
        print(f"{_letter(index)}: {entry['name']} [{entry['id']}] n={entry['n']}\n{aligned(rows)}")
    if result["protocol_note"]:
        print(result["protocol_note"])
    for index, speed in enumerate(result["speedups"], start=1):
        rate, ttt = speed["images_per_s"], speed["time_to_target"]
        ttt_text = (f"not comparable ({speed['time_to_target_note']})" if speed["time_to_target_note"]
                    else number(ttt["median"], ".2f", "x"))
        if speed["images_per_s_note"]:
            print(f"speedup of {_letter(index)} over A: {speed['images_per_s_note']}; "
                  f"time to target {ttt_text}")
            continue
        print(f"speedup of {_letter(index)} over A: "
              f"{number(rate['median'], '.2f', 'x')} in {comparison.RATE_LABELS[rate['basis']]} "
              f"(range {number(rate['low'], '.2f')}-{number(rate['high'], '.2f', 'x')}); "
              f"time to target {ttt_text}\n"
              f"verdict: {rate['verdict']}")
    return 0


def cmd_report(store: RunStore, args) -> int:
    from training.analysis.report import write_report  # plotly only for this command

    check_target(args.target)
    runs: list[Run] = groups.resolve(store, args.ids)
    prices = {"cpu": args.price_cpu, "gpu": args.price_gpu}
    print(write_report(runs, args.output, target=args.target, prices=prices, title=args.title))
    return 0
