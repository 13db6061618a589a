"""PPMS store I/O: upsert what connectors read (one transaction per batch), read it back as records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from framework2.store.engine import session_scope
from framework2.store.models import PmDependency, PmForecast, PmPerson, PmProject, PmSourceCursor, PmTask, utcnow
from framework2.store.runs import as_utc, quarantine
from framework2.tasks.planning.backtest import PublishedForecast
from framework2.tasks.planning.records import Batch, DependencyRecord, PersonRecord, ProjectRecord, TaskRecord
from framework2.tasks.planning.validate import SOURCE, validate_batch


def known_graph(engine: Engine) -> tuple[set[str], list[tuple[str, str]]]:
    """Task keys and dependency edges already stored."""
    with session_scope(engine) as session:
        keys = set(session.scalars(select(PmTask.key)))
        edges = [(d.task, d.depends_on) for d in session.scalars(select(PmDependency))]
    return keys, edges


def store_batch(engine: Engine, batch: Batch, source: str, run_id: str | None = None) -> Batch:
    """Validate ``batch`` against the store, quarantine its bad rows and upsert the rest, all or nothing.

    A task's dependencies are replaced by the ones the batch declares for it (the source is the truth
    for its own tasks). The source's cursor moves to the batch's newest updated-at in the same
    transaction, so a failed write never skips data on the next incremental read. Returns the batch
    as stored (bad rows in ``rejected``).
    """
    keys, edges = known_graph(engine)
    checked = validate_batch(batch, keys, edges)
    with session_scope(engine) as session:
        projects = {p.key: p for p in checked.projects}
        for task in checked.tasks:  # a task may name a project its source did not describe
            projects.setdefault(task.project, ProjectRecord(key=task.project, name=task.project, source=source))
        for project in projects.values():
            existing = session.get(PmProject, project.key)
            if existing is None:
                session.add(PmProject(**project.model_dump(), updated_at=utcnow()))
            else:  # a source without target dates must not erase one set earlier
                existing.name, existing.source = project.name, project.source
                existing.target_date = project.target_date or existing.target_date
                existing.updated_at = utcnow()
        session.flush()
        for task in checked.tasks:
            fields = task.model_dump()
            existing_task = session.get(PmTask, task.key)
            if existing_task is not None and existing_task.started_at is not None:
                # Sources often forget when work started once it is done; the first start seen stays.
                known = as_utc(existing_task.started_at)
                fields["started_at"] = min(known, task.started_at) if task.started_at else known
            session.merge(PmTask(**fields))
        declared = {dep.task for dep in checked.dependencies} | {t.key for t in checked.tasks}
        if declared:
            session.execute(delete(PmDependency).where(PmDependency.task.in_(sorted(declared))))
        for dep in checked.dependencies:
            session.add(PmDependency(task=dep.task, depends_on=dep.depends_on))
        for person in checked.people:
            session.merge(PmPerson(**person.model_dump(mode="json")))
        if checked.cursor is not None:
            session.merge(PmSourceCursor(source=source, cursor=checked.cursor))
    if checked.rejected:
        quarantine(
            engine,
            system=SOURCE,
            source=source,
            rows=[{**r["payload"], "reason": r["reason"], "row": r["source"]} for r in checked.rejected],
            run_id=run_id,
        )
    return checked


def adopt_scope(session: Session, add: Sequence[TaskRecord], retire: Sequence[str]) -> None:
    """Put tasks an accepted requirement change creates into the plan and take out the ones it drops, inside
    the caller's transaction (the change's decision is stored in the same one). Only open tasks are retired:
    work already started or done stays as the record of what happened."""
    for task in add:
        if session.get(PmProject, task.project) is None:
            session.add(PmProject(key=task.project, name=task.project, source="pces", updated_at=utcnow()))
            session.flush()
        if session.get(PmTask, task.key) is None:  # already in the plan: its progress and assignee stay
            session.add(PmTask(**task.model_dump()))
    for key in retire:
        row = session.get(PmTask, key)
        if row is not None and row.status == "todo":
            session.execute(delete(PmDependency).where(PmDependency.task == key))
            session.delete(row)


def source_cursor(engine: Engine, source: str) -> datetime | None:
    """Where the last read of ``source`` stopped (None: read everything)."""
    with session_scope(engine) as session:
        row = session.get(PmSourceCursor, source)
        return as_utc(row.cursor) if row else None


def load_tasks(engine: Engine, projects: list[str] | None = None) -> list[TaskRecord]:
    with session_scope(engine) as session:
        query = select(PmTask)
        if projects:
            query = query.where(PmTask.project.in_(projects))
        rows = session.scalars(query).all()
        return [
            TaskRecord.model_validate(
                {
                    **r.model_dump(),
                    "created_at": as_utc(r.created_at),
                    "started_at": as_utc(r.started_at),
                    "done_at": as_utc(r.done_at),
                    "updated_at": as_utc(r.updated_at),
                }
            )
            for r in rows
        ]


def load_dependencies(engine: Engine) -> list[DependencyRecord]:
    with session_scope(engine) as session:
        return [DependencyRecord(task=d.task, depends_on=d.depends_on) for d in session.scalars(select(PmDependency))]


def load_people(engine: Engine) -> list[PersonRecord]:
    with session_scope(engine) as session:
        return [
            PersonRecord(
                handle=p.handle,
                name=p.name,
                skills=list(p.skills),
                weekly_capacity_days=p.weekly_capacity_days,
                time_off=[(date.fromisoformat(a), date.fromisoformat(b)) for a, b in p.time_off],
            )
            for p in session.scalars(select(PmPerson))
        ]


def load_projects(engine: Engine) -> list[ProjectRecord]:
    with session_scope(engine) as session:
        return [
            ProjectRecord(key=p.key, name=p.name, source=p.source, target_date=p.target_date)
            for p in session.scalars(select(PmProject))
        ]


def load_published_forecasts(engine: Engine) -> list[PublishedForecast]:
    """Every project-level forecast PPMS stored with all three dates, oldest first (for the track record)."""
    with session_scope(engine) as session:
        rows = session.scalars(
            select(PmForecast)
            .where(PmForecast.milestone.is_(None), PmForecast.p85.is_not(None))
            .order_by(PmForecast.created_at)
        ).all()
        return [
            PublishedForecast(
                project=r.project, made_at=as_utc(r.created_at), method=r.method, p50=r.p50, p85=r.p85, p95=r.p95
            )
            for r in rows
            if r.p50 is not None and r.p95 is not None
        ]
