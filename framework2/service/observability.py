"""Health and metrics for operators: liveness, readiness, per-system status and Prometheus metrics.

Routes (``router``, included by the service app):

- ``GET /health`` — liveness: ``{"status": "ok"}``, 200 whenever the process serves; it touches nothing.
- ``GET /health/ready`` — readiness: the store answers ``SELECT 1`` and the Prefect API answers ``/health``,
  each bounded by ``CHECK_TIMEOUT_SECONDS``; 200, or 503 naming what failed and why. Readiness is about the
  service's dependencies only: a failing pricing run must not take the webhook endpoint out of rotation.
- ``GET /health/systems`` — ``system_status`` for every system, the same rules as ``framework2 health``.
- ``GET /metrics`` — Prometheus text format 0.0.4 (metric names in ``store_metrics`` and ``record_webhook``).

Rules of ``system_status`` (shared by the endpoint, the metrics and the CLI):

- *Fresh* while the last successful run is at most ``FRESHNESS_FACTOR`` (2) × the system's expected interval
  old: a late or slow run is tolerated, a missed or failed scheduled run is not. (The health score's own
  freshness starts decaying at 1.5×; this is the cruder yes/no an alert needs.)
- *Never run*: no run recorded. Such a system is reported, not counted as unhealthy — it may simply not be
  deployed yet. The same holds for a system whose only runs were skipped (nothing configured).
- A system that has finished a run is *unhealthy* when its last finished run failed, it is stale, or its
  newest health score is below ``alerts.health_score_below``; any system is unhealthy when its newest run
  is still "running" past the system's time limit (a crash left behind).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from framework2.config import Settings
from framework2.store.engine import session_scope
from framework2.store.models import AnalysisRun, SystemHealth, WebhookDelivery, utcnow
from framework2.store.runs import as_utc
from framework2.systems import SYSTEMS, SystemSpec
from framework2.tasks.health import human_span

logger = logging.getLogger(__name__)

FRESHNESS_FACTOR = 2
CHECK_TIMEOUT_SECONDS = 2.0
# framework2_runs counts runs started in this window; a gauge, because a run moves from running to its end state.
RUN_COUNT_WINDOW = timedelta(hours=24)
RUN_STATES = ("running", "completed", "failed", "skipped")
FINISHED = ("completed", "failed")
WEBHOOK_OUTCOMES = (
    "accepted",
    "duplicate",
    "invalid",
    "unauthorised",
    "stale",
    "too_large",
    "rate_limited",
    "malformed",
    "ignored",
    "unavailable",
)

router = APIRouter(tags=["health"])

# Our own registry: /metrics shows exactly these metrics, whatever else (Prefect) registers globally.
REGISTRY = CollectorRegistry()
_WEBHOOKS = Counter(
    "framework2_webhooks",
    "Webhook requests handled by this process, by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
for _outcome in WEBHOOK_OUTCOMES:
    _WEBHOOKS.labels(outcome=_outcome)  # every outcome is exported from the start, at 0


def record_webhook(outcome: str) -> None:
    """Count one webhook request; ``outcome`` is one of ``WEBHOOK_OUTCOMES`` (anything else is a bug)."""
    if outcome not in WEBHOOK_OUTCOMES:
        raise ValueError(f"unknown webhook outcome {outcome!r}; expected one of {', '.join(WEBHOOK_OUTCOMES)}")
    _WEBHOOKS.labels(outcome=outcome).inc()


# --- per-system status -------------------------------------------------------------------------------


class SystemStatus(BaseModel):
    """One system as an operator sees it: its last run, success rate, freshness, health and verdict."""

    code: str
    title: str
    never_run: bool = Field(description="No run of this system is recorded (not counted as unhealthy).")
    last_run_at: datetime | None = Field(None, description="Start of the newest run.")
    last_state: str | None = Field(None, description="running | completed | failed | skipped; null if never run.")
    age_seconds: float | None = Field(None, description="Seconds since the newest run started.")
    success_rate: float | None = Field(
        None, description="Completed / (completed + failed) over the last success_window runs; null if none."
    )
    finished_in_window: int = Field(0, description="Completed or failed runs among the last success_window runs.")
    last_success_at: datetime | None = Field(None, description="When the newest completed run finished.")
    expected_interval_seconds: float
    stale_after_seconds: float = Field(description="FRESHNESS_FACTOR x the expected interval.")
    fresh: bool | None = Field(None, description="Last success within stale_after; null if no run has finished.")
    health_score: float | None = Field(None, description="Newest stored health score 0-100 (from PSO).")
    health_measured_at: datetime | None = None
    health_reasons: list[str] = Field(default_factory=list, description="Why the health score is below 100.")
    healthy: bool
    reasons: list[str] = Field(default_factory=list, description="Why the system is unhealthy (empty if healthy).")


@dataclass(frozen=True)
class _Run:
    """The columns of a stored run that status needs (tz-aware), without loading the rest of the row."""

    status: str
    started_at: datetime
    finished_at: datetime | None
    parameters: dict[str, Any]
    error: str | None = None

    @property
    def ended_at(self) -> datetime:
        return self.finished_at or self.started_at


def _span(delta: timedelta) -> str:
    return human_span(delta, spaced=True)


def _first_line(text: str | None, limit: int = 160) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else "no error recorded"
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _runs(session: Any, code: str, *, limit: int, statuses: Iterable[str] | None = None) -> list[_Run]:
    """The newest ``limit`` runs of one system, newest first: an indexed, bounded read whatever the store's size."""
    query = select(
        AnalysisRun.status,
        AnalysisRun.started_at,
        AnalysisRun.finished_at,
        AnalysisRun.parameters,
        AnalysisRun.error,
    ).where(AnalysisRun.system == code)
    if statuses is not None:
        query = query.where(AnalysisRun.status.in_(list(statuses)))
    rows = session.execute(query.order_by(AnalysisRun.started_at.desc()).limit(limit)).all()
    return [_Run(r.status, as_utc(r.started_at), as_utc(r.finished_at), r.parameters or {}, r.error) for r in rows]


