"""`doctor` and `probe`: what this machine and each backend can do."""

from __future__ import annotations

import json
import sys

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
