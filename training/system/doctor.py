"""`python -m training doctor`: can every installed backend use every device this machine has?

Gathers, without importing a framework into this process: Python and Keras versions;
per installed backend, what a probe subprocess saw (`training.system.gpucheck.run_probe`: version,
CUDA build, devices, GPUs, missing CUDA wheels); the NVIDIA driver and its GPUs (NVML);
whether `libcuda.so.1` loads; the nvidia-* wheels; CUDA_VISIBLE_DEVICES and LD_LIBRARY_PATH;
tensorflow beside tensorflow-cpu. Then one line per problem, each ending with its fix.
The Train page's "GPU doctor" shows the same report (`report`, then `format_report`).
"""

from __future__ import annotations

import ctypes
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata

from training.config import BACKENDS
from training.system import gpucheck, hardware, nvml

KEYS = ("ok", "problems", "warnings", "python", "keras", "backends", "not_installed", "nvidia",
        "libcuda", "nvidia_wheels", "env", "tensorflow_and_tensorflow_cpu")


def libcuda() -> dict:
    """Does the driver's CUDA library load? TensorFlow, JAX and torch all need it for a GPU."""
    try:
        ctypes.CDLL("libcuda.so.1")
        return {"loads": True, "error": None}
    except OSError as error:
        return {"loads": False, "error": str(error)}


def nvidia_wheels() -> dict[str, str]:
    names = {dist.metadata["Name"]: dist.version for dist in metadata.distributions()
             if (dist.metadata["Name"] or "").lower().startswith("nvidia-")}
    return dict(sorted(names.items()))


def report(backends: tuple[str, ...] | None = None, probe=None) -> dict:
    """Everything `doctor` prints, as one JSON-ready dict (its keys: KEYS, docs/guide.md).

    Each backend is asked afresh (`probe`, default `gpucheck.run_probe`), not from the cache.
    """
    probe = probe or gpucheck.run_probe  # looked up now, so a test's stand-in is used
    wanted = [b for b in (backends or BACKENDS) if gpucheck.installed(b)]
    with ThreadPoolExecutor(max_workers=len(wanted) or 1) as pool:  # the imports overlap on I/O
        answers = dict(zip(wanted, pool.map(probe, wanted)))
    nvidia = hardware.nvml_driver()
    ld_path = os.environ.get("LD_LIBRARY_PATH")
    found = {
        "python": sys.version.split()[0],
        "keras": gpucheck.installed("keras"),
        "backends": answers,
        "not_installed": [b for b in (backends or BACKENDS) if b not in answers],
        "nvidia": nvidia,
        "libcuda": libcuda(),
        "nvidia_wheels": nvidia_wheels(),
        "env": {"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"), "LD_LIBRARY_PATH": ld_path,
                "system_cuda_dirs": gpucheck.shadowing_dirs(ld_path)},
        "tensorflow_and_tensorflow_cpu": gpucheck.tensorflow_twice(),
    }
    found["problems"], found["warnings"] = problems(found)
    found["ok"] = not found["problems"]
    return found


