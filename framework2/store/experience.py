"""PUXT store I/O: experiment analyses and where each recommendation stands, journey reports, accessibility
scans with their violations, real-user measurements (each file once) and performance findings.

Each writer commits one run's results in one transaction: a failure half way leaves the previous run's
results as they were, never a half-written report.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Engine

from framework2.store.engine import session_scope
from framework2.store.models import (
    UxA11yScan,
    UxA11yViolation,
    UxExperiment,
    UxExperimentResult,
    UxJourneyReport,
    UxPerfResult,
    UxRumBatch,
    UxRumMeasurement,
    utcnow,
)
from framework2.store.runs import as_utc, jsonable

# --- experiments ------------------------------------------------------------------------------------------


def experiment_decisions(engine: Engine) -> dict[str, str | None]:
    """Each stored experiment's current recommendation (None before its first analysis)."""
    with session_scope(engine) as session:
        return {e.key: e.decision for e in session.scalars(select(UxExperiment))}


def save_experiment_results(engine: Engine, run_id: str, results: Sequence[Mapping[str, Any]]) -> None:
    """Store one run's analyses and move each experiment's current recommendation to the new one.

    Each result: ``spec`` (the ExperimentSpec as a dict), ``users``, ``srm_p_value``, ``srm_flagged``,
    ``decision``, ``reason``, ``decisive``, ``guardrails_breached``, ``analysis`` (the whole analysis).
    """
    now = utcnow()
    with session_scope(engine) as session:
        for r in results:
            spec = jsonable(r["spec"])
            key = spec["key"]
            row = session.get(UxExperiment, key) or UxExperiment(key=key)
            row.name, row.spec, row.decision, row.updated_at = spec.get("name") or key, spec, r["decision"], now
            session.add(row)
            session.add(
                UxExperimentResult(
                    run_id=run_id,
                    experiment=key,
                    users=jsonable(r["users"]),
                    srm_p_value=r.get("srm_p_value"),
                    srm_flagged=bool(r.get("srm_flagged")),
                    decision=r["decision"],
                    reason=r.get("reason", ""),
                    decisive=bool(r.get("decisive")),
                    guardrails_breached=jsonable(list(r.get("guardrails_breached", []))),
                    analysis=jsonable(r["analysis"]),
                    created_at=now,
                )
            )


def latest_experiment_results(engine: Engine) -> list[dict[str, Any]]:
    """The newest analysis of every experiment, as dicts of its columns."""
    with session_scope(engine) as session:
        newest = (
            select(UxExperimentResult.experiment, func.max(UxExperimentResult.id).label("id"))
            .group_by(UxExperimentResult.experiment)
            .subquery()
        )
        rows = session.scalars(select(UxExperimentResult).join(newest, UxExperimentResult.id == newest.c.id)).all()
        return [r.model_dump() for r in sorted(rows, key=lambda r: r.experiment)]


def experiment_history(engine: Engine, key: str, limit: int = 200) -> list[tuple[datetime, dict[str, Any]]]:
    """The stored analyses of one experiment, oldest first (at most the newest ``limit``)."""
    with session_scope(engine) as session:
        rows = session.execute(
            select(UxExperimentResult.created_at, UxExperimentResult.analysis)
            .where(UxExperimentResult.experiment == key)
            .order_by(UxExperimentResult.id.desc())
            .limit(limit)
        ).all()
    return [(as_utc(at), analysis) for at, analysis in reversed(rows)]  # type: ignore[misc]


# --- journeys ---------------------------------------------------------------------------------------------


def save_journey_report(engine: Engine, run_id: str, name: str, report: Mapping[str, Any]) -> None:
    """Store one funnel's analysis: ``funnel``, ``paths``, ``removal`` and ``recommendations``."""
    with session_scope(engine) as session:
        session.add(
            UxJourneyReport(
                run_id=run_id,
                name=name,
                funnel=jsonable(report["funnel"]),
                paths=jsonable(report["paths"]),
                removal=jsonable(report["removal"]),
                recommendations=jsonable(list(report["recommendations"])),
            )
        )


