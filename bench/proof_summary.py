"""The GPU proof's figures: `summary.json` from its run folders, the device check, the tarball.

Pure reading of run folders (no framework, no plotly), so it works on the lent GPU machine's
bare Python and in the tests. `bench/gpu_proof.py` calls `write_summary` after every step, so
a call killed at its limit still leaves a summary of what finished.
"""

from __future__ import annotations

import json
import statistics
import tarfile
import time
from pathlib import Path

from training.analysis import comparison, energy, flops
from training.config import workload_of
from training.store import RunStore

TARGET = 0.99  # time to 99% validation accuracy, as the published comparison
PUBLISHED = ("ref-keras-cpu", "ref-tensorflow-gpu")  # the 2018 runs shipped with the package
FULL_MNIST = 60_000  # training images of the published protocol


def run_figures(store: RunStore, run_id: str, step: dict) -> dict:
    """One run's line of summary.json: its measures, devices, versions, joules per epoch."""
    run = store.open(run_id)
    run_log = run.log(system=True)
    start = run_log.start or {}
    hardware, versions = start.get("hardware") or {}, start.get("versions") or {}
    measures = comparison.measure(run_log.epochs, TARGET)
    joules = energy.run_energy(run_log.epochs, run_log.system, TARGET)
    config = run.meta.get("config") or {}
    model, data = workload_of(config)
    return {
        "id": run.id, "step": step.get("key"), "name": run.name, "status": run.status(),
        "model": model, "data": data, "image_size": config.get("image_size"), **model_size(start),
        "wanted_device": step.get("device"), "device": hardware.get("device"),
        "backend": config.get("backend"), "batch_size": config.get("batch_size"),
        "steps_per_execution": config.get("steps_per_execution", 1), "jit": config.get("jit"),
        "epochs_planned": config.get("epochs"), "train_samples": start.get("train_samples"),
        "steady_epoch_s": measures["steady_epoch_s"],
        "samples_per_s": measures["steady_samples_per_s"],
        "time_to_99_s": measures["time_to_target_s"], "time_to_99_epoch": measures["time_to_target_epoch"],
        "best_val_accuracy": measures["best_val_accuracy"], "epochs_done": measures["epochs_done"],
        "cores_busy": measures["cores_busy"],
        **gpu_use(run_log.system),
        "gpu_joules_per_epoch": joules["gpu"]["joules_per_epoch"],
        "cpu_joules_per_epoch": joules["cpu"]["joules_per_epoch"],
        "energy_measured": joules["measured"],
        "gpu_names": hardware.get("gpu_names") or [], "cpu_model": hardware.get("cpu_model"),
        "nvml_gpus": hardware.get("nvml_gpus") or [], "hostname": hardware.get("hostname"),
        "versions": versions, "jit_compile": start.get("jit_compile"), "error": run.cause(run.status()),
        "group": run.meta.get("group"),
    }


def model_size(start: dict) -> dict:
    """Forward FLOPs per image and how they were counted (the backend's counter, else the layers)."""
    try:
        counted = flops.model_flops(start)
    except flops.FlopsError as error:
        return {"flops_per_image": None, "flops_method": None, "flops_error": str(error)}
    return {"flops_per_image": counted and counted["forward"], "flops_method": counted and counted["method"],
            "flops_error": None}


def gpu_use(system: list[dict]) -> dict:
    """Median GPU utilisation (%) and peak GPU memory (MiB) over the run's NVML samples, or None."""
    readings = [gpu for sample in system for gpu in sample.get("gpus") or []]
    utils = [g["util_percent"] for g in readings if g.get("util_percent") is not None]
    memory = [g["memory_used_mb"] for g in readings if g.get("memory_used_mb") is not None]
    return {"gpu_util_median_percent": statistics.median(utils) if utils else None,
            "gpu_memory_peak_mb": round(max(memory), 1) if memory else None}


def device_problems(runs: list[dict]) -> list[str]:
    """Runs that did not train where they were meant to: a GPU run on the CPU above all."""
    problems = []
    for run in runs:
        if run["wanted_device"] == "gpu" and (run["device"] != "gpu" or not run["gpu_names"]):
            seen = run["device"] or "no start record"
            problems.append(f"{run['id']} ({run['name']}) was to train on a GPU but its start record "
                            f"says device {seen}, GPUs {run['gpu_names'] or 'none'}"
                            + (f": {run['error']}" if run["error"] else ""))
        elif run["wanted_device"] == "cpu" and run["device"] not in ("cpu", None):
            problems.append(f"{run['id']} ({run['name']}) was to train on the CPU but says {run['device']}")
        elif run["status"] in ("failed", "lost"):
            why = run["error"] or "no cause recorded"
            problems.append(f"{run['id']} ({run['name']}) {run['status']}: {why}")
    return problems


def _speed(a: dict | None, b: dict | None, what: str) -> dict | None:
    """How much faster B is than A (A / B) in steady epoch and time to 99%, B / A in images/s, or None."""
    if not a or not b:
        return None
    return {"what": what, "a": a["id"], "b": b["id"],
            "steady_epoch": comparison.ratio(a["steady_epoch_s"], b["steady_epoch_s"]),
            "samples_per_s": comparison.ratio(b.get("samples_per_s"), a.get("samples_per_s")),
            "time_to_99": comparison.ratio(a["time_to_99_s"], b["time_to_99_s"])}


