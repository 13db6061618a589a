"""PPMS sample world: two projects with people, four months of finished work and a freshly planned open
backlog with dependencies (one across projects), milestones and target dates — and, as real data has, a
dependency cycle, a dependency on a task nobody knows and a task done before it started, which PPMS
quarantines.

The history is made by a team working through planning rounds (``synthetic_team_history``), so the
calibration backtest has real past moments to replay; its last round, a week ago, is still being worked on,
and the open backlog for the coming milestones was planned in the last two weeks (after the backtest's last
moment).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from framework2.tasks.planning.backtest import snapshot_at
from framework2.tasks.planning.records import Batch, DependencyRecord, PersonRecord, ProjectRecord, TaskRecord
from framework2.tasks.planning.synthetic import synthetic_team_history

SHOP, PAY = "sample:shop", "sample:payments"
PEOPLE = [
    PersonRecord(handle="ana", name="Ana", skills=["python", "backend", "db"], weekly_capacity_days=4),
    PersonRecord(handle="ben", name="Ben", skills=["frontend", "design"], weekly_capacity_days=4),
    PersonRecord(handle="chen", name="Chen", skills=["python", "backend", "infra"], weekly_capacity_days=3.5),
    PersonRecord(handle="dara", name="Dara", skills=["frontend", "python"], weekly_capacity_days=4),
    PersonRecord(handle="eli", name="Eli", skills=["infra", "security"], weekly_capacity_days=2.5),
]
SKILLS = {"backend": ["python", "backend"], "frontend": ["frontend"], "db": ["db"], "infra": ["infra"]}


def sample_projects(now: datetime | None = None, seed: int = 11) -> Batch:
    """The sample batch: finished history, open backlog, people, and a few bad rows."""
    now = now or datetime.now(UTC)
    rng = np.random.default_rng(seed)
    projects = [
        ProjectRecord(
            key=SHOP, name="Web shop relaunch", source="sample", target_date=(now + timedelta(days=84)).date()
        ),
        ProjectRecord(key=PAY, name="Payments v2", source="sample", target_date=(now + timedelta(days=77)).date()),
    ]
    tasks: list[TaskRecord] = []
    deps: list[DependencyRecord] = []
    for k, (project, workers, per_wave) in enumerate(((SHOP, 4, 12), (PAY, 3, 8))):
        history, edges = synthetic_team_history(
            f"{project}-history",
            waves=10,  # the last planning round was a week ago, so some of it is still being worked on
            tasks_per_wave=per_wave,
            workers=workers,
            start=now - timedelta(days=9 * 14 + 7),
            seed=seed + k,
        )
        known, edges = snapshot_at(history, edges, now)  # as it stands today: done, in progress or to do
        keys = {t.key: f"{project}#h{i + 1}" for i, t in enumerate(known)}
        tasks += [t.model_copy(update={"key": keys[t.key], "project": project}) for t in known]
        deps += [DependencyRecord(task=keys[e.task], depends_on=keys[e.depends_on]) for e in edges]

    open_tasks: list[TaskRecord] = []
    for project, count, milestones in ((SHOP, 36, ["Beta", "Launch"]), (PAY, 18, ["Go-live"])):
        for n in range(count):
            area = str(rng.choice(list(SKILLS)))
            estimate = None if rng.uniform() < 0.1 else float(rng.choice([0.5, 1, 2, 3, 5, 8]))
            started = rng.uniform() < 0.15
            open_tasks.append(
                TaskRecord(
                    key=f"{project}#{n + 1}",
                    project=project,
                    title=f"{area} work item {n + 1}",
                    status="in_progress" if started else "todo",
                    type=str(rng.choice(["feature", "bug", "task"], p=[0.5, 0.3, 0.2])),
                    labels=[area],
                    estimate_days=estimate,
                    assignee=str(rng.choice([p.handle for p in PEOPLE])) if started else None,
                    required_skills=SKILLS[area],
                    created_at=now - timedelta(days=int(rng.integers(1, 13))),
                    started_at=now - timedelta(days=int(rng.integers(1, 4))) if started else None,
                    updated_at=now - timedelta(hours=int(rng.integers(1, 48))),
                    milestone=milestones[min(len(milestones) - 1, n * len(milestones) // count)],
                    business_value=float(rng.integers(1, 11)),
                    time_criticality=float(rng.integers(1, 11)),
                    risk_reduction=float(rng.integers(1, 6)),
                    reach=float(rng.integers(100, 5000)),
                    impact=float(rng.choice([0.5, 1, 2, 3])),
                    confidence=float(rng.choice([0.5, 0.8, 1.0])),
                )
            )
            if n >= 3 and rng.uniform() < 0.6:  # mostly chains within the project, some fan-in
                for back in {int(rng.integers(max(0, n - 6), n))}:
                    deps.append(DependencyRecord(task=f"{project}#{n + 1}", depends_on=f"{project}#{back + 1}"))
    deps.append(DependencyRecord(task=f"{SHOP}#30", depends_on=f"{PAY}#12"))  # the shop launch waits for payments
    # What real data brings along, quarantined with its reason:
    deps += [
        DependencyRecord(task=f"{SHOP}#2", depends_on=f"{SHOP}#3"),
        DependencyRecord(task=f"{SHOP}#3", depends_on=f"{SHOP}#2"),  # a cycle
        DependencyRecord(task=f"{PAY}#5", depends_on="jira:LEGACY-404"),  # nobody knows this task
    ]
    started = now - timedelta(days=3)
    open_tasks.append(
        TaskRecord(
            key=f"{PAY}#bad",
            project=PAY,
            title="closed before it started",
            status="done",
            created_at=started - timedelta(days=5),
            started_at=started,
            done_at=started - timedelta(days=1),
            updated_at=started,
        )
    )
    return Batch(projects=projects, tasks=tasks + open_tasks, dependencies=deps, people=PEOPLE, cursor=now)
