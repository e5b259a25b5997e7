"""Groups of runs, as read back: which runs belong together, and their cells.

A group is not a folder. Each of its runs is an ordinary run whose config.json
carries, beside the settings, `group` (the id, "g-" then a run-id-like stamp),
`group_kind` ("repeats" or "sweep"), `group_name` and `repeat` (0-based).
Planning and queueing groups is the launchers' job (`training/launch/sweeps.py`).

A *cell* is the runs of one group with the same swept settings: what a median
and a min-max band are taken over. A run outside any group is a cell alone.
"""

from __future__ import annotations

from training.config import SWEEP_FIELDS, workload_of
from training.store import Run, RunNotFound, RunStore

GROUP_PREFIX = "g-"  # run ids start with a digit and reference runs with "ref-": no clash


def is_group_id(text: str) -> bool:
    return text.startswith(GROUP_PREFIX)


def sweep_key(config: dict) -> tuple:
    """The swept settings of a run's config dict: runs with the same key are one cell.

    The workload (model, data) is keyed like the device; a config written before workloads
    existed reads as the published CNN on MNIST, so old and new runs of it share a cell.
    """
    model, data = workload_of(config)
    return tuple({"model": model, "data": data}.get(name, config.get(name)) for name in SWEEP_FIELDS)


def by_group(runs: list[Run]) -> dict[str, list[Run]]:
    """The grouped runs among `runs`, by group id, each group in the order given."""
    found: dict[str, list[Run]] = {}
    for run in runs:
        if group := run.meta.get("group"):
            found.setdefault(group, []).append(run)
    return found


def member_ids(runs: list[Run]) -> dict[str, list[str]]:
    """`by_group`, as run ids: what the pages' group pickers list."""
    return {group: [run.id for run in grouped] for group, grouped in by_group(runs).items()}


def members(store: RunStore, group_id: str) -> list[Run]:
    """The runs of one group, in queue order; `RunNotFound` if there are none."""
    runs = by_group(store.runs()).get(group_id)
    if not runs:
        raise RunNotFound(f"no group {group_id!r} in {store.root}")
    return runs


def resolve(store: RunStore, ids: list[str]) -> list[Run]:
    """Runs for a mix of run ids and group ids, each once, in the order given."""
    found: dict[str, Run] = {}
    for item in ids:
        for run in members(store, item) if is_group_id(item) else [store.open(item)]:
            found.setdefault(run.id, run)
    return list(found.values())


def cell_key(meta: dict, run_id: str) -> tuple:
    """Runs with the same key form one cell: a group's runs with the same swept settings."""
    group = meta.get("group")
    return (group, *sweep_key(meta.get("config") or {})) if group else (run_id,)


def cells(runs: list[Run]) -> list[list[Run]]:
    """Runs split into cells, in first-seen order; a run outside any group is a cell alone."""
    found: dict[tuple, list[Run]] = {}
    for run in runs:
        found.setdefault(cell_key(run.meta, run.id), []).append(run)
    return list(found.values())
