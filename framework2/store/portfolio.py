"""PPOS store I/O: what the health and risk steps read from PPMS/PLOS results, the health time series, and
the slip predictions that become the classifier's training data once their projects finish."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from framework2.store.engine import session_scope
from framework2.store.models import (
    AnalysisRun,
    PmAssignment,
    PmForecast,
    PmProject,
    PmTask,
    PpHealth,
    PpRisk,
    Release,
)
from framework2.store.runs import as_utc, jsonable


def latest_forecasts(engine: Engine) -> dict[str, dict[str, Any]]:
    """The newest project-level PPMS forecast of each project (as a dict of its columns)."""
    with session_scope(engine) as session:
        newest = (
            select(PmForecast.project, func.max(PmForecast.created_at).label("at"))
            .where(PmForecast.milestone.is_(None))
            .group_by(PmForecast.project)
            .subquery()
        )
        rows = session.scalars(
            select(PmForecast).join(
                newest, (PmForecast.project == newest.c.project) & (PmForecast.created_at == newest.c.at)
            )
        ).all()
        return {r.project: r.model_dump() for r in rows if r.milestone is None}


def latest_staffing(engine: Engine) -> dict[str, tuple[int, int]]:
    """Per project, (ready tasks, of which unstaffed) in the newest PPMS assignment run."""
    with session_scope(engine) as session:
        latest = session.scalars(select(PmAssignment.run_id).order_by(PmAssignment.id.desc()).limit(1)).first()
        if latest is None:
            return {}
        rows = session.execute(
            select(PmTask.project, PmAssignment.person)
            .join(PmTask, PmTask.key == PmAssignment.task)
            .where(PmAssignment.run_id == latest)
        ).all()
    out: dict[str, tuple[int, int]] = {}
    for project, person in rows:
        ready, unstaffed = out.get(project, (0, 0))
        out[project] = (ready + 1, unstaffed + (person is None))
    return out


def release_counts(engine: Engine, apps: Sequence[str], since: datetime) -> tuple[int, int]:
    """(releases, failed or rolled back) of ``apps`` started since ``since``."""
    if not apps:
        return 0, 0
    with session_scope(engine) as session:
        statuses = session.scalars(
            select(Release.status).where(Release.app.in_(list(apps)), Release.started_at >= since)
        ).all()
    return len(statuses), sum(1 for s in statuses if s in ("failed", "rolled_back"))


def _not_failed() -> Any:
    """Rows of runs that did not fail: a run that died half way must not set the baseline for the next."""
    return PpHealth.run_id.in_(select(AnalysisRun.id).where(AnalysisRun.status != "failed"))


def previous_health(engine: Engine) -> dict[str, float]:
    """The newest stored health score of each project (and of "portfolio") from runs that did not fail."""
    with session_scope(engine) as session:
        newest = (
            select(PpHealth.project, func.max(PpHealth.id).label("id"))
            .where(_not_failed())
            .group_by(PpHealth.project)
            .subquery()
        )
        rows = session.execute(select(PpHealth.project, PpHealth.score).join(newest, PpHealth.id == newest.c.id))
        return {project: float(score) for project, score in rows}


def add_health(session: Any, run_id: str, scores: Sequence[Any], at: datetime) -> None:
    """Add one run's health scores (``HealthScore`` objects) with their components to the caller's transaction."""
    for score in scores:
        session.add(
            PpHealth(
                run_id=run_id,
                project=score.project,
                score=float(score.score),
                components=jsonable([c.model_dump() for c in score.components]),
                top_reason=score.top_reason(),
                created_at=at,
            )
        )


def save_health(engine: Engine, run_id: str, scores: Sequence[Any], at: datetime) -> None:
    """Store one run's health scores in one transaction."""
    with session_scope(engine) as session:
        add_health(session, run_id, scores, at)


def health_series(engine: Engine, project: str, limit: int = 200) -> list[tuple[datetime, float]]:
    """The newest ``limit`` (time, score) points of one project's health (runs that did not fail), oldest first."""
    with session_scope(engine) as session:
        rows = session.execute(
            select(PpHealth.created_at, PpHealth.score)
            .where(PpHealth.project == project, _not_failed())
            .order_by(PpHealth.id.desc())
            .limit(limit)
        ).all()
    return [(as_utc(at), float(score)) for at, score in reversed(rows)]  # type: ignore[misc]


def add_risk(
    session: Any, run_id: str, predictions: Sequence[Any], features: dict[str, dict[str, Any]], at: datetime
) -> None:
    """Add one run's slip predictions (``SlipPrediction``) with the features they saw to the caller's transaction."""
    for p in predictions:
        session.add(
            PpRisk(
                run_id=run_id,
                project=p.project,
                probability=float(p.probability),
                basis=p.basis,
                drivers=jsonable([d.model_dump() for d in p.drivers]),
                mitigations=jsonable([m.model_dump() for m in p.mitigations]),
                features=jsonable(features.get(p.project, {})),
                reason=p.reason,
                created_at=at,
            )
        )


def save_risk(
    engine: Engine, run_id: str, predictions: Sequence[Any], features: dict[str, dict[str, Any]], at: datetime
) -> None:
    """Store one run's slip predictions in one transaction."""
    with session_scope(engine) as session:
        add_risk(session, run_id, predictions, features, at)


def slip_history(engine: Engine, features: Sequence[str]) -> pd.DataFrame:
    """The slip classifier's training rows: the features PPOS saw for projects that have since finished,
    with ``slipped_days`` = last task done minus the target date. One row per project and ISO week (the
    week's first), so a project scored every 15 minutes does not outweigh the rest."""
    with session_scope(engine) as session:
        targets = dict(session.execute(select(PmProject.key, PmProject.target_date)).all())
        open_projects = set(session.scalars(select(PmTask.project).where(PmTask.status != "done").distinct()))
        finished = dict(
            session.execute(
                select(PmTask.project, func.max(PmTask.done_at))
                .where(PmTask.done_at.is_not(None))
                .group_by(PmTask.project)
            ).all()
        )
        done_projects = [p for p, target in targets.items() if target and p not in open_projects and p in finished]
        rows = session.execute(
            select(PpRisk.project, PpRisk.created_at, PpRisk.features)
            .where(PpRisk.project.in_(done_projects))
            .order_by(PpRisk.created_at)
        ).all()
    seen: set[tuple[str, int, int]] = set()
    records = []
    for project, at, values in rows:
        year, week, _ = as_utc(at).isocalendar()  # type: ignore[union-attr]
        if (project, year, week) in seen:
            continue
        seen.add((project, year, week))
        slipped = (as_utc(finished[project]).date() - targets[project]).days  # type: ignore[union-attr]
        records.append({**{f: (values or {}).get(f) for f in features}, "slipped_days": slipped})
    return pd.DataFrame.from_records(records, columns=[*features, "slipped_days"]).astype(float)
