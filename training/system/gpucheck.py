"""Can a backend use the GPU? Asked in a short subprocess, and if not, why, in one line.

The Streamlit process and `doctor` never import a framework: `probe(backend)` runs
`python -m training probe BACKEND --json` (training/worker/probe.py) under a timeout and
keeps the answer per backend for the life of this process (`forget()` drops them: the
Train page's "Re-check GPUs"). `diagnose` turns what NVML, the backend's build and the
installed wheels say into one line that ends with its fix; the dashboard, `doctor` and the
worker's failed GPU run all show that same line.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from importlib import metadata

from training import PROJECT_ROOT
from training.system import hardware, nvml

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 60.0  # an import takes 2-15 s; past this, something hangs (a wedged driver)
LABELS = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
CUDA_EXTRAS = {"tensorflow": "and-cuda", "jax": "cuda12"}  # extras that add the CUDA libraries
# JAX's CUDA majors, newest first: its plugin wheel names the one it was built for, and the
# `jax[cudaNN]` extra that installs it. With no plugin installed, the fix names cuda12
# (requirements-backends-gpu.txt); with jax-cuda13-plugin installed, its extra is cuda13.
JAX_CUDA_MAJORS = ("13", "12")
NOT_CUDA = {"tensorflow": "is not a CUDA build", "jax": "has no CUDA plugin",
            "torch": "is a CPU-only build"}
FIXES = {
    "tensorflow": "run `make run GPU=1`, or `pip install -r requirements-gpu.txt`",
    "jax": "run `make test GPU=1`, or `pip install -r requirements-backends-gpu.txt`",
    "torch": "install PyPI's Linux wheel, which includes CUDA (not a +cpu build from another "
             "index): `pip install --force-reinstall torch==2.13.0`",
}
NO_NVML = "No NVIDIA GPU visible: NVML found no driver or device on this machine"
STDERR_HINT = re.compile(r"cuda|cudnn|dlopen|gpu|nvidia", re.IGNORECASE)

_answers: dict[str, dict] = {}
_verdicts: dict[str, tuple[bool, str]] = {}  # availability(), per backend, until forget()
_lock = threading.Lock()  # two sessions asking at once share one subprocess


def run_probe(backend: str, timeout: float = PROBE_TIMEOUT_S) -> dict:
    """Ask a fresh `python -m training probe BACKEND --json`; an `error` key when it could not."""
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "training", "probe", backend, "--json"],
                              cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"backend": backend, "gpus": [], "timed_out": True,
                "error": f"the {backend} GPU check did not answer within {timeout:.0f} s "
                         "(importing it hung); try Re-check GPUs, or run `python -m training doctor`"}
    notes = [line.strip() for line in done.stderr.splitlines() if STDERR_HINT.search(line)][-5:]
    try:
        answer = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        answer = {"backend": backend, "gpus": [],
                  "error": f"`python -m training probe {backend}` exited {done.returncode}: {last}"}
    answer["notes"] = notes  # the backend's own words on CUDA, e.g. "Cannot dlopen some GPU libraries"
    answer["probe_s"] = round(time.monotonic() - started, 2)
    return answer


def probe(backend: str) -> dict:
    """`run_probe`'s answer, asked once per backend in this process."""
    with _lock:
        if backend not in _answers:
            _answers[backend] = run_probe(backend)
        return _answers[backend]


def forget() -> None:
    """Ask again next time: the user installed something or changed the machine."""
    with _lock:
        _answers.clear()
        _verdicts.clear()
    hardware.gpu_availability.cache_clear()


def availability(backend: str) -> tuple[bool, str]:
    """(available, reason) for the GPU buttons: NVML first, then the backend itself; once per backend.

    Kept with the probe's answer until `forget()`: a page rerun must not open NVML and read
    package metadata again for a backend that has no GPU.
    """
    with _lock:
        if backend in _verdicts:
            return _verdicts[backend]
    verdict = _availability(backend)
    with _lock:
        _verdicts[backend] = verdict
    return verdict


def _availability(backend: str) -> tuple[bool, str]:
    nvml_ok, reason = hardware.gpu_availability()
    if not nvml_ok:  # hidden, or no driver: no backend can see a GPU, so skip the import
        return False, reason
    answer = probe(backend)
    if answer.get("gpus"):
        return True, f"{LABELS[backend]} sees {len(answer['gpus'])} GPU(s): {', '.join(answer['gpus'])}"
    return False, diagnose(backend, answer, [gpu["name"] for gpu in hardware.nvml_gpus()])


# -- what is installed (framework-free: package metadata only) --------------------------------
def installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def jax_cuda_major() -> str | None:
    """The CUDA major of the installed JAX plugin ("13" for jax-cuda13-plugin), or None."""
    return next((major for major in JAX_CUDA_MAJORS if installed(f"jax-cuda{major}-plugin")), None)


