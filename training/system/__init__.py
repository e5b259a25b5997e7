"""The machine: its CPU and GPUs, their power, and whether each backend can use them.

    hardware.py   CPU model and cores, NVML's driver and GPUs, without a framework
    nvml.py       the one NVML session (`nvml.session()`), and whether GPUs are hidden
    power.py      Linux RAPL package energy counters, wraparound handled
    gpucheck.py   does a backend see a GPU (a probe subprocess, cached)? if not, why, and the fix
    priority.py   the dashboard server's CPU priority: its autogroup's nice value, below the workers
    doctor.py     `doctor`: every backend's probe, NVML, libcuda, wheels, env -> problems and fixes

Nothing here imports a deep-learning framework; a backend is asked in its own
subprocess (`python -m training probe BACKEND`).
"""
