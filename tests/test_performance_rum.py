"""PUXT real-user measurements: validation with quarantine, ratings at the thresholds, the per-page summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from framework2.errors import DataError
from framework2.sample.performance import BASELINE_RELEASE, CANDIDATE_RELEASE, sample_rum
from framework2.tasks.performance.rum import (
    GOOD,
    NEEDS_IMPROVEMENT,
    POOR,
    prepare_rum,
    rate,
    read_rum_csv,
    rum_summary,
)

T0 = "2025-03-03T10:00:00Z"


def rows(*items: tuple[object, object, object, object, object]) -> pd.DataFrame:
    return pd.DataFrame(items, columns=["page", "release", "metric", "value", "timestamp"])


def test_missing_columns_are_named() -> None:
    with pytest.raises(DataError, match="missing column\\(s\\): metric, timestamp"):
        prepare_rum(pd.DataFrame({"page": ["/"], "release": ["v1"], "value": [1.0]}))


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (("/", "v1", "FID", 10, T0), "unknown metric 'FID'"),
        (("/", "v1", None, 10, T0), "metric is missing"),
        (("/", "v1", "LCP", -1, T0), "value is negative"),
        (("/", "v1", "LCP", "fast", T0), "value 'fast' is not a number"),
        (("/", "v1", "LCP", None, T0), "value is missing"),
        (("/", "v1", "LCP", 60_001, T0), "implausible LCP 60001 (above 60000 ms)"),
        (("/", "v1", "CLS", 10.5, T0), "implausible CLS 10.5 (above 10)"),
        (("/", "v1", "INP", float("inf"), T0), "value is not finite"),
        ((None, "v1", "LCP", 100, T0), "page is missing"),
        (("/", "  ", "LCP", 100, T0), "release is missing"),
        (("/", "v1", "LCP", 100, None), "timestamp is missing"),
        (("/", "v1", "LCP", 100, "yesterday-ish"), "timestamp is not a readable date"),
    ],
)
def test_bad_rows_are_quarantined_with_reason(row: tuple[object, ...], reason: str) -> None:
    good = ("/", "v1", "LCP", 1200, T0)

    data = prepare_rum(rows(good, row))

    assert len(data.valid) == 1
    assert len(data.quarantined) == 1
    assert reason in data.quarantined["reason"].iloc[0]


def test_every_problem_of_a_row_is_listed() -> None:
    data = prepare_rum(rows((None, "v1", "XYZ", -3, T0)))

    reason = data.quarantined["reason"].iloc[0]
    assert "page is missing" in reason and "unknown metric 'XYZ'" in reason and "value is negative" in reason


def test_valid_rows_are_normalised() -> None:
    data = prepare_rum(
        rows(
            (" /home ", "v1", " lcp ", "1234.5", "2025-03-03T10:00:00+01:00"),
            ("/home", "v1", "CLS", 0.0, 1741000000),  # Unix seconds
            ("/home", "v1", "INP", 80, 1741000000000),  # Unix milliseconds (what browsers send)
        )
    )

    valid = data.valid
    assert data.quarantined.empty
    assert list(valid["page"]) == ["/home"] * 3
    assert list(valid["metric"]) == ["LCP", "CLS", "INP"]
    assert list(valid["value"]) == [1234.5, 0.0, 80.0]
    assert str(valid["timestamp"].dt.tz) == "UTC"
    assert valid["timestamp"].iloc[0] == pd.Timestamp("2025-03-03T09:00:00Z")


def test_numeric_timestamps_in_milliseconds() -> None:
    data = prepare_rum(rows(("/", "v1", "INP", 80, 1741000000000), ("/", "v1", "INP", 90, 1741000001000)))

    assert list(data.valid["timestamp"]) == [
        pd.Timestamp(1741000000, unit="s", tz="UTC"),
        pd.Timestamp(1741000001, unit="s", tz="UTC"),
    ]


@pytest.mark.parametrize(
    ("metric", "value", "expected"),
    [
        ("LCP", 2500, GOOD),
        ("LCP", 2500.1, NEEDS_IMPROVEMENT),
        ("LCP", 4000, NEEDS_IMPROVEMENT),
        ("LCP", 4000.1, POOR),
        ("INP", 200, GOOD),
        ("INP", 201, NEEDS_IMPROVEMENT),
        ("INP", 500, NEEDS_IMPROVEMENT),
        ("INP", 501, POOR),
        ("CLS", 0.1, GOOD),
        ("CLS", 0.1001, NEEDS_IMPROVEMENT),
        ("CLS", 0.25, NEEDS_IMPROVEMENT),
        ("CLS", 0.2501, POOR),
        ("TTFB", 800, GOOD),
        ("TTFB", 1800, NEEDS_IMPROVEMENT),
        ("TTFB", 1801, POOR),
        ("FCP", 1800, GOOD),
        ("FCP", 3000, NEEDS_IMPROVEMENT),
        ("fcp", 3000.5, POOR),
    ],
)
def test_rating_at_the_thresholds(metric: str, value: float, expected: str) -> None:
    assert rate(metric, value) == expected


def test_rating_of_an_unknown_metric_is_a_data_error() -> None:
    with pytest.raises(DataError):
        rate("FID", 10)


def test_summary_percentiles_and_rating_at_p75() -> None:
    # p75 by linear interpolation of [1000, 2000, 2500, 3000, 5000] is exactly 3000: needs improvement, while
    # the p50 (2500) alone would have said good.
    lcp = [1000, 2000, 2500, 3000, 5000]
    cls = [0.0, 0.05, 0.1, 0.1, 0.3]  # p75 exactly 0.1: good
    data = rows(
        *[("/", "v1", "LCP", v, T0) for v in lcp],
        *[("/", "v1", "CLS", v, T0) for v in cls],
        ("/", "v1", "LCP", -1, T0),  # quarantined, not summarised
    )

    summary = rum_summary(data)

    assert list(summary["metric"]) == ["LCP", "CLS"]
    lcp_row, cls_row = summary.iloc[0], summary.iloc[1]
    assert lcp_row["count"] == 5
    assert [lcp_row["p50"], lcp_row["p75"], lcp_row["p95"]] == list(np.percentile(lcp, [50, 75, 95]))
    assert lcp_row["p75"] == 3000 and lcp_row["rating"] == NEEDS_IMPROVEMENT
    assert lcp_row["good_share"] == pytest.approx(3 / 5)
    assert (cls_row["unit"], cls_row["p75"], cls_row["rating"]) == ("", 0.1, GOOD)


def test_summary_orders_releases_by_first_measurement() -> None:
    data = rows(
        ("/", "v1.10.0", "TTFB", 300, "2025-03-10T00:00:00Z"),
        ("/", "v1.9.0", "TTFB", 300, "2025-03-01T00:00:00Z"),
        ("/a", "v1.9.0", "TTFB", 300, "2025-03-01T00:00:00Z"),
    )

    summary = rum_summary(data)

    assert list(zip(summary["page"], summary["release"], strict=True)) == [
        ("/", "v1.9.0"),
        ("/", "v1.10.0"),
        ("/a", "v1.9.0"),
    ]


def test_empty_input_gives_an_empty_summary() -> None:
    summary = rum_summary(rows())
    assert summary.empty and "rating" in summary.columns


def test_csv_round_trip_keeps_release_text(tmp_path: Path) -> None:
    path = tmp_path / "rum.csv"
    rows(("/", "1.10", "LCP", 900, T0), ("/", "1.10", "LCP", "bad", T0)).to_csv(path, index=False)

    data = prepare_rum(path)

    assert list(data.valid["release"]) == ["1.10"]
    assert len(data.quarantined) == 1
    with pytest.raises(DataError, match="does not exist"):
        read_rum_csv(tmp_path / "missing.csv")


def test_sample_data_is_clean_and_dirty_rows_are_all_caught() -> None:
    clean = prepare_rum(sample_rum(0))
    dirty = prepare_rum(sample_rum(0, dirty=True))

    assert clean.quarantined.empty
    assert len(dirty.quarantined) == 7
    assert len(dirty.valid) == len(clean.valid)
    assert clean.releases == [BASELINE_RELEASE, CANDIDATE_RELEASE]
    summary = rum_summary(clean).set_index(["page", "release", "metric"])
    # The planted /checkout LCP regression moves its p75 rating from good to needs improvement.
    assert summary.loc[("/checkout", BASELINE_RELEASE, "LCP"), "rating"] == GOOD
    assert summary.loc[("/checkout", CANDIDATE_RELEASE, "LCP"), "rating"] == NEEDS_IMPROVEMENT
