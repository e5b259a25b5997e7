"""The GPU proof: one script, one call, everything a lent NVIDIA machine should measure.

    python bench/gpu_proof.py --out DIR [--budget-s 480] [--backends jax,torch] [--smoke]

On one host, in one process tree, most important first:
  1. records `nvidia-smi` (if present) and `python -m training doctor --json`;
  2. the published protocol (full MNIST, batch 128, SGD 0.05 Nesterov 0.9, fit engine) with
     JAX on the GPU, then on this host's CPU;
  3. JAX on the GPU without per-step overhead: `--steps-per-execution 64 --jit on` (the same
     batches and updates; only the calls between steps change);
  4. a larger workload, `keras:resnet50 --data synthetic --image-size 64` (about 100x the
     CNN's FLOPs per image), with JAX on the GPU, then on the CPU, on 2,048 images: where
     the GPU pulls away, beside the small CNN where it barely does;
  5. the published protocol with torch on the GPU, then on the CPU;
  6. a GPU batch-size sweep (128, 512, 2048, 8192; repeats as time allows).
Every run keeps the system sampler on (NVML power, utilisation, memory: joules per epoch).
Epochs are sized to fit `--budget-s` from rough priors, corrected by each finished run;
a run that overruns its share is stopped (its finished epochs stay). The plan is printed
first. Runs live under DIR/runs, each folder complete as soon as its run ends, and
DIR/summary.json is rewritten after every step, so a call killed at its limit still brings
back what was done. At the end everything under DIR is packed into one tarball there.

`--only KEYS` runs some steps (e.g. `--only sweep` in a second call, when the first had no
time left for it).

Exit 1 if any GPU run did not train on a GPU (its start record's hardware.device and
gpu_names), failed, or never started; the summary's `problems` say which and why.

`--smoke` runs the whole script on the CPU, on a 2,048-image subset, 2 epochs a run:
every step, the sweep, the summary and the tarball, with the "GPU" steps on the CPU (the
device check then expects the CPU); the larger workload once, tiny. tests/test_gpu_proof.py
runs it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import proof_summary  # noqa: E402

from training.analysis import comparison  # noqa: E402
from training.store import END_STATES, RunStore  # noqa: E402
from training.system import gpucheck  # noqa: E402

SWEEP_BATCHES = (128, 512, 2048, 8192)
STEP_KEYS = ("gpu-jax", "cpu-jax", "gpu-jax-fast", "gpu-resnet50", "cpu-resnet50", "gpu-torch", "cpu-torch",
             "sweep")  # in plan order
FAST_STEPS = 64  # steps per call of the overhead-free setting: 469 steps make 8 calls an epoch
SMOKE_TRAIN, SMOKE_TEST = 2048, 512
# Priors, seconds, for full MNIST (60,000 + 10,000 images), replaced by what each run measures.
# Start-up: process, backend import, MNIST, model, first compile. Epoch: training + evaluation.
PRIOR_STARTUP_S = {"gpu": 25.0, "cpu": 15.0}
PRIOR_EPOCH_S = {("gpu", "jax"): 2.0, ("gpu", "torch"): 5.0, ("cpu", "jax"): 25.0, ("cpu", "torch"): 40.0}
PUBLISHED_MODEL = "mnist-cnn"
# The larger workload: ResNet-50 (0.55-0.63 GFLOP an image at 64x64, by backend) on synthetic images,
# no download, no data in the kit. Its own small image count on both devices, so epochs compare; the
# smoke uses the smallest side Keras allows and a handful of images.
LARGE_MODEL, LARGE_SIDE, LARGE_SMOKE_SIDE = "keras:resnet50", 64, 32
LARGE_IMAGES, LARGE_SMOKE_IMAGES = (2048, 512), (128, 64)  # (train, test)
# Priors for it: compiling ResNet-50's train step dominates the start-up; an epoch of 2,048 images
# is about 1 s on a recent GPU, 20 s on a 16-core CPU (about 100-200 images/s).
PRIOR_LARGE_STARTUP_S = {"gpu": 60.0, "cpu": 45.0}
PRIOR_LARGE_EPOCH_S = {("gpu", "jax"): 2.0, ("cpu", "jax"): 20.0}
LARGE_EPOCHS = {"gpu": 4, "cpu": 2}  # the CPU's epochs are the slow ones: the least with a steady state
RESERVE_S = 15.0  # kept back for the summary and the tarball
OVERRUN = 1.5  # a run may take this times its estimate (plus SLACK_S) before it is stopped
SLACK_S = 20.0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for runs/, summary.json and the tarball")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="seconds for the whole script (default 480; 110 with --smoke)")
    parser.add_argument("--backends", default=None,
                        help="comma list, in order (default jax,torch; jax with --smoke)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs wanted per GPU run (default 5)")
    parser.add_argument("--cpu-epochs", type=int, default=None, help="epochs wanted per CPU run (default 3)")
    parser.add_argument("--sweep-epochs", type=int, default=None, help="epochs per sweep run (default 3)")
    parser.add_argument("--max-repeats", type=int, default=3, help="sweep repeats at most (default 3)")
    parser.add_argument("--only", default=None, metavar="KEYS",
                        help=f"run only these steps, a comma list of {', '.join(STEP_KEYS)} "
                             "(e.g. a second call for a sweep the first had no time for)")
    parser.add_argument("--smoke", action="store_true",
                        help="every step on the CPU, on a subset, 2 epochs a run, nothing cut")
    args = parser.parse_args(argv)
    # --smoke: the same steps, as small as they can be and still have a steady state.
    defaults = {"budget_s": 150.0, "backends": "jax", "epochs": 2, "cpu_epochs": 2, "sweep_epochs": 2} \
        if args.smoke else {"budget_s": 480.0, "backends": "jax,torch", "epochs": 5, "cpu_epochs": 3,
                            "sweep_epochs": 3}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if not 30 <= args.budget_s <= 3600:
        parser.error(f"--budget-s: must be from 30 to 3600 seconds, got {args.budget_s:g}")
    for name in ("epochs", "cpu_epochs", "sweep_epochs"):
        if not 2 <= getattr(args, name) <= 100:  # one epoch has no steady state (epoch 1 compiles)
            parser.error(f"--{name.replace('_', '-')}: must be from 2 to 100, got {getattr(args, name)}")
    if not 1 <= args.max_repeats <= 10:
        parser.error(f"--max-repeats: must be from 1 to 10, got {args.max_repeats}")
    if args.only is not None:
        args.only = [key.strip() for key in args.only.split(",") if key.strip()]
        unknown = [key for key in args.only if key not in STEP_KEYS]
        if unknown or not args.only:
            parser.error(f"--only: must be one or more of {', '.join(STEP_KEYS)}, got {unknown or 'none'}")
    return args


class Clock:
    """The budget: seconds since the script started, and what is left of it.

    With `strict=False` (--smoke) nothing is cut or skipped: the smoke is there to walk
    every path, and a loaded test machine makes runs slow, not wrong. The cutting itself is
    `affordable_epochs` and `affordable_repeats`, tested on their own.
    """

    def __init__(self, budget_s: float, strict: bool = True):
        self.started = time.monotonic()
        self.budget_s = budget_s
        self.strict = strict
        self.slack_s = max(SLACK_S, budget_s / 10)  # a run's leeway over its estimate before a stop

    def left(self) -> float:
        if not self.strict:
            return math.inf
        return self.budget_s - RESERVE_S - (time.monotonic() - self.started)

    def share(self, expected_s: float) -> float:
        """Seconds a run estimated at `expected_s` may take before it is stopped (--smoke: no limit)."""
        return min(expected_s * OVERRUN + self.slack_s, self.left()) if self.strict else math.inf


def affordable_epochs(wanted: int, startup_s: float, epoch_s: float, left_s: float) -> int:
    """Epochs of a run that fit in `left_s`, at most `wanted`; 0 when not even 2 fit.

    Two is the least with a steady state: epoch 1 includes compiling and is left out.
    """
    fit = wanted if math.isinf(left_s) else int((left_s - startup_s) // epoch_s)
    epochs = min(wanted, fit)
    return epochs if epochs >= 2 else 0


def affordable_repeats(one_pass_s: float, left_s: float, most: int) -> int:
    """Passes of the sweep that fit in `left_s`, at most `most`; 0 when not one fits."""
    return most if math.isinf(left_s) else min(most, int(left_s // one_pass_s))


class Estimates:
    """Start-up and per-epoch seconds by (device, backend, batch, model), learned from finished runs."""

    def __init__(self, scale: float):
        self.scale = scale  # the share of full MNIST a run trains on (smoke: a subset)
        self.startup = {(device, PUBLISHED_MODEL): s for device, s in PRIOR_STARTUP_S.items()}
        self.startup.update({(device, LARGE_MODEL): s for device, s in PRIOR_LARGE_STARTUP_S.items()})
        self.epoch: dict[tuple, float] = {}

    def startup_s(self, device: str, model: str = PUBLISHED_MODEL) -> float:
        return self.startup[(device, model)]

    def epoch_s(self, device: str, backend: str, batch: int, model: str = PUBLISHED_MODEL) -> float:
        if (device, backend, batch, model) in self.epoch:
            return self.epoch[(device, backend, batch, model)]
        prior = PRIOR_EPOCH_S[(device, backend)] * self.scale if model == PUBLISHED_MODEL \
            else PRIOR_LARGE_EPOCH_S[(device, backend)]
        base = self.epoch.get((device, backend, 128, model), prior)
        # Bigger batches: fewer steps, so less per-step overhead; never below a quarter.
        return base * max(0.25, math.sqrt(128 / batch)) if batch > 128 else base

    def run_s(self, device: str, backend: str, batch: int, epochs: int,
              model: str = PUBLISHED_MODEL) -> float:
        return self.startup_s(device, model) + epochs * self.epoch_s(device, backend, batch, model)

    def learn(self, store: RunStore, run_id: str, wall_s: float) -> None:
        """What the run took: its steady epoch, and the rest of its wall time as start-up."""
        run = store.open(run_id)
        config = run.meta.get("config") or {}
        model = config.get("model") or PUBLISHED_MODEL
        run_log = run.log()
        steady = comparison.steady_epoch_s(run_log.epochs)
        if steady:
            key = (config["device"], config["backend"], config["batch_size"], model)
            self.epoch[key] = steady
            self.startup[(key[0], model)] = max(1.0, wall_s - steady * len(run_log.epochs))
        elif run_log.start and run.meta.get("created"):  # stopped early: at least its start-up
            key = (config["device"], model)
            self.startup[key] = max(self.startup[key], run_log.start["time"] - run.meta["created"])


def training(*args: str, runs: Path, check: bool = True) -> subprocess.CompletedProcess:
    """`python -m training ARGS --runs-dir RUNS`, from the project root."""
    return subprocess.run([sys.executable, "-m", "training", *args, "--runs-dir", str(runs)],
                          cwd=ROOT, capture_output=True, text=True, check=check)


def record_machine(out: Path, runs: Path, backends: list[str]) -> list[str]:
    """nvidia-smi's view and doctor's report, as files under `out`; notes on what was missing."""
    notes = []
    if shutil.which("nvidia-smi"):
        parts = [subprocess.run(command, capture_output=True, text=True, timeout=60).stdout
                 for command in (["nvidia-smi"], ["nvidia-smi", "--query-gpu=name,driver_version,"
                                  "memory.total,power.limit,clocks.max.sm", "--format=csv"])]
        (out / "nvidia-smi.txt").write_text("\n".join(parts))
    else:
        notes.append("nvidia-smi not found: no NVIDIA driver tools on this host")
    asked = [part for backend in backends for part in ("--backend", backend)]  # not TensorFlow's import
    doctor = training("doctor", "--json", *asked, runs=runs, check=False)
    (out / "doctor.json").write_text(doctor.stdout or json.dumps({"error": doctor.stderr[-2000:]}))
    if doctor.returncode != 0:
        notes.append(f"doctor exited {doctor.returncode}: see doctor.json's problems")
    (out / "host.json").write_text(json.dumps({
        "hostname": socket.gethostname(), "python": sys.version.split()[0], "platform": platform.platform(),
        "cpu_count": os.cpu_count(), "argv": sys.argv}, indent=1))
    return notes


def make_steps(args, backends: list[str]) -> list[dict]:
    """The plan, most important first. In --smoke, "gpu" steps train on the CPU."""
    gpu = "cpu" if args.smoke else "gpu"
    steps = []
    for index, backend in enumerate(backends):
        steps.append({"key": f"gpu-{backend}", "title": f"{backend} on the GPU, published protocol",
                      "device": gpu, "backend": backend, "epochs": args.epochs, "args": []})
        steps.append({"key": f"cpu-{backend}", "title": f"{backend} on this host's CPU, published protocol",
                      "device": "cpu", "backend": backend, "epochs": args.cpu_epochs, "args": []})
        if index == 0 and backend == "jax":
            title = f"jax on the GPU, {FAST_STEPS} steps a call, jit on"
            steps.append({"key": "gpu-jax-fast", "title": title, "device": gpu, "backend": "jax",
                          "epochs": args.epochs,
                          "args": ["--steps-per-execution", str(FAST_STEPS), "--jit", "on"]})
            steps += large_steps(args, gpu)
    sweep_backend = "jax" if "jax" in backends else backends[0]
    batches = [b for b in SWEEP_BATCHES if not args.smoke or b <= SMOKE_TRAIN // 4]
    steps.append({"key": "sweep", "title": f"{sweep_backend} on the GPU, batch sizes {batches}",
                  "device": gpu, "backend": sweep_backend, "epochs": args.sweep_epochs, "args": [],
                  "batches": batches})
    return steps


def large_steps(args, gpu: str) -> list[dict]:
    """The larger workload with JAX, GPU then CPU, on the same synthetic images.

    --smoke runs its "GPU" step alone, at 32x32 on 128 images: compiling ResNet-50 takes a
    minute or two on a small CPU, and the CPU step walks the same path with another --device.
    """
    side = LARGE_SMOKE_SIDE if args.smoke else LARGE_SIDE
    train, test = LARGE_SMOKE_IMAGES if args.smoke else LARGE_IMAGES
    what = f"{LARGE_MODEL} at {side}x{side} on {train:,} synthetic images"
    workload = ["--model", LARGE_MODEL, "--data", "synthetic", "--image-size", str(side),
                "--limit-train", str(train), "--limit-test", str(test)]
    common = {"model": LARGE_MODEL, "backend": "jax", "args": workload}
    steps = [{"key": "gpu-resnet50", "title": f"jax on the GPU, {what}", "device": gpu,
              "epochs": 2 if args.smoke else LARGE_EPOCHS["gpu"], **common},
             {"key": "cpu-resnet50", "title": f"jax on this host's CPU, {what}", "device": "cpu",
              "epochs": LARGE_EPOCHS["cpu"], **common}]
    return steps[:1] if args.smoke else steps


def estimate_step(step: dict, estimates: Estimates, repeats: int = 1) -> float:
    batches = step.get("batches", [128])
    model = step.get("model", PUBLISHED_MODEL)
    return repeats * sum(estimates.run_s(step["device"], step["backend"], b, step["epochs"], model)
                         for b in batches)


def print_plan(steps: list[dict], estimates: Estimates, clock: Clock) -> None:
    print(f"plan, budget {clock.budget_s:.0f} s ({RESERVE_S:.0f} s kept for the summary and tarball); "
          "estimates from priors, corrected as runs finish:", flush=True)
    if not clock.strict:
        print("  (--smoke: nothing is cut or skipped for the budget; the estimates still print)")
    total = time.monotonic() - clock.started
    for number, step in enumerate(steps, 1):
        seconds = estimate_step(step, estimates)
        total += seconds
        fits = "" if total <= clock.budget_s - RESERVE_S else "  (may not fit: fewer epochs, or skipped)"
        print(f"  {number}. {step['title']}: {step['epochs']} epochs, about {seconds:.0f} s "
              f"(by {total:.0f} s){fits}", flush=True)


def wait(store: RunStore, run_ids: list[str], runs: Path, deadline: float) -> None:
    """Until every run has ended; past `deadline` (monotonic), stop what still runs or waits."""
    while True:
        active = [i for i in run_ids if store.open(i).status() not in END_STATES]
        if not active:
            return
        if time.monotonic() > deadline:
            for run_id in reversed(active):  # the queued ones first, so none starts meanwhile
                print(f"  stopping {run_id}: over its share of the budget", flush=True)
                training("stop", run_id, "--grace", "10", runs=runs, check=False)
            return
        time.sleep(1.0)


def subset(args, step: dict | None = None) -> list[str]:
    """The smoke's MNIST subset; none for a step that sets its own images (the larger workload)."""
    if not args.smoke or (step and "--limit-train" in step["args"]):
        return []
    return ["--limit-train", str(SMOKE_TRAIN), "--limit-test", str(SMOKE_TEST)]


