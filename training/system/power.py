"""CPU package energy from Linux RAPL (powercap), read without a framework.

`/sys/class/powercap/intel-rapl:N/energy_uj` counts microjoules of one CPU
package since boot and wraps at `max_energy_range_uj` (recent kernels expose
AMD's packages there too). `RaplReader` sums the packages, handles the wrap,
and gives joules since it was made. Many VMs and unprivileged users cannot
read it: then `available` is False and nothing is recorded, so the dashboard
says "not measured" rather than guess.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

POWERCAP = Path("/sys/class/powercap")
PACKAGE = re.compile(r"^intel-rapl:\d+$")  # packages; intel-rapl:N:M are their sub-domains
log = logging.getLogger(__name__)


def counter_delta(before: int, after: int, max_range: int) -> int:
    """Microjoules between two readings of a counter that wraps at `max_range`."""
    return after - before if after >= before else after + max_range - before


class RaplReader:
    """Cumulative CPU package energy in joules since construction.

    Args:
        root: the powercap folder (tests point it at a fake one).
    """

    def __init__(self, root: Path = POWERCAP):
        self.domains: list[tuple[Path, int]] = []  # (energy_uj file, wrap range in uJ)
        try:
            folders = sorted(p for p in root.iterdir() if PACKAGE.match(p.name))
        except OSError as error:
            log.debug("no RAPL powercap folder: %s", error)
            folders = []
        for folder in folders:
            try:
                max_range = int((folder / "max_energy_range_uj").read_text())
                int((folder / "energy_uj").read_text())  # unreadable for non-root on many kernels
            except (OSError, ValueError) as error:
                log.debug("RAPL domain %s unreadable: %s", folder, error)
                continue
            self.domains.append((folder / "energy_uj", max_range))
        self.available = bool(self.domains)
        self.last = self._read() if self.available else []
        self.joules = 0.0

    def _read(self) -> list[int]:
        return [int(path.read_text()) for path, _ in self.domains]

    def read(self) -> float | None:
        """Joules used by the CPU packages since this reader was made; None if unreadable."""
        if not self.available:
            return None
        try:
            now = self._read()
        except (OSError, ValueError) as error:
            log.debug("RAPL read failed, energy no longer recorded: %s", error)
            self.available = False
            return None
        self.joules += sum(counter_delta(before, after, max_range) for before, after, (_, max_range)
                           in zip(self.last, now, self.domains)) / 1e6
        self.last = now
        return self.joules
