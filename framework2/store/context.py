"""PCES store I/O: requirements as they stand, and a new version only when the content changed.

One source's ingest is one transaction: every new version, every "removed" mark and the rows' current
state are committed together or not at all, so a crash half way leaves the previous ingest's state whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from framework2.store.engine import session_scope
from framework2.store.models import (
    ChangeImpactRow,
    Release,
    RequirementRow,
    RequirementVersion,
    StakeholderMessage,
    utcnow,
)
from framework2.store.planning import adopt_scope
from framework2.store.runs import as_utc, jsonable


def stored_contents(engine: Engine, source_name: str | None = None) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Per requirement id: (its source, its status, the content of its newest version)."""
    with session_scope(engine) as session:
        query = select(RequirementRow)
        if source_name is not None:
            query = query.where(RequirementRow.source_name == source_name)
        rows = {r.id: (r.source, r.status, r.version) for r in session.scalars(query)}
        contents: dict[str, tuple[str, str, dict[str, Any]]] = {}
        for rid, (source, status, version) in rows.items():
            content = session.scalars(
                select(RequirementVersion.content).where(
                    RequirementVersion.requirement == rid, RequirementVersion.version == version
                )
            ).one()
            contents[rid] = (source, status, content)
        return contents


def record_ingest(
    engine: Engine,
    source_name: str,
    requirements: Sequence[Any],
    problem_sources: set[str],
    diff: Callable[[Any, Any], Any],
    parse: Callable[[dict[str, Any]], Any],
    *,
    commit: str | None,
    run_id: str | None,
    recheck: Callable[[Any, Any, Any], Any] | None = None,
) -> list[Any]:
    """Store what changed in one source since its last ingest; returns the diffs (added, changed, removed).

    ``recheck(change, base, requirement)``, for a change marked cosmetic: the change judged again against
    ``base``, the requirement's last substantive version (so edits cannot add up unseen).

    ``requirements`` are the source's readable requirements now; ``problem_sources`` the files that could not
    be read this time — a requirement whose file is among them is left as it was (a broken file is not a
    deleted requirement). A requirement no longer in the source is marked ``removed`` with a version saying so.
    ``diff(before, after)`` returns None for no change; ``parse`` turns stored content back into a requirement.
    """
    before = stored_contents(engine, source_name)
    now = utcnow()
    changes = []
    with session_scope(engine) as session:
        seen = set()
        for req in requirements:
            seen.add(req.id)
            old = before.get(req.id)
            previous = parse(old[2]) if old is not None and old[1] != "removed" else None
            change = diff(previous, req)
            if change is None:
                continue
            if recheck is not None and getattr(change, "cosmetic", False):
                base = _last_substantive(session, req.id)
                if base is not None:
                    change = recheck(change, parse(base), req)
            row = session.get(RequirementRow, req.id)
            version = (row.version + 1) if row is not None else 1
            if row is None:
                row = RequirementRow(id=req.id, source_name=source_name, source=req.source, content_hash="")
                session.add(row)
            row.source, row.title, row.project, row.owner = req.source, req.title, req.project, req.owner
            row.status, row.version, row.content_hash, row.updated_at = req.status, version, req.content_hash, now
            session.add(
                RequirementVersion(
                    requirement=req.id,
                    version=version,
                    content_hash=req.content_hash,
                    content=jsonable(req.model_dump()),
                    diff=jsonable(change.model_dump()),
                    commit=commit,
                    run_id=run_id,
                    created_at=now,
                )
            )
            changes.append(change)
        for rid, (source, status, content) in before.items():
            if rid in seen or status == "removed" or source in problem_sources:
                continue
            change = diff(parse(content), None)
            row = session.get(RequirementRow, rid)
            assert row is not None
            row.status, row.version, row.updated_at = "removed", row.version + 1, now
            session.add(
                RequirementVersion(
                    requirement=rid,
                    version=row.version,
                    content_hash=row.content_hash,
                    content=content,
                    diff=jsonable(change.model_dump()),
                    commit=commit,
                    run_id=run_id,
                    created_at=now,
                )
            )
            changes.append(change)
    return changes


def version_history(engine: Engine) -> list[dict[str, Any]]:
    """Every stored version, oldest first: requirement, version, project, diff, created_at."""
    with session_scope(engine) as session:
        rows = session.execute(
            select(
                RequirementVersion.requirement,
                RequirementVersion.version,
                RequirementVersion.content,
                RequirementVersion.diff,
                RequirementVersion.created_at,
            ).order_by(RequirementVersion.created_at, RequirementVersion.id)
        ).all()
    return [{"requirement": r, "version": v, "content": c, "diff": d, "created_at": at} for r, v, c, d, at in rows]


