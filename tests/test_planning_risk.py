"""PPMS risk factors: what each factor measures, names and weighs, and how they add up to the score."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from framework2.tasks.planning.durations import fit_duration_model
from framework2.tasks.planning.forecast import forecast_project
from framework2.tasks.planning.montecarlo import CriticalTask, Forecast, unavailable_forecast
from framework2.tasks.planning.records import DependencyRecord, PersonRecord, TaskRecord
from framework2.tasks.planning.risk import DEFAULT_WEIGHTS, RiskReport, resolve_weights, risk_factors

NOW = datetime(2024, 6, 3, 12, tzinfo=UTC)  # a Monday
LONG_AGO = NOW - timedelta(days=90)
MODEL = fit_duration_model([])  # fallback: no history


def task(
    key: str,
    *,
    project: str = "shop",
    status: str = "todo",
    estimate: float | None = 1.0,
    assignee: str | None = None,
    created: datetime = LONG_AGO,
    done: datetime | None = None,
) -> TaskRecord:
    return TaskRecord(
        key=key,
        project=project,
        status=status,  # type: ignore[arg-type]
        estimate_days=estimate,
        assignee=assignee,
        created_at=created,
        started_at=done - timedelta(days=1) if done else None,
        done_at=done,
        updated_at=done or created,
    )


def forecast(p50: float = 10.0, p95: float = 11.0, critical: dict[str, float] | None = None) -> Forecast:
    return Forecast(
        method="dependency-graph",
        trials=1000,
        start=NOW.date(),
        p50_days=p50,
        p85_days=(p50 + p95) / 2,
        p95_days=p95,
        criticality=[CriticalTask(task=k, index=v) for k, v in (critical or {}).items()],
    )


def report(tasks, deps=(), fc: Forecast | None = None, **kwargs) -> RiskReport:
    return risk_factors("shop", tasks, list(deps), fc or forecast(), MODEL, now=NOW, **kwargs)


def test_one_person_holding_most_work_makes_key_person_the_top_factor_and_names_them():
    tasks = [
        task("shop#1", estimate=8, assignee="ana"),
        task("shop#2", estimate=6, assignee="ana"),
        task("shop#3", estimate=3, assignee="ben"),
        task("shop#4", estimate=3),
    ]
    result = report(tasks)
    key = result.factor("key_person")
    assert key.value == pytest.approx(0.7)
    assert key.severity == 1.0
    assert key.subjects == ["ana"]
    assert "70 % of the remaining work is assigned to ana (14 of 20 days)" in key.explanation
    assert "3 days are unassigned" in key.explanation
    assert result.top[0].name == "key_person"
    assert "ana" in result.summary() and "\n" not in result.summary()


def test_work_spread_over_several_people_is_no_key_person_risk():
    tasks = [task(f"shop#{i}", estimate=2, assignee=who) for i, who in enumerate(["ana", "ben", "chen", "dara"])]
    key = report(tasks).factor("key_person")
    assert key.value == pytest.approx(0.25)
    assert key.severity == 0.0


def test_in_progress_work_counts_only_what_is_left_of_its_estimate():
    started = NOW - timedelta(days=3)  # Friday 12:00 -> Monday 12:00: 1 working day spent
    doing = task("shop#1", status="in_progress", estimate=5, assignee="ana").model_copy(update={"started_at": started})
    key = report([doing, task("shop#2", estimate=4, assignee="ben")]).factor("key_person")
    assert "50 % of the remaining work is assigned to ana (4 of 8 days)" in key.explanation


def test_external_dependency_is_listed_with_both_tasks_and_the_blockers_status():
    tasks = [
        task("shop#30"),
        task("shop#31"),
        task("shop#32"),
        task("shop#33"),
        task("payments#12", project="payments", status="in_progress"),
        task("payments#13", project="payments", status="done", done=NOW - timedelta(days=40)),
        task("shop#1", status="done", done=NOW - timedelta(days=40)),
    ]
    deps = [
        DependencyRecord(task="shop#30", depends_on="payments#12"),
        DependencyRecord(task="shop#31", depends_on="payments#13"),  # done: no longer blocks
        DependencyRecord(task="shop#32", depends_on="jira:LEGACY-404"),  # unknown: ignored
        DependencyRecord(task="shop#33", depends_on="shop#1"),  # same project
    ]
    ext = report(tasks, deps).factor("external_dependencies")
    assert ext.value == pytest.approx(1 / 4)
    assert ext.severity == 1.0
    assert "1 open task waits on tasks in other projects" in ext.explanation
    assert "shop#30 waits on payments#12 (in progress)" in ext.explanation
    assert ext.subjects == ["shop#30", "payments#12"]


def test_an_external_wait_on_the_critical_path_is_at_least_half_severe():
    tasks = [task(f"shop#{i}") for i in range(1, 21)] + [task("payments#12", project="payments")]
    deps = [DependencyRecord(task="shop#20", depends_on="payments#12")]
    calm = report(tasks, deps).factor("external_dependencies")
    critical = report(tasks, deps, forecast(critical={"payments#12": 0.9})).factor("external_dependencies")
    assert calm.severity == pytest.approx(0.05 / 0.25)
    assert critical.severity == 0.5
    assert "critical path" in critical.explanation and "shop#20" in critical.explanation


def test_scope_growing_faster_than_it_is_completed_is_severe():
    recent = NOW - timedelta(days=5)
    tasks = [task(f"shop#{i}", created=recent) for i in range(6)]
    tasks += [task(f"shop#d{i}", status="done", done=recent) for i in range(2)]
    growth = report(tasks).factor("scope_growth")
    assert growth.value == pytest.approx(3.0)
    assert growth.severity == 1.0
    assert "6 tasks were created and 2 done in the last 28 days" in growth.explanation
    assert "grew by 4" in growth.explanation


def test_a_shrinking_backlog_is_no_scope_growth_risk_and_old_work_is_outside_the_window():
    recent, old = NOW - timedelta(days=5), NOW - timedelta(days=40)
    tasks = [task("shop#1", created=recent), task("shop#2", created=old), task("shop#x", status="done", done=old)]
    tasks += [task(f"shop#d{i}", status="done", done=recent) for i in range(3)]
    growth = report(tasks).factor("scope_growth")
    assert growth.value == pytest.approx(1 / 3)
    assert growth.severity == 0.0
    assert "shrank by 2" in growth.explanation


def test_wide_p95_over_p50_makes_estimate_uncertainty_high():
    tasks = [task("shop#1"), task("shop#2")]
    wide = report(tasks, fc=forecast(p50=10, p95=25)).factor("estimate_uncertainty")
    narrow = report(tasks, fc=forecast(p50=10, p95=11)).factor("estimate_uncertainty")
    assert wide.value == pytest.approx(1.5)
    assert wide.severity == 1.0
    assert "P95 is 25 working days against a P50 of 10 (+150 %)" in wide.explanation
    assert narrow.severity == 0.0


def test_unestimated_open_tasks_make_uncertainty_high_even_without_a_forecast():
    tasks = [task("shop#1"), task("shop#2", estimate=None)]
    none = unavailable_forecast("throughput", NOW.date(), "too little history")
    factor = report(tasks, fc=none).factor("estimate_uncertainty")
    assert factor.value is None
    assert factor.severity == 1.0  # 50 % unestimated
    assert "1 of 2 open tasks (50 %) has no estimate (shop#2)" in factor.explanation
    assert "too little history" in factor.explanation


def test_a_single_persons_chain_puts_every_task_on_the_critical_path():
    tasks = [task(f"shop#{i}", estimate=2, assignee="ana") for i in range(1, 4)]
    deps = [DependencyRecord(task="shop#2", depends_on="shop#1"), DependencyRecord(task="shop#3", depends_on="shop#2")]
    people = [PersonRecord(handle="ana")]
    fc, _, _ = forecast_project("shop", tasks, deps, people, MODEL, now=NOW, trials=200, rng=1)
    result = risk_factors("shop", tasks, deps, fc, MODEL, now=NOW)
    crit = result.factor("critical_path")
    assert crit.value == 1.0 and crit.severity == 1.0
    assert sorted(crit.subjects) == ["shop#1", "shop#2", "shop#3"]
    assert "3 of 3 open tasks (100 %)" in crit.explanation
    assert "3 near-certainly critical tasks" in result.factor("key_person").explanation


def test_critical_path_is_not_measured_without_a_dependency_graph_forecast():
    none = unavailable_forecast("dependency-graph", NOW.date(), "no estimates")
    crit = report([task("shop#1")], fc=none).factor("critical_path")
    assert crit.value is None and crit.severity == 0.0
    assert "not measured" in crit.explanation and "no estimates" in crit.explanation


def test_contributions_are_weight_times_severity_and_sum_to_the_total():
    recent = NOW - timedelta(days=3)
    tasks = [task("shop#1", estimate=5, assignee="ana", created=recent), task("shop#2", estimate=None, created=recent)]
    tasks += [task("payments#1", project="payments")]
    deps = [DependencyRecord(task="shop#2", depends_on="payments#1")]
    result = report(tasks, deps, forecast(p50=10, p95=16, critical={"shop#1": 0.9}))
    assert [f.name for f in result.factors] == list(DEFAULT_WEIGHTS)
    assert sum(f.weight for f in result.factors) == pytest.approx(1.0)
    for factor in result.factors:
        assert factor.contribution == pytest.approx(factor.weight * factor.severity)
    assert result.total == pytest.approx(100 * sum(f.contribution for f in result.factors))
    assert [f.contribution for f in result.top] == sorted((f.contribution for f in result.factors), reverse=True)
    assert result.level == ("low" if result.total < 30 else "medium" if result.total < 60 else "high")
    assert result.level == "high"
    assert "top" in result.model_dump()


def test_a_quiet_project_scores_low():
    result = report([task(f"shop#{i}", assignee=f"p{i}") for i in range(5)])
    assert result.total == 0.0 and result.level == "low"
    assert result.summary() == "shop: risk 0/100 (low); no factor contributes"


def test_custom_weights_are_respected_and_scaled_to_sum_one():
    tasks = [task("shop#1", estimate=4, assignee="ana"), task("shop#2", estimate=None)]
    result = report(tasks, fc=forecast(p50=10, p95=25), weights={"key_person": 3, "estimate_uncertainty": 1})
    weights = {f.name: f.weight for f in result.factors}
    assert weights == {
        "critical_path": 0.0,
        "key_person": 0.75,
        "scope_growth": 0.0,
        "estimate_uncertainty": 0.25,
        "external_dependencies": 0.0,
    }
    key, unc = result.factor("key_person"), result.factor("estimate_uncertainty")
    assert result.total == pytest.approx(75 * key.severity + 25 * unc.severity)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"key_person": -0.1, "scope_growth": 1}, "must be finite numbers >= 0"),
        ({"key_person": float("nan")}, "must be finite numbers >= 0"),
        ({"key_person": 0, "scope_growth": 0}, "all zero"),
        ({}, "all zero"),
        ({"bus_factor": 1}, "unknown risk factor"),
    ],
)
def test_invalid_weights_raise_a_clear_value_error(weights, message):
    with pytest.raises(ValueError, match=message):
        resolve_weights(weights)
    with pytest.raises(ValueError, match=message):
        report([task("shop#1")], weights=weights)