def _newest(session: Any, code: str, statuses: Iterable[str]) -> _Run | None:
    found = _runs(session, code, limit=1, statuses=statuses)
    return found[0] if found else None


def system_status(engine: Engine, settings: Settings, now: datetime) -> list[SystemStatus]:
    """Status of every registered system at ``now``, in registry order (rules in the module docstring)."""
    with session_scope(engine) as session:
        return [_status_of(session, spec, settings, now) for spec in SYSTEMS.values()]


def _status_of(session: Any, spec: SystemSpec, settings: Settings, now: datetime) -> SystemStatus:
    """One system's status from at most four small indexed reads (the last runs, never the whole history)."""
    code = spec.code
    recent = _runs(session, code, limit=settings.coordination.success_window)
    finished = [r for r in recent if r.status in FINISHED]
    # The window may hold only skipped or running runs; the last finished one can then be older.
    last_finished = finished[0] if finished else _newest(session, code, FINISHED)
    if last_finished is not None and last_finished.status == "completed":
        last_success: _Run | None = last_finished
    else:
        last_success = _newest(session, code, ("completed",))
    health = session.scalars(
        select(SystemHealth).where(SystemHealth.system == code).order_by(SystemHealth.measured_at.desc()).limit(1)
    ).first()
    health_reasons = list((health.components or {}).get("reasons", [])) if health else []

    interval = spec.expected_interval(settings)
    stale_after = interval * FRESHNESS_FACTOR
    newest = recent[0] if recent else None
    fresh: bool | None = None
    reasons: list[str] = []
    if newest is not None and newest.status == "running" and not spec.in_progress(newest, settings, now):
        reasons.append(
            f"newest run started {_span(now - newest.started_at)} ago is still 'running' past its time limit (crashed?)"
        )
    if last_finished is not None:
        if last_finished.status == "failed":
            reasons.append(f"last run failed: {_first_line(last_finished.error)}")
        if last_success is None:
            fresh = False
            reasons.append("no successful run yet")
        else:
            age = now - last_success.ended_at
            fresh = age <= stale_after
            if not fresh:
                reasons.append(
                    f"stale: last success {_span(age)} ago, expected every {_span(interval)} "
                    f"(stale after {_span(stale_after)})"
                )
        threshold = settings.alerts.health_score_below
        if health is not None and health.score < threshold:
            why = f" ({'; '.join(health_reasons)})" if health_reasons else ""
            reasons.append(f"health {health.score:.1f} below {threshold:g}{why}")
    return SystemStatus(
        code=code,
        title=spec.title,
        never_run=newest is None,
        last_run_at=newest.started_at if newest else None,
        last_state=newest.status if newest else None,
        age_seconds=(now - newest.started_at).total_seconds() if newest else None,
        success_rate=sum(r.status == "completed" for r in finished) / len(finished) if finished else None,
        finished_in_window=len(finished),
        last_success_at=last_success.ended_at if last_success else None,
        expected_interval_seconds=interval.total_seconds(),
        stale_after_seconds=stale_after.total_seconds(),
        fresh=fresh,
        health_score=health.score if health else None,
        health_measured_at=as_utc(health.measured_at) if health else None,
        health_reasons=health_reasons,
        healthy=not reasons,
        reasons=reasons,
    )