def latest_journey_reports(engine: Engine) -> list[dict[str, Any]]:
    """The newest report of every named journey."""
    with session_scope(engine) as session:
        newest = (
            select(UxJourneyReport.name, func.max(UxJourneyReport.id).label("id"))
            .group_by(UxJourneyReport.name)
            .subquery()
        )
        rows = session.scalars(select(UxJourneyReport).join(newest, UxJourneyReport.id == newest.c.id)).all()
        return [r.model_dump() for r in sorted(rows, key=lambda r: r.name)]


# --- accessibility ----------------------------------------------------------------------------------------


def save_scans(engine: Engine, run_id: str, scans: Iterable[Mapping[str, Any]]) -> int:
    """Store one run's page scans with their violations; returns how many pages were stored.

    Each scan: ``url``, ``level``, ``status``, ``error``, ``http_status``, ``axe_version``, ``scanned_at`` and
    ``violations`` (each ``rule_id``, ``impact``, ``nodes``, ``description``, ``help_url``, ``targets``,
    ``wcag_tags``).
    """
    count = 0
    with session_scope(engine) as session:
        for scan in scans:
            violations = list(scan.get("violations") or [])
            by_impact: dict[str, int] = {}
            for v in violations:
                by_impact[v.get("impact") or "unknown"] = by_impact.get(v.get("impact") or "unknown", 0) + 1
            row = UxA11yScan(
                run_id=run_id,
                url=scan["url"],
                level=scan["level"],
                status=scan["status"],
                error=scan.get("error"),
                http_status=scan.get("http_status"),
                axe_version=scan.get("axe_version") or "",
                violations=len(violations),
                by_impact=by_impact,
                scanned_at=scan.get("scanned_at") or utcnow(),
            )
            session.add(row)
            session.flush()  # the violations need the scan's id
            for v in violations:
                session.add(
                    UxA11yViolation(
                        scan_id=row.id,
                        rule_id=v["rule_id"],
                        impact=v.get("impact"),
                        nodes=int(v.get("nodes") or 0),
                        description=v.get("description") or "",
                        help_url=v.get("help_url") or "",
                        targets=jsonable(list(v.get("targets") or [])),
                        wcag=jsonable(list(v.get("wcag_tags") or [])),
                    )
                )
            count += 1
    return count


def _scan_dict(scan: UxA11yScan, violations: Sequence[UxA11yViolation]) -> dict[str, Any]:
    return {
        "url": scan.url,
        "level": scan.level,
        "status": scan.status,
        "error": scan.error,
        "http_status": scan.http_status,
        "axe_version": scan.axe_version,
        "scanned_at": as_utc(scan.scanned_at),
        "violations": [
            {
                "rule_id": v.rule_id,
                "impact": v.impact,
                "nodes": v.nodes,
                "description": v.description,
                "help_url": v.help_url,
                "targets": v.targets,
                "wcag_tags": v.wcag,
            }
            for v in violations
        ],
    }


def scan_history(engine: Engine, since: datetime | None = None) -> list[tuple[datetime, list[dict[str, Any]]]]:
    """Every stored scan run (oldest first) as (when, its page scans with violations)."""
    with session_scope(engine) as session:
        query = select(UxA11yScan).order_by(UxA11yScan.id)
        if since is not None:
            query = query.where(UxA11yScan.scanned_at >= since)
        scans = session.scalars(query).all()
        violations: dict[int, list[UxA11yViolation]] = {}
        if scans:
            for v in session.scalars(select(UxA11yViolation).where(UxA11yViolation.scan_id.in_([s.id for s in scans]))):
                violations.setdefault(v.scan_id, []).append(v)
        runs: dict[str, tuple[datetime, list[dict[str, Any]]]] = {}
        for s in scans:
            at, pages = runs.setdefault(s.run_id, (as_utc(s.scanned_at), []))  # type: ignore[arg-type]
            pages.append(_scan_dict(s, violations.get(s.id or 0, [])))
            runs[s.run_id] = (min(at, as_utc(s.scanned_at)), pages)  # type: ignore[type-var]
        return sorted(runs.values(), key=lambda item: item[0])


