"""Synthetic task histories for tests and demos: tasks at a fixed rate, and a team working through a backlog.

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
from datetime import UTC, date, datetime, timedelta

import numpy as np

from framework2.tasks.planning.durations import (
    MIN_DURATION_DAYS,
    _add_working_days,
    _midnight,
    _utc,
    task_duration_days,
    working_days_between,
)
from framework2.tasks.planning.records import DependencyRecord, TaskRecord

# --- Tasks at a fixed rate ------------------------------------------------------------------------------------

SYNTHETIC_PROJECT = "synthetic:shop"
SYNTHETIC_ESTIMATES = (0.5, 1.0, 2.0, 3.0, 5.0, 8.0)
_ESTIMATE_P = (0.15, 0.25, 0.25, 0.15, 0.12, 0.08)
_UNESTIMATED_SHARE = 0.15
# type: (share, median duration / estimate, log-normal sigma)
_TYPES = {
    "feature": (0.40, 1.30, 0.35),
    "bug": (0.30, 1.10, 0.65),
    "task": (0.20, 1.00, 0.30),
    "chore": (0.10, 0.80, 0.30),
}
# assignee: (share of tasks, duration multiplier); None = unassigned. "fay" rarely gets work (< 5 tasks).
_PEOPLE: dict[str | None, tuple[float, float]] = {
    "ana": (0.25, 0.75),
    "ben": (0.20, 0.90),
    "chen": (0.20, 1.00),
    "dara": (0.15, 1.15),
    "eli": (0.13, 1.35),
    "fay": (0.02, 1.00),
    None: (0.05, 1.00),
}
# label: (probability a task carries it, duration multiplier)
_LABEL_EFFECTS = {
    "backend": (0.40, 1.00),
    "frontend": (0.35, 1.00),
    "db": (0.15, 1.30),
    "infra": (0.10, 1.15),
    "docs": (0.10, 0.70),
    "urgent": (0.10, 0.85),
}
_RARE_LABELS = 40
_RARE_LABEL_P = 0.10
_WORDS = (
    "add",
    "fix",
    "update",
    "remove",
    "checkout",
    "search",
    "cart",
    "api",
    "page",
    "export",
    "report",
    "cache",
    "login",
    "payment",
    "email",
    "filter",
    "sort",
    "retry",
    "timeout",
    "admin",
    "invoice",
    "webhook",
    "migration",
    "index",
    "coupon",
)
TASKS_PER_WORKING_DAY = 3


def synthetic_median_days(task: TaskRecord) -> float | None:
    """The generating model's median duration of an estimated synthetic task; None when unestimated.

    An unestimated synthetic task's hidden size is not on its record, so its true median is not known here.
    """
    if task.estimate_days is None:
        return None
    factor = _TYPES[task.type][1] * _PEOPLE[task.assignee][1]
    for label in task.labels:
        factor *= _LABEL_EFFECTS.get(label, (0.0, 1.0))[1]
    return max(MIN_DURATION_DAYS, task.estimate_days * factor)


def synthetic_task_history(n: int, *, seed: int = 0, start: datetime | None = None) -> list[TaskRecord]:
    """``n`` plausible finished tasks of ``SYNTHETIC_PROJECT``, for tests and demos.

    Generating model, per task: a size drawn from ``SYNTHETIC_ESTIMATES`` (probabilities 15/25/25/15/12/8 %),
    shown as the estimate except for 15 % of tasks, which are unestimated. Type feature/bug/task/chore with
    40/30/20/10 %; assignee ana/ben/chen/dara/eli/fay/unassigned with 25/20/20/15/13/2/5 %, who take x0.75,
    x0.9, x1, x1.15, x1.35, x1, x1 as long. Labels independently: backend 40 %, frontend 35 % (no effect),
    db 15 % (x1.3), infra 10 % (x1.15), docs 10 % (x0.7), urgent 10 % (x0.85), and with 10 % one of 40 rare
    ``area-k`` labels (no effect). The duration in working days is

        max(0.25, size x type factor x person multiplier x label multipliers x LogNormal(0, sigma_type))

    with type factors feature x1.3, bug x1.1, task x1, chore x0.8 and sigma 0.35, 0.65, 0.3, 0.3 (bugs are
    noisiest). The title has 2 + Poisson(1 + 1.5 log2(1 + size)) words, a weak size signal. Three tasks start
    per working day from ``start`` (default 2024-01-01, a Monday, UTC) at a uniform time 09:00-17:00 and
    finish that many working days later (weekends skipped). ``synthetic_median_days`` gives the true median.
    """
    if n < 0:
        raise ValueError(f"n must not be negative, got {n}")
    rng = np.random.default_rng(seed)
    first = _utc(start) if start is not None else datetime(2024, 1, 1, tzinfo=UTC)
    types = list(_TYPES)
    people = list(_PEOPLE)
    sizes = rng.choice(SYNTHETIC_ESTIMATES, size=n, p=_ESTIMATE_P)
    estimated = rng.uniform(size=n) >= _UNESTIMATED_SHARE
    kinds = rng.choice(len(types), size=n, p=[v[0] for v in _TYPES.values()])
    who = rng.choice(len(people), size=n, p=[v[0] for v in _PEOPLE.values()])
    label_draws = rng.uniform(size=(n, len(_LABEL_EFFECTS)))
    rare = np.where(rng.uniform(size=n) < _RARE_LABEL_P, rng.integers(0, _RARE_LABELS, size=n), -1)
    noise = rng.standard_normal(n)
    words = 2 + rng.poisson(1 + 1.5 * np.log2(1 + sizes))
    start_hours = rng.uniform(9, 17, size=n)
    created_lag = rng.uniform(0, 20, size=n)

    tasks = []
    for i in range(n):
        kind, assignee = types[kinds[i]], people[who[i]]
        labels = [name for j, name in enumerate(_LABEL_EFFECTS) if label_draws[i, j] < _LABEL_EFFECTS[name][0]]
        if rare[i] >= 0:
            labels.append(f"area-{rare[i]}")
        factor = _TYPES[kind][1] * _PEOPLE[assignee][1]
        for label in labels:
            factor *= _LABEL_EFFECTS.get(label, (0.0, 1.0))[1]
        duration = max(MIN_DURATION_DAYS, float(sizes[i] * factor * np.exp(_TYPES[kind][2] * noise[i])))
        day = np.busday_offset(first.date(), i // TASKS_PER_WORKING_DAY, roll="forward").astype(date)
        started = _midnight(day) + timedelta(hours=float(start_hours[i]))
        done = _add_working_days(started, duration)
        title = " ".join(rng.choice(_WORDS, size=int(words[i]))).capitalize()
        tasks.append(
            TaskRecord(
                key=f"{SYNTHETIC_PROJECT}#{i + 1}",
                project=SYNTHETIC_PROJECT,
                title=title,
                status="done",
                type=kind,
                labels=labels,
                estimate_days=float(sizes[i]) if estimated[i] else None,
                assignee=assignee,
                created_at=started - timedelta(days=float(created_lag[i])),
                started_at=started,
                done_at=done,
                updated_at=done,
            )
        )
    return tasks


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
