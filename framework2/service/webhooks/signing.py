"""Who may send: HMAC signatures (ours and the hub style GitHub and Jira use), delivery and event ids, the rate
limit per sender and the shared secrets, cached."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable

from framework2.service.webhooks.contract import (
    _DELIVERY_RE,
    DELIVERY_HEADER,
    EVENT_ID_NAMESPACE,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookError,
    logger,
)


def signed_bytes(timestamp: str | int, body: bytes, delivery: str | None = None) -> bytes:
    """What the framework-set-2 signature covers: ``<timestamp>.<delivery>.<body>``, or ``<timestamp>.<body>``
    without a delivery id header. Covering the delivery id means a captured request cannot be replayed under a
    new id (it would be a new event), while two distinct deliveries with the same body stay distinct."""
    prefix = f"{timestamp}.{delivery}." if delivery is not None else f"{timestamp}."
    return prefix.encode() + body


def sign(secret: str, timestamp: str | int, body: bytes, delivery: str | None = None) -> str:
    """The ``X-Framework2-Signature`` value for ``body`` sent at ``timestamp`` (with the delivery id, if sent)."""
    digest = hmac.new(secret.encode(), signed_bytes(timestamp, body, delivery), hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def hub_signature(secret: str, body: bytes) -> str:
    """GitHub's ``X-Hub-Signature-256`` / Jira's ``X-Hub-Signature`` value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _same(expected: str, given: str) -> bool:
    # Headers arrive latin-1 decoded, so this encoding never fails; compare_digest takes constant time.
    return hmac.compare_digest(expected.encode(), given.strip().lower().encode("latin-1"))


def verify_framework2(
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    *,
    now: float,
    tolerance: float,
    delivery: str | None = None,
) -> None:
    """Refuse (401) a missing or wrong signature, then a timestamp further than ``tolerance`` from ``now``."""
    if not timestamp or not signature:
        missing = [h for h, v in ((TIMESTAMP_HEADER, timestamp), (SIGNATURE_HEADER, signature)) if not v]
        raise WebhookError(
            401,
            "unauthorised",
            f"missing {' and '.join(missing)}",
            f"sign each request: {SIGNATURE_HEADER}: sha256=HMAC-SHA256(secret, '<timestamp>.<delivery id>.' + body) "
            f"('<timestamp>.' + body without {DELIVERY_HEADER}), {TIMESTAMP_HEADER}: unix seconds",
        )
    if not re.fullmatch(r"\d{1,12}", timestamp.strip()):
        raise WebhookError(401, "unauthorised", f"{TIMESTAMP_HEADER} must be unix seconds", "e.g. 1767225600")
    if not _same(sign(secret, timestamp.strip(), body, delivery), signature):
        covered = "<timestamp>.<delivery id>." if delivery is not None else "<timestamp>."
        raise WebhookError(
            401,
            "unauthorised",
            "the signature does not match",
            f"sign b'{covered}' + the exact body bytes sent with the shared secret (HMAC-SHA256, hex)",
        )
    skew = now - int(timestamp)
    if abs(skew) > tolerance:
        when = f"{skew:.0f} s old" if skew > 0 else f"{-skew:.0f} s in the future"
        raise WebhookError(
            401,
            "stale",
            f"the timestamp is {when}; accepted: within ±{tolerance:.0f} s",
            "sign right before sending and keep the sender's clock in sync (NTP); a replayed request is refused",
        )


def verify_hub(secret: str, header: str, signature: str | None, body: bytes, provider: str) -> None:
    """Refuse (401) a missing or wrong ``sha256=`` body signature (GitHub, Jira)."""
    if not signature:
        raise WebhookError(
            401,
            "unauthorised",
            f"missing {header}: the {provider} webhook is not signed",
            f"set the webhook's secret in {provider} to the value of the configured Secret block",
        )
    if not _same(hub_signature(secret, body), signature):
        raise WebhookError(
            401,
            "unauthorised",
            f"the {header} signature does not match",
            f"the secret in {provider} must equal the configured Secret block's value",
        )


def delivery_id(header_value: str | None, *parts: bytes) -> str:
    """The sender's delivery id when given (checked), else the SHA-256 of what was signed."""
    if header_value is None:
        return hashlib.sha256(b"".join(parts)).hexdigest()
    value = header_value.strip()
    if not _DELIVERY_RE.match(value):
        raise WebhookError(
            400,
            "malformed",
            "the delivery id header must be 1-200 visible ASCII characters",
            "send a UUID or another short id, the same on every retry of one delivery",
        )
    return value


