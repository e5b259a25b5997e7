"""Train the published MNIST CNN on the CPU or a GPU and keep its runs on disk.

The folders are the layers; dependencies point down (docs/architecture.md has
the picture, and tests/test_layout.py enforces it):

    cli/             `python -m training ...`: entry point, beside the dashboard's pages
        parser.py        every subcommand; `run` and `sweep` options come from RunConfig's fields
        runs.py          run (followed), list, stop, delete; work (--slurm), remote-work, follow
        groups.py        run --repeats, sweep: queued through a launcher, then followed
        analysis.py      compare (runs and groups), export, report
        exports.py       export --mlflow, and following a run while streaming it to MLflow
        imports.py       import, import-runs;  system.py: doctor, probe, peak
        terminal.py      live progress per run, the end-of-run summary, Ctrl-C handling
    launch/          where runs start and how they stop: one interface, a launcher per place
        __init__.py      Launcher, launcher_for, launcher_of (stop, reattach, describe)
        local.py         a detached worker on this machine, one run at a time
        cluster.py       a Ray job on a cluster node; follower.py copies its records home
        slurm.py         an sbatch job whose worker writes straight into the shared run folder
        sweeps.py        repeats and sweeps: plan (interleaved), GPU refusal, queue, estimate
    analysis/        pure: records in; numbers, text, tables, Plotly figures and reports out
        comparison.py    steady state, images/s, time to target, speedup, protocol (the Definitions)
        flops.py         FLOPs per image (recorded, else from the layers); achieved FLOP/s, utilisation
        stats.py, energy.py, display.py, groups.py, listing.py, series.py
        figures.py, grouping.py, scaling.py, tables.py, report.py
        timesplit.py     where the time goes: steps, first-step wait, evaluation, the rest
        uncertainty.py   bootstrap 95% intervals of speedups, their verdicts, pyperf's "how many more"
        contention.py    which epochs other processes slowed, in words
        verdict.py       the answer first: each run's speedup, time to target, in words
    imports/         runs trained elsewhere: log parsers, TensorBoard event files (tensorboard.py),
                     and the run folders made from them; archive.py adds whole run folders
                     from another machine (import-runs); annotate.py sets an imported run's
                     images per epoch and device afterwards
    exports/         mlflow.py: runs and groups to an MLflow server, and `run --mlflow`'s live stream
    system/          the machine: hardware, nvml (one session), power (RAPL), gpucheck, doctor,
                     contention (/proc/stat: the share other processes took; the threshold)
    store/           disk is the truth: RunStore and Run (runs.py), state, space, debris, layout,
                     process, queue, logwriter, logreader, runlog, peaks (the peak cache);
                     builtin/ reference runs
    worker/          the only code that imports TensorFlow, Keras, JAX or torch, in its own process
        work.py          one run from queue turn to end record
        device.py        pin the device before Keras is imported; ask the backend for GPUs and its build
        probe.py         `probe BACKEND`: its devices, GPUs and CUDA build, in a short subprocess
        peak.py          `peak`: the device's measured peak FLOP/s (a matrix product), cached
        flopcount.py     FLOPs per image of any model from its backend's own counter (start record)
        engines.py       EpochClock and the two engines, Keras `fit` and a TensorFlow loop
        profiler.py      --profile-steps: the backend's own profiler, its trace in the run folder
        model.py, mnist.py, sampler.py (CPU/GPU samples about once a second; per-epoch contention)
    config.py        RunConfig: every setting, its range and help, validated in one place
"""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
