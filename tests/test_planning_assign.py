"""Assignment: skills and capacity respected, time off, unstaffed reasons, and the MILP beating greedy."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import pytest

from framework2.errors import DataError
from framework2.tasks.planning.assign import assign
from framework2.tasks.planning.prioritise import score_backlog
from framework2.tasks.planning.records import DependencyRecord, PersonRecord, TaskRecord

MONDAY = date(2024, 1, 1)  # 10 calendar days from a Monday hold 8 working days


def ready(*rows: tuple) -> pd.DataFrame:
    """Rows of (key, score, estimate_days, required_skills[, labels]) as score_backlog's ready rows."""
    records = [(r[0], r[1], r[2], r[3], list(r[4]) if len(r) > 4 else []) for r in rows]
    columns = ["task", "score", "estimate_days", "required_skills", "labels"]
    return pd.DataFrame(records, columns=columns).set_index("task")


def person(handle: str, skills: list[str], weekly: float = 5.0, **fields) -> PersonRecord:
    return PersonRecord(handle=handle, name=handle.title(), skills=skills, weekly_capacity_days=weekly, **fields)


def greedy(tasks: pd.DataFrame, people: list[PersonRecord], free: dict[str, float]) -> float:
    """Best task first, to the qualified person with the most free days: the loop the MILP replaces."""
    left = dict(free)
    total = 0.0
    for _, row in tasks.sort_values("score", ascending=False).iterrows():
        able = [
            p.handle
            for p in people
            if set(row["required_skills"]) <= set(p.skills) and left[p.handle] >= row["estimate_days"]
        ]
        if able:
            who = max(able, key=lambda h: (left[h], h))
            left[who] -= row["estimate_days"]
            total += row["score"]
    return total


def test_assignment_respects_required_skills_and_capacity():
    tasks = ready(
        ("PY-1", 9, 3, ["python"]),
        ("PY-2", 8, 3, ["python"]),
        ("K8S", 7, 2, ["python", "k8s"]),
        ("PY-3", 6, 3, ["python"]),
    )
    people = [person("alice", ["python", "k8s"], weekly=4), person("bob", ["Python"], weekly=4)]  # 6.4 days each
    plan = assign(tasks, people, start=MONDAY)

    assert plan.solver_status == "optimal"
    assert plan.assigned.loc["K8S", "person"] == "alice"
    for key, row in plan.assigned.iterrows():
        who = next(p for p in people if p.handle == row["person"])
        assert {s.lower() for s in tasks.loc[key, "required_skills"]} <= {s.lower() for s in who.skills}
    used = plan.assigned.groupby("person")["estimate_days"].sum()
    assert (used <= plan.load.loc[used.index, "capacity"] + 1e-9).all()
    assert plan.load.loc["alice", "capacity"] == pytest.approx(6.4)
    assert (plan.load["used"] == used.reindex(plan.load.index, fill_value=0)).all()
    assert plan.load["free"].ge(-1e-9).all()
    assert set(plan.assigned.index) | set(plan.unstaffed.index) == set(tasks.index)
    assert plan.assigned.loc["PY-1", "why"].startswith("highest-priority ready task that ")
    assert "free days" in plan.assigned.loc["PY-1", "why"]


def test_why_names_skills_and_free_days():
    plan = assign(ready(("T", 5, 3, ["python"])), [person("alice", ["python", "k8s"], weekly=4)], start=MONDAY)
    assert plan.assigned.loc["T", "why"] == (
        "highest-priority ready task that Alice (skills: python, k8s) can do, and the only person who can; "
        "uses 3 of Alice's 6.4 free days"
    )


def test_time_off_reduces_capacity():
    off = [(date(2024, 1, 8), date(2024, 1, 9)), (date(2024, 1, 6), date(2024, 1, 7))]  # Mon-Tue + a weekend
    people = [
        person("full", ["x"], weekly=5, time_off=off),
        person("part", ["x"], weekly=4, time_off=off),
        person("away", ["y"], weekly=5, time_off=[(date(2023, 12, 20), date(2024, 1, 31))]),
    ]
    plan = assign(ready(("BIG", 5, 6.5, ["x"]), ("Y", 5, 1, ["y"])), people, start=MONDAY)

    assert plan.load.loc["full", "days_off"] == 2
    assert plan.load.loc["full", "capacity"] == pytest.approx(6.0)  # 8 working days - 2 off
    assert plan.load.loc["part", "capacity"] == pytest.approx(4.8)  # 4/5 of the 6 days left
    assert plan.load.loc["away", "capacity"] == 0
    assert plan.unstaffed.loc["BIG", "reason"] == "needs 6.5 days, the most anyone with the skills has free is 6 (full)"
    assert plan.unstaffed.loc["Y", "reason"] == (
        "the people with the skills (away) have no free time in the horizon (time off or already loaded)"
    )


