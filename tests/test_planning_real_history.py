"""PPMS on real histories the project did not generate (``../shared/data/real-history``; see its README).

The synthetic tests check the machinery on worlds made the way a model assumes work happens; these check the
numbers on what really happened, against the baseline practitioners already use on the same cases. The
figures each test was measured at are in its docstring; the bounds leave room for a changed seed, not for a
changed verdict. ``bench/forecast_real.py`` prints the same checks as one table.
"""

from __future__ import annotations

import json
from datetime import date

import pytest
from typer.testing import CliRunner

from framework2.cli import app
from framework2.sample.real_history import (
    effort_check,
    renzo_tasks,
    seven_digital,
    story_point_issues,
    write_tasks_csv,
)
from framework2.tasks.planning.backtest import BASELINE, BacktestResult, backtest

TRIALS = 1_000


def _replay(with_backlog: bool) -> BacktestResult:
    tasks = seven_digital(with_backlog=with_backlog)
    now = max(t.done_at for t in tasks if t.done_at is not None)
    return backtest(tasks, [], [], now=now, every_days=28, lookback_days=5_000, horizon_days=0, trials=TRIALS)


def _assert_sound(result: BacktestResult) -> None:
    """What must hold on any real history: every case forecast, every date a date, the baseline beaten."""
    assert not [why for why in result.skipped if why.startswith("forecast failed")], result.skipped
    assert result.scores is not None and result.baseline is not None and result.paired is not None
    assert result.scores.beyond_horizon == 0
    assert all(c.p95 is not None and (c.p95 - c.snapshot).days < 5 * 365 for c in result.cases)
    assert 0.67 <= result.scores.median_ratio <= 1.5, result.scores.median_ratio
    for q in (50, 85):
        assert result.paired.pinball[q] < result.baseline.pinball[q], (
            q,
            result.paired.pinball,
            result.baseline.pinball,
        )
    assert result.trusted == "PPMS" and "PPMS held up better" in result.reason


def test_7digital_backlog_scope_dates_hold_and_beat_the_12_week_throughput_baseline() -> None:
    """41 monthly cut-offs of 7digital's prioritised-but-not-done scope (measured: P50 56 %, P85 80 %, P95 95 %,
    P50/actual x1.05; pinball 35/27 days vs the baseline's 54/87, whose P85 held in 2 %). The draws are seeded,
    so this is the issue's target itself, not a band around it."""
    result = _replay(with_backlog=True)

    _assert_sound(result)
    assert len(result.cases) >= 40
    assert 0.40 <= result.at(50).share <= 0.60
    assert 0.80 <= result.at(85).share <= 0.90
    assert result.baseline.at(85).share < 0.2  # "when are N items done" is the wrong question for these items


def test_7digital_work_in_progress_dates_hold_when_the_tracker_only_records_starts() -> None:
    """Without the prioritised date every open item is running: when is the last of them done? (measured:
    P50 45 %, P85 90 %, P50/actual x0.93; pinball 14/9 days vs the baseline's 19/29)."""
    result = _replay(with_backlog=False)

    _assert_sound(result)
    assert 0.35 <= result.at(50).share <= 0.65
    assert 0.80 <= result.at(85).share <= 0.97


def test_duration_model_is_calibrated_on_a_decade_of_estimates_vs_actuals() -> None:
    """Renzo's 6,282 estimated tasks, each forecast from the 1,000 before it (measured: P50 held 53 %, P85 85 %;
    pinball P85 0.156 h vs 0.197 for 'estimate x typical overrun'). Its P50 does not beat the corrected
    estimate (0.187 vs 0.169): this developer's estimates are exact for most tasks, and a distribution cannot
    sit on a point as sharply as the point itself."""
    check = effort_check(renzo_tasks(), dataset="renzo", scale=60 / 25)

    assert check.tasks > 6_000
    assert check.coverage[50] == pytest.approx(0.50, abs=0.06)
    assert check.coverage[85] == pytest.approx(0.85, abs=0.05)
    assert check.pinball[85] < check.baseline_pinball[85]
    assert check.pinball[50] < 1.2 * check.baseline_pinball[50]
    assert check.median_ratio == pytest.approx(1.0, abs=0.1)
    assert check.p99_ratio < 10  # no 850x multipliers


def test_duration_model_turns_story_points_into_calibrated_hours() -> None:
    """328 issues of four agile projects, each forecast from the 200 before it (measured: P50 57 %, P85 89 %;
    pinball P85 2.58 h vs 3.08 for hours-per-point x points)."""
    check = effort_check(story_point_issues(), dataset="story points", scale=1.0, window=200, step=50)

    assert check.coverage[50] == pytest.approx(0.50, abs=0.1)
    assert check.coverage[85] == pytest.approx(0.85, abs=0.07)
    assert check.pinball[85] < check.baseline_pinball[85]
    assert check.pinball[50] < 1.05 * check.baseline_pinball[50]


def test_backtest_command_on_a_real_history_lists_every_case_as_json(tmp_path) -> None:
    year = [t for t in seven_digital() if t.created_at.date() < date(2010, 7, 1)]
    path = write_tasks_csv(year, tmp_path / "tasks.csv")

    result = CliRunner().invoke(app, ["ppms", "backtest", str(path), "--every", "4w", "--json", "--trials", "300"])

    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["every_days"] == 28 and report["projects"] == ["7digital"]
    assert report["baseline"]["forecaster"] == BASELINE
    case = report["cases"][0]
    assert {"project", "snapshot", "open_tasks", "p50", "p85", "p95", "actual", "baseline", "model"} <= set(case)
    assert case["open_tasks"] >= 3
    # The first moments have too little finished work to learn from: the N-items answer, said as such.
    assert case["model"] == "throughput" and {c["model"] for c in report["cases"][3:]} == {"flow"}


def test_forecast_command_says_which_model_and_shows_the_throughput_answer(tmp_path) -> None:
    path = write_tasks_csv(seven_digital(), tmp_path / "tasks.csv")

    text = CliRunner().invoke(app, ["ppms", "forecast", str(path), "--as-of", "2011-06-01", "--trials", "2000"])
    as_json = CliRunner().invoke(
        app, ["ppms", "forecast", str(path), "--as-of", "2011-06-01", "--trials", "2000", "--json"]
    )

    assert text.exit_code == 0, text.output
    assert "flow model" in text.output and "any 35 items (throughput)" in text.output
    forecast = json.loads(as_json.output)
    assert forecast["open_tasks"] == 35 and forecast["as_of"].startswith("2011-06-01T23:59")
    assert forecast["forecast"]["model"] == "flow" and forecast["forecast"]["throughput"]["items"] == 35
    assert forecast["forecast"]["p50_date"] < forecast["forecast"]["p85_date"] <= forecast["forecast"]["p95_date"]
