"""`import`: logs of trainings run elsewhere become read-only runs; `import-runs`: whole run folders.

The run ids go to stdout, one a line; what the import skipped or could not read
(unrecognised TensorBoard tags, a damaged event file) goes to stderr as notes,
the same notes the runs keep as `warning` records.
"""

from __future__ import annotations

import sys

from training.imports.annotate import annotate
from training.imports.archive import import_runs
from training.imports.runs import import_file


def cmd_import(store, args) -> int:
    made = import_file(store, args.file, name=args.name, device=args.device, samples=args.samples,
                       maps=args.map)
    for run_id in made:
        print(run_id)
    for run_id in made:
        run = store.open(run_id)
        for warning in run.log().warnings:
            print(f"note: {run.name}: {warning.get('message')}", file=sys.stderr)
    return 0


def cmd_import_runs(store, args) -> int:
    for run_id in import_runs(store, args.source):
        print(run_id)
    return 0


def cmd_annotate(store, args) -> int:
    """`annotate RUN --samples N [--device cpu|gpu]`: what an imported log did not say."""
    changed = annotate(store.open(args.run_id), samples=args.samples, device=args.device)
    run = store.open(args.run_id)
    said = [f"{key.replace('_', ' ')} {value:,}" if isinstance(value, int) else f"{key} {value}"
            for key, value in changed.items()]
    print(f"{run.name} ({run.id}): " + ", ".join(said))
    return 0
