"""What each record and JSON file of a run folder may hold: one schema per record type, checked where read.

A run folder may come from anywhere (another machine, an archive, a hand edit), so
nothing read from it is trusted to have the types the code expects. Each record type
(`start`, `progress`, `epoch`, `end`, `warning`, `system`) and each JSON file
(config.json, status.json, pid.json, job.json) has a schema here: the fields this
project reads and what each must be. A field may be absent or null unless it is
required; fields a schema does not name pass (a newer writer may add some). A record
that breaks its schema is skipped and counted by the reader (`RunLog.skipped`), and
`--verbose` names it; a JSON file that breaks its schema makes the run "unreadable".

Numbers must be finite (JSON from elsewhere may spell NaN or Infinity; ours writes
null), and a boolean is never a number.
"""

from __future__ import annotations

import dataclasses
import math

from training.config import RunConfig

NUMBER, INT, TEXT, FLAG, OBJECT, LIST = "a number", "a whole number", "text", "true or false", "an object", \
    "a list"


def _is(kind, value) -> bool:
    if isinstance(kind, dict):
        return isinstance(value, dict)
    if isinstance(kind, tuple):  # ("list of", item kind)
        return isinstance(value, list)
    if kind == NUMBER:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind == INT:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, {TEXT: str, FLAG: bool, OBJECT: dict, LIST: list}[kind])


def _word(kind) -> str:
    if isinstance(kind, dict):
        return OBJECT
    if isinstance(kind, tuple):
        return f"a list of {_word(kind[1])}s" if not isinstance(kind[1], dict) else "a list of objects"
    return kind


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def problem(data, schema: dict, required: tuple = (), where: str = "") -> str | None:
    """Why `data` breaks `schema` ("val_accuracy must be a number, got '0.99'"), or None."""
    if not isinstance(data, dict):
        return f"{where or 'it'} must be an object, got {_show(data)}"
    for key in required:
        if data.get(key) is None:
            return f"{where}{key} is missing"
    for key, kind in schema.items():
        value = data.get(key)
        if value is None:
            continue
        if not _is(kind, value):
            return f"{where}{key} must be {_word(kind)}, got {_show(value)}"
        if isinstance(kind, dict) and (why := problem(value, kind, where=f"{where}{key}.")):
            return why
        if isinstance(kind, tuple):
            for index, item in enumerate(value):
                item_kind = kind[1]
                if isinstance(item_kind, dict):
                    why = problem(item, item_kind, where=f"{where}{key}[{index}].")
                elif not _is(item_kind, item):
                    why = f"{where}{key}[{index}] must be {_word(item_kind)}, got {_show(item)}"
                else:
                    why = None
                if why:
                    return why
    return None


def _config_schema() -> dict:
    """RunConfig's fields by their annotation: `int | None` is a whole number or null."""
    kinds = {"int": INT, "float": NUMBER, "str": TEXT, "bool": FLAG}
    return {f.name: kinds[str(f.type).split(" |")[0]] for f in dataclasses.fields(RunConfig)}


CONFIG = _config_schema()
SHAPE = ("list of", INT)
LAYER = {"class": TEXT, "input": SHAPE, "output": SHAPE, "kernel": SHAPE, "pool": SHAPE, "bias": FLAG,
         "activation": TEXT}
HARDWARE = {"cpu_model": TEXT, "cpu_logical_cores": INT, "cpu_physical_cores": INT, "memory_gb": NUMBER,
            "platform": TEXT, "hostname": TEXT, "python": TEXT, "device": TEXT,
            "gpu_names": ("list of", TEXT), "nvml_gpus": LIST}
PEAK = {"flops_per_s": NUMBER, "backend": TEXT, "device": TEXT, "precision": TEXT, "dtype": TEXT, "n": INT,
        "seconds": NUMBER, "hostname": TEXT, "cached": FLAG, "threads": INT, "error": TEXT}
COMMON = {"type": TEXT, "time": NUMBER, "seq": INT}

