"""How far to trust a speedup: a bootstrap 95% interval, a verdict in words, and how much more data.

Method (docs/log-format.md, "Speedup intervals"):
  interval   percentile bootstrap of the ratio of medians, median(B) / median(A), where A
             and B are the two sides' samples: each run's steady epochs' images/s (single
             runs), or each run's steady images/s (groups: one value per run). Each side is
             resampled with replacement on its own, RESAMPLES times, with numpy's
             `default_rng(SEED)`, so the same data always gives the same interval. The
             2.5th and 97.5th percentiles of the resampled ratios bound the 95% interval.
  verdict    "B is 4.2× faster (95% CI 3.9–4.5×)", or "no difference this data can detect"
             when the interval contains 1 or lies wholly within the noise band 1 ± NOISE_BAND
             (Criterion.rs's noise threshold, here 2%: smaller gaps are below what one
             machine's clocks, caches and neighbours reproduce), or "not enough epochs"
             (or runs) below MIN_SAMPLES a side: two values only show their own range.
  more       where the interval's half-width is over TARGET_HALF_WIDTH (5%) of the ratio,
             pyperf's estimate of the samples a side that would bring it within ±5%:
             n = 4·Z²·σ²/W², with σ the ratio's relative spread per sample,
             sqrt(cv_A² + cv_B²) (each side's standard deviation over its mean), W the
             interval's full relative width (2 × 5%) and Z = 1.96. An estimate: it assumes
             the spread seen so far is the spread to come.
Pure: numpy only, no I/O.
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import asdict, dataclass

import numpy as np

RESAMPLES = 2000
SEED = 20181  # fixed: the same runs give the same interval on every machine and every call
CONFIDENCE = 0.95
Z = 1.959964  # the normal quantile of a two-sided 95% interval
NOISE_BAND = 0.02  # an interval inside 1 ± 2% is "no difference" (Criterion.rs's noise threshold)
TARGET_HALF_WIDTH = 0.05  # "how many more for ±5%"
MIN_SAMPLES = 3  # per side, for an interval at all


@dataclass(frozen=True)
class SpeedupVerdict:
    """A speedup of B over A with its interval and what it means.

    ratio: B / A of the medians (> 1: B is faster); None without data.
    ci_low, ci_high: the bootstrap 95% interval, None with fewer than MIN_SAMPLES a side.
    basis: what was compared ("training" or "epoch" images/s, `comparison.RATE_BASES`).
    text: the verdict in words.
    more_needed: how many samples a side would bring the interval within ±5% (pyperf), None
        where it already is or cannot be estimated; `unit` says of what ("epochs", "runs").
    n: the samples (A, B) the interval rests on.
    """

    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    basis: str
    text: str
    more_needed: int | None = None
    unit: str = "epochs"
    n: tuple[int, int] = (0, 0)
    kind: str = "not enough"  # "faster", "slower", "no difference", "not enough"

    def public(self) -> dict:
        """For --json: the fields, with `verdict` the text (docs/log-format.md)."""
        data = asdict(self)
        data["verdict"] = data.pop("text")
        data["n"] = list(self.n)
        return data


def bootstrap_ratio(base: list[float], other: list[float], resamples: int = RESAMPLES,
                    seed: int = SEED, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap interval of median(other) / median(base), each side resampled alone."""
    return _bootstrap(tuple(map(float, base)), tuple(map(float, other)), resamples, seed, confidence)


# The seed is fixed, so the same samples always give the same interval: a live page reruns with
# most runs unchanged, and the verdict and the table ask for the same pairs (about 4 ms each).
@functools.lru_cache(maxsize=4096)
def _bootstrap(base: tuple[float, ...], other: tuple[float, ...], resamples: int, seed: int,
               confidence: float) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    a, b = np.asarray(base, dtype=float), np.asarray(other, dtype=float)
    a_medians = np.median(rng.choice(a, size=(resamples, a.size), replace=True), axis=1)
    b_medians = np.median(rng.choice(b, size=(resamples, b.size), replace=True), axis=1)
    ratios = b_medians / a_medians
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return float(low), float(high)


