"""Portfolio allocation: demand by skill and week, capacity and skills respected, priority, caps and moves."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from framework2.errors import DataError
from framework2.tasks.planning.records import DependencyRecord, PersonRecord, TaskRecord
from framework2.tasks.portfolio.allocation import (
    DEMAND_COLUMNS,
    allocate,
    best_single_moves,
    current_staffing,
    skill_demand,
    what_if_move,
)

MONDAY = date(2024, 1, 1)
WEEK = [MONDAY + timedelta(weeks=k) for k in range(6)]
CREATED = datetime(2023, 12, 1, tzinfo=UTC)


def task(key: str, project: str, skills: list[str] | None = None, **fields) -> TaskRecord:
    return TaskRecord(
        key=key, project=project, required_skills=skills or [], created_at=CREATED, updated_at=CREATED, **fields
    )


def person(handle: str, skills: list[str], weekly: float = 5.0, **fields) -> PersonRecord:
    return PersonRecord(handle=handle, skills=skills, weekly_capacity_days=weekly, **fields)


def demand(*rows: tuple) -> pd.DataFrame:
    """Rows of (project, skill, week index, days, priority)."""
    return pd.DataFrame([(p, s, WEEK[w], d, pr) for p, s, w, d, pr in rows], columns=DEMAND_COLUMNS)


def covered(allocation, project: str, skill: str, week: int) -> float:
    cov = allocation.coverage
    row = cov[(cov["project"] == project) & (cov["skill"] == skill) & (cov["week"] == WEEK[week])]
    return float(row["covered"].sum())


# ---------------------------------------------------------------------------------------------------- demand


def test_dependency_order_pushes_demand_into_later_weeks():
    tasks = [task("A-1", "A", ["python"]), task("A-2", "A", ["python"]), task("A-3", "A", ["python"])]
    chain = [DependencyRecord(task="A-2", depends_on="A-1"), DependencyRecord(task="A-3", depends_on="A-2")]
    days = {"A-1": 5, "A-2": 5, "A-3": 3}

    free = skill_demand(tasks, [], days, {}, start=MONDAY, weeks=3)
    ordered = skill_demand(tasks, chain, days, {}, start=MONDAY, weeks=3)

    assert free[["week", "days"]].values.tolist() == [[WEEK[0], 13.0]]  # all in parallel, as early as possible
    assert ordered[["week", "days"]].values.tolist() == [[WEEK[0], 5.0], [WEEK[1], 5.0], [WEEK[2], 3.0]]
    short = skill_demand(tasks, chain, days, {}, start=MONDAY, weeks=2)
    assert short["days"].sum() == 10.0
    assert short.attrs["beyond_horizon_days"] == 3.0
    assert short.attrs["beyond_horizon_by_project"] == {"A": 3.0}


def test_demand_splits_days_over_skills_and_skips_done_work():
    tasks = [
        task("A-1", "A", ["Python", "k8s"]),  # 4 days: 2 each
        task("A-2", "A", estimate_days=2.0),  # no prediction: its estimate, general work
        task("B-1", "B", ["python"]),  # no prediction, no estimate: the default 3 days
        task("B-2", "B", ["python"], status="done"),
        task("B-3", "B", ["python"]),
    ]
    deps = [DependencyRecord(task="B-3", depends_on="B-2")]  # done blockers do not hold work back
    df = skill_demand(tasks, deps, {"A-1": 4, "B-3": 1}, {"A": 2.5}, start=MONDAY, weeks=2)

    cells = {(r.project, r.skill): (r.days, r.priority) for r in df.itertuples()}
    assert cells == {
        ("A", "general"): (2.0, 2.5),
        ("A", "k8s"): (2.0, 2.5),
        ("A", "python"): (2.0, 2.5),
        ("B", "python"): (4.0, 1.0),
    }
    assert set(df["week"]) == {WEEK[0]}
    assert df.attrs["assumed_days"] == ["A-2", "B-1"]


def test_midweek_start_gives_a_short_first_week():
    wednesday = MONDAY + timedelta(days=2)
    df = skill_demand([task("A-1", "A")], [], {"A-1": 5}, {}, start=wednesday, weeks=2)
    assert df[["week", "days"]].values.tolist() == [[WEEK[0], 3.0], [WEEK[1], 2.0]]

    plan = allocate(df, [person("al", [], weekly=5)], start=wednesday, weeks=2)
    assert plan.people["capacity"].tolist() == [3.0, 5.0]
    assert plan.shortages.empty


# ------------------------------------------------------------------------------------------------ allocation


def test_capacity_and_skills_are_respected():
    people = [
        person("al", ["python", "k8s"], weekly=4),
        person("bo", ["python"], weekly=5, time_off=[(WEEK[1], WEEK[1] + timedelta(days=4))]),  # week 1 off
        person("cy", ["design"], weekly=3, time_off=[(WEEK[0], WEEK[0])]),  # one Monday off
    ]
    rows = []
    for w in range(3):
        rows += [("A", "python", w, 6, 2.0), ("A", "k8s", w, 3, 1.0), ("B", "python", w, 4, 1.0)]
        rows += [("B", "design", w, 5, 1.0), ("B", "general", w, 2, 0.5), ("C", "rust", w, 2, 5.0)]
    plan = allocate(demand(*rows), people, start=MONDAY, weeks=3)

    expected = {("al", 0): 4, ("al", 1): 4, ("al", 2): 4, ("bo", 0): 5, ("bo", 1): 0, ("bo", 2): 5}
    expected |= {("cy", 0): 3 / 5 * 4, ("cy", 1): 3, ("cy", 2): 3}
    for row in plan.people.itertuples():
        assert row.capacity == pytest.approx(expected[(row.person, WEEK.index(row.week))])
        assert row.allocated <= row.capacity + 1e-6
    assert plan.plan[(plan.plan["person"] == "bo") & (plan.plan["week"] == WEEK[1])].empty
    skills = {p.handle: set(p.skills) for p in people}
    for row in plan.plan.itertuples():
        assert set(row.skills) <= skills[row.person] | {"general"}
    assert (plan.coverage["covered"] <= plan.coverage["demand"] + 1e-6).all()
    assert plan.coverage.loc[plan.coverage["skill"] == "rust", "covered"].sum() == 0  # nobody has rust
    assert plan.status == "optimal"


def test_higher_priority_project_gets_the_scarce_skill_first():
    scarce = demand(("low", "rust", 0, 4, 1.0), ("high", "rust", 0, 4, 3.0), ("low", "python", 0, 2, 1.0))
    people = [person("ru", ["rust", "python"], weekly=4), person("py", ["python"], weekly=4)]
    plan = allocate(scarce, people, start=MONDAY, weeks=1)

    assert covered(plan, "high", "rust", 0) == pytest.approx(4)
    assert covered(plan, "low", "rust", 0) == pytest.approx(0)
    # The generalist does the python so the rust specialist is free for rust.
    assert covered(plan, "low", "python", 0) == pytest.approx(2)
    assert set(plan.plan.loc[plan.plan["person"] == "py", "project"]) == {"low"}
    assert plan.objective == pytest.approx(4 * 3 + 2 * 1)


def test_shortages_are_reported_by_skill_and_week_with_projects():
    rows = demand(
        ("A", "k8s", 1, 2, 1.0),
        ("B", "k8s", 1, 3, 1.0),
        ("A", "python", 0, 8, 1.0),
        ("A", "python", 1, 1, 1.0),
    )
    plan = allocate(rows, [person("py", ["python"], weekly=5)], start=MONDAY, weeks=2)

    shortages = plan.shortages.to_dict("records")
    assert shortages == [
        {"skill": "k8s", "week": WEEK[1], "short_days": 5.0, "projects": ["B", "A"]},  # biggest project first
        {"skill": "python", "week": WEEK[0], "short_days": 3.0, "projects": ["A"]},
    ]
    text = " ".join(plan.explanation)
    assert "Short 5 days of k8s in the week of 2024-01-08 (B, A): nobody has k8s" in text
    assert "fully booked" in text


def test_project_cap_per_person_week_holds():
    rows = demand(("A", "general", 0, 1, 3.0), ("B", "general", 0, 1, 2.0), ("C", "general", 0, 1, 1.0))
    rows = pd.concat([rows, demand(("A", "general", 1, 1, 1.0), ("B", "general", 1, 1, 1.0))])
    people = [person("gen", [], weekly=5)]

    capped = allocate(rows, people, start=MONDAY, weeks=2)  # default: at most 2 projects per week
    assert capped.people["projects"].max() <= 2
    assert set(capped.plan.loc[capped.plan["week"] == WEEK[0], "project"]) == {"A", "B"}  # the two that weigh most
    assert capped.coverage.loc[capped.coverage["project"] == "C", "short"].sum() == pytest.approx(1)
    assert "cap of 2 projects" in " ".join(capped.explanation)

    dedicated = allocate(rows, people, start=MONDAY, weeks=2, max_projects_per_person_week=1)
    assert dedicated.people["projects"].max() == 1
    free = allocate(rows, people, start=MONDAY, weeks=2, max_projects_per_person_week=None)
    assert free.people["projects"].tolist() == [3, 2]
    assert free.objective == pytest.approx(3 + 2 + 1 + 1 + 1)


def test_equal_people_share_the_load():
    plan = allocate(
        demand(("A", "python", 0, 4, 1.0)), [person("a", ["python"]), person("b", ["python"])], start=MONDAY
    )
    assert plan.people.loc[plan.people["week"] == WEEK[0], "allocated"].tolist() == pytest.approx([2, 2])


def test_what_if_move_reports_the_exact_gain():
    rows = demand(("A", "python", 0, 1, 1.0), ("B", "python", 0, 5, 2.0), ("B", "python", 1, 2, 2.0))
    people = [person("al", ["python"], weekly=4)]

    move = what_if_move(rows, people, "al", "B", start=MONDAY, weeks=2, staffing={"al": ["A"]})

    assert move["objective_before"] == pytest.approx(1.0)  # al covers A's 1 day
    assert move["objective_after"] == pytest.approx(2 * (4 + 2))  # then 4 + 2 days of B at priority 2
    assert move["gain"] == pytest.approx(11.0)
    assert move["from"] == ["A"]
    assert move["by_project"]["A"] == {
        "covered_before": 1.0,
        "covered_after": 0.0,
        "change_days": -1.0,
        "weighted_change": -1.0,
    }
    assert move["by_project"]["B"]["change_days"] == pytest.approx(6.0)
    assert move["by_project"]["B"]["weighted_change"] == pytest.approx(12.0)
    assert move["gained_days"] == {"B": 6.0} and move["lost_days"] == {"A": 1.0}
    assert move["sentence"] == (
        "Moving al to B only (from A) would raise priority-weighted coverage by 11 (from 1 to 12): "
        "B +6 days; A -1 days."
    )


def test_what_if_move_against_a_free_allocation_can_only_lose():
    rows = demand(("A", "python", 0, 3, 1.0), ("B", "python", 0, 2, 1.0))
    move = what_if_move(rows, [person("al", ["python"])], "al", "A", start=MONDAY, weeks=1)
    assert move["gain"] == pytest.approx(-2.0)
    assert "lower" in move["sentence"]
    assert best_single_moves(rows, [person("al", ["python"])], start=MONDAY, weeks=1) == []


def test_best_single_moves_finds_the_obvious_move():
    rows = demand(
        ("A", "python", 0, 1, 1.0),
        ("A", "k8s", 0, 4, 1.0),
        ("B", "python", 0, 5, 3.0),
    )
    people = [person("al", ["python"], weekly=5), person("bo", ["k8s"], weekly=4), person("cy", ["python"], weekly=1)]
    staffing = current_staffing(
        [
            task("A-1", "A", ["python"], assignee="al"),
            task("A-2", "A", ["k8s"], assignee="bo"),
            task("B-1", "B", ["python"], assignee="cy"),
            task("B-0", "B", ["python"], assignee="al", status="done"),
        ]
    )
    assert staffing == {"al": ["A"], "bo": ["A"], "cy": ["B"]}

    moves = best_single_moves(rows, people, start=MONDAY, weeks=1, staffing=staffing)

    assert [(m["person"], m["to_project"]) for m in moves] == [("al", "B")]  # cy to A or bo anywhere gains nothing
    assert moves[0]["gain"] == pytest.approx(3 * 4 - 1)  # B's 4 uncovered days at 3, minus A's 1 day at 1


def test_empty_portfolio_gives_empty_frames_and_says_so():
    df = skill_demand([], [], {}, {}, start=MONDAY)
    assert df.empty and list(df.columns) == DEMAND_COLUMNS

    plan = allocate(df, [person("al", ["python"], weekly=4)], start=MONDAY, weeks=2)
    assert plan.plan.empty and plan.coverage.empty and plan.shortages.empty
    assert plan.people["capacity"].tolist() == [4.0, 4.0]
    assert plan.objective == 0 and plan.status == "optimal"
    assert plan.explanation[0].startswith("No open demand in the horizon")
    assert best_single_moves(df, [person("al", ["python"])], start=MONDAY) == []


def test_no_people_leaves_all_demand_short():
    rows = demand(("A", "python", 0, 3, 1.0), ("A", "general", 1, 2, 1.0))
    plan = allocate(rows, [], start=MONDAY, weeks=2)
    assert plan.plan.empty and plan.people.empty
    assert plan.coverage[["skill", "short"]].values.tolist() == [["general", 2.0], ["python", 3.0]]
    assert plan.shortages["short_days"].sum() == 5.0
    assert plan.explanation[0] == "No people to allocate: all 5 days of demand are short."


def test_single_project_is_fully_covered_when_capacity_allows():
    tasks = [task("A-1", "A", ["python"]), task("A-2", "A", ["python"])]
    df = skill_demand(tasks, [DependencyRecord(task="A-2", depends_on="A-1")], {"A-1": 2, "A-2": 2}, {}, start=MONDAY)
    plan = allocate(df, [person("al", ["Python"], weekly=4)], start=MONDAY)
    assert plan.shortages.empty
    assert plan.plan[["person", "project", "week", "days"]].values.tolist() == [["al", "A", WEEK[0], 4.0]]
    assert plan.objective == pytest.approx(4.0)


def test_allocation_is_deterministic():
    rows = demand(
        *[
            (p, s, w, d, pr)
            for p, pr in (("A", 2.0), ("B", 1.0), ("C", 1.0))
            for s, d in (("python", 3), ("k8s", 2))
            for w in (0, 1)
        ]
    )
    people = [person(h, ["python", "k8s"], weekly=2) for h in ("a", "b", "c", "d")]
    first = allocate(rows, people, start=MONDAY, weeks=2)
    again = allocate(rows.iloc[::-1].reset_index(drop=True), list(reversed(people)), start=MONDAY, weeks=2)
    pd.testing.assert_frame_equal(first.plan, again.plan)
    pd.testing.assert_frame_equal(first.coverage, again.coverage)
    pd.testing.assert_frame_equal(first.people, again.people)
    assert first.explanation == again.explanation


def test_bad_input_is_a_data_error_with_what_to_do():
    rows = demand(("A", "python", 0, 3, 1.0))
    people = [person("al", ["python"])]
    with pytest.raises(DataError, match="days must be a number >= 0"):
        allocate(demand(("A", "python", 0, -1, 1.0)), people, start=MONDAY)
    with pytest.raises(DataError, match="outside the horizon"):
        allocate(demand(("A", "python", 5, 1, 1.0)), people, start=MONDAY, weeks=2)
    with pytest.raises(DataError, match="weekly capacity"):
        allocate(
            rows,
            [PersonRecord.model_construct(handle="neg", skills=[], weekly_capacity_days=-1, time_off=[])],
            start=MONDAY,
        )
    with pytest.raises(DataError, match="more than once"):
        allocate(rows, people + people, start=MONDAY)
    with pytest.raises(DataError, match="not in the people list"):
        allocate(rows, people, start=MONDAY, staffing={"zed": ["A"]})
    with pytest.raises(DataError, match="no column"):
        allocate(pd.DataFrame({"project": ["A"]}), people, start=MONDAY)
    with pytest.raises(DataError, match="priority"):
        allocate(demand(("A", "python", 0, 1, -2.0)), people, start=MONDAY)
    with pytest.raises(DataError, match="not in the people list"):
        what_if_move(rows, people, "zed", "A", start=MONDAY)
    with pytest.raises(DataError, match="no demand"):
        what_if_move(rows, people, "al", "Z", start=MONDAY)
    tasks = [task("A-1", "A"), task("A-2", "A")]
    with pytest.raises(DataError, match="remaining days"):
        skill_demand(tasks, [], {"A-1": -2}, {}, start=MONDAY)
    with pytest.raises(DataError, match="cycle"):
        loop = [DependencyRecord(task="A-1", depends_on="A-2"), DependencyRecord(task="A-2", depends_on="A-1")]
        skill_demand(tasks, loop, {}, {}, start=MONDAY)
    with pytest.raises(DataError, match="priority"):
        skill_demand(tasks, [], {}, {"A": -1}, start=MONDAY)
