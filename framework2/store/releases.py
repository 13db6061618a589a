"""PLOS release records: written as a release goes, read back as history for the success prediction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine

from framework2.store.engine import session_scope
from framework2.store.models import Release, utcnow
from framework2.store.runs import as_utc, jsonable
from framework2.tasks.launch.prediction import HISTORY_COLUMNS

# A release counts as a success when it was promoted and kept; these end it.
FINAL = {"promoted": True, "rolled_back": False, "failed": False, "aborted": False}


def save_release(engine: Engine, release: Release) -> Release:
    """Insert or update one release record."""
    with session_scope(engine) as session:
        merged = session.merge(release)
        session.flush()
        session.expunge(merged)
        return merged


def update_release(engine: Engine, release_id: str, **changes: Any) -> None:
    """Change fields of a stored release (JSON fields are merged, not replaced)."""
    with session_scope(engine) as session:
        row = session.get(Release, release_id)
        if row is None:
            return
        for key, value in changes.items():
            if key in ("evidence", "features") and isinstance(value, Mapping):
                value = {**getattr(row, key), **jsonable(dict(value))}
            setattr(row, key, value)
        if changes.get("status") in FINAL:
            row.finished_at = row.finished_at or utcnow()
            row.succeeded = FINAL[changes["status"]]


def get_release(engine: Engine, release_id: str) -> Release | None:
    with session_scope(engine) as session:
        row = session.get(Release, release_id)
        if row is not None:
            session.expunge(row)
        return row


def recent_releases(engine: Engine, app: str | None = None, limit: int = 20) -> list[Release]:
    """Newest first."""
    with session_scope(engine) as session:
        query = select(Release).order_by(Release.started_at.desc()).limit(limit)
        if app is not None:
            query = query.where(Release.app == app)
        rows = list(session.scalars(query))
        for row in rows:
            session.expunge(row)
        return rows


def release_history(engine: Engine) -> pd.DataFrame:
    """Finished releases as the launch-success model's training table (see tasks/launch/prediction.py)."""
    with session_scope(engine) as session:
        rows = session.scalars(select(Release).where(Release.succeeded.is_not(None))).all()
        records = [
            {
                **{k: r.features.get(k) for k in HISTORY_COLUMNS},
                "app": r.app,
                "started_at": as_utc(r.started_at),
                "succeeded": bool(r.succeeded),
            }
            for r in rows
        ]
    frame = pd.DataFrame.from_records(records, columns=HISTORY_COLUMNS)
    if not frame.empty:
        frame["started_at"] = pd.to_datetime(frame["started_at"], utc=True)
    return frame
