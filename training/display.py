"""How numbers are shown to people: the one place that turns None into a dash.

A diverged epoch logs null (JSON has no NaN), an imported log may lack a
field, and a one-epoch run has no steady state: each shows as "—".
"""

from __future__ import annotations

MISSING = "—"


def number(value: float | None, spec: str = "", unit: str = "") -> str:
    """`value` formatted with `spec` and followed by `unit`, or "—" when unknown."""
    return MISSING if value is None else f"{value:{spec}}{unit}"