def version_pair(
    engine: Engine, requirement: str, version: int | None = None
) -> tuple[dict[str, Any] | None, dict[str, Any], dict[str, Any], int] | None:
    """(content before, content after, diff, version) of ``version`` (default: the newest); None if unknown."""
    with session_scope(engine) as session:
        query = select(RequirementVersion).where(RequirementVersion.requirement == requirement)
        if version is not None:
            query = query.where(RequirementVersion.version == version)
        row = session.scalars(query.order_by(RequirementVersion.version.desc())).first()
        if row is None:
            return None
        before = session.scalars(
            select(RequirementVersion.content).where(
                RequirementVersion.requirement == requirement, RequirementVersion.version == row.version - 1
            )
        ).first()
        return before, row.content, row.diff, row.version


def current_links(engine: Engine) -> list[tuple[str, list[str], list[str]]]:
    """(id, tasks, components) of every requirement not removed, from its newest version."""
    return [
        (rid, list(content.get("tasks", [])), list(content.get("components", [])))
        for rid, (_source, status, content) in stored_contents(engine).items()
        if status != "removed"
    ]


def recent_releases(engine: Engine, since: datetime) -> tuple[dict[str, list[str]], list[str]]:
    """PLOS releases since ``since`` per app, and the ones still rolling out (running or paused)."""
    with session_scope(engine) as session:
        rows = session.execute(select(Release.app, Release.id, Release.status).where(Release.started_at >= since)).all()
    by_app: dict[str, list[str]] = {}
    for app, rid, _status in rows:
        by_app.setdefault(app, []).append(rid)
    return by_app, [rid for _app, rid, status in rows if status in ("running", "paused")]


def save_impact(
    engine: Engine,
    requirement: str,
    version: int,
    run_id: str | None,
    report: Any,
    decision: Any,
    status: str,
    scope: tuple[Sequence[Any], Sequence[str]] | None = None,
) -> None:
    """Store the impact of one version and the policy's decision (once per version: a re-run replaces it);
    ``scope`` (tasks to add, task keys to retire) enters the plan in the same transaction — an accepted change."""
    with session_scope(engine) as session:
        if scope is not None:
            adopt_scope(session, *scope)
        row = session.scalars(
            select(ChangeImpactRow).where(
                ChangeImpactRow.requirement == requirement, ChangeImpactRow.version == version
            )
        ).first()
        if row is None:
            row = ChangeImpactRow(requirement=requirement, version=version, action=decision.action, status=status)
            session.add(row)
        row.run_id, row.report, row.action = run_id, jsonable(report.model_dump()), decision.action
        row.reasons, row.status = list(decision.reasons), status


def impact_status(engine: Engine, requirement: str, version: int) -> str | None:
    """Where the change of one version stands (accepted, pending_approval, approved, …), None if never assessed."""
    with session_scope(engine) as session:
        return session.scalars(
            select(ChangeImpactRow.status).where(
                ChangeImpactRow.requirement == requirement, ChangeImpactRow.version == version
            )
        ).first()


def current_version(engine: Engine, requirement: str) -> int:
    """The requirement's newest version number (0 if it is not stored)."""
    with session_scope(engine) as session:
        row = session.get(RequirementRow, requirement)
        return row.version if row is not None else 0


def record_decision(
    engine: Engine,
    requirement: str,
    version: int,
    status: str,
    by: str,
    note: str,
    scope: tuple[Sequence[Any], Sequence[str]] | None = None,
) -> None:
    """Store who decided about a change that needed approval, and why; an approved change's ``scope`` (tasks
    to add, task keys to retire) enters the plan in the same transaction."""
    with session_scope(engine) as session:
        if scope is not None:
            adopt_scope(session, *scope)
        row = session.scalars(
            select(ChangeImpactRow).where(
                ChangeImpactRow.requirement == requirement, ChangeImpactRow.version == version
            )
        ).one()
        row.status, row.decided_by, row.decision_note, row.decided_at = status, by, note, utcnow()


def queue_messages(engine: Engine, messages: Sequence[Any]) -> list[int]:
    """Put messages (``stakeholders.Message``) in the outbox; their ids, in order."""
    with session_scope(engine) as session:
        rows = [
            StakeholderMessage(
                recipient=m.recipient,
                mode=m.mode,
                channel=m.channel,
                subject=m.subject,
                body=m.body,
                change_keys=list(m.change_keys),
            )
            for m in messages
        ]
        session.add_all(rows)
        session.flush()
        return [int(r.id) for r in rows if r.id is not None]


