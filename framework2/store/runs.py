"""Recording analysis runs and quarantined rows, and reading them back for health and explanations."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import PurePath
from typing import Any

import numpy as np
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Engine

from framework2.store.engine import session_scope
from framework2.store.models import AnalysisRun, QuarantinedRow, SystemHealth, utcnow


def as_utc(value: datetime | None) -> datetime | None:
    """In UTC: SQLite hands back naive datetimes (stored as UTC), PostgreSQL its session's time zone."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def jsonable(value: Any) -> Any:
    """Make numpy/pandas scalars and timestamps safe for a JSON column."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "model_dump"):
        return jsonable(value.model_dump(mode="json"))
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, PurePath):
        return str(value)
    return value


def start_run(
    engine: Engine,
    system: str,
    *,
    parameters: Mapping[str, Any] | None = None,
    flow_run_id: str | None = None,
    model_version: str = "",
) -> str:
    """Record that a run of ``system`` started; returns its id."""
    run_id = str(uuid.uuid4())
    with session_scope(engine) as session:
        session.add(
            AnalysisRun(
                id=run_id,
                system=system,
                flow_run_id=flow_run_id,
                parameters=jsonable(dict(parameters or {})),
                model_version=model_version,
            )
        )
    return run_id


def finish_run(
    engine: Engine,
    run_id: str,
    *,
    status: str,
    inputs: Mapping[str, Any] | None = None,
    outcome: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """Record how a run ended: its inputs' identity, what it concluded, how many rows were quarantined."""
    with session_scope(engine) as session:
        finish_in(session, run_id, status=status, inputs=inputs, outcome=outcome, error=error)


