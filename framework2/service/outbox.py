"""The webhook outbox and its relay to Prefect: why each accepted webhook becomes exactly one Prefect event.

1. **Stored before acknowledged.** The service writes the webhook to ``webhook_delivery`` and commits before it
   answers 202; a crash before the commit means no 202, so the sender retries. Nothing acknowledged is lost.
2. **One row per delivery.** ``(source, delivery_id)`` is unique. A sender's retry or redelivery carries the same
   delivery id, the insert conflicts, and the existing row is answered (``"duplicate": true``).
3. **One event id per row.** The Prefect event id is ``uuid5(namespace, source + delivery_id)``
   (``webhooks.event_id``): whoever sends a delivery, however often, it is the same id.
4. **Delivered at least once.** The relay marks a row ``delivered`` only after ``POST /api/events`` answered
   204. A timeout or a lost answer leaves it ``queued`` (``attempts`` + 1, ``last_error``) and it is sent again.
5. **Acted on at most once.** The Prefect server drops a repeated event id: its message broker skips an id it
   published in the last 5 minutes (``create_event_publisher(deduplicate_by="id")``), the event persister
   inserts an id only if it is not already stored (SQLite: ``SELECT`` first; PostgreSQL: ``ON CONFLICT DO
   NOTHING``), and the trigger evaluator skips ids it saw in the last 30 minutes
   (``ordering.event_has_been_seen``). A re-send happens within one relay interval of the first attempt, well
   inside those windows, so the events table holds the id once and a deployment trigger fires once.

Together: at-least-once delivery on our side, de-duplication by id on Prefect's side, i.e. exactly one event.

What the 204 confirms: the server has taken the events into its pipeline. With the default in-memory broker,
a server crash in the few seconds before the persister's flush can still lose them; a durable broker
(prefect-redis) closes that window. The REST endpoint is used instead of ``emit_event`` because the websocket
client is fire-and-forget (it buffers and drops on failure, and never tells the caller).

The event's ``occurred`` is the moment the relay hands it over, not when the webhook arrived (that is
``payload.received_at``): Prefect's trigger evaluator ignores an event older than the bucket a reactive trigger
opened after its last firing, so a webhook that waited in the outbox while Prefect was down would otherwise
start nothing.

Rows go to Prefect oldest first, one event per row, in one POST per batch. If the API cannot be reached or
fails, every row of the batch stays queued with the error and the relay stops for this round (the API is
probably down; the loop backs off). If Prefect refuses the batch as invalid (422), the rows are sent one at a
time so a refused row (which validation on the way in should prevent) does not hold back the others.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from framework2.errors import ConfigError
from framework2.events import event_name, system_resource
from framework2.service.webhooks import event_id
from framework2.store.engine import session_scope
from framework2.store.models import WebhookDelivery, utcnow
from framework2.store.runs import jsonable

logger = logging.getLogger("framework2.webhooks.relay")

MAX_BACKOFF_SECONDS = 60.0
# A provider webhook understood but not acted on: kept (never relayed) so its signed bytes cannot be replayed
# later under another event type.
IGNORED = "ignored"


_SQLITE_WRITES = threading.Lock()


def _write_turn(engine: Engine) -> contextlib.AbstractContextManager[Any]:
    """On SQLite, one writer at a time in this process: its busy handler makes concurrent writers sleep in growing
    steps, which put a p99 of ~1 s on the webhook answer under load; a lock queues them fairly instead."""
    return _SQLITE_WRITES if engine.dialect.name == "sqlite" else contextlib.nullcontext()


def enqueue(
    engine: Engine,
    *,
    source: str,
    delivery_id: str,
    system: str,
    event: str,
    payload: dict[str, Any],
    fingerprint: str | None = None,
    status: str = "queued",
) -> tuple[WebhookDelivery, bool]:
    """Store a webhook (committed) unless its delivery id or its signature's ``fingerprint`` is known; return the
    row and whether it is new. The store remembers both for as long as it keeps the row, across restarts and
    replicas: a captured request re-sent under a new delivery id is the first delivery again."""
    row = WebhookDelivery(
        source=source,
        delivery_id=delivery_id,
        fingerprint=fingerprint,
        status=status,
        event_id=event_id(source, delivery_id),
        system=system,
        event=event,
        payload=jsonable(payload),
    )
    try:
        with _write_turn(engine), session_scope(engine) as session:
            session.add(row)
        return row, True
    except IntegrityError:
        # The insert is the check: one statement in the common case, and correct when two copies race.
        existing = find(engine, source, delivery_id)
        if existing is None and fingerprint is not None:
            existing = find_fingerprint(engine, source, fingerprint)
        if existing is None:
            raise  # some other constraint failed
        return existing, False


def find(engine: Engine, source: str, delivery_id: str) -> WebhookDelivery | None:
    """The stored delivery ``delivery_id`` of ``source``, if any."""
    with Session(engine, expire_on_commit=False) as session:
        return session.exec(
            select(WebhookDelivery).where(WebhookDelivery.source == source, WebhookDelivery.delivery_id == delivery_id)
        ).first()


def find_fingerprint(engine: Engine, source: str, fingerprint: str) -> WebhookDelivery | None:
    """The stored delivery of ``source`` whose signature had ``fingerprint``, if any."""
    with Session(engine, expire_on_commit=False) as session:
        return session.exec(
            select(WebhookDelivery).where(WebhookDelivery.source == source, WebhookDelivery.fingerprint == fingerprint)
        ).first()


def queued(engine: Engine, limit: int = 100) -> list[WebhookDelivery]:
    """Queued deliveries, oldest first."""
    with Session(engine, expire_on_commit=False) as session:
        return list(
            session.exec(
                select(WebhookDelivery)
                .where(WebhookDelivery.status == "queued")
                .order_by(WebhookDelivery.received_at, WebhookDelivery.id)
                .limit(limit)
            )
        )


def queue_depth(engine: Engine) -> int:
    """How many deliveries wait for the relay (a metric: it grows while Prefect is unreachable)."""
    with Session(engine) as session:
        return int(
            session.exec(
                select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.status == "queued")
            ).one()
        )


def _utc(moment: datetime) -> datetime:
    # SQLite hands timestamps back without a zone; the store writes UTC everywhere.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def to_prefect_event(row: WebhookDelivery, occurred: datetime) -> dict[str, Any]:
    """The Prefect event a delivery becomes (its id is the row's deterministic event id)."""
    return {
        "id": row.event_id,
        "occurred": occurred.isoformat(),
        "event": event_name(row.system, row.event),
        "resource": system_resource(row.system),
        "related": [],
        "payload": {
            **row.payload,
            "delivery": row.delivery_id,
            "source": row.source,
            "received_at": _utc(row.received_at).isoformat(),
        },
    }


def prefect_api_client(api_url: str | None = None, *, timeout: float = 10.0) -> httpx.Client:
    """An httpx client for the Prefect REST API, authenticated as Prefect's own client would be."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    url = api_url or settings.api.url
    if not url:
        raise ConfigError(
            "PREFECT_API_URL is not set: the webhook relay has nowhere to send events",
            hint="set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api) for the webhook service",
        )
    headers = {"Content-Type": "application/json"}
    if settings.api.key is not None:
        headers["Authorization"] = f"Bearer {settings.api.key.get_secret_value()}"
    elif settings.api.auth_string is not None:
        token = base64.b64encode(settings.api.auth_string.get_secret_value().encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    return httpx.Client(base_url=url.rstrip("/") + "/", headers=headers, timeout=timeout)


@dataclass(frozen=True)
class RelayResult:
    """What one relay round did; ``error`` is the last failure's reason."""

    delivered: int
    failed: int
    error: str | None = None


def _post(client: httpx.Client, events: list[dict[str, Any]]) -> tuple[str, str | None]:
    """("ok" | "rejected" | "failed", reason) of handing ``events`` to Prefect."""
    try:
        # ensure_ascii: the body is plain ASCII whatever the payload holds (no encoding surprises on the way).
        response = client.post("events", content=json.dumps(events, ensure_ascii=True).encode())
    except httpx.HTTPError as exc:
        return "failed", f"Prefect API unreachable: {type(exc).__name__}: {exc}"
    if response.status_code in (200, 201, 202, 204):
        return "ok", None
    reason = f"Prefect API answered {response.status_code}: {response.text[:500]}"
    return ("rejected" if response.status_code == 422 else "failed"), reason


def _mark(engine: Engine, ids: list[int], *, delivered: bool, error: str | None = None) -> None:
    values: dict[str, Any] = {"attempts": WebhookDelivery.attempts + 1}
    if delivered:
        values |= {"status": "delivered", "delivered_at": utcnow()}
    else:
        values["last_error"] = (error or "unknown error")[:2000]
    with _write_turn(engine), session_scope(engine) as session:
        session.exec(  # type: ignore[call-overload]
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(ids), WebhookDelivery.status == "queued")  # type: ignore[union-attr]
            .values(**values)
        )


