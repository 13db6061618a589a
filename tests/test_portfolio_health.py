"""PPOS health: components score what they say, contributions add up to the points lost, components that do
not apply are left out (not scored perfect), and weights are configurable and checked."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from framework2.tasks.planning.records import DependencyRecord, TaskRecord
from framework2.tasks.portfolio.health import (
    DEFAULT_WEIGHTS,
    HealthScore,
    ProjectSignals,
    ScopeChange,
    portfolio_health,
    resolve_weights,
    score_health,
    task_signals,
)

NOW = datetime(2025, 3, 3, 12, tzinfo=UTC)


def healthy(**changes: object) -> ProjectSignals:
    base = {
        "project": "shop",
        "name": "Shop",
        "open_tasks": 40,
        "target_date": date(2025, 4, 30),
        "forecast_available": True,
        "probability_on_time": 1.0,
        "scope_added": 10,
        "scope_done": 9,
        "open_at_window_start": 40,
        "done_recent": 10,
        "done_prior": 20,
        "blocked_open": 2,
        "releases": 5,
        "failed_releases": 0,
        "ready_tasks": 10,
        "unstaffed_ready": 0,
    }
    return ProjectSignals(**{**base, **changes})


def component(score: HealthScore, name: str):  # type: ignore[no-untyped-def]
    return next(c for c in score.components if c.name == name)


def test_a_project_with_nothing_wrong_scores_100_and_says_so() -> None:
    score = score_health(healthy())
    assert score.score == pytest.approx(100.0)
    assert score.top is None and score.top_reason() == "nothing takes points off"


def test_contributions_add_up_to_the_points_lost_and_the_biggest_is_the_top_reason() -> None:
    score = score_health(healthy(probability_on_time=0.4, blocked_open=20, unstaffed_ready=5))

    lost = sum(c.contribution for c in score.components)
    assert score.score == pytest.approx(100.0 - lost)
    # schedule: 0.35 x 60 = 21 points; blocked 50 % of open: 0.15 x 80 = 12; staffing half: 0.10 x 50 = 5
    assert component(score, "schedule").contribution == pytest.approx(21.0)
    assert component(score, "blocked_ratio").contribution == pytest.approx(12.0)
    assert component(score, "staffing_gaps").contribution == pytest.approx(5.0)
    assert score.top is not None and score.top.name == "schedule"
    assert score.top_reason().startswith("schedule (-21)") and "40% odds" in score.top_reason()


def test_components_that_do_not_apply_are_left_out_and_the_weights_rescaled() -> None:
    score = score_health(healthy(target_date=None, releases=None, probability_on_time=None, done_prior=2))

    for name in ("schedule", "release_failures", "throughput_trend"):
        part = component(score, name)
        assert part.score is None and part.share == 0 and part.contribution == 0
    assert "no target date" in component(score, "schedule").explanation
    assert "projectApps" in component(score, "release_failures").explanation
    assert "5 needed" in component(score, "throughput_trend").explanation
    applying = [c for c in score.components if c.score is not None]
    assert sum(c.share for c in applying) == pytest.approx(1.0)
    # blocked is now 0.15 / (0.15 + 0.15 + 0.10) of the weight
    assert component(score, "blocked_ratio").share == pytest.approx(0.15 / 0.40)


def test_throughput_halving_scores_zero_and_steady_scores_full() -> None:
    halved = score_health(healthy(done_recent=5, done_prior=20))  # 5/14 vs 20/28: ratio 0.5
    steady = score_health(healthy(done_recent=10, done_prior=20))
    assert component(halved, "throughput_trend").score == pytest.approx(0.0)
    assert component(steady, "throughput_trend").score == pytest.approx(100.0)


def test_scope_change_without_pces_is_net_growth_of_open_work() -> None:
    steady = component(score_health(healthy(scope_added=30, scope_done=28)), "scope_change")
    creeping = component(score_health(healthy(scope_added=30, scope_done=6)), "scope_change")  # +60 %
    new_plan = component(score_health(healthy(scope_added=30, open_at_window_start=2)), "scope_change")
    assert steady.score == pytest.approx(100.0) and "PCES not running" in steady.explanation
    assert creeping.score == pytest.approx(0.0) and creeping.measure.startswith("+60%")
    assert new_plan.score is None and "new plan" in new_plan.explanation


def _changes(*rows: tuple[str, str, float, float | None]) -> list[ScopeChange]:
    return [ScopeChange(requirement=r, version=2, status=st, effort_days=e, p85_shift_days=sh) for r, st, e, sh in rows]


def test_scope_change_with_pces_weighs_the_effort_and_the_date_move_of_changes_in_the_plan() -> None:
    as_of = date(2026, 12, 1)
    quiet = component(score_health(healthy(scope_changes=[], open_work_days=40)), "scope_change")
    # +6 d on 40 d of open work is 15 %: a tenth of the way down the ramp from 10 % to 60 %.
    effort = _changes(("REQ-1", "accepted", 6.0, 0.0))
    grown = component(score_health(healthy(scope_changes=effort, open_work_days=40, as_of=as_of)), "scope_change")
    # P85 +20 d with 40 d left to the target is 50 % of the runway: worse than the effort, so it decides.
    late = _changes(("REQ-1", "approved", 6.0, 20.0), ("REQ-4", "notified", 1.0, 0.0))
    moved = component(
        score_health(healthy(scope_changes=late, open_work_days=40, target_date=date(2027, 1, 10), as_of=as_of)),
        "scope_change",
    )
    held = _changes(("REQ-2", "pending_approval", 12.0, 9.0), ("REQ-3", "rejected", 30.0, 15.0))
    waiting = component(score_health(healthy(scope_changes=held, open_work_days=40)), "scope_change")

    assert quiet.score == pytest.approx(100.0) and "no requirement change entered the plan" in quiet.explanation
    assert grown.score == pytest.approx(90.0) and "REQ-1 v2 +6.0 d" in grown.explanation
    assert "15% of the 40 d of open work" in grown.explanation
    assert moved.score == pytest.approx(20.0) and "P85 moved +20 d, 50% of the 40 d left" in moved.explanation
    assert moved.explanation.index("REQ-1") < moved.explanation.index("REQ-4")  # the largest first
    # Pending and rejected changes are not in the plan: named, not scored.
    assert waiting.score == pytest.approx(100.0) and "waiting for approval" in waiting.explanation
    assert "REQ-2 v2 +12.0 d" in waiting.explanation and "REQ-3" not in waiting.explanation


def test_weights_are_configurable_and_bad_ones_are_named() -> None:
    only_schedule = score_health(healthy(probability_on_time=0.5, blocked_open=40), {"schedule": 1.0})
    assert only_schedule.score == pytest.approx(50.0)
    assert "weight 0" in component(only_schedule, "blocked_ratio").explanation
    with pytest.raises(ValueError, match="unknown health component"):
        resolve_weights({"vibes": 1.0})
    with pytest.raises(ValueError, match="finite and >= 0"):
        resolve_weights({"schedule": -1.0})
    with pytest.raises(ValueError, match="at least one"):
        resolve_weights({"schedule": 0.0})
    assert resolve_weights(None) == DEFAULT_WEIGHTS


def test_portfolio_weights_projects_by_open_work() -> None:
    big = score_health(healthy(project="big", open_tasks=90, probability_on_time=0.0))
    small = score_health(healthy(project="small", open_tasks=10))

    portfolio = portfolio_health([big, small])

    assert portfolio.score == pytest.approx((90 * big.score + 10 * small.score) / 100)
    assert portfolio.open_tasks == 100
    schedule = component(portfolio, "schedule")
    assert schedule.contribution == pytest.approx(0.9 * component(big, "schedule").contribution)
    assert "worst in Shop" in schedule.explanation or "worst in big" in schedule.explanation


def test_empty_portfolio_is_healthy_with_no_components() -> None:
    portfolio = portfolio_health([])
    assert portfolio.score == 100.0 and portfolio.components == [] and portfolio.open_tasks == 0


def test_task_signals_count_open_added_done_and_blocked_work() -> None:
    def task(key: str, status: str, created_days: int, done_days: int | None = None) -> TaskRecord:
        done = NOW - timedelta(days=done_days) if done_days is not None else None
        return TaskRecord(
            key=key,
            project="shop" if key.startswith("shop") else "pay",
            status=status,  # type: ignore[arg-type]
            created_at=NOW - timedelta(days=created_days),
            started_at=done - timedelta(days=1) if done else None,
            done_at=done,
            updated_at=done or NOW,
        )

    tasks = [
        task("shop#1", "done", 60, 3),  # recent
        task("shop#2", "done", 60, 20),  # prior window
        task("shop#3", "todo", 10),  # added lately, waits on pay#1 (open)
        task("shop#4", "todo", 50),  # waits on shop#1 (done): not blocked
        task("shop#5", "in_progress", 5),  # waits on an unknown task: not counted as blocked
        task("pay#1", "todo", 50),
    ]
    deps = [
        DependencyRecord(task="shop#3", depends_on="pay#1"),
        DependencyRecord(task="shop#4", depends_on="shop#1"),
        DependencyRecord(task="shop#5", depends_on="jira:GONE-1"),
    ]

    assert task_signals("shop", tasks, deps, now=NOW) == {
        "open_tasks": 3,
        "open_work_days": 3.0,  # no estimates: a day each
        "scope_added": 2,
        "scope_done": 2,
        "open_at_window_start": 3,
        "done_recent": 1,
        "done_prior": 1,
        "blocked_open": 1,
    }
    assert task_signals("nobody", tasks, deps, now=NOW)["open_tasks"] == 0


def test_degraded_and_recovered_fire_on_the_crossing_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import framework2.flows.portfolio as flow

    sent: list[tuple[str, str]] = []
    monkeypatch.setattr(flow, "emit_about_project", lambda _s, event, project, _n, _p: sent.append((event, project)))
    sick = score_health(healthy(project="a", probability_on_time=0.2))
    well = score_health(healthy(project="b"))

    flow.announce_crossings([sick, well], {}, 95)  # first sight: only the sick one
    flow.announce_crossings([sick, well], {"a": sick.score, "b": well.score}, 95)  # no change: silence
    flow.announce_crossings([well.model_copy(update={"project": "a"})], {"a": sick.score}, 95)  # a recovers

    assert sent == [("health.degraded", "a"), ("health.recovered", "a")]