def do_run(step: dict, args, store: RunStore, runs: Path, estimates: Estimates, clock: Clock) -> None:
    """One run of the step, its epochs cut to what the budget has left; skipped below 2 epochs."""
    model = step.get("model", PUBLISHED_MODEL)
    per_epoch = estimates.epoch_s(step["device"], step["backend"], 128, model)
    startup = estimates.startup_s(step["device"], model)
    epochs = affordable_epochs(step["epochs"], startup, per_epoch, clock.left())
    if not epochs:
        step["skipped"] = f"budget: {clock.left():.0f} s left, {per_epoch:.1f} s an epoch"
        print(f"- skipped {step['title']}: {step['skipped']}", flush=True)
        return
    launched = training("run", "--device", step["device"], "--backend", step["backend"],
                        "--epochs", str(epochs), "--name", f"proof {step['key']}", *step["args"],
                        *subset(args, step), "--detach", runs=runs)
    run_id = launched.stdout.split()[-1]
    step["run_ids"], step["epochs_run"] = [run_id], epochs
    expected = estimates.run_s(step["device"], step["backend"], 128, epochs, model)
    print(f"- {step['title']}: run {run_id}, {epochs} epochs, about {expected:.0f} s", flush=True)
    began = time.monotonic()
    wait(store, [run_id], runs, began + clock.share(expected))
    estimates.learn(store, run_id, time.monotonic() - began)
    figures = proof_summary.run_figures(store, run_id, step)
    print(f"  {figures['status']}: steady epoch {figures['steady_epoch_s'] or float('nan'):.3f} s, "
          f"{figures['samples_per_s'] or 0:,.0f} images/s, best val {figures['best_val_accuracy'] or 0:.4f}, "
          f"GPU J/epoch {figures['gpu_joules_per_epoch'] or '-'}, "
          f"{(figures['flops_per_image'] or 0) / 1e6:,.1f} MFLOP/image", flush=True)


