"""Do the CUDA requirements install together on Python 3.11? A pip resolution, no GPU needed.

Runs `pip install --dry-run --report` for what `make run GPU=1` installs (requirements.txt
with requirements-gpu.txt) and what `make test GPU=1` installs (also the backends and their
CUDA builds), for Linux x86_64 and CPython 3.11, against PyPI alone (`--isolated`: no local
wheel folders or constraints). pip downloads every wheel it resolves, even in a dry run
(about 3.6 GB, ~35 s on a fast link), so this is a benchmark, not part of `make test`.

    .venv/bin/python bench/gpu_requirements.py [--only runtime|testing]

Prints, per set: pip's exit status, seconds, and the resolved framework and nvidia-* versions.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETS = {
    "runtime": ["requirements.txt", "requirements-gpu.txt"],
    "testing": ["requirements.txt", "requirements-gpu.txt", "requirements-backends.txt",
                "requirements-backends-gpu.txt", "requirements-test.txt"],
}
# Every manylinux tag a glibc 2.28+ x86_64 machine accepts; pip does not widen --platform itself.
PLATFORMS = ["manylinux2014_x86_64", *(f"manylinux_2_{minor}_x86_64" for minor in range(17, 29))]
CA_FILE = "/etc/ssl/certs/ca-certificates.crt"  # --isolated drops pip.conf, and its cert with it
SHOWN = ("tensorflow", "keras", "jax", "torch", "nvidia-", "triton")


def resolve(files: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        command = [sys.executable, "-m", "pip", "--isolated", "install", "--dry-run", "--ignore-installed",
                   "--quiet", "--report", str(report), "--target", str(Path(scratch) / "target"),
                   "--python-version", "3.11", "--implementation", "cp", "--only-binary=:all:",
                   *(["--cert", CA_FILE] if Path(CA_FILE).exists() else [])]
        command += [arg for platform in PLATFORMS for arg in ("--platform", platform)]
        command += [arg for name in files for arg in ("-r", str(ROOT / name))]
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.monotonic() - started
        installs = json.loads(report.read_text())["install"] if report.exists() else []
    versions = {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in installs}
    return {"returncode": done.returncode, "seconds": round(seconds, 1), "packages": len(versions),
            "versions": {n: v for n, v in sorted(versions.items()) if n.startswith(SHOWN)},
            "error": done.stderr.strip().splitlines()[-1] if done.returncode else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=SETS)
    args = parser.parse_args()
    failed = 0
    for name, files in SETS.items():
        if args.only and name != args.only:
            continue
        result = resolve(files)
        failed |= result["returncode"] != 0
        print(f"{name}: pip exit {result['returncode']} in {result['seconds']} s, "
              f"{result['packages']} packages ({' + '.join(files)})")
        for package, version in result["versions"].items():
            print(f"    {package}=={version}")
        if result["error"]:
            print(f"    error: {result['error']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
