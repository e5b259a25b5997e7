"""How numbers are shown to people: the one place that turns None into a dash, and spreads into text.

A diverged epoch logs null (JSON has no NaN), an imported log may lack a
field, and a one-epoch run has no steady state: each shows as "—". A group's
spread (`stats.spread`) is written "median (min–max)" in tables, or as a
longer sentence with the olympic mean on the terminal.
"""

from __future__ import annotations

MISSING = "—"
MUTED = "#6b7280"  # the grey of target lines and reference annotations on every chart


def number(value: float | None, spec: str = "", unit: str = "") -> str:
    """`value` formatted with `spec` and followed by `unit`, or "—" when unknown."""
    return MISSING if value is None else f"{value:{spec}}{unit}"


def spread_cells(values: dict, spec: str, unit: str = "") -> tuple[str, str]:
    """('median', 'min–max') of a `stats.spread` dict, for two table columns."""
    if values["median"] is None:
        return MISSING, MISSING
    return (number(values["median"], spec, unit),
            f"{number(values['min'], spec)}–{number(values['max'], spec, unit)}")


def spread_sentence(values: dict, spec: str, unit: str = "") -> str:
    """'median X (min A, max B; olympic mean C)' for the terminal."""
    if values["median"] is None:
        return MISSING
    text = (f"median {number(values['median'], spec, unit)}  (min {number(values['min'], spec)}, "
            f"max {number(values['max'], spec)}")
    if values.get("olympic_mean") is not None:
        text += f"; olympic mean {number(values['olympic_mean'], spec, unit)}"
    return text + ")"