def problems(found: dict) -> tuple[list[str], list[str]]:
    """(problems, warnings): each one line that ends with its fix. Problems make exit 1."""
    wrong, notes = [], []
    gpus = [gpu["name"] for gpu in found["nvidia"]["gpus"]]
    hidden = found["env"]["CUDA_VISIBLE_DEVICES"]
    if found["tensorflow_and_tensorflow_cpu"]:
        wrong.append("tensorflow and tensorflow-cpu are both installed, and one overwrote the other: "
                     "`pip uninstall -y tensorflow tensorflow-cpu`, then `pip install -r requirements.txt`"
                     + (" -r requirements-gpu.txt" if gpus else ""))
    for backend, answer in found["backends"].items():
        if answer.get("error"):
            wrong.append(f"{backend}: {answer['error']}")
    if gpus and hidden in nvml.HIDING_VALUES:
        wrong.append(f"CUDA_VISIBLE_DEVICES={hidden!r} hides the GPU NVML sees ({gpus[0]}) from every "
                     "backend: unset it")
    elif gpus:
        if not found["libcuda"]["loads"]:
            wrong.append(f"NVML sees {gpus[0]} but libcuda.so.1 does not load ({found['libcuda']['error']}):"
                         " reinstall the NVIDIA driver's user-space libraries (libnvidia-compute)")
        for backend, answer in found["backends"].items():
            if not answer.get("gpus") and not answer.get("error"):
                wrong.append(f"{backend}: {gpucheck.diagnose(backend, answer, gpus, found['env'])}")
    if found["env"]["system_cuda_dirs"] and found["nvidia_wheels"] and not wrong:
        notes.append(f"LD_LIBRARY_PATH names a system CUDA ({found['env']['system_cuda_dirs'][0]}) that "
                     "could shadow the pip nvidia-* libraries; unset it if a backend loses its GPU")
    if not gpus:
        notes.append(f"{gpucheck.NO_NVML} ({found['nvidia']['error'] or 'no device'}): "
                     "every installed backend runs on the CPU")
    return wrong, notes


def describe_backend(backend: str, answer: dict) -> str:
    """One line per backend: version, CUDA build (12 or 13) and cuDNN, devices, GPUs, time to ask."""
    if answer.get("error"):
        return f"{backend} {answer.get('version') or '?'}: error: {answer['error']}"
    if answer.get("cuda_build"):
        cuda = f"CUDA {answer.get('cuda_version') or '?'} build"
        cuda += f", cuDNN {answer['cudnn_version']}" if answer.get("cudnn_version") else ""
    else:
        cuda = "no CUDA (CPU-only build)"
    missing = answer.get("missing_cuda_wheels") or []
    if missing:
        cuda += f"; {len(missing)} CUDA wheel(s) not installed ({missing[0]}, ...)"
    return (f"{backend} {answer.get('version')}: {cuda}; devices {', '.join(answer.get('devices') or [])}; "
            f"GPUs: {', '.join(answer.get('gpus') or []) or 'none'} ({answer.get('probe_s', '?')} s to ask)")


def format_report(found: dict) -> str:
    """The report for a human: facts first, then one line per problem with its fix."""
    nvidia, env = found["nvidia"], found["env"]
    driver = (f"{nvidia['driver_version']} (CUDA {nvidia['cuda_driver_version']})" if nvidia["driver_version"]
              else f"none ({nvidia['error']})")
    lines = [f"Python {found['python']}, Keras {found['keras'] or 'not installed'}",
             f"NVIDIA driver: {driver}",
             "GPUs (NVML): " + (", ".join(g["name"] for g in nvidia["gpus"]) or "none"),
             "libcuda.so.1: " + ("loads" if found["libcuda"]["loads"] else
                                 f"does not load ({found['libcuda']['error']})")]
    lines += [describe_backend(backend, answer) for backend, answer in found["backends"].items()]
    if found["not_installed"]:
        lines.append(f"not installed: {', '.join(found['not_installed'])}")
    wheels = ", ".join(f"{name} {version}" for name, version in found["nvidia_wheels"].items())
    lines.append(f"nvidia-* wheels: {wheels or 'none'}")
    visible, shadows = env["CUDA_VISIBLE_DEVICES"], env["system_cuda_dirs"]
    lines.append(f"CUDA_VISIBLE_DEVICES: {'unset' if visible is None else repr(visible)}")
    lines.append(f"LD_LIBRARY_PATH: {env['LD_LIBRARY_PATH'] or 'unset'}"
                 + (f" (system CUDA: {', '.join(shadows)})" if shadows else ""))
    lines.append("tensorflow and tensorflow-cpu: "
                 + ("both installed" if found["tensorflow_and_tensorflow_cpu"] else "not both"))
    lines += [f"note: {line}" for line in found["warnings"]]
    lines += [f"PROBLEM: {line}" for line in found["problems"]]
    lines.append("OK: every installed backend can use every device this machine has" if found["ok"]
                 else f"{len(found['problems'])} problem(s)")
    return "\n".join(lines)
