"""PPMS wait-before-start model: how far out a backlog item's start may be drawn (``tasks/planning/waits.py``)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np

from framework2.tasks.planning.durations import working_days_between
from framework2.tasks.planning.records import TaskRecord
from framework2.tasks.planning.survival import CAP_FACTOR, CensoredDistribution
from framework2.tasks.planning.waits import WAIT_CAP_FACTOR, fit_wait_model

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _history(waits_days: list[int]) -> list[TaskRecord]:
    """Started tasks, one a week going back, each having waited ``waits_days[i]`` calendar days."""
    tasks = []
    for i, wait in enumerate(waits_days):
        started = NOW - timedelta(days=7 * i + 1)
        created = started - timedelta(days=wait)
        tasks.append(
            TaskRecord(
                key=f"T-{i}",
                project="p",
                status="in_progress",
                created_at=created,
                started_at=started,
                updated_at=started,
            )
        )
    return tasks


def _fresh(key: str) -> TaskRecord:
    return TaskRecord(key=key, project="p", status="todo", created_at=NOW - timedelta(days=1), updated_at=NOW)


def test_waits_are_capped_at_three_times_the_longest_wait_seen_durations_at_two() -> None:
    rng = np.random.default_rng(3)
    history = _history([int(w) for w in np.exp(rng.normal(2.5, 1.0, 120)).clip(1, 90)] + [120])
    model = fit_wait_model(history, NOW)
    assert model is not None
    group = model.groups["all"]
    longest = max(working_days_between(t.created_at, t.started_at) for t in history if t.started_at is not None)
    assert group.cap_factor == WAIT_CAP_FACTOR == 3.0
    assert math.isclose(math.exp(group.cap), longest * WAIT_CAP_FACTOR, rel_tol=1e-9)
    # The longest draws of a fresh item go past twice the longest wait seen, never past three times.
    uniforms = np.linspace(1e-6, 1.0, 20_001)[None, :]
    draws = model.sample_remaining([_fresh("new")], NOW, uniforms)[0]
    assert draws.max() > 2 * longest
    assert draws.max() <= 3 * longest + 1e-6
    # Durations keep the tighter cap: their longest values are seen, not cut off by the history's age.
    duration_like = CensoredDistribution.fit(np.log([1.0, 2.0, 3.0, 5.0, 8.0]), np.ones(5, dtype=bool))
    assert duration_like.cap_factor == CAP_FACTOR == 2.0
    assert math.isclose(math.exp(duration_like.cap), 16.0)


def test_an_item_waiting_past_the_cap_still_waits_more_and_longer_the_longer_it_has_waited() -> None:
    history = _history([5, 8, 10, 12, 15, 20, 25, 30, 12, 9, 7, 6])
    model = fit_wait_model(history, NOW)
    assert model is not None
    uniforms = np.full((2, 1_000), 0.5)
    old = [
        TaskRecord(key=f"old-{days}", project="p", created_at=NOW - timedelta(days=days), updated_at=NOW)
        for days in (200, 800)
    ]
    left = model.sample_remaining(old, NOW, uniforms)
    assert (left > 0).all()  # never "starts today" just because it is already past anything seen
    assert left[1].min() > left[0].max()