def speedups(runs: list[dict], store: RunStore) -> list[dict]:
    """GPU over CPU per backend, the overhead-free setting over the published one, and over 2018."""
    by_step = {run["step"]: run for run in runs if run["step"] and run["step"] != "sweep"}
    found = []
    for backend in ("jax", "torch"):
        found.append(_speed(by_step.get(f"cpu-{backend}"), by_step.get(f"gpu-{backend}"),
                            f"{backend}: GPU over this host's CPU"))
    found.append(_speed(by_step.get("gpu-jax"), by_step.get("gpu-jax-fast"),
                        "jax GPU: steps_per_execution + jit over the published setting"))
    found.append(_speed(by_step.get("cpu-resnet50"), by_step.get("gpu-resnet50"),
                        "jax resnet50 (synthetic): GPU over this host's CPU"))
    for ref in PUBLISHED:
        published = comparison.measure(store.open(ref).log().epochs, TARGET)
        reference = {"id": ref, "steady_epoch_s": published["steady_epoch_s"],
                     "time_to_99_s": published["time_to_target_s"]}
        for key in ("gpu-jax", "gpu-jax-fast", "gpu-torch"):
            run = by_step.get(key)
            if run and run["train_samples"] == FULL_MNIST:  # a subset's epoch is not the published one
                found.append(_speed(reference, run, f"{key} over the published {ref}"))
    return [entry for entry in found if entry]


def by_model_size(runs: list[dict]) -> list[dict]:
    """GPU over CPU in steady images/s for each model both devices ran with JAX, by FLOPs per image.

    What the Scaling page's model-size view draws: the small CNN, where the GPU barely wins (or
    loses), against ResNet-50, where it pulls away.
    """
    pairs = (("cpu-jax", "gpu-jax"), ("cpu-resnet50", "gpu-resnet50"))
    by_step = {run["step"]: run for run in runs if run["step"]}
    rows = []
    for cpu, gpu in pairs:
        a, b = by_step.get(cpu), by_step.get(gpu)
        if a and b and a["flops_per_image"]:
            rows.append({"model": a["model"], "data": a["data"], "flops_per_image": a["flops_per_image"],
                         "flops_method": a["flops_method"], "cpu": a["id"], "gpu": b["id"],
                         "speedup": comparison.ratio(b["samples_per_s"], a["samples_per_s"])})
    return sorted(rows, key=lambda row: row["flops_per_image"])


def sweep_table(runs: list[dict]) -> list[dict]:
    """Per batch size of the sweep: n, median (min-max) steady epoch s, samples/s, speedup."""
    table: list[dict] = []
    sweep = [run for run in runs if run["step"] == "sweep" and run["steady_epoch_s"]]
    for batch in sorted({run["batch_size"] for run in sweep}):
        cell = [run for run in sweep if run["batch_size"] == batch]
        epochs = [run["steady_epoch_s"] for run in cell]
        rates = [run["samples_per_s"] for run in cell if run["samples_per_s"]]
        median = statistics.median(epochs)
        table.append({"batch_size": batch, "n": len(cell), "steady_epoch_s": median,
                      "steady_epoch_s_min": min(epochs), "steady_epoch_s_max": max(epochs),
                      "samples_per_s": statistics.median(rates) if rates else None,
                      "best_val_accuracy": max((r["best_val_accuracy"] or 0) for r in cell),
                      # the smallest batch's median steady epoch over this one's: >1 is faster
                      "speedup_over_smallest": comparison.ratio(table[0]["steady_epoch_s"] if table
                                                                else median, median)})
    return table


def write_summary(out: Path, store: RunStore, steps: list[dict], started: float, notes: list[str]) -> dict:
    """summary.json under `out`: every run of every step so far, speedups, the sweep, problems."""
    runs = [run_figures(store, run_id, step) for step in steps for run_id in step.get("run_ids", [])]
    summary = {"written": time.time(), "wall_s": round(time.monotonic() - started, 1), "target": TARGET,
               "steps": [{k: v for k, v in step.items() if k != "args"} for step in steps],
               "runs": runs, "speedups": speedups(runs, store), "by_model_size": by_model_size(runs),
               "sweep": sweep_table(runs),
               "problems": device_problems(runs), "notes": notes}
    tmp = out / ".summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1, default=str))
    tmp.replace(out / "summary.json")  # a call killed mid-write still has the previous one
    return summary


def pack(out: Path, name: str) -> Path:
    """One tarball of everything under `out` (run folders, summary, records); returns its path."""
    path = out / name
    with tarfile.open(path.with_suffix(".tmp"), "w:gz") as tar:
        for item in sorted(out.iterdir()):
            if item.name != path.name and not item.name.endswith(".tmp"):
                tar.add(item, arcname=item.name)
    path.with_suffix(".tmp").replace(path)
    return path