def test_already_assigned_load_reduces_free_days():
    tasks = ready(("T", 5, 3, []))
    plan = assign(tasks, [person("alice", [], weekly=5)], start=MONDAY, already_assigned_load={"alice": 6})
    assert plan.load.loc["alice", ["capacity", "already_assigned"]].tolist() == [8, 6]
    assert plan.unstaffed.loc["T", "reason"] == "needs 3 days, the most anyone has free is 2 (alice)"


def test_unstaffed_reasons_for_skills_size_and_priority():
    tasks = ready(
        ("RUST", 9, 1, ["rust"]),
        ("BOTH", 9, 1, ["go", "k8s"]),
        ("HUGE", 9, 20, ["python"]),
        ("TOP", 8, 4, ["python"]),
    )
    people = [person("alice", ["python", "go"]), person("bob", ["python", "k8s"])]
    plan = assign(tasks, people, start=MONDAY, horizon_days=5)  # 5 days each

    reasons = plan.unstaffed["reason"].to_dict()
    assert reasons["RUST"] == "nobody has the skills [rust]"
    assert reasons["BOTH"] == "nobody has all of the skills [go, k8s] together"
    assert reasons["HUGE"] == "needs 20 days, the most anyone with the skills has free is 5 (alice, bob)"
    assert set(plan.assigned.index) == {"TOP"}


def test_outcompeted_task_is_explained():
    tasks = ready(("TOP", 8, 4, ["python"]), ("ALSO", 7, 4, ["python"]), ("MEH", 2, 4, ["python"]))
    people = [person("alice", ["python"]), person("bob", ["python"])]
    plan = assign(tasks, people, start=MONDAY, horizon_days=5)

    assert set(plan.assigned.index) == {"TOP", "ALSO"}
    assert plan.unstaffed.loc["MEH", "reason"] == (
        "lower priority than what filled the capacity of the 2 people who could do it (alice, bob)"
    )


def test_capacity_given_to_smaller_tasks_worth_more_is_explained():
    tasks = ready(("BIG", 10, 5, []), ("S1", 8, 2.5, []), ("S2", 8, 2.5, []))
    plan = assign(tasks, [person("alice", [])], start=MONDAY, horizon_days=5)
    assert plan.unstaffed.loc["BIG", "reason"] == (
        "needs 5 days; the capacity of the only person who could do it (alice) went to smaller tasks worth more "
        "in total (S1, S2: 16 vs its 10)"
    )


def test_milp_beats_greedy_when_one_big_task_would_crowd_out_two_smaller():
    tasks = ready(("BIG", 10, 5, []), ("S1", 8, 2.5, []), ("S2", 8, 2.5, []))
    people = [person("alice", [])]
    plan = assign(tasks, people, start=MONDAY, horizon_days=5)

    assert greedy(tasks, people, {"alice": 5}) == 10
    assert plan.total_score == 16
    assert set(plan.assigned.index) == {"S1", "S2"}


def test_milp_beats_greedy_when_a_generalist_is_needed_for_the_specialist_task():
    tasks = ready(("PY", 10, 3, ["python"]), ("RUST", 9, 3, ["rust"]))
    people = [person("alice", ["python", "rust"], weekly=4), person("bob", ["python"], weekly=3)]  # 4 and 3 days
    plan = assign(tasks, people, start=MONDAY, horizon_days=5)

    assert greedy(tasks, people, {"alice": 4, "bob": 3}) == 10  # PY to alice (most free), RUST then unstaffed
    assert plan.total_score == 19
    assert plan.assigned["person"].to_dict() == {"PY": "bob", "RUST": "alice"}
    assert "the only person who can" in plan.assigned.loc["RUST", "why"]


