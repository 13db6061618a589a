"""What the slip-risk classifier sees of a project at one moment, from the same signals health uses.

Every value is None when it cannot be measured (no forecast, no ready tasks, no throughput before); the
classifier imputes those and says so. Definitions match ``slip_risk.FEATURES``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from framework2.tasks.planning.records import TaskRecord
from framework2.tasks.portfolio.health import PRIOR_DAYS, RECENT_DAYS, ProjectSignals


def key_person_share(project: str, tasks: Sequence[TaskRecord], remaining: Mapping[str, float]) -> float | None:
    """Largest share of the project's remaining assigned work held by one person (None: nothing assigned)."""
    held: dict[str, float] = {}
    for task in tasks:
        if task.project == project and task.status != "done" and task.assignee:
            held[task.assignee] = held.get(task.assignee, 0.0) + remaining.get(task.key, 0.0)
    total = sum(held.values())
    return max(held.values()) / total if total > 0 else None


def slip_features(
    signals: ProjectSignals,
    *,
    key_person: float | None,
    upstream: float,
) -> dict[str, float | None]:
    """The classifier's inputs for one project (``slip_risk.FEATURES``)."""
    s = signals
    buffer = (s.target_date - s.p85).days if s.target_date is not None and s.p85 is not None else None
    trend = (s.done_recent / RECENT_DAYS) / (s.done_prior / PRIOR_DAYS) if s.done_prior > 0 else None
    return {
        "schedule_buffer_days": float(buffer) if buffer is not None else None,
        "probability_on_time": s.probability_on_time,
        "blocked_ratio": s.blocked_open / s.open_tasks if s.open_tasks else None,
        "scope_growth": s.scope_added / s.open_tasks if s.open_tasks else None,
        "throughput_trend": trend,
        "staffing_gap": (s.unstaffed_ready or 0) / s.ready_tasks if s.ready_tasks else None,
        "key_person_share": key_person,
        "upstream_risk": upstream,
    }
