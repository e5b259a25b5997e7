"""`import`: logs of trainings run elsewhere become read-only runs."""

from __future__ import annotations

from training.imports.runs import import_file


def cmd_import(store, args) -> int:
    for run_id in import_file(store, args.file, name=args.name, device=args.device, samples=args.samples):
        print(run_id)
    return 0