def finish_in(
    session: Any,
    run_id: str,
    *,
    status: str,
    inputs: Mapping[str, Any] | None = None,
    outcome: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """``finish_run`` inside a caller's transaction (so results and "completed" commit together)."""
    run = session.get(AnalysisRun, run_id)
    if run is None:
        raise KeyError(f"no analysis run {run_id}")
    run.status = status
    run.finished_at = utcnow()
    run.inputs = jsonable(dict(inputs or run.inputs))
    run.outcome = jsonable(dict(outcome or {}))
    run.error = None if error is None else storable(error)
    run.quarantined = quarantined_count(session, run_id)


def run_status(engine: Engine, run_id: str) -> str | None:
    """The stored status of one run (None if unknown)."""
    with session_scope(engine) as session:
        run = session.get(AnalysisRun, run_id)
        return run.status if run else None


# A rejected row keeps what a person needs to find and fix it; a 100 MB cell or a million-cell row does not
# go into the store whole: strings and lists are cut, then the whole payload is held to _ROW_CHARS of JSON
# (control characters take six each there), so a source adds at most a few MB per run.
_KEPT_CHARS = 500
_KEPT_ITEMS = 50
_ROW_CHARS = 2000
_DISTINCT_REASONS = 50
# The reason of the one row that stands for the rejected rows not kept one by one.
SUMMARY_LEAD = "not kept one by one: "


def storable(text: str) -> str:
    """``text`` as every backend can hold it: lone surrogates (from a JSON escape or a file name that is not
    UTF-8) and NUL kept visible as their escapes. Either one, raw, fails the insert and with it the run."""
    if text.isascii() and "\x00" not in text:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _clipped(value: Any) -> Any:
    if isinstance(value, str):
        text = value if len(value) <= _KEPT_CHARS else f"{value[:_KEPT_CHARS]}... ({len(value):,} characters, cut)"
        return storable(text)
    if isinstance(value, list) and len(value) > _KEPT_ITEMS:
        return [_clipped(v) for v in value[:_KEPT_ITEMS]] + [f"... ({len(value):,} items, cut)"]
    if isinstance(value, list):
        return [_clipped(v) for v in value]
    if isinstance(value, dict):
        items = list(value.items())
        kept = {storable(str(k)[:_KEPT_CHARS]): _clipped(v) for k, v in items[:_KEPT_ITEMS]}
        if len(items) > _KEPT_ITEMS:
            kept["..."] = f"{len(items):,} fields, cut"
        return kept
    return value


def _bounded(payload: Any) -> Any:
    text = json.dumps(payload, ensure_ascii=False, default=str)
    if len(text) <= _ROW_CHARS:
        return payload
    return {"cut": f"{text[:_ROW_CHARS]}... ({len(text):,} characters of JSON, cut)"}


def _rows_per_source() -> int:
    from framework2.config import get_settings  # the store is imported by config's users; keep the edge one-way

    return get_settings().store.quarantine_rows_per_source


def quarantine(
    engine: Engine,
    *,
    system: str,
    source: str,
    rows: Iterable[Mapping[str, Any]],
    run_id: str | None = None,
    reason_key: str = "reason",
    keep: int | None = None,
) -> int:
    """Keep rows that failed validation, each with its reason; returns how many rows failed.

    At most ``keep`` rows (default ``store.quarantine_rows_per_source``) are stored one by one, with long
    text and lists cut: a feed of millions of unknown SKUs would otherwise grow the store by gigabytes.
    The rest become one summary row counting them by reason, and ``finish_run`` counts them too.
    """
    limit = _rows_per_source() if keep is None else keep
    records = []
    extra = 0
    extra_reasons: dict[str, int] = {}
    for row in rows:
        reason = str(row.get(reason_key) or "unspecified")
        if len(records) < limit:
            payload = {k: v for k, v in row.items() if k != reason_key}
            records.append(
                {
                    "run_id": run_id,
                    "system": system,
                    "source": source,
                    "reason": _clipped(reason),
                    "payload": _bounded(_clipped(jsonable(payload))),
                    "created_at": utcnow(),
                }
            )
            continue
        extra += 1
        key = storable(reason[:_KEPT_CHARS])
        if key not in extra_reasons and len(extra_reasons) >= _DISTINCT_REASONS:
            key = "(other reasons)"
        extra_reasons[key] = extra_reasons.get(key, 0) + 1
    if extra:
        records.append(
            {
                "run_id": run_id,
                "system": system,
                "source": source,
                "reason": f"{SUMMARY_LEAD}{extra:,} more rows from {source} failed validation "
                f"(store.quarantineRowsPerSource = {limit:,}); the rows kept above show what is wrong",
                "payload": {"rows": extra, "reasons": extra_reasons},
                "created_at": utcnow(),
            }
        )
    if records:
        with session_scope(engine) as session:
            session.execute(insert(QuarantinedRow), records)
    return len(records) - (1 if extra else 0) + extra


def already_quarantined(
    engine: Engine, system: str, source: str, keys: Iterable[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Which (payload 'source', reason) pairs ``system`` already quarantined from ``source``: a file that stays
    broken is one problem, not a new row on every read."""
    wanted = set(keys)
    if not wanted:
        return set()
    with session_scope(engine) as session:
        rows = session.execute(
            select(QuarantinedRow.payload, QuarantinedRow.reason).where(
                QuarantinedRow.system == system, QuarantinedRow.source == source
            )
        ).all()
    return {(str((p or {}).get("source")), r) for p, r in rows} & wanted


def quarantined_count(session: Any, run_id: str) -> int:
    """Rows quarantined by one run, including those only counted in a summary row."""
    stored = session.scalar(select(func.count()).select_from(QuarantinedRow).where(QuarantinedRow.run_id == run_id))
    summaries = session.scalars(
        select(QuarantinedRow.payload).where(
            QuarantinedRow.run_id == run_id, QuarantinedRow.reason.startswith(SUMMARY_LEAD)
        )
    ).all()
    return int(stored or 0) + sum(int(p.get("rows", 1)) - 1 for p in summaries if isinstance(p, dict))


def recent_runs(engine: Engine, system: str, limit: int = 20) -> list[AnalysisRun]:
    """The newest ``limit`` runs of ``system``, newest first."""
    with session_scope(engine) as session:
        rows = session.scalars(
            select(AnalysisRun).where(AnalysisRun.system == system).order_by(AnalysisRun.started_at.desc()).limit(limit)
        ).all()
    for row in rows:
        row.started_at = as_utc(row.started_at)
        row.finished_at = as_utc(row.finished_at)
    return list(rows)


def run_for_flow_run(engine: Engine, flow_run_id: str) -> AnalysisRun | None:
    """The analysis run a Prefect flow run recorded (how PSO reads results from deployed runs)."""
    with session_scope(engine) as session:
        row = session.scalars(
            select(AnalysisRun).where(AnalysisRun.flow_run_id == flow_run_id).order_by(AnalysisRun.started_at.desc())
        ).first()
    return row


def latest_health(engine: Engine) -> dict[str, SystemHealth]:
    """The newest health score per system."""
    with session_scope(engine) as session:
        rows = session.scalars(select(SystemHealth).order_by(SystemHealth.measured_at.desc())).all()
    latest: dict[str, SystemHealth] = {}
    for row in rows:
        latest.setdefault(row.system, row)
    return latest


def add_system_health(session: Any, score: Any, orchestration_run_id: str | None = None) -> None:
    """Add one ``HealthScore`` as a row of the health time series to the caller's transaction."""
    session.add(
        SystemHealth(
            system=score.system,
            score=score.score,
            success_rate=score.success_rate,
            freshness=score.freshness,
            quality=score.quality,
            last_status=score.last_status,
            last_run_at=score.last_run_at,
            orchestration_run_id=orchestration_run_id,
            components=jsonable(score.components()),
        )
    )


def save_health(engine: Engine, score: Any, orchestration_run_id: str | None = None) -> None:
    """Store one ``HealthScore`` as a row of the health time series."""
    with session_scope(engine) as session:
        add_system_health(session, score, orchestration_run_id)


def record_failed_run(engine: Engine, system: str, flow_run_id: str | None, error: str) -> str:
    """Record a run that failed before the system could record itself (e.g. its flow would not load)."""
    run_id = start_run(engine, system, flow_run_id=flow_run_id)
    finish_run(engine, run_id, status="failed", error=error)
    return run_id