def test_unestimated_tasks_use_the_default_size_and_say_so():
    plan = assign(ready(("U", 5, None, [])), [person("alice", [])], start=MONDAY, default_estimate_days=2)
    row = plan.assigned.loc["U"]
    assert row["estimate_days"] == 2 and row["estimate_defaulted"]
    assert "uses 2 (assumed, unestimated) of Alice's 8 free days" in row["why"]


def test_label_match_decides_between_otherwise_equal_people():
    tasks = ready(("UI", 5, 2, ["python"], ["Frontend"]))
    people = [person("alice", ["python"]), person("bob", ["python", "frontend"])]
    plan = assign(tasks, people, start=MONDAY)
    assert plan.assigned.loc["UI", "person"] == "bob"
    assert "its labels [Frontend] match their skills" in plan.assigned.loc["UI", "why"]


def test_equal_work_is_spread_between_equal_people():
    tasks = ready(("A", 5, 3, []), ("B", 5, 3, []))
    plan = assign(tasks, [person("alice", []), person("bob", [])], start=MONDAY)
    assert sorted(plan.assigned["person"]) == ["alice", "bob"]


def test_priority_is_never_traded_for_bonuses():
    # Only one of the two fits; the label match is a tie-breaker, not worth 1 % of priority.
    tasks = ready(("PLAIN", 5, 3, []), ("MATCH", 4.95, 3, [], ["ui"]))
    plan = assign(tasks, [person("alice", ["ui"], weekly=1.875)], start=MONDAY)  # 3 days
    assert list(plan.assigned.index) == ["PLAIN"]


def test_zero_score_ready_work_is_still_staffed():
    plan = assign(ready(("CHORE", 0, 1, [])), [person("alice", [])], start=MONDAY)
    assert list(plan.assigned.index) == ["CHORE"]


def test_rows_that_are_not_ready_are_reported_not_assigned():
    tasks = ready(("A", 5, 1, []), ("B", 9, 1, []))
    tasks["ready"] = [True, False]
    tasks["waiting_on"] = [[], ["A"]]
    plan = assign(tasks, [person("alice", [])], start=MONDAY)
    assert list(plan.assigned.index) == ["A"]
    assert plan.unstaffed.loc["B", "reason"] == "not ready: waiting on A"


def test_assignment_is_deterministic_whatever_the_input_order():
    tasks = ready(*[(f"T{i:02d}", 5 + i % 3, 1 + i % 4, ["python"] if i % 2 else []) for i in range(24)])
    people = [person(h, ["python"] if h != "dan" else [], weekly=3 + i) for i, h in enumerate(["alice", "bob", "dan"])]
    first = assign(tasks, people, start=MONDAY)
    again = assign(tasks.sample(frac=1, random_state=3), list(reversed(people)), start=MONDAY)
    pd.testing.assert_frame_equal(first.assigned, again.assigned)
    pd.testing.assert_frame_equal(first.unstaffed, again.unstaffed)
    pd.testing.assert_frame_equal(first.load, again.load)


def test_ready_rows_of_score_backlog_feed_assignment():
    now = datetime(2024, 1, 1, tzinfo=UTC)
    tasks = [
        TaskRecord(
            key=k, project="p", created_at=now, updated_at=now, estimate_days=2, business_value=v, required_skills=s
        )
        for k, v, s in [("A", 8, ["python"]), ("B", 5, ["python"]), ("C", 9, [])]
    ]
    backlog = score_backlog(tasks, [DependencyRecord(task="C", depends_on="A")])
    plan = assign(backlog[backlog["ready"]], [person("alice", ["python"], weekly=2.5)], start=MONDAY, horizon_days=5)
    assert set(plan.assigned.index) == {"A"}  # A outranks B: it inherits from C, which waits on it
    assert plan.unstaffed.loc["B", "reason"].startswith("lower priority than what filled the capacity")


def test_empty_inputs_and_bad_input():
    plan = assign(ready(("A", 1, 1, [])), [], start=MONDAY)
    assert plan.assigned.empty and plan.unstaffed.loc["A", "reason"] == "nobody is available to assign"
    assert assign(ready(), [person("a", [])], start=MONDAY).assigned.empty
    with pytest.raises(DataError, match="score"):
        assign(pd.DataFrame({"estimate_days": [1]}, index=["A"]), [], start=MONDAY)
    with pytest.raises(DataError, match="more than once"):
        assign(ready(("A", 1, 1, [])), [person("a", []), person("a", [])], start=MONDAY)