def relay_once(engine: Engine, api: str | httpx.Client | None = None, batch: int = 100) -> RelayResult:
    """Hand up to ``batch`` queued deliveries to Prefect, oldest first; mark delivered only what it accepted."""
    rows = queued(engine, batch)
    if not rows:
        return RelayResult(0, 0)
    client = api if isinstance(api, httpx.Client) else prefect_api_client(api)
    try:
        now = datetime.now(UTC)
        status, error = _post(client, [to_prefect_event(r, now) for r in rows])
        if status == "ok":
            _mark(engine, [r.id for r in rows if r.id is not None], delivered=True)
            return RelayResult(len(rows), 0)
        if status == "failed" or len(rows) == 1:
            _mark(engine, [r.id for r in rows if r.id is not None], delivered=False, error=error)
            return RelayResult(0, len(rows), error)
        delivered = failed = 0
        for row in rows:  # Prefect refused the batch as invalid: find the row(s) it refuses
            status, reason = _post(client, [to_prefect_event(row, now)])
            assert row.id is not None
            _mark(engine, [row.id], delivered=status == "ok", error=reason)
            if status == "ok":
                delivered += 1
                continue
            failed += 1
            error = reason
            if status == "failed":
                break
        return RelayResult(delivered, failed, error)
    finally:
        if client is not api:
            client.close()