def do_sweep(step: dict, args, store: RunStore, runs: Path, estimates: Estimates, clock: Clock) -> None:
    """The batch sizes as one sweep group, with as many repeats as the budget has room for.

    If not one pass of its epochs fits, it tries fewer, down to 2 (the least with a steady epoch).
    """
    most = 1 if args.smoke else args.max_repeats
    repeats = affordable_repeats(estimate_step(step, estimates), clock.left(), most)
    while not repeats and step["epochs"] > 2:
        step["epochs"] -= 1
        repeats = affordable_repeats(estimate_step(step, estimates), clock.left(), most)
    if not repeats:
        needs = estimate_step(step, estimates)
        step["skipped"] = f"budget: {clock.left():.0f} s left, one pass needs {needs:.0f} s"
        print(f"- skipped {step['title']}: {step['skipped']}", flush=True)
        return
    expected = estimate_step(step, estimates, repeats)
    queued = training("sweep", "--device", step["device"], "--backend", step["backend"],
                      "--batch-size", ",".join(map(str, step["batches"])), "--repeats", str(repeats),
                      "--epochs", str(step["epochs"]), "--name", "proof sweep", *subset(args), "--detach",
                      runs=runs)
    *run_ids, group = queued.stdout.split()
    step.update(run_ids=run_ids, group=group, repeats=repeats)
    print(f"- {step['title']}: group {group}, {len(run_ids)} runs ({repeats} repeats), "
          f"about {expected:.0f} s", flush=True)
    wait(store, run_ids, runs, time.monotonic() + clock.share(expected))