def queued_messages(
    engine: Engine, *, mode: str | None = None, due_at: datetime | None = None
) -> list[StakeholderMessage]:
    """Messages not sent yet, oldest first (optionally only one mode, or only those whose retry is due)."""
    with session_scope(engine) as session:
        query = select(StakeholderMessage).where(StakeholderMessage.status == "queued")
        if mode is not None:
            query = query.where(StakeholderMessage.mode == mode)
        rows = list(session.scalars(query.order_by(StakeholderMessage.id)))
    # Filtered here, not in SQL: SQLite keeps the times as text without their offset. The outbox is small.
    return [r for r in rows if due_at is None or r.next_attempt_at is None or as_utc(r.next_attempt_at) <= due_at]


def expire_messages(engine: Engine, created_before: datetime) -> list[StakeholderMessage]:
    """Give up on queued messages older than ``created_before``: marked expired (kept, with the last error)."""
    with session_scope(engine) as session:
        queued = session.scalars(select(StakeholderMessage).where(StakeholderMessage.status == "queued"))
        rows = [row for row in queued if as_utc(row.created_at) < created_before]
        for row in rows:
            row.status, row.next_attempt_at = "expired", None
        return rows


def withdraw_queued(engine: Engine, change: str) -> int:
    """Drop the unsent messages about one change (``stakeholders.change_key``): a decision superseded them, and
    a digest must not still ask for an approval that was given. Returns how many were dropped."""
    with session_scope(engine) as session:
        rows = [
            row
            for row in session.scalars(select(StakeholderMessage).where(StakeholderMessage.status == "queued"))
            if change in (row.change_keys or [])
        ]
        for row in rows:
            row.status, row.last_error = "withdrawn", "superseded by the decision"
        return len(rows)


def mark_delivery(
    engine: Engine,
    ids: Sequence[int],
    sent: bool,
    attempts: int,
    error: str | None,
    backoff: Callable[[int], Any] | None = None,
) -> None:
    """Record one delivery of the messages ``ids`` (a digest covers several): sent, or still queued with why and
    — given ``backoff`` (failed rounds so far → timedelta) — when to try again."""
    now = utcnow()
    with session_scope(engine) as session:
        for row in session.scalars(select(StakeholderMessage).where(StakeholderMessage.id.in_(list(ids)))):
            row.attempts += attempts
            row.last_error = None if sent else error
            if sent:
                row.status, row.sent_at, row.next_attempt_at = "sent", now, None
            else:
                row.failed_rounds += 1
                row.next_attempt_at = now + backoff(row.failed_rounds) if backoff is not None else None


def _last_substantive(session: Any, requirement: str) -> dict[str, Any] | None:
    """The content of the newest version of ``requirement`` that was not a cosmetic edit."""
    query = (
        select(RequirementVersion.content, RequirementVersion.diff)
        .where(RequirementVersion.requirement == requirement)
        .order_by(RequirementVersion.version.desc())
    )
    for content, diff in session.execute(query):
        if not (diff or {}).get("cosmetic"):
            return content
    return None


def scope_changes(engine: Engine, since: datetime) -> dict[str, list[dict[str, Any]]]:
    """Per project PCES tracks requirements for: the changes assessed since ``since`` — requirement, version,
    status, effort and P85 shift from the stored impact (an empty list: tracked, nothing changed)."""
    with session_scope(engine) as session:
        tracked = {p for p in session.scalars(select(RequirementRow.project).distinct()) if p}
        rows = session.execute(
            select(ChangeImpactRow, RequirementVersion.content)
            .join(
                RequirementVersion,
                (RequirementVersion.requirement == ChangeImpactRow.requirement)
                & (RequirementVersion.version == ChangeImpactRow.version),
            )
            .where(ChangeImpactRow.created_at >= since)
            .order_by(ChangeImpactRow.id)
        ).all()
        out: dict[str, list[dict[str, Any]]] = {p: [] for p in tracked}
        for impact, content in rows:
            project = (content or {}).get("project")
            if project in out:
                report = impact.report or {}
                out[project].append(
                    {
                        "requirement": impact.requirement,
                        "version": impact.version,
                        "status": impact.status,
                        "effort_days": float(report.get("effort_delta_days") or 0.0),
                        "p85_shift_days": report.get("p85_shift_days"),
                    }
                )
    return out
