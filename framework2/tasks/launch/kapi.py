"""Calling the Kubernetes API through a blip: retry what a retry can fix, fail at once on everything else.

Retried: 429 (the API server's priority-and-fairness throttling), 500/502/503/504 (an API server restarting
or a load balancer in front of it) and connection-level errors. Not retried: 4xx answers such as 403, 404,
409 and 422 — asking again gives the same answer, so the caller must decide.

A retried create may have been applied the first time (the answer was lost), so the retry can answer 409;
callers of create handle 409 anyway, since another run may have created the object.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import urllib3
from kubernetes.client.exceptions import ApiException

T = TypeVar("T")

RETRYABLE_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504})
# (connect, read) seconds for one call: the client's default is to wait forever on a hung API server.
DEFAULT_REQUEST_TIMEOUT: tuple[float, float] = (5.0, 30.0)
# Never sleep longer than this on a server's Retry-After: the release has its own deadlines.
MAX_RETRY_AFTER_SECONDS = 10.0

log = logging.getLogger(__name__)


def is_retryable(exc: BaseException) -> bool:
    """Whether asking again may succeed: throttling, a server-side error, or a broken connection."""
    if isinstance(exc, ApiException):
        return exc.status in RETRYABLE_STATUSES
    return isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError)


def _retry_after(exc: BaseException) -> float:
    headers = getattr(exc, "headers", None) or {}
    try:
        return min(float(headers.get("Retry-After", 0)), MAX_RETRY_AFTER_SECONDS)
    except (TypeError, ValueError):  # an HTTP date instead of seconds: fall back to our own backoff
        return 0.0


def with_retries(call: Callable[..., T], *args: Any, attempts: int = 4, first_delay: float = 0.2, **kwargs: Any) -> T:
    """``call(*args, **kwargs)``, retried with exponential backoff (0.2 s, 0.4 s, 0.8 s by default).

    ``call`` is a method of the official client (``AppsV1Api(api).patch_namespaced_deployment``...); it gets
    a ``_request_timeout`` unless one is given. The last error is re-raised when the attempts run out.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, not {attempts}")
    kwargs.setdefault("_request_timeout", DEFAULT_REQUEST_TIMEOUT)
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return call(*args, **kwargs)
        except (ApiException, urllib3.exceptions.HTTPError, ConnectionError) as exc:
            if not is_retryable(exc) or attempt == attempts:
                raise
            pause = max(delay, _retry_after(exc))
            what = f"HTTP {exc.status}" if isinstance(exc, ApiException) else type(exc).__name__
            log.warning(
                "%s failed (%s), attempt %d of %d; retrying in %.1fs",
                getattr(call, "__name__", "call"),
                what,
                attempt,
                attempts,
                pause,
            )
            time.sleep(pause)
            delay *= 2
    raise AssertionError("unreachable")  # the loop returns or raises
