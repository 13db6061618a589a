"""PUXT release comparison, the scaling alert and the report: statistics checked against scipy and hand-computed
examples, verdicts against the effects planted in the sample data."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from framework2.errors import DataError
from framework2.sample.performance import BASELINE_RELEASE, CANDIDATE_RELEASE, sample_rum
from framework2.tasks.performance import compare as compare_module
from framework2.tasks.performance.compare import (
    IMPROVEMENT,
    INSUFFICIENT,
    NEGLIGIBLE,
    NO_CHANGE,
    REGRESSION,
    Comparison,
    cliffs_delta,
    compare_releases,
    compare_rum,
    hodges_lehmann,
    magnitude,
    response_time_alert,
)
from framework2.tasks.performance.report import performance_chart, performance_markdown
from framework2.tasks.performance.rum import prepare_rum, rum_summary
from framework2.tasks.performance.synthetic import ProbeResult, Sample, summarise_samples


@pytest.fixture(scope="module")
def rum_comparisons() -> list[Comparison]:
    return compare_rum(sample_rum(0), BASELINE_RELEASE, CANDIDATE_RELEASE)


def by_label(comparisons: list[Comparison]) -> dict[str, Comparison]:
    return {c.label: c for c in comparisons}


def lognormal(seed: int, n: int, median: float = 1000, sigma: float = 0.4) -> np.ndarray:
    return median * np.exp(sigma * np.random.default_rng(seed).standard_normal(n))


def test_p_values_agree_with_scipy() -> None:
    base, cand = lognormal(1, 60), lognormal(2, 70, median=1150)

    result = compare_releases(base, cand, metric="LCP")

    assert result.p_value == pytest.approx(stats.mannwhitneyu(cand, base, alternative="two-sided").pvalue)
    assert result.p_value_worse == pytest.approx(stats.mannwhitneyu(cand, base, alternative="greater").pvalue)
    assert result.u_statistic == stats.mannwhitneyu(cand, base).statistic
    # Rank-biserial correlation from scipy's U is Cliff's delta.
    assert result.rank_biserial == pytest.approx(2 * result.u_statistic / (60 * 70) - 1)


def test_cliffs_delta_and_hodges_lehmann_by_hand() -> None:
    baseline, candidate = [1, 2, 3], [2, 4]
    # Pairs candidate vs baseline: 2>1, 2=2, 2<3, 4>1, 4>2, 4>3 -> (4 greater - 1 smaller) / 6.
    assert cliffs_delta(baseline, candidate) == pytest.approx(0.5)
    # Differences 1, 0, -1, 3, 2, 1 -> sorted -1, 0, 1, 1, 2, 3 -> median 1.
    assert hodges_lehmann(baseline, candidate) == 1.0
    assert cliffs_delta(candidate, baseline) == pytest.approx(-0.5)


def test_hodges_lehmann_bisection_matches_all_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    base, cand = np.round(lognormal(3, 301)), np.round(lognormal(4, 250, median=1100))
    exact = float(np.median(np.subtract.outer(cand, base)))

    monkeypatch.setattr(compare_module, "_HL_MAX_PAIRS", 0)

    assert hodges_lehmann(base, cand) == exact
    assert hodges_lehmann(base[:-1], cand) == float(np.median(np.subtract.outer(cand, base[:-1])))


@pytest.mark.parametrize(
    ("delta", "label"),
    [(0.0, "negligible"), (0.1469, "negligible"), (0.147, "small"), (-0.33, "medium"), (0.474, "large")],
)
def test_magnitude_bounds(delta: float, label: str) -> None:
    assert magnitude(delta) == label


def test_planted_checkout_lcp_regression_is_flagged_and_nothing_else(rum_comparisons: list[Comparison]) -> None:
    found = by_label(rum_comparisons)

    assert len(rum_comparisons) == 15
    checkout = found["/checkout · LCP"]
    assert checkout.verdict == REGRESSION and checkout.regression
    assert checkout.cliffs_delta >= 0.147 and checkout.p75_change >= 0.05 and checkout.p_value_worse < 0.01
    assert checkout.hodges_lehmann > 0
    assert [c.label for c in rum_comparisons if c.regression] == ["/checkout · LCP"]


def test_small_inp_shift_is_significant_but_not_meaningful(rum_comparisons: list[Comparison]) -> None:
    home_inp = by_label(rum_comparisons)["/ · INP"]

    assert home_inp.significant_worse
    assert home_inp.cliffs_delta < 0.147  # the planted x1.08 is a "negligible" effect...
    assert home_inp.verdict == NEGLIGIBLE and not home_inp.regression  # ...so no rollback for it


def test_insufficient_data_gives_no_verdict() -> None:
    result = compare_releases(lognormal(1, 19), lognormal(2, 500, median=3000), metric="INP")

    assert result.verdict == INSUFFICIENT and not result.regression
    assert result.p_value is None and result.cliffs_delta is None
    assert result.n_baseline == 19 and "19 baseline" in result.explanation


def test_identical_samples_are_no_regression() -> None:
    values = lognormal(5, 200)
    same = compare_releases(values, values.copy(), metric="TTFB")
    constant = compare_releases(np.full(30, 250.0), np.full(30, 250.0), metric="TTFB")

    assert same.verdict == NO_CHANGE and same.cliffs_delta == 0 and same.hodges_lehmann == 0
    assert constant.verdict == NO_CHANGE and constant.p_value_worse == 1.0


def test_faster_candidate_is_an_improvement() -> None:
    base = lognormal(6, 300)

    result = compare_releases(base, base * 0.7, metric="LCP")

    assert result.verdict == IMPROVEMENT and not result.regression
    assert result.p75_change == pytest.approx(-0.3)


def test_nan_values_are_dropped_and_bad_settings_rejected() -> None:
    base = np.append(lognormal(7, 40), np.nan)
    assert compare_releases(base, lognormal(8, 40), metric="FCP").n_baseline == 40
    with pytest.raises(DataError):
        compare_releases(base, ["fast"] * 40, metric="FCP")
    with pytest.raises(DataError):
        compare_releases(base, base, metric="FCP", alpha=1.5)


def test_compare_rum_needs_raw_rows_and_known_releases() -> None:
    raw = sample_rum(0)
    with pytest.raises(DataError, match="raw measurements"):
        compare_rum(rum_summary(raw), BASELINE_RELEASE, CANDIDATE_RELEASE)
    with pytest.raises(DataError, match="releases present: v1.4.0, v1.5.0"):
        compare_rum(raw, BASELINE_RELEASE, "v9.9.9")


def test_compare_rum_page_missing_in_one_release_is_insufficient() -> None:
    t = pd.Timestamp("2025-03-03", tz="UTC")
    raw = pd.DataFrame(
        [("/", "a", "LCP", v, t) for v in lognormal(1, 30)]
        + [("/", "b", "LCP", v, t) for v in lognormal(2, 30)]
        + [("/new", "b", "LCP", v, t) for v in lognormal(3, 30)],
        columns=["page", "release", "metric", "value", "timestamp"],
    )

    found = by_label(compare_rum(raw, "a", "b"))

    assert found["/new · LCP"].verdict == INSUFFICIENT and found["/new · LCP"].n_baseline == 0
    assert found["/ · LCP"].verdict in (NO_CHANGE, NEGLIGIBLE)


def probe_with_totals(totals_ms: list[float], failed: int = 0, url: str = "http://app/") -> ProbeResult:
    samples = [Sample(index=i, ok=True, status_code=200, reason=None, total_ms=t) for i, t in enumerate(totals_ms)]
    samples += [
        Sample(index=len(samples) + i, ok=False, status_code=None, reason="timeout (read)") for i in range(failed)
    ]
    return summarise_samples(url, samples, started_at=datetime(2025, 3, 3, tzinfo=UTC))


def test_response_time_alert_fires_on_p95_total_above_threshold() -> None:
    slow = probe_with_totals([50.0] * 18 + [300.0, 400.0])
    at_limit = probe_with_totals([100.0] * 20)

    alert = response_time_alert(slow)
    quiet = response_time_alert(at_limit, threshold_ms=100)

    expected = float(np.percentile([50.0] * 18 + [300.0, 400.0], 95))
    assert alert and alert.fired and alert.action == "scale up"
    assert alert.statistic == "p95 total" and alert.observed_ms == pytest.approx(expected)
    assert "scale up" in alert.message
    assert not quiet and quiet.observed_ms == 100.0  # strictly above the threshold fires
    assert not response_time_alert(slow, statistic="p50")


def test_response_time_alert_without_timings_does_not_scale() -> None:
    alert = response_time_alert(probe_with_totals([], failed=5))

    assert not alert and alert.observed_ms is None and alert.action == "investigate"
    assert "timeout (read): 5" in alert.message
    json.dumps(alert.to_dict())


def test_chart_is_a_png_data_uri(rum_comparisons: list[Comparison]) -> None:
    for uri in (
        performance_chart(rum_comparisons, max_panels=4),
        performance_chart({"total ms": (lognormal(1, 50), lognormal(2, 50))}),
    ):
        assert uri is not None and uri.startswith("data:image/png;base64,")
        assert base64.b64decode(uri.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    assert performance_chart([]) is None


def test_markdown_lists_regressions_first(rum_comparisons: list[Comparison]) -> None:
    rum = prepare_rum(sample_rum(0, dirty=True))
    probes = [probe_with_totals([40.0] * 20), probe_with_totals([150.0] * 20), probe_with_totals([], failed=3)]

    text = performance_markdown(
        probes, rum_summary(rum), rum_comparisons, quarantined=rum.quarantined, chart="data:image/png;base64,AA=="
    )

    assert text.startswith("# PUXT performance")
    for heading in ("## Regressions", "## Synthetic probes", "## Real-user measurements", "## Release comparison"):
        assert heading in text
    assert "**1 release regression(s)**: /checkout · LCP." in text
    assert "![baseline vs candidate distributions](data:image/png;base64,AA==)" in text
    assert "7 row(s) quarantined" in text
    assert "⚠ scale up (p95 total 150 > 100)" in text
    table = text.split("## Release comparison", 1)[1]
    first_row = next(line for line in table.splitlines() if line.startswith("| /"))
    assert first_row.startswith("| /checkout | LCP |") and "regression" in first_row
    assert "| / | INP |" in table and NEGLIGIBLE in table
    assert "⚠ needs improvement" in text  # the candidate's /checkout LCP rating
    json.dumps([c.to_dict() for c in rum_comparisons])