# --- metrics -----------------------------------------------------------------------------------------


def store_metrics(engine: Engine, settings: Settings, now: datetime) -> list[Metric]:
    """The store-derived metric families: system health, freshness, runs by state and the webhook outbox."""
    statuses = system_status(engine, settings, now)
    score = GaugeMetricFamily(
        "framework2_system_health_score", "Newest health score (0-100) per system, from PSO.", labels=["system"]
    )
    last_success = GaugeMetricFamily(
        "framework2_last_success_timestamp_seconds",
        "Unix time the newest completed run of the system finished.",
        labels=["system"],
    )
    fresh = GaugeMetricFamily(
        "framework2_system_fresh",
        f"1 if the last success is within {FRESHNESS_FACTOR}x the expected interval, else 0 (systems that ran).",
        labels=["system"],
    )
    healthy = GaugeMetricFamily(
        "framework2_system_healthy",
        "1 if the system is healthy (framework2 health's rules), else 0 (systems that ran).",
        labels=["system"],
    )
    for status in statuses:
        # A series is left out when its value is unknown (never ran, never scored): absent means "no data".
        if status.health_score is not None:
            score.add_metric([status.code], status.health_score)
        if status.last_success_at is not None:
            last_success.add_metric([status.code], status.last_success_at.timestamp())
        if status.fresh is not None:
            fresh.add_metric([status.code], 1.0 if status.fresh else 0.0)
        if not status.never_run:
            healthy.add_metric([status.code], 1.0 if status.healthy else 0.0)

    hours = RUN_COUNT_WINDOW.total_seconds() / 3600
    runs = GaugeMetricFamily(
        "framework2_runs", f"Runs started in the last {hours:g} h, by system and state.", labels=["system", "state"]
    )
    since = now - RUN_COUNT_WINDOW
    with session_scope(engine) as session:
        counts = {
            (system, state): n
            for system, state, n in session.execute(
                select(AnalysisRun.system, AnalysisRun.status, func.count())
                .where(AnalysisRun.started_at >= since)
                .group_by(AnalysisRun.system, AnalysisRun.status)
            ).all()
        }
        queued, oldest = session.execute(
            select(func.count(), func.min(WebhookDelivery.received_at)).where(WebhookDelivery.status == "queued")
        ).one()
    # Every known system and state is exported (zeros included) so a rate or an alert never sees a gap.
    for key in sorted({(code, state) for code in SYSTEMS for state in RUN_STATES} | set(counts)):
        runs.add_metric(list(key), counts.get(key, 0))

    backlog = GaugeMetricFamily("framework2_webhook_outbox_queued", "Accepted webhooks not yet handed to Prefect.")
    backlog.add_metric([], queued)
    oldest_age = GaugeMetricFamily(
        "framework2_webhook_outbox_oldest_age_seconds", "Age of the oldest queued webhook (0 when none is queued)."
    )
    oldest_age.add_metric([], max(0.0, (now - as_utc(oldest)).total_seconds()) if oldest else 0.0)
    return [score, last_success, fresh, healthy, runs, backlog, oldest_age]


class _StoreCollector(Collector):
    """Reads the store on every scrape; a store that does not answer gives ``framework2_store_up 0``."""

    def collect(self) -> Iterable[Metric]:
        from framework2.config import get_settings
        from framework2.store.engine import open_store

        up = GaugeMetricFamily("framework2_store_up", "1 if the store answered this scrape, else 0.")
        try:
            settings = get_settings()
            families = store_metrics(open_store(settings, migrate=False), settings, utcnow())
        except Exception as exc:  # any failure: the process metrics must still be served, and say why not these
            logger.warning("metrics: cannot read the store: %s", exc)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        yield from families


REGISTRY.register(_StoreCollector())


# --- readiness ---------------------------------------------------------------------------------------


class CheckResult(BaseModel):
    """One readiness check: whether it passed, how long it took, and what was seen."""

    ok: bool
    latency_ms: float
    detail: str


class Readiness(BaseModel):
    status: str = Field(description="ready | not ready")
    failed: list[str] = Field(default_factory=list, description="Names of the checks that failed.")
    checks: dict[str, CheckResult]