RECORDS = {  # the records of metrics.jsonl and system.jsonl, by type (docs/log-format.md)
    "start": {**COMMON, "config": CONFIG, "hardware": HARDWARE,
              "versions": {k: TEXT for k in ("python", "keras", "numpy", "backend", "backend_version")},
              "params": {"total": INT, "trainable": INT, "non_trainable": INT},
              "train_samples": INT, "test_samples": INT, "batches_per_epoch": INT,
              "layers": ("list of", LAYER), "peak": PEAK, "imported": FLAG, "format": TEXT, "origin": TEXT,
              "protocol": {"batch_size": INT, "lr": NUMBER, "momentum": NUMBER, "precision": TEXT},
              "jit_compile": FLAG, "steps_per_execution": INT, "tensorboard": FLAG},
    "progress": {**COMMON, "epoch": INT, "batch": INT, "batches": INT, "epoch_s": NUMBER,
                 "samples_per_s": NUMBER, "elapsed_s": NUMBER, "loss": NUMBER, "accuracy": NUMBER},
    "epoch": {**COMMON, "epoch": INT, "samples": INT, "profiled": FLAG,
              **{k: NUMBER for k in ("loss", "accuracy", "val_loss", "val_accuracy", "train_s", "eval_s",
                                     "epoch_time_s", "samples_per_s", "elapsed_s", "cpu_s", "steps_s",
                                     "first_step_wait_s", "outside_s", "profile_s")}},
    "end": {**COMMON, "status": TEXT, "error": TEXT, "wall_s": NUMBER, "note": TEXT},
    "warning": {**COMMON, "source": TEXT, "message": TEXT},
    "system": {**COMMON, **{k: NUMBER for k in ("elapsed_s", "process_cpu_percent", "system_cpu_percent",
                                                "rss_mb", "cpu_energy_j", "cpu_power_w")},
               "gpus": ("list of", {"index": INT, **{k: NUMBER for k in (
                   "util_percent", "memory_used_mb", "memory_total_mb", "power_w", "temperature_c")}})},
}
REQUIRED = {"progress": ("epoch", "batch", "batches", "epoch_s"), "epoch": ("epoch",), "end": ("status",),
            "system": ("time",)}

FILES = {  # the JSON files of a run folder, by what they hold (layout.py names them)
    "config": {"id": TEXT, "name": TEXT, "source": TEXT, "device": TEXT, "engine": TEXT, "backend": TEXT,
               "epochs": INT, "train_samples": INT, "config": CONFIG, "created": NUMBER, "origin": TEXT,
               "format": TEXT, "group": TEXT, "group_kind": TEXT, "group_name": TEXT, "repeat": INT,
               "group_size": INT, "cluster": {"address": TEXT, "gpu_model": TEXT, "cpus": NUMBER},
               "slurm": {"partition": TEXT, "args": TEXT, "exclusive": FLAG, "gpu_model": TEXT, "cpus": INT},
               "imported_from": TEXT, "imported_at": NUMBER, "imported_by": TEXT, "original_source": TEXT},
    "status": {"state": TEXT, "time": NUMBER, "error": TEXT},
    "pid": {"pid": INT, "create_time": NUMBER},
    "job": {"job_id": TEXT, "partition": TEXT, "node": TEXT, "submitted": NUMBER, "started": NUMBER},
}


def record_problem(record: dict) -> str | None:
    """Why a log record breaks the schema of its type, or None (a type this reader does not know passes)."""
    kind = record.get("type")
    if kind not in RECORDS:
        return None if kind is None or isinstance(kind, str) else f"type must be text, got {_show(kind)}"
    why = problem(record, RECORDS[kind], REQUIRED.get(kind, ()))
    if why is None and kind in ("epoch", "progress") and record["epoch"] < 1:
        why = f"epoch must be 1 or more, got {record['epoch']}"
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} record's {why}" if why else None


def file_problem(what: str, data) -> str | None:
    """Why the contents of a run's JSON file (`what`: config, status, pid, job) break its schema, or None."""
    return problem(data, FILES[what])
