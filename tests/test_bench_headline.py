"""bench/headline.py's paired latency comparison (the rest of the script needs an hour-long run)."""

from __future__ import annotations

import pytest


def test_paired_latency_alternates_and_compares_medians(load_bench):
    headline = load_bench("headline")
    calls: list[str] = []
    pick_values = iter([10.0, 30.0, 11.0])  # one outlier round: the median ignores it
    base_values = iter([12.0, 12.5, 9.0])

    def pick() -> float:
        calls.append("pick")
        return next(pick_values)

    def base() -> float:
        calls.append("base")
        return next(base_values)

    out = headline.paired_latency(pick, base, 3)
    assert calls == ["pick", "base", "base", "pick", "pick", "base"]  # the order alternates per round
    assert out["pick_ms"] == [10.0, 30.0, 11.0] and out["baseline_ms"] == [12.0, 12.5, 9.0]
    assert out["pick_median_ms"] == 11.0 and out["baseline_median_ms"] == 12.0
    assert out["no_higher"] is True and out["ratio"] == pytest.approx(11.0 / 12.0, abs=1e-4)

    slower = headline.paired_latency(lambda: 13.0, lambda: 12.0, 1)
    assert slower["no_higher"] is False and slower["rounds"] == 1


def test_paired_latency_needs_a_round(load_bench):
    headline = load_bench("headline")
    with pytest.raises(ValueError, match="rounds must be >= 1"):
        headline.paired_latency(lambda: 1.0, lambda: 1.0, 0)
