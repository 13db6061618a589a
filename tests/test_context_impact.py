"""PCES change impact: traceability reach, effort delta and band, schedule shift under common random numbers,
risk levels, owners, and the approval policy."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from framework2.tasks.context.impact import (
    HIGH_COMPONENTS,
    HIGH_P85_SHIFT_DAYS,
    MEDIUM_COMPONENTS,
    MEDIUM_P85_SHIFT_DAYS,
    ChangedRequirement,
    Component,
    ImpactPolicy,
    ImpactReport,
    assess_impact,
    assess_risk,
    build_traceability,
    decide,
)
from framework2.tasks.planning.durations import fit_duration_model
from framework2.tasks.planning.records import DependencyRecord, PersonRecord, TaskRecord
from framework2.tasks.planning.synthetic import synthetic_task_history

NOW = datetime(2024, 6, 3, 9, tzinfo=UTC)  # a Monday
MODEL = fit_duration_model([])  # fallback: estimates x0.7-x2 (P10-P90)
TEAM = ["ana", "ben", "chen"]
PEOPLE = [PersonRecord(handle=h) for h in TEAM]
COMPONENTS = [
    Component(name="checkout", owner="olga", services=["web"]),
    Component(name="payments", owner="pavel", services=["api", "billing"]),
]
RELEASES = {"web": ["rel-web-7"], "api": ["rel-api-3", "rel-api-4"]}


def _task(key: str, *, status: str = "todo", estimate: float | None = 2.0, assignee: str | None = None) -> TaskRecord:
    # Done: Monday 09:00 to Tuesday 09:00 a week ago, exactly 1 working day. Running: since Friday 09:00.
    started = {"done": NOW - timedelta(days=7), "in_progress": NOW - timedelta(days=3)}.get(status)
    return TaskRecord(
        key=key,
        project="shop",
        status=status,
        estimate_days=estimate,
        assignee=assignee,
        created_at=NOW - timedelta(days=10),
        started_at=started,
        done_at=NOW - timedelta(days=6) if status == "done" else None,
        updated_at=NOW,
    )


def _tasks() -> list[TaskRecord]:
    """Six open tasks of 2 days among three people, one running, and one done task of R1."""
    open_ = [_task(f"shop#{i}", assignee=TEAM[i % 3]) for i in range(1, 6)]
    return [*open_, _task("shop#6", status="in_progress", assignee="ana"), _task("shop#9", status="done")]


def _trace(**extra):
    requirements = [("R1", ["shop#1", "shop#2", "shop#9"], ["checkout"]), ("R2", ["shop#3"], [])]
    return build_traceability(requirements, COMPONENTS, RELEASES, {"shop#2": ["payments"]}, **extra)


def _change(**fields) -> ChangedRequirement:
    base = {"id": "R1", "project": "shop", "owner": "rita", "tasks": ["shop#1", "shop#2", "shop#9"]}
    base["tasks_before"] = base["tasks"]
    base["components"] = ["checkout"]
    return ChangedRequirement(**(base | fields))


def _assess(change: ChangedRequirement, *, trace=None, tasks=None, deps=(), target=None, trials=1000, model=MODEL):
    return assess_impact(
        change,
        trace or _trace(),
        _tasks() if tasks is None else tasks,
        list(deps),
        PEOPLE,
        model,
        now=NOW,
        target_date=target,
        trials=trials,
        seed=3,
    )


# --- Traceability ----------------------------------------------------------------------------------------------


def test_traceability_reaches_services_and_releases_through_components_and_task_components() -> None:
    reach = _trace().reach(requirement="R1")

    assert reach.tasks == ["shop#1", "shop#2", "shop#9"]
    assert reach.components == ["checkout", "payments"]  # payments only through shop#2's task components
    assert reach.services == ["api", "billing", "web"]
    assert reach.releases == ["rel-api-3", "rel-api-4", "rel-web-7"]
    assert reach.owners == ["olga", "pavel"]
    assert _trace().graph.nodes[("service", "web")]["kind"] == "service"
    assert _trace().reach(requirement="R2").components == []  # R2's task touches no component


def test_unknown_components_are_kept_as_marked_nodes_listed_and_raise_the_risk() -> None:
    trace = build_traceability([("R1", ["shop#1"], ["ghost"])], COMPONENTS, {}, {"shop#1": ["phantom", "checkout"]})

    assert trace.unknown == ["component:ghost", "component:phantom"]
    assert trace.graph.nodes[("component", "ghost")]["unknown"] is True
    assert trace.graph.nodes[("component", "checkout")]["unknown"] is False
    report = _assess(_change(tasks=["shop#1"], tasks_before=["shop#1"], components=["ghost"]), trace=trace)
    assert report.components == ["checkout", "ghost", "phantom"]
    assert report.unknown == ["component:ghost", "component:phantom"]
    assert report.risk == "medium"
    assert any("unknown references" in r and "component:ghost" in r for r in report.risk_reasons)


# --- Effort ----------------------------------------------------------------------------------------------------


def test_effort_delta_is_added_minus_removed_scope_with_a_band_that_contains_the_p50() -> None:
    new = [_task("shop#n1", estimate=3.0), _task("shop#n2", estimate=3.0)]
    change = _change(tasks=["shop#2", "shop#9", "shop#n1", "shop#n2"], new_tasks=new, criteria_added=0)

    report = _assess(change)

    assert report.added_tasks == ["shop#n1", "shop#n2"]
    assert report.removed_tasks == ["shop#1"]
    # Medians x1.18 of the estimates: +7.1 d added, -2.4 d removed; the median of the sum sits a bit above.
    assert 3.5 < report.effort_delta_days < 6.5
    low, high = report.effort_band
    assert low < report.effort_delta_days < high
    assert report.rework_days == 0.0


def test_removing_scope_lowers_effort_but_keeps_tasks_another_requirement_still_needs() -> None:
    trace = build_traceability(
        [("R1", ["shop#1", "shop#3", "shop#6"], []), ("R2", ["shop#3"], [])], COMPONENTS, RELEASES
    )
    change = _change(tasks=[], tasks_before=["shop#1", "shop#3", "shop#6"], components=[], kind="removed")

    report = _assess(change, trace=trace)

    assert report.removed_tasks == ["shop#1", "shop#6"]  # shop#3 is still R2's
    assert report.effort_delta_days < 0
    assert report.effort_band[0] < report.effort_delta_days < report.effort_band[1] <= 0
    assert report.p85_shift_days is not None and report.p85_shift_days <= 0


def test_rework_is_a_fifth_of_a_done_tasks_duration_per_changed_criterion_capped_at_the_whole_task() -> None:
    done = _task("shop#9", status="done")  # took exactly 1 working day
    assert _assess(_change(criteria_added=1)).rework_days == pytest.approx(0.2 * 1.0)
    assert _assess(_change(criteria_added=1, criteria_removed=1)).rework_days == pytest.approx(0.4)
    assert _assess(_change(body_lines_changed=4)).rework_days == pytest.approx(0.1)  # wording only: half a criterion
    assert _assess(_change(criteria_added=9)).rework_days == pytest.approx(1.0)  # at most the whole task
    assert done.key in _assess(_change(criteria_added=1)).tasks


# --- Schedule --------------------------------------------------------------------------------------------------


def test_a_change_without_scope_change_gives_exactly_zero_shift() -> None:
    report = _assess(_change(criteria_added=0, body_lines_changed=3), target=date(2024, 6, 10))

    assert report.schedule_before is not None
    assert report.schedule_before == report.schedule_after
    assert report.p50_shift_days == 0.0 and report.p85_shift_days == 0.0


def test_adding_a_chain_of_tasks_moves_p50_p85_later_and_the_shift_is_the_change_not_noise() -> None:
    new = [_task(f"shop#c{i}", estimate=3.0) for i in range(1, 4)]
    chain = [
        DependencyRecord(task="shop#c2", depends_on="shop#c1"),
        DependencyRecord(task="shop#c3", depends_on="shop#c2"),
    ]
    target = date(2024, 6, 10)
    small = _assess(_change(body_lines_changed=1), target=target)

    report = _assess(_change(new_tasks=new, tasks=["shop#1", "shop#2", "shop#c1"]), deps=chain, target=target)

    assert report.schedule_before == small.schedule_before  # same draws before: the baseline is shared
    assert report.p50_shift_days is not None and report.p50_shift_days >= 5  # a chain of ~10.6 working days
    assert report.p85_shift_days is not None and report.p85_shift_days >= 5
    assert report.schedule_after["probability_on_time"] < report.schedule_before["probability_on_time"]
    assert "P85 2024-" in report.explanation and "odds of the target 2024-06-10" in report.explanation


def test_a_requirement_without_a_project_has_no_schedule_and_the_explanation_says_why() -> None:
    report = _assess(_change(project=None, new_tasks=[_task("shop#n1")]))

    assert report.schedule_before is None and report.schedule_after is None
    assert report.p50_shift_days is None and report.p85_shift_days is None
    assert "no project" in report.schedule_note
    assert "No schedule impact: the requirement has no project" in report.explanation
    assert report.effort_delta_days > 0  # effort is still costed


def test_a_project_without_open_work_has_no_schedule_and_reopening_it_starts_from_today() -> None:
    finished = [_task("shop#9", status="done")]
    idle = _assess(_change(tasks=["shop#9"], tasks_before=["shop#9"], criteria_added=1), tasks=finished)
    assert idle.schedule_before is None and "shop has no open work before or after the change" in idle.explanation

    reopened = _assess(_change(new_tasks=[_task("shop#n1", estimate=3.0)]), tasks=finished)
    assert reopened.schedule_before == {"p50": "2024-06-03", "p85": "2024-06-03", "probability_on_time": None}
    assert reopened.p85_shift_days is not None and reopened.p85_shift_days > 0


def test_a_trained_duration_model_works_the_same_way() -> None:
    model = fit_duration_model(synthetic_task_history(60, seed=1))
    assert model.mode == "model"
    new = [_task(f"shop#c{i}", estimate=3.0) for i in range(1, 3)]

    same = _assess(_change(body_lines_changed=1), model=model, trials=500)
    more = _assess(_change(new_tasks=new), model=model, trials=500)

    assert same.p85_shift_days == 0.0
    assert more.effort_band[0] < more.effort_delta_days < more.effort_band[1]
    assert more.p50_shift_days is not None and more.p50_shift_days >= 0


# --- Owners and risk -------------------------------------------------------------------------------------------


def test_owners_are_deduplicated_from_the_requirement_owner_assignees_and_component_owners() -> None:
    components = [Component(name="checkout", owner="ben", services=["web"]), *COMPONENTS[1:]]
    trace = build_traceability([("R1", ["shop#1", "shop#2"], ["checkout"])], components, {}, {"shop#2": ["payments"]})
    new = [_task("shop#n1", assignee="pavel")]

    report = _assess(_change(owner="ana", tasks=["shop#1", "shop#2"], new_tasks=new), trace=trace)

    # ana owns R1; ben has shop#1 and owns checkout; chen has shop#2; pavel owns payments and has shop#n1.
    assert report.owners == ["ana", "ben", "chen", "pavel"]


def test_a_release_in_flight_on_a_touched_service_makes_the_risk_high() -> None:
    report = _assess(_change(body_lines_changed=1), trace=_trace(in_flight={"rel-api-4"}))

    assert report.in_flight == ["rel-api-4"]
    assert report.risk == "high"
    assert "release in flight on a touched service: rel-api-4" in report.risk_reasons


def test_risk_levels_at_their_boundaries() -> None:
    def level(shift: float | None = 0.0, components: int = 1, **kw) -> str:
        return assess_risk(p85_shift_days=shift, components=components, **kw)[0]

    assert level() == "low" and level(None) == "low"
    assert level(MEDIUM_P85_SHIFT_DAYS) == "low" and level(MEDIUM_P85_SHIFT_DAYS + 1) == "medium"
    assert level(HIGH_P85_SHIFT_DAYS) == "medium" and level(HIGH_P85_SHIFT_DAYS + 1) == "high"
    assert level(components=MEDIUM_COMPONENTS - 1) == "low" and level(components=MEDIUM_COMPONENTS) == "medium"
    assert level(components=HIGH_COMPONENTS) == "medium" and level(components=HIGH_COMPONENTS + 1) == "high"
    assert level(in_flight=["rel-1"]) == "high"
    assert level(unknown=["component:ghost"]) == "medium"
    risk, reasons = assess_risk(p85_shift_days=8, components=6)
    assert risk == "high" and reasons == ["P85 moves +8 d > 7 d", "6 components > 5"]


# --- Policy ----------------------------------------------------------------------------------------------------

TARGET = date(2025, 3, 1)


def _report(effort: float = 1.0, shift: float | None = 0.0, risk: str = "low", p85_before: str = "2025-02-20"):
    before = after = None
    if shift is not None:
        moved = (date.fromisoformat(p85_before) + timedelta(days=shift)).isoformat()
        before = {"p50": p85_before, "p85": p85_before, "probability_on_time": 0.9}
        after = {"p50": moved, "p85": moved, "probability_on_time": 0.8}
    return ImpactReport(
        requirement="R1",
        effort_delta_days=effort,
        effort_band=(effort - 1, effort + 1),
        schedule_before=before,
        schedule_after=after,
        p50_shift_days=shift,
        p85_shift_days=shift,
        schedule_note="" if shift is not None else "the requirement has no project, so there is no plan to forecast",
        risk=risk,
        explanation="",
    )


def test_each_approval_rule_fires_alone_with_its_exact_reason() -> None:
    policy = ImpactPolicy()
    cases = [
        (_report(effort=12.5), "effort +12.5 d ≥ 10 d"),
        (_report(shift=5), "P85 shift +5 d ≥ 5 d"),
        (_report(risk="high"), "risk high (approval required at high or above)"),
        (_report(shift=4, p85_before="2025-02-28"), "P85 moves past the target 2025-03-01"),
    ]
    for report, reason in cases:
        decision = decide(report, policy, target_date=TARGET)
        assert decision.action == "require_approval" and decision.reasons == [reason]
    medium = decide(_report(risk="medium"), ImpactPolicy(approval_on_risk="medium"), target_date=None)
    assert medium.reasons == ["risk medium (approval required at medium or above)"]
    never = decide(_report(risk="high"), ImpactPolicy(approval_on_risk="never"), target_date=None)
    assert never.action == "notify"


def test_a_plan_already_past_the_target_is_not_this_changes_doing() -> None:
    late = _report(shift=2, p85_before="2025-03-05")

    assert decide(late, ImpactPolicy(), target_date=TARGET).action == "notify"
    assert decide(late, ImpactPolicy(approval_if_target_missed=False), target_date=TARGET).action == "notify"


def test_auto_accept_only_when_every_bound_holds_otherwise_notify_with_the_failed_bound() -> None:
    policy = ImpactPolicy()
    accepted = decide(_report(effort=2.0, shift=0), policy, target_date=TARGET)
    assert accepted.action == "auto_accept"
    assert accepted.reasons == [
        "effort +2.0 d ≤ 2 d",
        "P85 shift +0 d ≤ 0 d",
        "risk low within the auto-accept level low",
    ]

    cases = [
        (_report(effort=2.5), ["effort +2.5 d > 2 d"]),
        (_report(shift=1), ["P85 shift +1 d > 0 d"]),
        (_report(risk="medium"), ["risk medium above the auto-accept level low"]),
        (_report(shift=None), ["P85 shift unknown (the requirement has no project, so there is no plan to forecast)"]),
    ]
    for report, reasons in cases:
        decision = decide(report, policy, target_date=TARGET)
        assert decision.action == "notify" and decision.reasons == reasons
    assert decide(_report(effort=-3.0), policy, target_date=None).action == "auto_accept"  # descoping is cheap


def test_a_link_to_a_task_ppms_does_not_know_is_reported_not_counted() -> None:
    report = _assess(_change(tasks=["shop#1", "shop#2", "shop#9", "#999"]))

    assert "#999" not in report.tasks and report.tasks == ["shop#1", "shop#2", "shop#9"]
    assert "task:#999" in report.unknown and report.risk in ("medium", "high")
    assert "touches 3 tasks" in report.explanation
    assert "links 1 task PPMS does not know (#999): not counted" in report.explanation
