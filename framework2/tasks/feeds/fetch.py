"""Fetching a feed: its credentials, a size cap enforced on the bytes read, and errors that never echo a secret."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from framework2.blocks.competitor_feed import CompetitorFeed
from framework2.config import get_settings
from framework2.tasks.feeds.model import MalformedFeedError, PermanentFeedError, TransientFeedError
from framework2.tasks.feeds.policy import _host, _private_hint, private_networks
from framework2.tasks.http_fetch import (
    BlockedAddress,
    BodyTooLarge,
    CorruptBody,
    DeadlineExceeded,
    ResolutionFailed,
    UnsupportedEncoding,
    bounded_get,
)


def _scrub(text: str, feed: CompetitorFeed) -> str:
    token = feed.auth_token.get_secret_value() if feed.auth_token else ""
    return text.replace(token, "***") if token else text


def _auth_headers(feed: CompetitorFeed) -> dict[str, str]:
    if feed.auth_token is None:
        return {}
    token = feed.auth_token.get_secret_value()
    # Checked here, not in the block: a pydantic error would echo the raw token back as input_value.
    if not token.isascii() or any(ch in token for ch in "\r\n\0"):
        raise PermanentFeedError(
            f"feed '{feed.label}': auth_token has characters that cannot be sent in an HTTP header",
            hint="re-enter the token in the Competitor Feed block (ASCII only, one line)",
        )
    return {feed.auth_header: token}


def configured_max_bytes() -> int:
    """The feed body cap from settings (``ppis.feed_max_bytes``)."""
    return get_settings().ppis.feed_max_bytes


def _size(n: int) -> str:
    return f"{n // 1048576} MiB" if n and n % 1048576 == 0 else f"{n} bytes"


async def fetch_feed(
    client: httpx.AsyncClient, feed: CompetitorFeed, allowlist: Sequence[str], *, max_bytes: int | None = None
) -> bytes:
    """GET the feed within its limits; raise Transient/PermanentFeedError on failure.

    Limits: ``feed.timeout_seconds`` for the whole request, ``max_bytes`` (default ``ppis.feed_max_bytes``) for
    the decompressed body, and public addresses only unless ``allowlist`` names the host.
    """
    label, where = feed.label, _host(feed.url)
    cap = configured_max_bytes() if max_bytes is None else max_bytes
    headers = _auth_headers(feed)
    try:
        response = await bounded_get(
            client,
            feed.url,
            headers=headers,
            max_bytes=cap,
            deadline_seconds=feed.timeout_seconds,
            private_allowed=private_networks(allowlist),
        )
    except (DeadlineExceeded, httpx.TimeoutException) as exc:
        received = exc.received if isinstance(exc, DeadlineExceeded) else 0
        got = f"{received} bytes of the body" if received else "no body"
        raise TransientFeedError(
            f"feed '{label}' timed out after {float(feed.timeout_seconds)} s",
            hint=f"{where} did not send the whole feed in time (got {got}); timeout_seconds bounds the whole "
            "request, connect, headers and body together; raise timeout_seconds in the block if it is just slow",
        ) from None
    except BodyTooLarge as exc:
        got = (
            f"it declared Content-Length {exc.declared} bytes"
            if exc.declared is not None
            else f"stopped after {exc.received} bytes, counted after decompression"
        )
        raise PermanentFeedError(
            f"feed '{label}' is larger than the {_size(cap)} limit ({got})",
            hint=f"{where} sent more than ppis.feed_max_bytes ({cap} bytes) allows; raise ppis.feed_max_bytes "
            "in framework2.toml if the feed really is this big",
        ) from None
    except UnsupportedEncoding as exc:
        raise PermanentFeedError(
            f"feed '{label}' is sent with Content-Encoding '{exc.encoding}', which is not accepted",
            hint=f"{where} must send the feed plain or with one layer of gzip or deflate",
        ) from None
    except BlockedAddress as exc:
        raise PermanentFeedError(
            f"feed '{label}': {where} is at {exc.address}, a {exc.kind} address", hint=_private_hint(exc.address)
        ) from None
    except ResolutionFailed as exc:
        raise TransientFeedError(
            f"feed '{label}' could not be reached at {where} (host name not resolved: {exc.reason})",
            hint="check the host name in the feed URL and the worker's DNS",
        ) from None
    except CorruptBody as exc:
        raise MalformedFeedError(
            f"feed '{label}': the body does not decompress as its Content-Encoding '{exc.encoding}' says",
            hint=f"{where} sent a corrupt compressed body; check the competitor's export",
        ) from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
        raise PermanentFeedError(
            f"feed '{label}': the request to {where} could not be sent ({type(exc).__name__}: "
            f"{_scrub(str(exc), feed)})",
            hint="check the URL and auth header in the Competitor Feed block",
        ) from None
    except httpx.TransportError as exc:
        raise TransientFeedError(
            f"feed '{label}' could not be reached at {where} ({type(exc).__name__}: {_scrub(str(exc), feed)})",
            hint="check that the host is up and reachable from the worker",
        ) from None

    status = response.status_code
    if 200 <= status < 300:
        return response.content
    what = f"feed '{label}' answered HTTP {status} {response.reason_phrase}".rstrip()
    if status == 429 or status >= 500:
        retry_after = response.headers.get("Retry-After")
        hint = f"{where} is overloaded or failing; it will be retried"
        if retry_after:
            hint += f" (it asked to wait {retry_after})"
        raise TransientFeedError(what, hint=hint)
    if 300 <= status < 400:
        target = _host(response.headers.get("Location", "")) if response.headers.get("Location") else "?"
        raise PermanentFeedError(
            f"{what} (a redirect to {target})",
            hint="redirects are not followed; put the final URL in the Competitor Feed block",
        )
    if status in (401, 403):
        hint = f"check auth_token and auth_header ('{feed.auth_header}') in the Competitor Feed block"
    elif status == 404:
        hint = f"check the feed URL; {where} has no such path"
    else:
        hint = "the request was refused; check the Competitor Feed block's URL and credentials"
    raise PermanentFeedError(what, hint=hint)