async def _timed(name: str, check: Callable[[], Awaitable[str]], timeout: float) -> CheckResult:
    """Run one check under a hard deadline; any exception or the timeout is a failed check with its reason.

    The probe answers anyone who can reach the port, so what it returns names no URL, path or host: the full
    reason goes to the service log, the answer says what kind of failure it was."""
    started = time.perf_counter()
    try:
        public = await asyncio.wait_for(check(), timeout)
        ok = True
    except TimeoutError:
        ok, public = False, f"no answer within {timeout:g} s"
        logger.warning("readiness: the %s gave no answer within %g s", name, timeout)
    except Exception as exc:  # a readiness probe reports every failure; it never raises
        ok, public = False, f"cannot reach the {name}: {type(exc).__name__} (the service log has the details)"
        logger.warning("readiness: the %s failed: %s: %s", name, type(exc).__name__, exc)
    return CheckResult(ok=ok, latency_ms=round((time.perf_counter() - started) * 1000, 1), detail=public)


def _store_select_1(settings: Settings | None) -> str:
    from framework2.config import get_settings
    from framework2.store.engine import open_store

    # open_store runs SELECT 1 (check_connection); no migration, a probe must not change the schema.
    engine = open_store(settings or get_settings(), migrate=False)
    return f"SELECT 1 answered by {engine.dialect.name}"


async def readiness(
    settings: Settings | None = None,
    prefect_api_url: str | None = None,
    timeout: float = CHECK_TIMEOUT_SECONDS,
) -> Readiness:
    """Check the store and the Prefect API concurrently, each within ``timeout`` seconds.

    ``prefect_api_url`` defaults to Prefect's ``PREFECT_API_URL``; without one the check fails, since the
    service hands webhooks to a Prefect server. A timed-out store check leaves its thread to the driver's own
    connect timeout (5 s for PostgreSQL); the answer does not wait for it.
    """
    if prefect_api_url is None:
        from prefect.settings import PREFECT_API_URL

        prefect_api_url = PREFECT_API_URL.value()

    async def store() -> str:
        return await asyncio.to_thread(_store_select_1, settings)

    async def prefect() -> str:
        if not prefect_api_url:
            raise RuntimeError("PREFECT_API_URL is not set; the service needs a Prefect server")
        url = f"{str(prefect_api_url).rstrip('/')}/health"
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
        return "the Prefect API's /health answered 200"

    results = await asyncio.gather(_timed("store", store, timeout), _timed("Prefect API", prefect, timeout))
    checks = dict(zip(("store", "prefect"), results, strict=True))
    failed = [name for name, result in checks.items() if not result.ok]
    return Readiness(status="not ready" if failed else "ready", failed=failed, checks=checks)


# --- routes ------------------------------------------------------------------------------------------


class Liveness(BaseModel):
    status: str = "ok"


class StoreUnavailable(BaseModel):
    status: str = "store unavailable"
    error: str


class SystemsReport(BaseModel):
    healthy: bool = Field(description="No system that has run is unhealthy.")
    unhealthy: list[str]
    never_run: list[str]
    systems: list[SystemStatus]


@router.get("/health", response_model=Liveness, summary="Liveness: the process serves")
async def health() -> Liveness:
    """200 while the process serves; checks nothing else (that is /health/ready)."""
    return Liveness()


@router.get(
    "/health/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A dependency failed; `failed` names it."}},
    summary="Readiness: the store and the Prefect API answer",
)
async def ready() -> JSONResponse:
    """200 when the store and the Prefect API answer within 2 s each, else 503 with what failed and why."""
    report = await readiness()
    return JSONResponse(report.model_dump(mode="json"), status_code=503 if report.failed else 200)


@router.get(
    "/health/systems",
    response_model=SystemsReport,
    responses={503: {"model": StoreUnavailable, "description": "The store did not answer."}},
    summary="Per-system status, as `framework2 health` prints it",
)
def systems() -> Any:
    """Every system's last run, success rate, freshness, health score and verdict (200 whatever the verdict)."""
    from framework2.config import get_settings
    from framework2.errors import Framework2Error
    from framework2.store.engine import open_store

    try:
        settings = get_settings()
        statuses = system_status(open_store(settings, migrate=False), settings, utcnow())
    except (Framework2Error, SQLAlchemyError) as exc:  # unreachable, or a schema `framework2 init` has not made
        return JSONResponse(StoreUnavailable(error=str(exc)).model_dump(), status_code=503)
    return SystemsReport(
        healthy=all(s.healthy for s in statuses),
        unhealthy=[s.code for s in statuses if not s.healthy],
        never_run=[s.code for s in statuses if s.never_run],
        systems=statuses,
    )


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics (text format 0.0.4)")
def metrics() -> PlainTextResponse:
    """Process counters and store-derived gauges in the Prometheus text exposition format."""
    return PlainTextResponse(content=generate_latest(REGISTRY), media_type=CONTENT_TYPE_PLAIN_0_0_4)