def run_relay(
    stop_event: threading.Event,
    interval: float,
    *,
    engine: Engine | None = None,
    api: str | httpx.Client | None = None,
    batch: int = 100,
    wake: threading.Event | None = None,
) -> None:
    """Relay until ``stop_event`` is set: every ``interval`` seconds, at once when ``wake`` is set (a webhook was
    stored), straight on while full batches keep coming, and backing off up to a minute while Prefect fails."""
    from framework2.store.engine import open_store

    engine = engine or open_store()
    client = api if isinstance(api, httpx.Client) else prefect_api_client(api)
    failures = 0
    try:
        while not stop_event.is_set():
            try:
                result = relay_once(engine, client, batch)
            except Exception:  # the store or something unexpected: log, keep the loop alive, try again later
                logger.exception("webhook relay round failed")
                result = RelayResult(0, 1, "exception")
            if result.failed:
                failures += 1
                if failures == 1 or failures % 10 == 0:
                    logger.warning("webhook relay: %d deliveries stay queued: %s", result.failed, result.error)
            else:
                failures = 0
            if result.delivered == batch and not result.failed:
                continue  # more are waiting
            pause = min(interval * 2 ** min(failures, 10), MAX_BACKOFF_SECONDS) if failures else interval
            if wake is not None and not failures:
                wake.wait(pause)
                wake.clear()
            else:
                stop_event.wait(pause)
    finally:
        if client is not api:
            client.close()