def relative_spread(values: list[float]) -> float:
    """Standard deviation over mean (the coefficient of variation); 0 for fewer than 2 values."""
    if len(values) < 2:
        return 0.0
    mean = statistics.fmean(values)
    return statistics.stdev(values) / mean if mean else 0.0


def samples_needed(sigma: float, width: float, z: float = Z) -> int:
    """pyperf's estimate: n = 4·Z²·σ²/W² samples for a confidence interval of full width W.

    `sigma` and `width` in the same units (here both relative to the ratio).
    """
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width}")
    return max(1, math.ceil(4 * z * z * sigma * sigma / (width * width)))


def times(value: float) -> str:
    """A ratio as people read it: three significant figures, "4.2×", "1.07×", "12.3×"."""
    return f"{value:.3g}×"


def verdict(base: list[float], other: list[float], basis: str, unit: str = "epochs",
            names: tuple[str, str] = ("A", "B")) -> SpeedupVerdict:
    """The speedup of `other` over `base` (larger values = faster: images/s), with its interval.

    Args:
        base, other: each side's samples (steady epochs' images/s, or runs' steady images/s).
        basis: the rate they are of (carried into the result).
        unit: what one sample is, for the words ("epochs" or "runs").
        names: how the text names the sides.
    """
    a_name, b_name = names
    base = [v for v in base if v is not None and v > 0]
    other = [v for v in other if v is not None and v > 0]
    n = (len(base), len(other))
    if not base or not other:
        lacking = a_name if not base else b_name
        why = "no steady epoch (a one-epoch run?)" if unit == "epochs" else "no run with a steady state"
        return SpeedupVerdict(None, None, None, basis, f"not enough {unit}: {lacking} has {why}",
                              unit=unit, n=n)
    ratio = statistics.median(other) / statistics.median(base)
    sigma = math.hypot(relative_spread(base), relative_spread(other))
    needed = samples_needed(sigma, 2 * TARGET_HALF_WIDTH) if min(n) >= 2 else None
    if min(n) < MIN_SAMPLES:
        more = max(MIN_SAMPLES, needed or 0) - min(n)
        text = (f"{b_name}/{a_name} {times(ratio)}; not enough {unit} for an interval "
                f"({a_name} {n[0]}, {b_name} {n[1]}; {MIN_SAMPLES} a side needed): about {more} more "
                f"{unit} a side")
        return SpeedupVerdict(ratio, None, None, basis, text, more, unit, n)
    low, high = bootstrap_ratio(base, other)
    interval = f"95% CI {low:.3g}–{high:.3g}×"
    if low <= 1 <= high or (low >= 1 / (1 + NOISE_BAND) and high <= 1 + NOISE_BAND):
        kind, text = "no difference", (f"no difference this data can detect ({b_name}/{a_name} "
                                       f"{times(ratio)}, {interval})")
    elif ratio >= 1:
        kind, text = "faster", f"{b_name} is {times(ratio)} faster ({interval})"
    else:
        kind = "slower"
        text = f"{b_name} is {times(1 / ratio)} slower (95% CI {1 / high:.3g}–{1 / low:.3g}×)"
    wide = (high - low) / 2 > TARGET_HALF_WIDTH * ratio
    more = _more(needed, n) if wide else None
    if more:
        text += f"; about {more} more {unit} a side would bring it within ±5%"
    return SpeedupVerdict(ratio, low, high, basis, text, more, unit, n, kind)


def _more(needed: int | None, n: tuple[int, int]) -> int | None:
    """How many samples a side beyond the fewer of the two sides has now, or None."""
    if needed is None:
        return None
    extra = needed - min(n)
    return extra if extra > 0 else None
