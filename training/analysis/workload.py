"""A run's workload (model and data) as every view names it, and what synthetic data rules out.

One place for: the workload of a run (`of`: an older log, or a published or imported run,
reads as the published CNN on MNIST), its short label for legends, tables and reports
(`label`), whether two runs' speedups may be divided (`blocker`), and the one sentence
every view shows instead of accuracy and time to target for synthetic data
(`accuracy_note`: "synthetic data: no accuracy"). Pure: no I/O.
"""

from __future__ import annotations

from pathlib import Path

from training.config import DEFAULT_DATA, DEFAULT_MODEL, SYNTHETIC, data_kind, model_kind, workload_of

SYNTHETIC_NOTE = "synthetic data: no accuracy"


def of(meta: dict | None, start: dict | None = None) -> tuple[str, str]:
    """(model, data) of a run from its config.json (or a published run's start record)."""
    meta, start = meta or {}, start or {}
    return workload_of(meta.get("config") or start.get("protocol"))


def is_default(meta: dict | None, start: dict | None = None) -> bool:
    """The published CNN on MNIST: the reference, which labels need not name."""
    return of(meta, start) == (DEFAULT_MODEL, DEFAULT_DATA)


def short(name: str) -> str:
    """A model or data name in a few characters: a file's name, a function's, keras:NAME as it is."""
    if model_kind(name) == "file" or (data_kind(name) == "file" and name.endswith(".npz")):
        return Path(name).name
    if model_kind(name) == "function" and ":" in name and "/" not in name:
        return name.rsplit(".", 1)[-1]  # package.module:function -> module:function
    return name


def label(meta: dict | None, start: dict | None = None) -> str:
    """"keras:mobilenet_v2 on synthetic", "tinynet:build on data.npz", "mnist-cnn on mnist"."""
    model, data = of(meta, start)
    return f"{short(model)} on {short(data)}"


def is_synthetic(meta: dict | None, start: dict | None = None) -> bool:
    return of(meta, start)[1] == SYNTHETIC


def accuracy_note(meta: dict | None, start: dict | None = None) -> str | None:
    """"synthetic data: no accuracy" where accuracy and time to target mean nothing, else None.

    Every view that shows accuracy or time to target calls this and shows the note instead.
    """
    return SYNTHETIC_NOTE if is_synthetic(meta, start) else None


def blocker(a: dict, b: dict) -> str | None:
    """Why two protocols' speedup cannot be divided ("not comparable: different model"), or None.

    `a` and `b` are `comparison.protocol()`s, which carry the workload as `model` and `data`.
    """
    for key in ("model", "data"):
        if (a.get(key) or None) != (b.get(key) or None):
            return f"not comparable: different {key}"
    return None
