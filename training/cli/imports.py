"""`import`: logs of trainings run elsewhere become read-only runs; `import-runs`: whole run folders."""

from __future__ import annotations

from training.imports.archive import import_runs
from training.imports.runs import import_file


def cmd_import(store, args) -> int:
    for run_id in import_file(store, args.file, name=args.name, device=args.device, samples=args.samples):
        print(run_id)
    return 0


def cmd_import_runs(store, args) -> int:
    for run_id in import_runs(store, args.source):
        print(run_id)
    return 0
