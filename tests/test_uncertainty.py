"""Speedup intervals: the bootstrap on data with known answers, the verdict's words, pyperf's estimate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.analysis import comparison, grouping, report, stats, tables, uncertainty
from training.analysis.series import RunSeries


def around(centre: float, n: int, spread: float, seed: int) -> list[float]:
    """n values with a known centre: centre × (1 + spread × standard normal), seeded."""
    rng = np.random.default_rng(seed)
    return list(centre * (1 + spread * rng.standard_normal(n)))


def test_a_known_ratio_is_inside_the_interval_and_one_is_not():
    base, other = around(1000, 12, 0.03, 1), around(4200, 12, 0.03, 2)
    found = uncertainty.verdict(base, other, "training")
    assert found.ci_low < 4.2 < found.ci_high and found.ci_low > 1
    assert found.ci_low <= found.ratio <= found.ci_high
    assert found.kind == "faster"
    assert found.text == f"B is {found.ratio:.3g}× faster (95% CI {found.ci_low:.3g}–{found.ci_high:.3g}×)"
    assert found.more_needed is None  # 3% spread on 12 a side: already within ±5%


def test_the_interval_is_seeded_the_same_every_time():
    base, other = around(1000, 6, 0.1, 3), around(1500, 6, 0.1, 4)
    assert uncertainty.bootstrap_ratio(base, other) == uncertainty.bootstrap_ratio(base, other)
    assert uncertainty.bootstrap_ratio(base, other) != uncertainty.bootstrap_ratio(base, other, seed=7)


def test_the_95_percent_interval_covers_the_true_ratio_about_95_percent_of_the_time():
    covered = 0
    trials = 200
    for trial in range(trials):
        base, other = around(1000, 15, 0.1, 100 + trial), around(2000, 15, 0.1, 900 + trial)
        low, high = uncertainty.bootstrap_ratio(base, other, resamples=1000)
        covered += low <= 2.0 <= high
    # A percentile bootstrap of medians on 15 values is a little narrow; far from 95% is a bug.
    assert 0.85 <= covered / trials <= 0.995


def test_identical_distributions_give_no_difference():
    same = around(1000, 10, 0.05, 5)
    found = uncertainty.verdict(same, list(same), "epoch")
    assert found.kind == "no difference" and found.ci_low < 1 < found.ci_high
    assert found.text.startswith("no difference this data can detect (B/A 1×, 95% CI ")


def test_an_interval_inside_the_noise_band_is_no_difference():
    base = around(1000, 30, 0.002, 6)
    other = [v * 1.01 for v in around(1000, 30, 0.002, 7)]  # 1% faster, measured very tightly
    found = uncertainty.verdict(base, other, "training")
    assert found.ci_low > 1 and found.ci_high < 1 + uncertainty.NOISE_BAND
    assert found.kind == "no difference"


def test_slower_reads_as_slower_with_the_interval_inverted():
    found = uncertainty.verdict(around(2000, 8, 0.02, 8), around(1000, 8, 0.02, 9), "training")
    assert found.kind == "slower" and found.ratio < 1
    assert found.text.startswith(f"B is {1 / found.ratio:.3g}× slower (95% CI {1 / found.ci_high:.3g}–")


def test_pyperf_estimate_of_the_samples_for_a_width():
    # n = 4·Z²·σ²/W²: σ = 10%, W = 10% (±5%) -> 4 × 1.96² × 0.01 / 0.01 = 15.37 -> 16.
    assert uncertainty.samples_needed(0.10, 0.10) == 16
    assert uncertainty.samples_needed(0.10, 0.10, z=1.0) == 4
    assert uncertainty.samples_needed(0.0, 0.10) == 1
    with pytest.raises(ValueError):
        uncertainty.samples_needed(0.1, 0.0)


def test_a_wide_interval_says_how_many_more_would_do():
    base, other = around(1000, 4, 0.15, 10), around(3000, 4, 0.15, 11)
    found = uncertainty.verdict(base, other, "training")
    assert (found.ci_high - found.ci_low) / 2 > 0.05 * found.ratio
    sigma = math.hypot(uncertainty.relative_spread(base), uncertainty.relative_spread(other))
    assert found.more_needed == uncertainty.samples_needed(sigma, 0.10) - 4 > 0
    assert found.text.endswith(f"; about {found.more_needed} more epochs a side would bring it within ±5%")


def _epochs(seconds: list[float], images: int = 6000, timed_training: bool = True) -> list[dict]:
    records = []
    for epoch, s in enumerate(seconds, start=1):
        record = {"epoch": epoch, "epoch_time_s": s, "samples": images}
        if timed_training:
            record.update(train_s=0.9 * s, eval_s=0.1 * s)
        records.append(record)
    return records


def test_one_epoch_runs_have_not_enough_epochs():
    found = comparison.speedup_verdict(_epochs([3.0]), _epochs([1.0, 0.5, 0.5, 0.5]))
    assert found.ratio is None and found.ci_low is None
    assert found.text == "not enough epochs: A has no steady epoch (a one-epoch run?)"
    two = comparison.speedup_verdict(_epochs([3.0, 2.0, 2.1]), _epochs([1.0, 0.5, 0.52]))
    # Medians of rates (images / train_s); with two values, the mean of the two rates.
    assert two.ci_low is None and two.ratio == pytest.approx((1 / 0.5 + 1 / 0.52) / (1 / 2.0 + 1 / 2.1))
    assert "not enough epochs for an interval (A 2, B 2; 3 a side needed)" in two.text


def test_published_runs_get_intervals_from_their_printed_epoch_times():
    published = _epochs([60.0, 52.0, 53.0, 51.5, 52.5, 52.0], images=60000, timed_training=False)
    local = _epochs([5.0, 4.1, 4.0, 4.2, 3.9], images=6000)
    found = comparison.speedup_verdict(published, local)
    assert found.basis == "epoch"  # the published log times whole epochs only
    true = 6000 * (1 / 4.0 + 1 / 4.1) / 2 / (60000 / 52.0)  # median rates of the steady epochs, by hand
    assert found.ratio == pytest.approx(true) and found.ci_low < true < found.ci_high


def test_compare_speedup_carries_the_interval_fields():
    a = comparison.measure(_epochs([3.0, 2.0, 2.1, 1.9, 2.0]))
    b = comparison.measure(_epochs([1.0, 0.50, 0.52, 0.49, 0.51]))
    speed = comparison.speedup(a, b)
    assert speed["images_per_s"] == pytest.approx((1 / 0.5 + 1 / 0.51) / 2 / (1 / 2.0))  # median rates
    assert speed["ci_low"] < speed["images_per_s"] < speed["ci_high"]
    assert speed["verdict"].startswith("B is 3.96× faster (95% CI ")
    assert speed["n"] == [4, 4] and speed["more_unit"] == "epochs"


def test_group_intervals_are_over_the_runs():
    def cell(seconds: list[float]) -> dict:
        return stats.summarize([comparison.measure(_epochs([s * 1.5, s, s, s])) for s in seconds])

    slow, fast = cell([2.0, 2.1, 1.9, 2.05]), cell([0.5, 0.52, 0.49, 0.51])
    speed = stats.rate_speedup(slow, fast)
    assert speed["n"] == [4, 4] and speed["more_unit"] == "runs"
    assert speed["ci_low"] < speed["median"] < speed["ci_high"] and speed["ci_low"] > 1
    assert speed["verdict"].startswith("B is ")
    few = stats.rate_speedup(cell([2.0, 2.1]), fast)
    assert few["ci_low"] is None and "not enough runs for an interval" in few["verdict"]


# -- where people read them: the Compare table, the group table, the report -----------------------
def _series(run_id: str, seconds: list[float], others: list[float | None], **meta) -> RunSeries:
    epochs = _epochs(seconds)
    for record, share in zip(epochs, others):
        if share is not None:
            record.update(others_cpu_share=share, steal_share=0.0, contended=share >= 0.10,
                          contended_by=["others_cpu"] if share >= 0.10 else [])
    return RunSeries(run_id, run_id, "#000", epochs, meta={"name": run_id, "device": "cpu", **meta})


def test_the_compare_table_shows_interval_verdict_and_contention():
    base = _series("cpu", [3.0, 2.0, 2.1, 1.9, 2.0], [0.5, 0.02, 0.03, 0.01, 0.02])
    fast = _series("fast", [1.0, 0.50, 0.52, 0.49, 0.51], [0.0, 0.38, 0.40, 0.36, 0.01])
    one = _series("one", [3.0], [None])
    rows = {row["Run"]: row for row in tables.comparison_rows([base, fast, one], "cpu", 0.99)}
    speed = comparison.speedup_verdict(base.epochs, fast.epochs, names=("cpu", "fast"))
    assert rows["fast"]["Speedup 95% CI"] == f"{speed.ci_low:.3g}–{speed.ci_high:.3g}×"
    assert rows["fast"]["Speedup verdict"] == speed.text and speed.text.startswith("fast is 3.96× faster")
    assert rows["cpu"]["Speedup verdict"] == "baseline"
    assert rows["fast"]["Contention"] == ("other processes took 38% of the CPUs during epochs 2–4 "
                                          "(3 of 4 steady epochs contended)")
    assert rows["cpu"]["Contention"].startswith("other processes took 50% of the CPUs during epoch 1 (0 of 4")
    assert rows["one"]["Contention"] == "not recorded" and rows["one"]["Speedup 95% CI"] == "—"
    assert rows["one"]["Speedup verdict"].startswith("not enough epochs: one has no steady epoch")


def test_the_group_table_and_the_report_show_them_too():
    def cell(name: str, seconds: list[float], share: float) -> list[RunSeries]:
        return [_series(f"{name}{i}", [s * 1.5, s, s, s], [0.0, share, share, share], group=f"g-{name}",
                        group_kind="repeats", repeat=i) for i, s in enumerate(seconds)]

    series = cell("slow", [2.0, 2.1, 1.9, 2.05], 0.02) + cell("quick", [0.5, 0.52, 0.49, 0.51], 0.3)
    cells = grouping.group_series(series)
    slow, quick = grouping.group_rows(cells, 0.99)
    assert slow["Speedup verdict"] == "baseline" and quick["Speedup 95% CI"] != "—"
    assert " is 4" in quick["Speedup verdict"] and "95% CI" in quick["Speedup verdict"]
    assert quick["Contention"].startswith("4 of 4 runs had contended steady epochs")
    assert slow["Contention"].startswith("not contended")
    page = report.build_report(series, 0.99)
    assert "Speedup 95% CI" in page and "4 of 4 runs had contended steady epochs" in page