def event_id(source: str, delivery: str) -> str:
    """The deterministic Prefect event id of a delivery: a re-send can never become a second event."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{source}\n{delivery}"))


class RateLimiter:
    """A token bucket per source: up to ``per_minute`` at once, refilled at ``per_minute`` a minute."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic, max_sources: int = 10_000):
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self.max_sources = max_sources
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, source: str) -> float:
        """Spend one token of ``source``: 0.0 when allowed, else the seconds until the next token."""
        with self._lock:
            now = self.clock()
            tokens, updated = self._buckets.get(source, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - updated) * self.rate)
            if tokens >= 1.0:
                self._buckets[source] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[source] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
            if len(self._buckets) > self.max_sources:
                self._forget_idle(now)
            return wait

    def _forget_idle(self, now: float) -> None:
        # A source whose bucket has refilled is indistinguishable from a new one: forgetting it is free.
        full = [k for k, (t, u) in self._buckets.items() if t + (now - u) * self.rate >= self.capacity]
        for key in full:
            del self._buckets[key]
        while len(self._buckets) > self.max_sources:  # still too many: the longest-idle go first
            del self._buckets[min(self._buckets, key=lambda k: self._buckets[k][1])]


def signature_fingerprint(signature: str) -> str:
    """What the store remembers of a request's signature: its SHA-256 (hex), case and spaces aside."""
    return hashlib.sha256(signature.strip().lower().encode("utf-8", "replace")).hexdigest()


MIN_SECRET_CHARS = 16

# What an unauthenticated sender is told when the secret cannot be used: no block name, URL or hint about the
# set-up. The operator reads the reason and the fix in the service log.
_NOT_CONFIGURED = "the webhook service cannot check signatures right now; the webhook was not accepted"


def _secret_unavailable(reason: str, fix: str, *, retry: bool = False) -> WebhookError:
    logger.error("webhook secret unavailable: %s. Fix: %s", reason, fix)
    return WebhookError(
        503,
        "unavailable",
        _NOT_CONFIGURED,
        "retry later; the service's operator finds the reason in its log",
        headers={"Retry-After": "30"} if retry else None,
    )


def check_secret(value: object) -> str | None:
    """Why ``value`` cannot serve as a shared webhook secret, or None. A blank or short secret can be guessed or
    was set by mistake: requests signed with it must not be trusted."""
    if not isinstance(value, str):
        return "does not hold a string"
    if len(value.strip()) < MIN_SECRET_CHARS:
        return f"holds a secret of {len(value.strip())} non-blank characters; at least {MIN_SECRET_CHARS} are needed"
    if len(set(value)) < 6:
        return "holds a secret of fewer than 6 distinct characters (e.g. 'aaaa…'), which is guessable"
    return None


async def load_secret_block(name: str) -> str:
    """The value of the Prefect ``Secret`` block ``name``. When it is missing, unreadable or too weak, the sender
    gets a plain 503 and the service log says which block and how to fix it."""
    from prefect.blocks.system import Secret
    from prefect.exceptions import ObjectNotFound

    try:
        block = await Secret.aload(name)
    except ValueError as exc:
        if not isinstance(exc.__cause__, ObjectNotFound):  # e.g. no PREFECT_API_URL: not the block's fault
            raise _secret_unavailable(
                f"cannot read the Prefect Secret block {name!r}: {exc}",
                "set PREFECT_API_URL for the webhook service to the Prefect server that holds the block",
            ) from exc
        raise _secret_unavailable(
            f"the Prefect Secret block {name!r} holding the webhook secret does not exist",
            f"create it in the Prefect UI (Blocks → + → Secret, name {name!r}), with `framework2 init`, or with "
            f"Python: Secret(value='<shared secret>').save({name!r}); the name comes from [webhooks] in "
            "framework2.toml",
        ) from exc
    except Exception as exc:  # unreachable API, timeouts: the sender should retry later
        raise _secret_unavailable(
            f"cannot read the Prefect Secret block {name!r}: {type(exc).__name__}: {exc}",
            "check that the Prefect API (PREFECT_API_URL) is reachable",
            retry=True,
        ) from exc
    value = block.get()
    problem = check_secret(value)
    if problem is not None:
        raise _secret_unavailable(
            f"the Prefect Secret block {name!r} {problem}",
            "store a random secret in it, e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`",
        )
    return value


class SecretCache:
    """Secret values for ``ttl`` seconds, so a webhook costs no Prefect API call; a rotated secret applies within
    ``ttl``. Failures are not cached: a block created after a 503 works on the next request."""

    def __init__(self, ttl: float = 60.0, loader: Callable[[str], Awaitable[str]] = load_secret_block) -> None:
        self.ttl = ttl
        self.loader = loader
        self._values: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, name: str) -> str:
        cached = self._values.get(name)
        if cached and time.monotonic() - cached[1] < self.ttl:
            return cached[0]
        # One load per block at a time: a burst on a cold cache must not become a burst of API calls.
        async with self._locks.setdefault(name, asyncio.Lock()):
            cached = self._values.get(name)
            if cached and time.monotonic() - cached[1] < self.ttl:
                return cached[0]
            value = await self.loader(name)
            self._values[name] = (value, time.monotonic())
            return value
