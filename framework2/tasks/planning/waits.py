"""How long open work waits before someone starts it: working days from ``created_at`` to ``started_at``.

A backlog item's date depends less on how long it takes than on when it is picked up. Teams do not take
their backlog in order: urgent bugs jump the queue, some items wait for months, some are never started. So
the wait is learned from history instead of assumed from a queue discipline:

- every task that has started gives its wait (observed); every task still waiting gives "at least its age"
  (censored), in a recency-weighted Kaplan-Meier distribution with a capped Pareto tail
  (``survival.CensoredDistribution``, log of working days floored at ``MIN_DURATION_DAYS``);
- an item that has already waited ``b`` days draws its wait *given* it is longer than ``b`` and waits what is
  left: an item that has sat in the backlog for a year is likely to sit longer, a fresh one is not;
- one distribution per type with at least ``MIN_TYPE_WAITS`` started tasks (bugs are picked up faster than
  features), the rest pooled.

Histories without creation times (the tracker only says when work started) make every wait zero: then
nothing waits, which is what such data can say.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from framework2.tasks.planning.durations import MIN_DURATION_DAYS, _age_days, _utc, working_days_between
from framework2.tasks.planning.records import TaskRecord
from framework2.tasks.planning.survival import HALF_LIFE_DAYS, CensoredDistribution, recency_weights

MIN_WAITS = 10
MIN_TYPE_WAITS = 30
# Waits are capped further out than durations (``survival.CAP_FACTOR`` = 2). A tracker shows the longest waits
# least: an item can only have waited as long as the history is old, and at any moment the longest waiters
# are still waiting (censored), so the longest wait seen understates the tail more than the longest duration
# does. On the 7digital backlog each of the 9 scopes (of 41) whose P85 fell short was decided by one backlog
# item that waited 148-222 days before it started: early on, longer than twice the longest wait seen then
# (57-72 days); later, in a tail that a cap at twice the longest wait left too thin. At 3 times, 33 of 41 hold.
WAIT_CAP_FACTOR = 3.0


@dataclass(frozen=True)
class WaitModel:
    """Wait-before-start distributions, per type where there is enough history."""

    groups: dict[str, CensoredDistribution]
    started: int
    waiting: int
    median_days: float

    def sample_remaining(
        self, tasks: Sequence[TaskRecord], now: datetime, uniforms: np.ndarray, *, dtype: type = np.float64
    ) -> np.ndarray:
        """(n, trials) working days until each not-yet-started task starts, given how long it has waited.

        ``uniforms`` is task-major (n, trials), survival orientation (near 0 = a long wait).
        """
        ages = np.array([working_days_between(t.created_at, now) for t in tasks])
        floors = np.where(ages > MIN_DURATION_DAYS, np.log(np.maximum(ages, MIN_DURATION_DAYS)), -np.inf)
        groups = [f"type:{t.type.lower()}" if f"type:{t.type.lower()}" in self.groups else "all" for t in tasks]
        out = np.empty(uniforms.shape, dtype=dtype)
        for group in sorted(set(groups)):
            rows = np.array([i for i, g in enumerate(groups) if g == group])
            total = np.exp(self.groups[group].sample_above(floors[rows, None], uniforms[rows]))
            total -= ages[rows, None].astype(total.dtype)
            out[rows] = np.maximum(total, 0.0)
        return out

    def describe(self) -> str:
        """The counts and the median wait in words."""
        types = sorted(g.removeprefix("type:") for g in self.groups if g != "all")
        split = f", by type for {', '.join(types)}" if types else ""
        return (
            f"waits before start from {self.started} started tasks and {self.waiting} still waiting (at least as "
            f"long as they have so far), median {self.median_days:.1f} working days{split}"
        )


def fit_wait_model(
    tasks: Sequence[TaskRecord], now: datetime, *, half_life_days: float = HALF_LIFE_DAYS
) -> WaitModel | None:
    """Learn waits from ``tasks`` as known at ``now``; None with fewer than ``MIN_WAITS`` started tasks."""
    values, observed, ages, kinds = [], [], [], []
    for task in tasks:
        if _utc(task.created_at) > _utc(now):
            continue
        started = task.started_at is not None and _utc(task.started_at) <= _utc(now)
        end = task.started_at if started else now
        assert end is not None
        values.append(np.log(max(working_days_between(task.created_at, end), MIN_DURATION_DAYS)))
        observed.append(started)
        ages.append(_age_days(task.created_at, now))
        kinds.append(f"type:{task.type.lower()}")
    seen = np.asarray(observed, dtype=bool)
    if seen.sum() < MIN_WAITS:
        return None
    v, w = np.asarray(values), recency_weights(np.asarray(ages), half_life_days)
    kinds_arr = np.asarray(kinds)
    groups = {"all": CensoredDistribution.fit(v, seen, w, cap_factor=WAIT_CAP_FACTOR)}
    for kind in sorted(set(kinds)):
        rows = kinds_arr == kind
        if seen[rows].sum() >= MIN_TYPE_WAITS:
            groups[kind] = CensoredDistribution.fit(v[rows], seen[rows], w[rows], cap_factor=WAIT_CAP_FACTOR)
    median = float(np.exp(groups["all"].quantile(0.5)))
    return WaitModel(
        groups=groups,
        started=int(seen.sum()),
        waiting=int((~seen).sum()),
        median_days=median if median > MIN_DURATION_DAYS else 0.0,
    )
