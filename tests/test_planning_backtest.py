"""PPMS calibration backtest: past moments are rebuilt honestly, every case is scored with the throughput
baseline beside it, and the verdict tells a useless forecast (dates far out that "cover" everything) from a
right one. The checks on real histories are in ``test_planning_real_history.py``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from scipy.stats import binomtest

from framework2.tasks.planning.backtest import (
    Coverage,
    PublishedForecast,
    backtest,
    judge,
    snapshot_at,
    snapshot_moments,
    track_record,
)
from framework2.tasks.planning.durations import fit_duration_model
from framework2.tasks.planning.records import DependencyRecord, TaskRecord
from framework2.tasks.planning.scoring import ScoredCase, judge_scores, pinball_loss, score, wilson_interval
from framework2.tasks.planning.synthetic import synthetic_median_days, synthetic_task_history, synthetic_team_history

START = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday
NOW = START + timedelta(days=14 * 14)


def _portfolio(untracked: float = 0.0, projects: int = 6) -> tuple[list[TaskRecord], list[DependencyRecord]]:
    tasks: list[TaskRecord] = []
    deps: list[DependencyRecord] = []
    for k in range(projects):
        t, d = synthetic_team_history(
            f"p{k}",
            waves=14,
            tasks_per_wave=12,
            workers=4,
            start=START,
            seed=100 + k,
            untracked_days_per_task=untracked,
        )
        tasks += t
        deps += d
    return tasks, deps


def test_on_a_team_working_through_waves_dates_hold_and_beat_nothing_worse_than_the_baseline() -> None:
    tasks, deps = _portfolio()

    result = backtest(tasks, deps, [], now=NOW, every_days=7, trials=1_000)

    p50, p85, p95 = result.at(50), result.at(85), result.at(95)
    assert p85.decided >= 80
    assert 0.80 <= p85.share <= 0.97, p85
    assert 0.35 <= p50.share <= 0.80, p50
    assert p95.share >= 0.85, p95
    assert p50.share <= p85.share <= p95.share
    assert result.scores is not None and result.baseline is not None and result.paired is not None
    # This history is a queue served in order: the throughput baseline is near its best here, and PPMS's
    # P85 is still no worse.
    assert result.paired.pinball[85] <= 1.1 * result.baseline.pinball[85]
    assert 0.67 <= result.scores.median_ratio <= 1.5
    ranks = np.array([c.rank for c in result.cases if c.rank is not None])
    # Where the actual finish fell within each forecast spreads over all quarters, not piled at one end.
    quarters = np.histogram(ranks, bins=4, range=(0, 1))[0] / len(ranks)
    assert (quarters >= 0.05).all() and (quarters <= 0.45).all(), quarters


def test_every_case_carries_the_baseline_and_the_result_says_which_held_up_better() -> None:
    tasks, deps = _portfolio(untracked=1.0, projects=2)

    result = backtest(tasks, deps, [], now=NOW, every_days=14, trials=500)

    assert result.cases and all(c.baseline is not None for c in result.cases)
    assert result.trusted in ("PPMS", "throughput baseline (12 weeks)")
    assert (
        "PPMS held up better" if result.trusted == "PPMS" else "the throughput baseline (12 weeks) held up better"
    ) in result.reason
    assert "pinball loss P50" in result.reason


def test_snapshot_shows_only_what_was_known_then() -> None:
    tasks, deps = synthetic_team_history("p", waves=4, tasks_per_wave=6, workers=2, start=START, seed=3)
    at = START + timedelta(days=17)
    by_key = {t.key: t for t in tasks}

    known, edges = snapshot_at(tasks, deps, at)

    assert {t.key for t in known} == {t.key for t in tasks if t.created_at <= at}
    for t in known:
        real = by_key[t.key]
        if real.done_at <= at:
            assert t.status == "done" and t.done_at == real.done_at
        elif real.started_at <= at:
            assert t.status == "in_progress" and t.done_at is None and t.assignee == real.assignee
        else:  # nobody had started it: no start, no finish, and no assignee yet
            assert t.status == "todo" and t.started_at is None and t.done_at is None and t.assignee is None
    assert any(t.status == "in_progress" for t in known) and any(t.status == "todo" for t in known)
    keys = {t.key for t in known}
    assert edges and all(e.task in keys and e.depends_on in keys for e in edges)
    assert len(edges) < len(deps)


def test_open_scope_counts_as_a_miss_only_once_the_date_has_passed() -> None:
    tasks, deps = _portfolio(projects=2)
    stuck = next(t for t in tasks if t.project == "p0" and t.created_at > START + timedelta(days=100))
    tasks = [t.model_copy(update={"status": "in_progress", "done_at": None}) if t is stuck else t for t in tasks]

    result = backtest(tasks, deps, [], now=NOW, projects=["p0"], every_days=7, trials=300)

    waiting = [c for c in result.cases if c.actual is None]
    assert waiting, "the stuck task keeps some moments open"
    for case in waiting:
        for q, date_ in ((50, case.p50), (85, case.p85), (95, case.p95)):
            assert case.covered[q] is (False if date_ < NOW.date() else None)
    p85 = result.at(85)
    assert p85.undecided == sum(1 for c in result.cases if c.covered[85] is None)


def test_too_little_history_says_so_rather_than_judging() -> None:
    tasks, deps = synthetic_team_history("p", waves=4, tasks_per_wave=6, workers=2, start=START, seed=5)

    result = backtest(tasks, deps, [], now=START + timedelta(days=60), trials=300)

    assert result.verdict == "too few cases"
    assert "at least 10 are needed" in result.reason and "unverified" in result.reason
    assert sum(result.skipped.values()) + len(result.cases) >= 1


def test_wilson_interval_holds_the_share_even_at_all_or_nothing() -> None:
    for k, n in ((12, 12), (0, 12), (1, 1), (7, 7), (100, 100)):
        low, high = wilson_interval(k, n)
        assert low <= k / n <= high


def _case(start: date, p50: int, p85: int, p95: int, actual: int) -> ScoredCase:
    dates = {50: start + timedelta(days=p50), 85: start + timedelta(days=p85), 95: start + timedelta(days=p95)}
    done = start + timedelta(days=actual)
    return ScoredCase(snapshot=start, dates=dates, actual=done, covered={q: done <= d for q, d in dates.items()})


def test_a_ten_year_p85_that_covers_everything_is_judged_too_wide_not_right() -> None:
    start = date(2024, 1, 1)
    actuals = np.random.default_rng(0).integers(20, 200, 40)
    useless = score("PPMS", [_case(start, 1800, 3650, 3650, int(a)) for a in actuals])
    verdict, reason = judge_scores(useless)
    assert useless.at(85).share == 1.0 and useless.at(50).share == 1.0
    assert verdict == "too late" and "leans pessimistic" in reason
    assert useless.median_ratio > 5

    wide = score(
        "PPMS", [_case(start, int(a), 3650, 3650, int(a) + (5 if i % 2 else -5)) for i, a in enumerate(actuals)]
    )
    assert judge_scores(wide)[0] == "too wide"

    early = score("PPMS", [_case(start, 5, 8, 10, int(a)) for a in actuals])
    verdict, reason = judge_scores(early)
    assert verdict == "too early" and "work outside the tracker" in reason

    right = score("PPMS", [_case(start, 100, 170, 190, a) for a in (60, 90, 95, 99, 101, 105, 120, 150, 160, 200) * 2])
    assert judge_scores(right)[0] == "consistent"
    assert right.pinball[50] == pytest.approx(
        np.mean([abs(a - 100) / 2 for a in (60, 90, 95, 99, 101, 105, 120, 150, 160, 200)])
    )


def test_pinball_loss_weighs_late_and_early_as_the_quantile_says() -> None:
    assert pinball_loss(10, 8, 0.85) == pytest.approx(2 * 0.85)
    assert pinball_loss(8, 10, 0.85) == pytest.approx(2 * 0.15)
    assert pinball_loss(5, 5, 0.5) == 0.0


def test_judge_of_published_forecasts_uses_the_p85_coverage() -> None:
    low, high = wilson_interval(60, 60)
    late = Coverage(quantile=85, decided=60, covered=60, undecided=0, share=1.0, low=low, high=high)
    assert judge(late)[0] == "too late"
    low, high = wilson_interval(11, 12)
    few = Coverage(quantile=85, decided=12, covered=11, undecided=0, share=11 / 12, low=low, high=high)
    assert judge(few)[0] == "consistent"


@pytest.mark.parametrize(("k", "n"), [(0, 10), (9, 10), (85, 100), (100, 100), (3, 40)])
def test_wilson_interval_matches_scipy(k: int, n: int) -> None:
    reference = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(k, n) == pytest.approx((reference.low, reference.high), abs=1e-6)


def test_running_tasks_correct_the_short_bias_of_recent_history() -> None:
    tasks, deps = _portfolio(projects=2)
    at = START + timedelta(days=49)
    known, _ = snapshot_at(tasks, deps, at)
    done = [t for t in known if t.status == "done"]
    running = [t for t in known if t.status == "in_progress"]
    later = [t for t in tasks if t.status == "done" and t.started_at > at and t.estimate_days is not None]

    naive = fit_duration_model(done)
    censored = fit_duration_model(done, in_progress=running, now=at)

    assert censored.censored == len(running) > 0 and "still in progress" in censored.describe()

    def log_error(model: object) -> float:
        medians = np.array([f.p50 for f in model.forecast(later)])  # type: ignore[attr-defined]
        truth = np.array([synthetic_median_days(t) for t in later])
        return float(np.mean(np.log(medians / truth)))

    assert log_error(naive) < log_error(censored) <= 0.1  # less short-biased, not overshooting
    assert abs(log_error(censored)) < abs(log_error(naive))


def test_a_task_running_long_is_expected_to_run_longer_and_never_done_today() -> None:
    history = synthetic_task_history(300, seed=0)
    model = fit_duration_model(history)
    task = history[0].model_copy(update={"status": "in_progress", "done_at": None})

    def median_left(elapsed: float) -> float:
        return float(np.median(model.sample_remaining([task], np.array([elapsed]), 4000, 0)))

    fresh, midway, overrun, ancient = (median_left(e) for e in (0.0, 4.0, 60.0, 600.0))
    assert (model.sample_remaining([task], np.array([600.0]), 4000, 0) > 0).all()
    assert overrun > 0.5 and ancient > overrun  # past everything seen: a rest that grows with the run
    assert midway > 0 and fresh > 0

    # Too little history (fallback band): four 1-day tasks started 90 days ago are not "done today".
    few = fit_duration_model(history[:5])
    assert few.mode == "fallback"
    old = [
        TaskRecord(
            key=f"old#{i}",
            project="p",
            status="in_progress",
            estimate_days=1.0,
            created_at=START,
            started_at=START,
            updated_at=START,
        )
        for i in range(4)
    ]
    left = few.sample_remaining(old, np.full(4, 64.0), 2000, 0)
    assert (left > 0).all() and np.median(left) > 5


def test_track_record_scores_the_first_published_forecast_of_each_week() -> None:
    def task(key: str, created: int, done: int | None) -> TaskRecord:
        at = START + timedelta(days=created)
        end = START + timedelta(days=done) if done is not None else None
        return TaskRecord(
            key=key,
            project="p",
            status="done" if end else "in_progress",
            created_at=at,
            started_at=at,
            done_at=end,
            updated_at=end or at,
        )

    tasks = [task("a", 0, 10), task("b", 1, 20), task("c", 15, None)]
    day = START.date()

    def published(made: int, p50: int, p85: int, p95: int) -> PublishedForecast:
        return PublishedForecast(
            project="p",
            made_at=START + timedelta(days=made, hours=3),
            method="dependency-graph",
            p50=day + timedelta(days=p50),
            p85=day + timedelta(days=p85),
            p95=day + timedelta(days=p95),
        )

    forecasts = [
        published(2, 15, 22, 25),  # week 1: scope a, b done on day 20 -> P50 missed, P85 and P95 held
        published(3, 5, 6, 7),  # same week: not counted again
        published(16, 18, 19, 40),  # week 3: c still open on day 30 -> P50, P85 missed; P95 ahead
    ]

    cases, coverage = track_record(forecasts, tasks, now=START + timedelta(days=30))

    assert [(c.snapshot, c.open_tasks, c.actual) for c in cases] == [
        (day + timedelta(days=2), 2, day + timedelta(days=20)),
        (day + timedelta(days=16), 2, None),
    ]
    assert [c.covered for c in cases] == [{50: False, 85: True, 95: True}, {50: False, 85: False, 95: None}]
    p85 = next(c for c in coverage if c.quantile == 85)
    assert (p85.covered, p85.decided, p85.undecided) == (1, 2, 0)
    p95 = next(c for c in coverage if c.quantile == 95)
    assert (p95.covered, p95.decided, p95.undecided) == (1, 1, 1)


def test_moments_are_mondays_within_the_lookback_and_progress_is_reported() -> None:
    tasks, deps = synthetic_team_history("p", waves=30, tasks_per_wave=4, workers=3, start=START, seed=9)
    now = START + timedelta(days=420)

    moments = snapshot_moments(tasks, now, every_days=14, warmup_days=42, horizon_days=14, lookback_days=120)

    assert moments and all(m.weekday() == 0 and m.hour == 0 for m in moments)
    assert moments[0] >= now - timedelta(days=120) and moments[-1] <= now - timedelta(days=14)
    seen: list[tuple[int, int]] = []
    backtest(tasks, deps, [], now=now, lookback_days=120, trials=200, on_progress=lambda d, t: seen.append((d, t)))
    assert seen == [(i, len(moments)) for i in range(1, len(moments) + 1)]
