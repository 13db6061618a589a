"""The webhook service: ``create_app()`` is the FastAPI app `framework2 api` serves under uvicorn with
``uvicorn_options`` (run uvicorn by hand and you must pass ``--no-proxy-headers`` yourself: its default trusts
X-Forwarded-For from loopback), with the webhook routes, health and metrics, and the outbox relay.

Every webhook request goes the same way, cheapest check first, so a flood costs little:

1. rate limit per source (endpoint + client address) → 429 with ``Retry-After``;
2. body size: ``Content-Length`` and the bytes actually read (a chunked body has no length) → 413;
3. the shared secret from its Prefect Secret block (cached) → 503 if the block is missing;
4. signature, then timestamp → 401 (``stale`` for an old or future timestamp);
5. the delivery id header, then JSON → 400 (with the parser's position); the contract → 422 listing the
   allowed values;
6. the outbox row, committed → 202 ``{event_id, event, delivery, duplicate}``.

The relay runs in a thread beside the server (lifespan): woken by each new row, and every ``relay_interval``.
Behind a reverse proxy, name it in ``[webhooks] trusted_proxies`` (``uvicorn_options``) so the rate limit
sees the client's address, not the proxy's.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from framework2.config import Settings, get_settings
from framework2.errors import ConfigError
from framework2.events import event_name
from framework2.service import outbox
from framework2.service.dashboard import router as dashboard_router
from framework2.service.dashboard import store_engine
from framework2.service.observability import record_webhook
from framework2.service.observability import router as health_router
from framework2.service.webhooks import (
    ALLOWED,
    DELIVERY_HEADER,
    DELIVERY_PATTERN,
    GITHUB_DELIVERY_HEADER,
    GITHUB_EVENT_HEADER,
    GITHUB_SIGNATURE_HEADER,
    JIRA_DELIVERY_HEADER,
    JIRA_SIGNATURE_HEADER,
    SIGNATURE_HEADER,
    SOURCE_FRAMEWORK2,
    SOURCE_GITHUB,
    SOURCE_JIRA,
    TIMESTAMP_HEADER,
    ContractProblem,
    EventDescription,
    Ignored,
    Problem,
    RateLimiter,
    SecretCache,
    WebhookAccepted,
    WebhookError,
    WebhookNotice,
    delivery_id,
    describe_events,
    map_github,
    map_jira,
    parse_json,
    request_schemas,
    signature_fingerprint,
    validate_data,
    validate_envelope,
    verify_framework2,
    verify_hub,
)

logger = logging.getLogger("framework2.webhooks")

SECURITY_SCHEMES = {
    "Framework2Signature": {
        "type": "apiKey",
        "in": "header",
        "name": SIGNATURE_HEADER,
        "description": (
            "sha256=<hex HMAC-SHA256 with the shared secret of b'<timestamp>.<delivery id>.' + raw body, or of "
            "b'<timestamp>.' + raw body when no delivery id header is sent>"
        ),
    },
    "Framework2Timestamp": {
        "type": "apiKey",
        "in": "header",
        "name": TIMESTAMP_HEADER,
        "description": "Unix seconds the request was signed at; refused (401 stale) outside ±[webhooks] tolerance.",
    },
    "GitHubSignature": {
        "type": "apiKey",
        "in": "header",
        "name": GITHUB_SIGNATURE_HEADER,
        "description": "GitHub's sha256=<hex HMAC-SHA256 of the raw body with the webhook secret>.",
    },
    "JiraSignature": {
        "type": "apiKey",
        "in": "header",
        "name": JIRA_SIGNATURE_HEADER,
        "description": "Jira Cloud's sha256=<hex HMAC-SHA256 of the raw body with the webhook secret>.",
    },
}


def _problem(description: str, **extra: Any) -> dict[str, Any]:
    return {"model": Problem, "description": description, **extra}


ACCEPTED = {
    202: {"description": "Stored; it becomes exactly one Prefect event. duplicate=true: this delivery id was known."}
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}}
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _problem("Malformed: not UTF-8 JSON (the parser's position is given), or a bad delivery id header."),
    401: _problem("Missing or wrong signature, or (framework-set-2) a timestamp outside the tolerance."),
    413: _problem("The body is larger than [webhooks] max_body_bytes."),
    415: _problem("A signed request whose Content-Type is not JSON (application/json)."),
    422: {"model": ContractProblem, "description": "Valid JSON that the contract refuses; lists the allowed values."},
    429: _problem("Too many requests from this source; wait Retry-After seconds.", headers=RETRY_AFTER),
    503: _problem("The signing secret is unusable (the service log says why) or the store is unreachable; retry."),
}
PROVIDER_RESPONSES: dict[int | str, dict[str, Any]] = {
    **COMMON_RESPONSES,
    200: {"model": WebhookNotice, "description": "Understood, no event: a ping, or an event type that is not used."},
}


def _header(name: str, description: str, pattern: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if pattern:
        schema["pattern"] = pattern
    return {"name": name, "in": "header", "required": False, "description": description, "schema": schema}


class WebhookService:
    """The per-app state the routes share: settings, limiter, secret cache, store, relay wake-up."""

    def __init__(self, settings: Settings, record: Callable[[str], None]) -> None:
        cfg = settings.webhooks
        self.settings = settings
        self.record = record
        self.limiter = RateLimiter(cfg.rate_limit_per_minute)
        self.secrets = SecretCache()
        self.engine: Any = None
        self.wake = threading.Event()

    async def receive(self, request: Request, source: str) -> bytes:
        """Rate limit, then the body within the size limit (413 on the declared or the actual size)."""
        client = request.client.host if request.client else "unknown"
        wait = self.limiter.take(f"{source}:{client}")
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise WebhookError(
                429,
                "rate_limited",
                f"more than {self.settings.webhooks.rate_limit_per_minute} requests a minute from {client} "
                f"to the {source} webhook",
                f"retry after {seconds} s",
                headers={"Retry-After": str(seconds)},
            )
        limit = self.settings.webhooks.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            raise self._too_large(f"Content-Length is {int(declared):,} bytes", limit)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:  # stop reading: a body without Content-Length must not fill memory either
                raise self._too_large(f"the body exceeds {limit:,} bytes", limit)
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def require_json(request: Request) -> None:
        """415 unless the body is declared JSON: checked after the signature, so only a sender who holds the
        secret learns what the endpoint expects."""
        declared = request.headers.get("content-type", "")
        kind = declared.split(";", 1)[0].strip().lower()
        if kind != "application/json" and not (kind.startswith("application/") and kind.endswith("+json")):
            raise WebhookError(
                415,
                "malformed",
                f"Content-Type is {declared[:100]!r}; webhooks are JSON",
                "send the body as JSON with Content-Type: application/json (in GitHub: Content type "
                "application/json in the webhook's settings)",
            )

    @staticmethod
    def _too_large(what: str, limit: int) -> WebhookError:
        return WebhookError(
            413,
            "too_large",
            f"{what}; the limit is {limit:,} bytes",
            "send less data per webhook (a reference instead of the content) or raise [webhooks] max_body_bytes",
        )

    async def _store(self, **row: Any) -> tuple[Any, bool]:
        try:
            return await run_in_threadpool(outbox.enqueue, self.engine, **row)
        except SQLAlchemyError as exc:
            logger.error("webhook store write failed: %s", exc)
            raise WebhookError(
                503,
                "unavailable",
                "the store cannot take the webhook right now; it was not accepted",
                "retry later with the same delivery id",
                headers={"Retry-After": "30"},
            ) from exc

    async def accept(
        self, source: str, delivery: str, system: str, event: str, data: dict[str, Any], signature: str
    ) -> JSONResponse:
        """Store the delivery (committed) and answer 202; a known delivery id, or a known signature under a new
        id (a replay), answers the first delivery's event id."""
        row, created = await self._store(
            source=source,
            delivery_id=delivery,
            system=system,
            event=event,
            payload=data,
            fingerprint=signature_fingerprint(signature),
        )
        if not created and row.status == outbox.IGNORED:
            # The same signed bytes first came as an event that is not acted on. GitHub does not sign its event
            # header, so a replay under another event type (deployment_status → deployment) must not act now.
            return self.notice(
                Ignored(
                    "this signed request was received before as an event that is not acted on; sent again, "
                    "under any event type or delivery id, it is still not acted on"
                )
            )
        if created:
            self.wake.set()
        self.record("accepted" if created else "duplicate")
        answer = WebhookAccepted(
            event_id=row.event_id,
            event=event_name(row.system, row.event),
            delivery=row.delivery_id,
            duplicate=not created,
        )
        return JSONResponse(answer.model_dump(), status_code=202)

    async def _remember(self, source: str, delivery: str, reason: str, signature: str) -> None:
        """Keep a delivery that makes no event (never relayed), so its signed bytes cannot become one later."""
        await self._store(
            source=source,
            delivery_id=delivery,
            system=source[:16],
            event="(ignored)",
            payload={"reason": reason[:500]},
            fingerprint=signature_fingerprint(signature),
            status=outbox.IGNORED,
        )

    async def ignore(self, source: str, delivery: str, ignored: Ignored, signature: str) -> JSONResponse:
        """Answer 200 without an event, and remember the signature: its bytes may not become an event later."""
        await self._remember(source, delivery, ignored.reason, signature)
        return self.notice(ignored)

    async def remember_refused(self, source: str, body: bytes, signature: str, refused: WebhookError) -> None:
        """Keep the fingerprint of a correctly signed request that is refused (415, 422, …): its bytes must not
        pass later under another, unsigned event header. A store failure here is logged; the refusal stands."""
        if refused.status >= 500:
            return
        try:
            reason = f"refused with {refused.status}: {refused.message}"
            await self._remember(source, "refused-" + delivery_id(None, body), reason, signature)
        except WebhookError as exc:
            logger.error("could not remember a refused %s webhook: %s", source, exc.message)

    def notice(self, ignored: Ignored) -> JSONResponse:
        self.record("ignored")
        return JSONResponse(WebhookNotice(detail=ignored.reason).model_dump(), status_code=200)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn must treat forwarded headers: trusted only from the configured proxies. (uvicorn's own default
    trusts them from loopback, so any local caller could rotate X-Forwarded-For past the rate limit.)"""
    proxies = [p.strip() for p in settings.webhooks.trusted_proxies if p.strip()]
    if not proxies:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": proxies}


def serve(service: FastAPI, settings: Settings, host: str, port: int) -> None:
    """Run ``service`` under uvicorn until Ctrl-C, with the forwarded-header rule of ``uvicorn_options``."""
    import uvicorn

    uvicorn.run(service, host=host, port=port, log_level="info", access_log=False, **uvicorn_options(settings))


def create_app(settings: Settings | None = None, *, relay: bool = True, prefect_api: str | None = None) -> FastAPI:
    """The webhook service. ``relay=False`` leaves accepted webhooks queued (tests, or a relay run elsewhere);
    ``prefect_api`` overrides PREFECT_API_URL for the relay."""
    settings = settings or get_settings()
    cfg = settings.webhooks
    service = WebhookService(settings, record_webhook)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from framework2.store.engine import open_store

        service.engine = await run_in_threadpool(open_store, settings)
        stop = threading.Event()
        thread: threading.Thread | None = None
        client = None
        if relay:
            try:
                client = outbox.prefect_api_client(prefect_api)
            except ConfigError as exc:
                logger.warning("webhook relay not started: %s (%s)", exc.message, exc.hint)
            else:
                thread = threading.Thread(
                    target=outbox.run_relay,
                    args=(stop, cfg.relay_interval.total_seconds()),
                    kwargs={"engine": service.engine, "api": client, "wake": service.wake},
                    name="framework2-webhook-relay",
                    daemon=True,
                )
                thread.start()
        try:
            yield
        finally:
            stop.set()
            service.wake.set()  # the relay may be waiting on its wake-up rather than on stop
            if thread is not None:
                thread.join(timeout=30)
            if client is not None:
                client.close()

    app = FastAPI(
        title="Framework Set 2 webhooks",
        version="1",
        description=(
            "Webhooks into Framework Set 2. Each accepted webhook is stored, answered 202, and handed to Prefect "
            "as exactly one event `framework2.<system>.<event>`; deployment triggers turn events into runs."
        ),
        lifespan=lifespan,
        # FastAPI's /docs and /redoc pages run JavaScript fetched from a CDN in this service's origin: a machine
        # without internet cannot load them, and a compromised CDN could script them. The schema stays at
        # /openapi.json for any OpenAPI viewer.
        docs_url=None,
        redoc_url=None,
    )
    app.state.webhooks = service
    app.include_router(health_router)
    app.include_router(dashboard_router)
    # The dashboard reads the store this app opened (its settings), not a second engine.
    app.dependency_overrides[store_engine] = lambda: service.engine

    @app.exception_handler(WebhookError)
    async def refused(_request: Request, exc: WebhookError) -> JSONResponse:
        service.record(exc.outcome)
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    body_schema, components = request_schemas()

    @app.get(
        "/webhook/framework-set-2",
        response_model=list[EventDescription],
        tags=["webhooks"],
        summary="The events each system accepts and what they start",
    )
    async def list_events() -> list[EventDescription]:
        """Every allowed system/event pair: the Prefect event it becomes, what it makes happen, its data."""
        return describe_events()

    @app.post(
        "/webhook/framework-set-2",
        status_code=202,
        response_model=WebhookAccepted,
        responses={**ACCEPTED, **COMMON_RESPONSES},
        tags=["webhooks"],
        summary="Send an event to a system: {system, event, data}",
        openapi_extra={
            "security": [{"Framework2Signature": [], "Framework2Timestamp": []}],
            "parameters": [
                _header(
                    DELIVERY_HEADER,
                    "Your id of this delivery, the same on every retry; the signature covers it. Without it the id "
                    "is the SHA-256 of timestamp and body, so a re-signed retry would count as new.",
                    DELIVERY_PATTERN,
                )
            ],
            "requestBody": {"required": True, "content": {"application/json": {"schema": body_schema}}},
        },
    )
    async def framework2_webhook(request: Request) -> JSONResponse:
        """Accept a signed webhook for one of the allowed system/event pairs (GET lists them)."""
        body = await service.receive(request, SOURCE_FRAMEWORK2)
        secret = await service.secrets.get(cfg.secret_block)
        timestamp, signature = request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER)
        sent_delivery = request.headers.get(DELIVERY_HEADER)
        verify_framework2(
            secret,
            timestamp,
            signature,
            body,
            now=time.time(),
            tolerance=cfg.tolerance.total_seconds(),
            delivery=sent_delivery,
        )
        service.require_json(request)
        assert timestamp is not None  # verified above
        # The signature covers the delivery id (or, without one, the id is the hash of what was signed), so a
        # replay within the tolerance is the same delivery: a duplicate, never a second event.
        delivery = delivery_id(sent_delivery, timestamp.strip().encode(), b".", body)
        spec, data = validate_envelope(parse_json(body))
        assert signature is not None
        return await service.accept(SOURCE_FRAMEWORK2, delivery, spec.system, spec.name, data, signature)

    @app.post(
        "/webhook/github",
        status_code=202,
        response_model=WebhookAccepted,
        responses={**ACCEPTED, **PROVIDER_RESPONSES},
        tags=["webhooks"],
        summary="GitHub webhook: issues, pull_request, deployment, deployment_status, ping",
        openapi_extra={
            "security": [{"GitHubSignature": []}],
            "parameters": [
                _header(GITHUB_EVENT_HEADER, "GitHub's event name."),
                _header(GITHUB_DELIVERY_HEADER, "GitHub's delivery GUID (repeated on redelivery).", DELIVERY_PATTERN),
            ],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
        },
    )
    async def github_webhook(request: Request) -> JSONResponse:
        """issues and pull_request → ppms tasks.changed; deployment (payload with image) → plos
        release.requested; deployment_status success → puxt release.deployed, failure/error → plos
        deployment.failed; ping and other events → 200 without an event."""
        body = await service.receive(request, SOURCE_GITHUB)
        secret = await service.secrets.get(cfg.github_secret_block or cfg.secret_block)
        signature = request.headers.get(GITHUB_SIGNATURE_HEADER)
        verify_hub(secret, GITHUB_SIGNATURE_HEADER, signature, body, "GitHub")
        assert signature is not None
        try:
            service.require_json(request)
            delivery = delivery_id(request.headers.get(GITHUB_DELIVERY_HEADER), body)
            routed = map_github(request.headers.get(GITHUB_EVENT_HEADER), parse_json(body))
            if isinstance(routed, Ignored):
                return await service.ignore(SOURCE_GITHUB, delivery, routed, signature)
            data = validate_data(ALLOWED[routed.system][routed.event], routed.data, ["body"])
        except WebhookError as refused:
            await service.remember_refused(SOURCE_GITHUB, body, signature, refused)
            raise
        return await service.accept(SOURCE_GITHUB, delivery, routed.system, routed.event, data, signature)

    @app.post(
        "/webhook/jira",
        status_code=202,
        response_model=WebhookAccepted,
        responses={**ACCEPTED, **PROVIDER_RESPONSES},
        tags=["webhooks"],
        summary="Jira Cloud webhook: issue created/updated/deleted, issue link created/deleted",
        openapi_extra={
            "security": [{"JiraSignature": []}],
            "parameters": [
                _header(JIRA_DELIVERY_HEADER, "Jira's webhook identifier (repeated on retries).", DELIVERY_PATTERN),
            ],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
        },
    )
    async def jira_webhook(request: Request) -> JSONResponse:
        """jira:issue_created/updated/deleted and issuelink_created/deleted → ppms tasks.changed; other events
        → 200 without an event."""
        body = await service.receive(request, SOURCE_JIRA)
        secret = await service.secrets.get(cfg.jira_secret_block or cfg.secret_block)
        signature = request.headers.get(JIRA_SIGNATURE_HEADER)
        verify_hub(secret, JIRA_SIGNATURE_HEADER, signature, body, "Jira")
        assert signature is not None
        try:
            service.require_json(request)
            delivery = delivery_id(request.headers.get(JIRA_DELIVERY_HEADER), body)
            routed = map_jira(parse_json(body))
            if isinstance(routed, Ignored):
                return await service.ignore(SOURCE_JIRA, delivery, routed, signature)
            data = validate_data(ALLOWED[routed.system][routed.event], routed.data, ["body"])
        except WebhookError as refused:
            await service.remember_refused(SOURCE_JIRA, body, signature, refused)
            raise
        return await service.accept(SOURCE_JIRA, delivery, routed.system, routed.event, data, signature)

    def openapi() -> dict[str, Any]:
        # The webhook bodies are read raw (the signature covers the exact bytes), so FastAPI cannot derive their
        # schemas; they are added here, one alternative per allowed system/event pair.
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            parts = schema.setdefault("components", {})
            parts.setdefault("schemas", {}).update(components)
            parts.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
