"""Train the published MNIST CNN on the CPU or a GPU and keep its runs on disk.

Module map, in the order data flows (docs/architecture.md has the picture):

    config.py        RunConfig: every setting, its range and help, validated in one place
    cli.py           `python -m training ...`; its `run` options come from RunConfig's fields
    cli_groups.py    `run --repeats`, `sweep`, `compare` of groups, `report`
    launch/          where runs start and how they stop: one interface, two launchers
        local.py         a detached worker on this machine, one run at a time
        cluster.py       a Ray job on a cluster node (RayLauncher), the cluster's nodes
        follower.py      copies a Ray job's echoed records into the local run folder
    store/           disk is the truth
        layout.py        the file names of a run folder (their one owner) and atomic writes
        runs.py          RunStore (all runs) and Run (one run: status, pid, log, end record);
                         read-only and free-space checks, debris sweeping
        process.py       process identity (pid + start time), detached spawn, signals
        queue.py         one run at a time, oldest first (flock), and who is next
        logwriter.py     append-only JSON lines, with the log format version
        logreader.py     incremental reader: each new record once, a torn tail means "not yet"
        runlog.py        what a run's log says so far: start, progress, epochs, end, warnings
        builtin/         the reference runs, shipped as run folders that every store lists
    worker/          the only code that imports TensorFlow, Keras, JAX or torch
        work.py          one run from queue turn to end record
        device.py        pin the device before Keras is imported; ask the backend for GPUs and its build
        probe.py         `probe BACKEND`: its devices, GPUs and CUDA build, in a short subprocess
        engines.py       EpochClock and the two engines, Keras `fit` and a TensorFlow loop
        model.py, mnist.py, sampler.py (CPU/GPU samples about once a second)
    imports/         runs trained elsewhere
        parsers.py       Keras 2/3 console logs, the published TensorFlow format, CSVLogger
        runs.py          parsed logs as read-only run folders; the built-in reference runs
    comparison.py    steady state, time to target, speedup, cores kept busy: `compare` and the pages
    groups.py        repeats and sweeps: plan (interleaved), GPU refusal, queue, members, cells, estimate
    stats.py         a group's n, median, min, max, olympic mean, not reached; speedup of medians
    energy.py        joules per epoch and to target from NVML watts and RAPL joules; cost per hour
    power.py         Linux RAPL package energy counters, wraparound handled (the sampler reads it)
    hardware.py      CPU model, cores, NVML's driver and GPUs, without importing a framework
    gpucheck.py      does the backend see a GPU (probe subprocess, cached)? if not, why, with the fix
    doctor.py        `doctor`: every backend's probe, NVML, libcuda, wheels, env -> problems and fixes
    display.py       the one "None -> —" number formatter
"""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
