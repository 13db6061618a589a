"""Health scores: success rate, freshness against the schedule, quality, and the reasons given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from framework2.config import HealthWeights
from framework2.tasks.health import RunRecord, freshness, score_health

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def run(status: str, minutes_ago: float, quality: float | None = 1.0) -> RunRecord:
    t = NOW - timedelta(minutes=minutes_ago)
    return RunRecord(status, t - timedelta(minutes=1), t, quality)


def test_all_good_recent_runs_score_100() -> None:
    score = score_health(
        "ppis", [run("completed", 10), run("completed", 70)], now=NOW, expected_interval=HOUR, weights=HealthWeights()
    )
    assert score.score == 100.0
    assert score.reasons == []


def test_failures_and_staleness_lower_the_score_with_reasons() -> None:
    runs = [run("failed", 10), run("completed", 200, quality=0.5), run("completed", 260)]
    score = score_health("ppis", runs, now=NOW, expected_interval=HOUR, weights=HealthWeights())
    # success 2/3, freshness at 200 min = 3.33 h → 1 - (3.33 - 1.5) / 1.5 < 0 → 0, quality 0.5
    assert score.success_rate == pytest.approx(2 / 3)
    assert score.freshness == 0.0
    assert score.quality == 0.5
    assert score.score == round(100 * (0.4 * 2 / 3 + 0.3 * 0 + 0.3 * 0.5), 2)
    assert any("1 of the last 3 runs failed" in r for r in score.reasons)
    assert any("expected every 60m" in r for r in score.reasons)
    assert score.last_status == "failed"


def test_never_ran_scores_zero() -> None:
    score = score_health("ppis", [], now=NOW, expected_interval=HOUR, weights=HealthWeights())
    assert score.score == 0 and score.reasons == ["no finished run yet"]


def test_freshness_grace_then_linear_decay() -> None:
    assert freshness(timedelta(minutes=90), HOUR) == 1.0
    assert freshness(timedelta(minutes=135), HOUR) == 0.5
    assert freshness(timedelta(hours=3), HOUR) == 0.0
