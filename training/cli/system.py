"""`doctor` and `probe`: what this machine and each backend can do."""

from __future__ import annotations

import json
import sys

from training.config import RunConfig
from training.system import doctor


def cmd_doctor(store, args) -> int:
    found = doctor.report(tuple(args.backend) if args.backend else None)
    if args.json:
        json.dump(found, sys.stdout, indent=1)
        print()
    else:
        print(doctor.format_report(found))
    return 0 if found["ok"] else 1


def cmd_probe(store, args) -> int:
    from training.worker.probe import probe  # imports the backend: this process exists for it

    answer = probe(args.backend)
    print(json.dumps(answer) if args.json else "\n".join(f"{k}: {v}" for k, v in answer.items()))
    return 1 if answer.get("error") else 0


def cmd_peak(store, args) -> int:
    """Measure one backend's peak FLOP/s on one device at one precision, here, and cache it."""
    from training.worker.device import backend_devices, check_device, pin_device
    from training.worker.peak import measure_and_remember

    config = RunConfig(backend=args.backend, device=args.device, precision=args.precision)
    pin_device(config)  # before the backend is imported
    try:
        check_device(config, backend_devices(config.backend)[1])  # never a CPU figure for a GPU
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    answer = measure_and_remember(config)
    if args.json:
        print(json.dumps(answer))
    else:
        print(f"{answer['backend']} {answer['device']} {answer['precision']}: "
              f"{answer['flops_per_s'] / 1e9:,.1f} GFLOP/s peak "
              f"({answer['n']}x{answer['n']} {answer['dtype']} products, "
              f"best of {answer['repeats']}; {answer['seconds']} s)\n"
              f"the cache ({answer['cache'] or 'not writable'}) holds "
              f"{answer['cached_flops_per_s'] / 1e9:,.1f} GFLOP/s, the best measured here")
    return 0