def main(argv=None) -> int:
    args = parse_args(argv)
    clock = Clock(args.budget_s, strict=not args.smoke)
    out = Path(args.out).resolve()
    runs = out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    store = RunStore(runs)
    wanted = [b.strip() for b in args.backends.split(",") if b.strip()]
    backends = [b for b in wanted if gpucheck.installed(b)]
    if not backends:
        print(f"none of {wanted} is installed", file=sys.stderr)
        return 2
    notes = record_machine(out, runs, backends)
    notes += [f"{b} is not installed here: its steps are left out" for b in wanted if b not in backends]
    estimates = Estimates(SMOKE_TRAIN / 60_000 if args.smoke else 1.0)
    steps = [step for step in make_steps(args, backends) if not args.only or step["key"] in args.only]
    print_plan(steps, estimates, clock)
    for step in steps:
        try:
            (do_sweep if step["key"] == "sweep" else do_run)(step, args, store, runs, estimates, clock)
        except subprocess.CalledProcessError as error:  # refused before it ran: say why, carry on
            step["skipped"] = (error.stderr or error.stdout or str(error)).strip().splitlines()[-1]
            print(f"- {step['title']} refused: {step['skipped']}", flush=True)
        summary = proof_summary.write_summary(out, store, steps, clock.started, notes)
    problems = summary["problems"] + [f"{s['key']}: {s['skipped']}" for s in steps
                                      if s.get("skipped") and s["key"] != "sweep" and s["device"] == "gpu"
                                      and "budget" not in s["skipped"]]
    summary = proof_summary.write_summary(out, store, steps, clock.started, notes + problems)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    tarball = proof_summary.pack(out, f"gpu-proof-{socket.gethostname()}-{stamp}.tgz")
    print(f"{len(summary['runs'])} runs in {summary['wall_s']:.0f} s; summary {out / 'summary.json'}; "
          f"tarball {tarball} ({tarball.stat().st_size / 2**20:.1f} MiB)", flush=True)
    for speed in summary["speedups"]:
        epoch, ttt = speed["steady_epoch"], speed["time_to_99"]
        print(f"  {speed['what']}: {epoch or float('nan'):.2f}x steady epoch, "
              f"{'-' if ttt is None else f'{ttt:.2f}x'} time to 99%", flush=True)
    for row in summary["by_model_size"]:
        print(f"  GPU over CPU at {row['flops_per_image'] / 1e6:,.1f} MFLOP/image ({row['model']}): "
              f"{row['speedup'] or float('nan'):.2f}x images/s", flush=True)
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr, flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
