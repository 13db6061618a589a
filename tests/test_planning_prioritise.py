"""Prioritisation: WSJF and RICE parts, dependency-aware urgency (bounded, explained), readiness, cycles."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pandas as pd
import pytest

from framework2.errors import DataError
from framework2.tasks.planning.prioritise import (
    RICE_PARTS,
    WSJF_PARTS,
    PrioritySettings,
    score_backlog,
    unknown_dependencies,
)
from framework2.tasks.planning.records import DependencyRecord, TaskRecord

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def task(key: str, **fields) -> TaskRecord:
    return TaskRecord(key=key, project="jira:SHOP", created_at=NOW, updated_at=NOW, **fields)


def wsjf(key: str, value: float, time: float, risk: float, days: float | None, **fields) -> TaskRecord:
    return task(key, business_value=value, time_criticality=time, risk_reduction=risk, estimate_days=days, **fields)


def dep(task_key: str, depends_on: str) -> DependencyRecord:
    return DependencyRecord(task=task_key, depends_on=depends_on)


def test_wsjf_parts_and_ranking_on_a_small_backlog():
    tasks = [
        wsjf("SHOP-1", 8, 5, 3, 2),  # cost of delay 16 / 2 = 8
        wsjf("SHOP-2", 3, 1, 1, 5),  # 5 / 5 = 1
        wsjf("SHOP-3", 10, 8, 2, 10),  # 20 / 10 = 2
    ]
    backlog = score_backlog(tasks, [])

    assert list(backlog.index) == ["SHOP-1", "SHOP-3", "SHOP-2"]
    assert list(backlog["rank"]) == [1, 2, 3]
    assert set(WSJF_PARTS) <= set(backlog.columns)
    assert not set(RICE_PARTS) & set(backlog.columns)
    top = backlog.loc["SHOP-1"]
    assert (top["cost_of_delay"], top["job_size"], top["wsjf"]) == (16, 2, 8)
    assert top["own_score"] == top["score"] == 8
    assert top["inherited"] == 0 and top["defaults_used"] == []
    assert top["why"] == "WSJF 8 = cost of delay 16 / size 2."


def test_rice_parts_and_ranking_with_percent_confidence():
    tasks = [
        task("A", reach=100, impact=2, confidence=80, estimate_days=4),  # 100 * 2 * 0.8 / 4 = 40
        task("B", reach=500, impact=1, confidence=0.5, estimate_days=5),  # 50
        task("C", reach=10, impact=3, confidence=1.0, estimate_days=1),  # 30
    ]
    backlog = score_backlog(tasks, [], PrioritySettings(method="rice"))

    assert list(backlog.index) == ["B", "A", "C"]
    assert set(RICE_PARTS) <= set(backlog.columns)
    assert "wsjf" not in backlog.columns
    a = backlog.loc["A"]
    assert a["confidence"] == pytest.approx(0.8)
    assert (a["effort"], a["rice"]) == (4, pytest.approx(40))
    assert a["why"] == "RICE 40 = reach 100 × impact 2 × confidence 80% / effort 4."


def test_missing_inputs_take_documented_defaults_and_are_listed():
    settings = PrioritySettings()
    backlog = score_backlog([task("BARE")], [], settings)
    row = backlog.loc["BARE"]

    assert row["business_value"] == settings.default_business_value == 3
    assert row["time_criticality"] == settings.default_time_criticality == 1
    assert row["risk_reduction"] == settings.default_risk_reduction == 1
    assert row["job_size"] == settings.default_estimate_days == 3
    assert row["defaults_used"] == ["business_value", "time_criticality", "risk_reduction", "estimate_days"]
    assert "assumed business value 3, time criticality 1, risk reduction 1, estimate 3 days" in row["why"]


def test_tiny_estimates_are_floored_so_the_ratio_cannot_explode():
    backlog = score_backlog([wsjf("TINY", 5, 5, 5, 0.01)], [], PrioritySettings(min_job_size=0.5))
    assert backlog.loc["TINY", "job_size"] == 0.5
    assert backlog.loc["TINY", "wsjf"] == 30


def test_low_value_task_that_unblocks_a_high_value_one_ranks_above_its_own_score():
    tasks = [
        wsjf("LOW", 1, 1, 1, 3),  # own 1
        wsjf("MID", 5, 3, 2, 2),  # own 5
        wsjf("HIGH", 10, 8, 2, 2),  # own 10, waits on LOW
    ]
    backlog = score_backlog(tasks, [dep("HIGH", "LOW")])

    low = backlog.loc["LOW"]
    assert low["own_score"] == 1
    assert low["inherited"] == pytest.approx(5)  # 0.5 x HIGH's 10
    assert low["score"] == pytest.approx(6)
    assert low["inherited_from"] == "HIGH"
    assert low["rank"] < backlog.loc["MID", "rank"]  # on its own score it would be last
    assert low["why"] == "WSJF 1 = cost of delay 3 / size 3; +5 because it unblocks HIGH (score 10)."
    assert not backlog.loc["HIGH", "ready"] and low["ready"]


def test_inherited_urgency_is_bounded_by_the_best_downstream_score_not_summed():
    # One blocker holding up many valuable tasks inherits from the best of them only.
    blocked = [wsjf(f"B{i}", 10, 8, 2, 2) for i in range(20)]  # own 10 each
    tasks = [wsjf("GATE", 1, 1, 1, 3), *blocked]
    backlog = score_backlog(tasks, [dep(t.key, "GATE") for t in blocked], PrioritySettings(inheritance=0.5))

    gate = backlog.loc["GATE"]
    assert gate["inherited"] == pytest.approx(5)
    assert gate["unblocks"] == 20
    assert gate["unblocks_top"] == ["B0", "B1", "B10"]
    assert backlog["inherited"].max() <= 0.5 * backlog["own_score"].max() + 1e-9


def test_inherited_urgency_decays_per_step_and_names_the_distance():
    tasks = [wsjf("A", 1, 1, 1, 3), wsjf("B", 1, 1, 1, 3), wsjf("GOAL", 16, 2, 2, 1)]  # GOAL own 20
    backlog = score_backlog(tasks, [dep("B", "A"), dep("GOAL", "B")], PrioritySettings(inheritance=0.5))

    assert backlog.loc["B", "inherited"] == pytest.approx(10)
    assert backlog.loc["A", "inherited"] == pytest.approx(5)  # 20 x 0.5^2
    assert backlog.loc["A", "inherited_from"] == "GOAL"
    assert "+5 because it unblocks GOAL (score 20, 2 steps away)" in backlog.loc["A", "why"]
    assert backlog.loc["A", "unblocks"] == 2


def test_inheritance_zero_ignores_dependencies_for_the_score():
    tasks = [wsjf("LOW", 1, 1, 1, 3), wsjf("HIGH", 10, 8, 2, 2)]
    backlog = score_backlog(tasks, [dep("HIGH", "LOW")], PrioritySettings(inheritance=0))
    assert backlog.loc["LOW", "inherited"] == 0
    assert backlog.loc["LOW", "inherited_from"] is None
    assert "unblocks" not in backlog.loc["LOW", "why"]
    assert backlog.loc["LOW", "unblocks"] == 1  # still shown as context


def test_diamond_is_counted_once():
    tasks = [wsjf(k, 3, 1, 1, 3) for k in ("ROOT", "L", "R", "SINK")]
    deps = [dep("L", "ROOT"), dep("R", "ROOT"), dep("SINK", "L"), dep("SINK", "R")]
    backlog = score_backlog(tasks, deps)
    assert backlog.loc["ROOT", "unblocks"] == 3
    assert backlog.loc["ROOT", "waiting_on"] == [] and backlog.loc["SINK", "waiting_on"] == ["L", "R"]


def test_done_tasks_are_excluded_and_satisfy_their_dependents():
    tasks = [wsjf("DONE", 10, 10, 10, 1, status="done"), wsjf("NEXT", 3, 1, 1, 3), wsjf("WIP", 3, 1, 1, 3)]
    tasks[2] = tasks[2].model_copy(update={"status": "in_progress"})
    backlog = score_backlog(tasks, [dep("NEXT", "DONE")])

    assert "DONE" not in backlog.index
    assert set(backlog.index) == {"NEXT", "WIP"}
    assert backlog.loc["NEXT", "ready"]
    assert backlog.loc["NEXT", "waiting_on"] == []


def test_not_ready_tasks_are_flagged_with_what_they_wait_on():
    tasks = [wsjf("A", 3, 1, 1, 3), wsjf("B", 3, 1, 1, 3), wsjf("C", 8, 5, 3, 2)]
    backlog = score_backlog(tasks, [dep("C", "A"), dep("C", "B")])

    assert not backlog.loc["C", "ready"]
    assert backlog.loc["C", "waiting_on"] == ["A", "B"]
    assert backlog.loc["C", "why"].endswith("; not ready: waiting on A, B.")
    assert backlog.loc["A", "ready"] and backlog.loc["B", "ready"]


def test_dependencies_on_unknown_tasks_are_ignored_but_listed():
    tasks = [wsjf("A", 3, 1, 1, 3)]
    deps = [dep("A", "GHOST"), dep("NOBODY", "A")]
    backlog = score_backlog(tasks, deps)

    assert backlog.loc["A", "ready"]
    assert backlog.loc["A", "unblocks"] == 0
    assert backlog.attrs["unknown_dependencies"] == deps
    assert unknown_dependencies(tasks, deps) == deps


def test_a_cycle_raises_data_error_naming_its_members():
    tasks = [wsjf(k, 3, 1, 1, 3) for k in ("SHOP-1", "SHOP-2", "SHOP-3", "SHOP-4")]
    deps = [dep("SHOP-1", "SHOP-2"), dep("SHOP-2", "SHOP-3"), dep("SHOP-3", "SHOP-1"), dep("SHOP-4", "SHOP-1")]
    with pytest.raises(DataError) as err:
        score_backlog(tasks, deps)
    for member in ("SHOP-1", "SHOP-2", "SHOP-3"):
        assert member in err.value.message
    assert "SHOP-4" not in err.value.message
    assert err.value.hint


def test_a_cycle_through_a_done_task_is_already_broken():
    tasks = [wsjf("A", 3, 1, 1, 3, status="done"), wsjf("B", 3, 1, 1, 3)]
    backlog = score_backlog(tasks, [dep("A", "B"), dep("B", "A")])
    assert list(backlog.index) == ["B"] and backlog.loc["B", "ready"]


def test_duplicate_keys_are_a_data_error():
    with pytest.raises(DataError, match="more than once"):
        score_backlog([wsjf("A", 3, 1, 1, 3), wsjf("A", 5, 1, 1, 3)], [])


def test_empty_backlog_has_the_columns():
    backlog = score_backlog([], [])
    assert backlog.empty and {"score", "rank", "why", "ready"} <= set(backlog.columns)


def test_ranking_is_deterministic_whatever_the_input_order():
    rng = random.Random(7)
    tasks = [wsjf(f"T{i:02d}", rng.choice([1, 3, 5]), rng.choice([1, 3]), 1, rng.choice([1, 2, 3])) for i in range(30)]
    deps = [dep(f"T{i:02d}", f"T{i - 1 - rng.randrange(min(i, 3)):02d}") for i in range(1, 30, 2)]
    first = score_backlog(tasks, deps)
    shuffled_tasks, shuffled_deps = tasks[:], deps[:]
    rng.shuffle(shuffled_tasks)
    rng.shuffle(shuffled_deps)
    pd.testing.assert_frame_equal(first, score_backlog(shuffled_tasks, shuffled_deps))


def test_a_long_chain_scores_quickly_and_stays_bounded():
    n = 3000
    tasks = [wsjf(f"T{i}", 3, 1, 1, 3) for i in range(n - 1)] + [wsjf(f"T{n - 1}", 20, 20, 20, 1)]
    deps = [dep(f"T{i + 1}", f"T{i}") for i in range(n - 1)]
    backlog = score_backlog(tasks, deps, PrioritySettings(inheritance=0.9))
    assert backlog.loc["T0", "unblocks"] == n - 1
    assert backlog["inherited"].max() <= 0.9 * backlog["own_score"].max() + 1e-9
    assert backlog.loc["T0", "ready"] and backlog["ready"].sum() == 1