def cuda_extra(backend: str) -> str:
    """The extra of `backend` that adds its CUDA libraries here ("" for torch: plain requirements)."""
    if backend == "jax":
        return f"cuda{jax_cuda_major() or '12'}"
    return CUDA_EXTRAS.get(backend, "")


def missing_cuda_wheels(backend: str) -> list[str]:
    """The CUDA wheels the backend's own metadata asks for on this platform, not installed.

    TensorFlow and JAX list them under an extra (`and-cuda`; `cuda12` or `cuda13`, whichever
    plugin is installed); PyPI's Linux torch lists them as plain requirements, under the names
    of its CUDA major (`nvidia-*-cu12` for cu12x, `nvidia-*` for cu130; a `+cpu` build lists
    none). An installed JAX plugin's own plain requirements count too (`jax-cuda13-pjrt`).
    """
    missing = _missing(backend, cuda_extra(backend))
    if backend == "jax" and jax_cuda_major():
        missing += [name for name in _missing(f"jax-cuda{jax_cuda_major()}-plugin", "", plain=True)
                    if name not in missing]
    return missing


def _missing(package: str, extra: str, plain: bool = False) -> list[str]:
    """Requirements of `package` that apply here, are CUDA ones and are not installed.

    With an `extra`, the CUDA ones are those under it; without, those named nvidia-*, or
    (`plain=True`) every plain requirement. Needs `packaging` (Keras depends on it); where it
    is missing, nothing can be said, and nothing is reported missing.
    """
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:
        log.debug("packaging is not installed: CUDA wheels of %s not checked", package)
        return []
    try:
        requirements = metadata.requires(package) or []
    except metadata.PackageNotFoundError:
        return []
    missing = []
    for text in requirements:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        wanted = requirement.marker is None or requirement.marker.evaluate({"extra": extra})
        in_extra = bool(extra) and requirement.marker is not None and f'"{extra}"' in str(requirement.marker)
        if plain:
            cuda = requirement.marker is None or "extra" not in str(requirement.marker)
        else:
            cuda = in_extra or (not extra and requirement.name.startswith("nvidia-"))
        if wanted and cuda and installed(requirement.name) is None:
            missing.append(requirement.name)
    return missing


def shadowing_dirs(ld_library_path: str | None) -> list[str]:
    """LD_LIBRARY_PATH folders of a system CUDA, which load before the pip nvidia-* libraries."""
    found = []
    for folder in filter(None, (ld_library_path or "").split(os.pathsep)):
        named = re.search(r"cuda|cudnn", folder, re.IGNORECASE)
        try:
            holds = any(entry.startswith(("libcudart.so", "libcudnn.so", "libcublas.so"))
                        for entry in os.listdir(folder))
        except OSError:
            holds = False
        if named or holds:
            found.append(folder)
    return found


def tensorflow_twice() -> bool:
    """Both `tensorflow` and `tensorflow-cpu`: one overwrites the other's files."""
    return installed("tensorflow") is not None and installed("tensorflow-cpu") is not None


# -- the one-line diagnosis --------------------------------------------------------------------
def diagnose(backend: str, answer: dict, nvml_names: list[str], env=None) -> str:
    """Why `backend` sees no GPU, and the fix, from its probe `answer` and NVML's GPU names."""
    env = os.environ if env is None else env
    hidden = nvml.gpus_hidden(env)
    if hidden is not None:
        return f"CUDA_VISIBLE_DEVICES={hidden!r} hides every GPU: unset it and restart"
    if not nvml_names:
        return NO_NVML
    gpu = nvml_names[0] + (f" (and {len(nvml_names) - 1} more)" if len(nvml_names) > 1 else "")
    label = f"{LABELS[backend]} {answer.get('version') or ''}".strip()
    if answer.get("error"):
        return f"{gpu} found, but asking {LABELS[backend]} for its GPUs failed: {answer['error']}"
    if backend == "tensorflow" and tensorflow_twice():
        return (f"{gpu} found, but tensorflow and tensorflow-cpu are both installed: "
                "`pip uninstall -y tensorflow tensorflow-cpu`, then `pip install -r requirements.txt "
                "-r requirements-gpu.txt`")
    if answer.get("cuda_build") is False:
        return f"{gpu} found, but this {label} {NOT_CUDA[backend]}: {FIXES[backend]}"
    missing = answer.get("missing_cuda_wheels") or []
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        return (f"{gpu} found, but this {label} has no CUDA libraries ({missing[0]}{more} not "
                f"installed): {FIXES[backend]}")
    shadows = shadowing_dirs(env.get("LD_LIBRARY_PATH"))
    if shadows:
        return (f"{gpu} found and this {label} has its CUDA libraries, but LD_LIBRARY_PATH puts a "
                f"system CUDA first ({shadows[0]}), which shadows them: unset LD_LIBRARY_PATH "
                f"(or drop {shadows[0]}) and restart")
    said = f" ({answer['notes'][-1]})" if answer.get("notes") else ""
    return (f"{gpu} found and this {label} has its CUDA libraries, but it sees no GPU{said}: "
            "run `python -m training doctor` to see which library fails")
