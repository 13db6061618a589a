"""What a tracker knew at a past moment, and when a set of tasks was finally done.

Both the calibration backtest and the flow model's dependence estimate replay the past: they rebuild what
was known at a moment from the tasks' own timestamps (tasks created by then; done, in progress or to do by
then; no assignee on work nobody had started) and look up when the scope open at that moment was done.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from framework2.tasks.planning.records import DependencyRecord, TaskRecord


def finished_at(task: TaskRecord) -> datetime | None:
    """When a task was done: its done time, or its last update when it is done without one."""
    if task.done_at is not None:
        return task.done_at
    return task.updated_at if task.status == "done" else None


def snapshot_at(
    tasks: Sequence[TaskRecord], dependencies: Sequence[DependencyRecord], at: datetime
) -> tuple[list[TaskRecord], list[DependencyRecord]]:
    """What was known at ``at``: tasks created by then with their status then, and the edges among them.

    A task marked done without a finish time counts as done from its last update.
    """
    known: list[TaskRecord] = []
    for t in tasks:
        if t.created_at > at:
            continue
        finished = finished_at(t)
        if finished is not None and finished <= at:
            known.append(t)
        elif t.started_at is not None and t.started_at <= at:
            known.append(t.model_copy(update={"status": "in_progress", "done_at": None, "updated_at": at}))
        else:
            update = {"status": "todo", "started_at": None, "done_at": None, "assignee": None, "updated_at": at}
            known.append(t.model_copy(update=update))
    keys = {t.key for t in known}
    return known, [d for d in dependencies if d.task in keys and d.depends_on in keys]


def snapshot_moments(
    tasks: Sequence[TaskRecord],
    now: datetime,
    every_days: int,
    warmup_days: int,
    horizon_days: int,
    lookback_days: int = 365,
) -> list[datetime]:
    """Mondays 00:00 UTC from ``warmup_days`` after the first task (and at most ``lookback_days`` back)
    until ``horizon_days`` before ``now``."""
    if not tasks:
        return []
    now = now.astimezone(UTC)
    earliest = min(t.created_at for t in tasks).astimezone(UTC) + timedelta(days=warmup_days)
    first = max(earliest, now - timedelta(days=lookback_days))
    monday = datetime.combine(first.date() + timedelta(days=(7 - first.weekday()) % 7), datetime.min.time(), UTC)
    last = now - timedelta(days=horizon_days)
    moments = []
    while monday <= last:
        moments.append(monday)
        monday += timedelta(days=every_days)
    return moments


def scope_finish(scope: Sequence[TaskRecord]) -> datetime | None:
    """When the last task of ``scope`` was done; None while any is still open."""
    ends = []
    for t in scope:
        end = finished_at(t)
        if end is None:
            return None
        ends.append(end)
    return max(ends)