def latest_scans(engine: Engine, urls: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The newest stored scan of each page (of ``urls`` when given), with its violations."""
    with session_scope(engine) as session:
        newest = select(UxA11yScan.url, func.max(UxA11yScan.id).label("id")).group_by(UxA11yScan.url)
        if urls is not None:
            newest = newest.where(UxA11yScan.url.in_(list(urls)))
        sub = newest.subquery()
        scans = session.scalars(select(UxA11yScan).join(sub, UxA11yScan.id == sub.c.id)).all()
        out = []
        for s in sorted(scans, key=lambda s: s.url):
            rows = session.scalars(select(UxA11yViolation).where(UxA11yViolation.scan_id == s.id)).all()
            out.append(_scan_dict(s, rows))
        return out


# --- performance ------------------------------------------------------------------------------------------


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes: the identity a measurement file is ingested under."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def rum_batch_known(engine: Engine, sha256: str) -> bool:
    """Whether a measurement file with this content was ingested before."""
    with session_scope(engine) as session:
        return session.get(UxRumBatch, sha256) is not None


def ingest_rum(engine: Engine, sha256: str, source: str, measurements: pd.DataFrame, run_id: str | None) -> int:
    """Store a file's valid measurements (columns page, release, metric, value, timestamp) under its digest,
    all or nothing; a file already ingested adds nothing. Returns the rows added."""
    with session_scope(engine) as session:
        if session.get(UxRumBatch, sha256) is not None:
            return 0
        session.add(UxRumBatch(sha256=sha256, source=source[:500], rows=len(measurements), run_id=run_id))
        session.flush()
        rows = pd.DataFrame(
            {
                "batch": sha256,
                "page": measurements["page"].astype(str),
                "release": measurements["release"].astype(str),
                "metric": measurements["metric"].astype(str),
                "value": measurements["value"].astype(float),
                # The store keeps microseconds; finer parts of a browser timestamp carry nothing.
                "measured_at": pd.to_datetime(measurements["timestamp"], utc=True).dt.floor("us"),
            }
        )
        session.execute(insert(UxRumMeasurement), rows.to_dict("records"))
    return len(measurements)


def rum_measurements(engine: Engine, releases: Sequence[str] | None = None) -> pd.DataFrame:
    """Stored measurements (of ``releases`` when given) as page, release, metric, value, timestamp."""
    query = select(
        UxRumMeasurement.page,
        UxRumMeasurement.release,
        UxRumMeasurement.metric,
        UxRumMeasurement.value,
        UxRumMeasurement.measured_at.label("timestamp"),
    )
    if releases is not None:
        query = query.where(UxRumMeasurement.release.in_(list(releases)))
    with engine.connect() as connection:
        frame = pd.read_sql(query, connection)
    if not frame.empty:
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame


def releases_by_recency(engine: Engine) -> list[str]:
    """Releases with measurements, newest first (by their first measurement)."""
    with session_scope(engine) as session:
        rows = session.execute(
            select(UxRumMeasurement.release, func.min(UxRumMeasurement.measured_at).label("first"))
            .group_by(UxRumMeasurement.release)
            .order_by(func.min(UxRumMeasurement.measured_at).desc())
        ).all()
        return [r.release for r in rows]


def save_perf_results(engine: Engine, run_id: str, results: Iterable[Mapping[str, Any]]) -> None:
    """Store one run's probes and comparisons (each: kind, target, metric, release, baseline, verdict, value,
    details)."""
    with session_scope(engine) as session:
        for r in results:
            session.add(
                UxPerfResult(
                    run_id=run_id,
                    kind=r["kind"],
                    target=r["target"],
                    metric=r.get("metric", ""),
                    release=r.get("release"),
                    baseline=r.get("baseline"),
                    verdict=r["verdict"],
                    value=r.get("value"),
                    details=jsonable(r.get("details", {})),
                )
            )


def latest_perf_results(engine: Engine) -> list[dict[str, Any]]:
    """The findings of the newest run that stored any."""
    with session_scope(engine) as session:
        last = session.scalars(select(UxPerfResult.run_id).order_by(UxPerfResult.id.desc()).limit(1)).first()
        if last is None:
            return []
        rows = session.scalars(select(UxPerfResult).where(UxPerfResult.run_id == last).order_by(UxPerfResult.id))
        return [r.model_dump() for r in rows]
