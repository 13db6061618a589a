"""A synthetic project whose history was made by a team working through a backlog, for backtests and demos.

``synthetic_task_history`` gives realistic tasks but starts them at a fixed rate, which no team does; a
calibration backtest needs history made the way the forecast assumes work happens, so that a well-built
forecast can be checked against it — and a deliberately broken one shown to fail.

The process: scope arrives in waves (a planning round every ``wave_every_days`` calendar days brings
``tasks_per_wave`` tasks, created at 09:00 UTC that day); within a wave each task after the first depends,
with ``chain_probability``, on one of the five tasks before it. ``workers`` people (named ana, ben, ... as
in ``synthetic_task_history``, each with that person's speed) each work on one task at a time; a free person
takes the oldest ready task (created, and everything it depends on done). Task sizes, types, labels, titles
and noise come from ``synthetic_task_history``; the person who takes a task sets its speed multiplier.
Time runs in working days (Mon-Fri, UTC), so weekends pause work as they do in the duration model.

``untracked_days_per_task`` > 0 makes the history *break* an assumption of the forecast: after each task a
person spends an exponentially distributed time (that mean, in working days) on work that never reaches
the tracker — support rotation, interrupts. Task durations stay true; the team is just slower than its
assignee count says, which is what a backtest should catch.
"""

from __future__ import annotations

import heapq
from datetime import UTC, datetime, timedelta

import numpy as np

from framework2.tasks.planning.durations import (
    _PEOPLE,
    MIN_DURATION_DAYS,
    _add_working_days,
    synthetic_task_history,
    task_duration_days,
    working_days_between,
)
from framework2.tasks.planning.records import DependencyRecord, TaskRecord

TEAM = [name for name in _PEOPLE if name is not None and name != "fay"]


def synthetic_team_history(
    project: str,
    *,
    waves: int,
    tasks_per_wave: int,
    workers: int,
    start: datetime,
    wave_every_days: int = 14,
    chain_probability: float = 0.5,
    untracked_days_per_task: float = 0.0,
    seed: int = 0,
) -> tuple[list[TaskRecord], list[DependencyRecord]]:
    """Every task of the project as it eventually turned out (all done, possibly after today), and the
    dependencies. Cut it at a moment with ``backtest.snapshot_at`` to see what was known then."""
    if not 1 <= workers <= len(TEAM):
        raise ValueError(f"workers must be between 1 and {len(TEAM)}, got {workers}")
    if waves < 1 or tasks_per_wave < 1:
        raise ValueError("waves and tasks_per_wave must be at least 1")
    start = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    n = waves * tasks_per_wave
    rng = np.random.default_rng(seed)
    drawn = synthetic_task_history(n, seed=seed, start=start)
    # The drawn task's duration includes its drawn assignee's speed; take that out, the worker puts theirs in.
    base = [task_duration_days(t) / _PEOPLE[t.assignee][1] for t in drawn]

    created = [start + timedelta(days=(i // tasks_per_wave) * wave_every_days, hours=9) for i in range(n)]
    released = [working_days_between(start, c) for c in created]
    waits: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        first = (i // tasks_per_wave) * tasks_per_wave
        if i > first and rng.uniform() < chain_probability:
            waits[i].append(int(rng.integers(max(first, i - 5), i)))
    successors: list[list[int]] = [[] for _ in range(n)]
    for i, before in enumerate(waits):
        for j in before:
            successors[j].append(i)

    # Event simulation in working days since ``start``: arrivals, and people finishing tasks.
    blocked = [len(w) for w in waits]
    ready: list[tuple[int, int]] = []  # (creation order, task): the oldest ready task goes first
    arrivals = sorted((released[i], i) for i in range(n) if not blocked[i])
    busy: list[tuple[float, int, int]] = []  # (finish, person, task)
    free = list(range(workers))
    begun = [0.0] * n
    ended = [0.0] * n
    who = [0] * n
    now, a = 0.0, 0
    while a < len(arrivals) or ready or any(i >= 0 for _, _, i in busy):
        while a < len(arrivals) and arrivals[a][0] <= now:
            heapq.heappush(ready, (arrivals[a][1], arrivals[a][1]))
            a += 1
        while free and ready:
            _, i = heapq.heappop(ready)
            person = free.pop(0)
            duration = max(MIN_DURATION_DAYS, base[i] * _PEOPLE[TEAM[person]][1])
            begun[i], ended[i], who[i] = now, now + duration, person
            heapq.heappush(busy, (ended[i], person, i))
        upcoming = [arrivals[a][0]] if a < len(arrivals) else []
        if busy:
            upcoming.append(busy[0][0])
        if not upcoming:
            break
        now = min(upcoming)
        while busy and busy[0][0] <= now:
            _, person, i = heapq.heappop(busy)
            if i < 0:  # back from untracked work
                free.append(person)
                free.sort()
                continue
            if untracked_days_per_task > 0:
                heapq.heappush(busy, (now + rng.exponential(untracked_days_per_task), person, -1))
            else:
                free.append(person)
                free.sort()
            for s in successors[i]:
                blocked[s] -= 1
                if not blocked[s]:
                    heapq.heappush(ready, (s, s))

    tasks = []
    for i, t in enumerate(drawn):
        started, done = _add_working_days(start, begun[i]), _add_working_days(start, ended[i])
        tasks.append(
            t.model_copy(
                update={
                    "key": f"{project}#{i + 1}",
                    "project": project,
                    "assignee": TEAM[who[i]],
                    "created_at": created[i],
                    "started_at": started,
                    "done_at": done,
                    "updated_at": done,
                    "milestone": None,
                }
            )
        )
    dependencies = [
        DependencyRecord(task=f"{project}#{i + 1}", depends_on=f"{project}#{j + 1}")
        for i, before in enumerate(waits)
        for j in before
    ]
    return tasks, dependencies
