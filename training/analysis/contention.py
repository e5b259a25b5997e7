"""Contention in words: which epochs other processes slowed, from the epoch records' own flags.

The worker decides per epoch whether it was contended (`training/system/contention.py`
holds the threshold: others took ≥ 10% of the CPUs, or steal ≥ 5%, or another process on
the run's GPU, or a thermal/hardware clock slowdown) and writes `contended` and
`contended_by` with the shares (docs/log-format.md, "Contention"). This module only reads
them: "other processes took 38% of the CPUs during epochs 2–4". Logs without the fields
(format < 4, published and imported runs) read as "not recorded". Pure: no I/O.
"""

from __future__ import annotations

import statistics

from training.analysis import flops

NOT_RECORDED = "not recorded"


def epoch_ranges(numbers: list[int]) -> str:
    """[2, 3, 4, 7] -> "epochs 2–4, 7"; [3] -> "epoch 3"."""
    numbers = sorted(set(numbers))
    spans: list[list[int]] = []
    for number in numbers:
        if spans and number == spans[-1][1] + 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    text = ", ".join(f"{a}" if a == b else f"{a}–{b}" for a, b in spans)
    return ("epoch " if len(numbers) == 1 else "epochs ") + text


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _reason_texts(epochs: list[dict]) -> list[str]:
    """One clause per reason, over the epochs it was seen in."""
    parts = []
    by = {reason: [e for e in epochs if reason in (e.get("contended_by") or ())]
          for reason in ("others_cpu", "steal", "gpu_others", "gpu_slowdown")}
    if by["others_cpu"]:
        share = _mean([e["others_cpu_share"] for e in by["others_cpu"]
                       if e.get("others_cpu_share") is not None])
        parts.append(f"other processes took {share or 0:.0%} of the CPUs during "
                     f"{epoch_ranges([e['epoch'] for e in by['others_cpu']])}")
    if by["steal"]:
        share = _mean([e["steal_share"] for e in by["steal"] if e.get("steal_share") is not None])
        parts.append(f"the hypervisor withheld {share or 0:.0%} of the CPUs (steal) during "
                     f"{epoch_ranges([e['epoch'] for e in by['steal']])}")
    if by["gpu_others"]:
        pids = sorted({p["pid"] for e in by["gpu_others"] for p in e.get("gpu_other_processes") or ()})
        parts.append(f"{len(pids)} other process{'es' if len(pids) != 1 else ''} used the GPU during "
                     f"{epoch_ranges([e['epoch'] for e in by['gpu_others']])}")
    if by["gpu_slowdown"]:
        names = sorted({r for e in by["gpu_slowdown"] for r in e.get("gpu_throttle_reasons") or ()
                        if r in ("hw_slowdown", "sw_thermal", "hw_thermal", "hw_power_brake")})
        parts.append(f"the GPU's clocks were slowed ({', '.join(names)}) during "
                     f"{epoch_ranges([e['epoch'] for e in by['gpu_slowdown']])}")
    return parts


def summary(epochs: list[dict]) -> dict:
    """A run's contention: which epochs were contended, how many steady ones, and the sentence.

    Keys: `recorded` (False: the log has no contention fields), `contended_epochs` (every
    contended epoch, epoch 1 included), `steady_epochs` and `steady_contended` (counts, of the
    steady epochs: what the steady-state values rest on), `others_cpu_share` (median over the
    steady epochs, else over all), `max_others_cpu_share`, `steal_share` (median), `text`.
    """
    recorded = [e for e in epochs if "contended" in e]
    steady = [e for e in flops.steady_epochs(epochs) if "contended" in e]
    if not recorded:
        return {"recorded": False, "contended_epochs": [], "steady_epochs": len(flops.steady_epochs(epochs)),
                "steady_contended": None, "others_cpu_share": None, "max_others_cpu_share": None,
                "steal_share": None, "text": NOT_RECORDED}
    basis = steady or recorded
    shares = [e["others_cpu_share"] for e in basis if e.get("others_cpu_share") is not None]
    steals = [e["steal_share"] for e in basis if e.get("steal_share") is not None]
    contended = [e for e in recorded if e.get("contended")]
    steady_contended = sum(1 for e in steady if e.get("contended"))
    found = {"recorded": True, "contended_epochs": [e["epoch"] for e in contended],
             "steady_epochs": len(steady), "steady_contended": steady_contended,
             "others_cpu_share": statistics.median(shares) if shares else None,
             "max_others_cpu_share": max(shares) if shares else None,
             "steal_share": statistics.median(steals) if steals else None}
    found["text"] = sentence(found, contended)
    return found


def sentence(found: dict, contended: list[dict]) -> str:
    """The summary in words, e.g. "other processes took 38% of the CPUs during epochs 2–4 (2 of 3
    steady epochs contended)", or "not contended (other processes took at most 3% of the CPUs)"."""
    steady = (f"{found['steady_contended']} of {found['steady_epochs']} steady epochs contended"
              if found["steady_epochs"] else "no steady epoch")
    if contended:
        return "; ".join(_reason_texts(contended)) + f" ({steady})"
    most = found["max_others_cpu_share"]
    tail = f" (other processes took at most {most:.0%} of the CPUs)" if most is not None else ""
    return "not contended" + tail


def group_summary(runs_epochs: list[list[dict]]) -> dict:
    """A cell's contention over its runs: how many had a contended steady epoch, in words."""
    found = [summary(epochs) for epochs in runs_epochs]
    recorded = [f for f in found if f["recorded"]]
    if not recorded:
        return {"recorded": False, "runs_contended": None, "runs_recorded": 0, "text": NOT_RECORDED}
    hit = sum(1 for f in recorded if f["steady_contended"])
    shares = [f["others_cpu_share"] for f in recorded if f["others_cpu_share"] is not None]
    most = max(shares) if shares else None
    text = (f"{hit} of {len(recorded)} runs had contended steady epochs" if hit else "not contended")
    if most is not None:
        text += f" (other processes took up to {most:.0%} of the CPUs, median of a run's steady epochs)"
    if len(recorded) < len(found):
        text += f"; {len(found) - len(recorded)} runs not recorded"
    return {"recorded": True, "runs_contended": hit, "runs_recorded": len(recorded), "text": text}
