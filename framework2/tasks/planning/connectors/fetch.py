"""The HTTP layer the tracker connectors share: paging, bounded retries with back-off, rate limits waited out or
reported, and errors that name the page and say what to do (``SourceError``)."""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from framework2.errors import Framework2Error
from framework2.tasks import json_text
from framework2.tasks.planning.connectors.mapping import _parse_time

Sleep = Callable[[float], None]
Clock = Callable[[], float]


class SourceError(Framework2Error):
    """A tracker could not be read: refused credentials, rate limit, server failure, unreadable page.

    ``transient`` is True when the same read may work later unchanged (5xx, timeouts, rate limits);
    ``reset_at`` is when a rate limit resets, if the API said so.
    """

    def __init__(
        self,
        message: str,
        hint: str = "",
        *,
        transient: bool = False,
        status: int | None = None,
        reset_at: datetime | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.transient = transient
        self.status = status
        self.reset_at = reset_at


@dataclass(frozen=True)
class Page:
    """One page of an API listing: its number (from 1), the URL it came from and its JSON document."""

    number: int
    url: str
    data: Any


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


def _shown_url(url: httpx.URL | str) -> str:
    """The URL without user info, for messages."""
    url = httpx.URL(str(url))
    return str(url.copy_with(username=None, password=None)) if url.userinfo else str(url)


def _check_header_value(value: str, what: str, where: str) -> None:
    # Checked before sending: httpx would fail with an error quoting the value.
    if value and (not value.isascii() or any(ch in value for ch in "\r\n\0")):
        raise SourceError(
            f"{where}: the {what} has characters that cannot be sent in an HTTP header",
            hint=f"re-enter the {what} in the block (ASCII only, one line)",
        )


def _retry_after_seconds(value: str, now: float) -> float | None:
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(moment.timestamp() - now, 0.0)


def _reset_epoch(value: str) -> float | None:
    """``x-ratelimit-reset`` as epoch seconds: GitHub sends epoch seconds, Jira an ISO 8601 time."""
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    moment = _parse_time(value)
    return moment.timestamp() if moment else None


def _api_message(response: httpx.Response) -> str:
    """The API's own error text (GitHub ``message``, Jira ``errorMessages``/``errors``), short."""
    try:
        document = json_text.loads(response.content.decode("utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return ""
    parts: list[str] = []
    if isinstance(document, dict):
        if isinstance(document.get("message"), str):
            parts.append(document["message"])
        if isinstance(document.get("errorMessages"), list):
            parts.extend(str(m) for m in document["errorMessages"])
        if isinstance(document.get("errors"), dict):
            parts.extend(f"{k}: {v}" for k, v in document["errors"].items())
    text = "; ".join(p.strip() for p in parts if str(p).strip())
    return text[:300] + ("..." if len(text) > 300 else "")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{math.ceil(seconds)} s"
    if seconds < 2 * 3600:
        return f"{math.ceil(seconds / 60)} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


@dataclass
class Fetcher:
    """Sends one source's requests: timeouts, bounded retries with backoff, rate-limit waits, clear errors.

    ``label`` names the source in errors; ``secrets`` are scrubbed from any text an error quotes;
    ``hints`` maps an HTTP status to what the user should do about it. ``sleep`` and ``clock`` are
    injectable so tests never really wait.
    """

    client: httpx.Client
    label: str
    headers: dict[str, str] = field(default_factory=dict)
    auth: tuple[str, str] | None = None
    secrets: tuple[str, ...] = ()
    hints: dict[int, str] = field(default_factory=dict)
    timeout_seconds: float = 30.0
    max_retries: int = 3
    backoff_seconds: float = 1.0
    max_wait_seconds: float = 60.0
    sleep: Sleep = time.sleep
    clock: Clock = time.time

    def _scrub(self, text: str) -> str:
        for secret in self.secrets:
            # A "secret" of a few characters is no secret, and replacing it everywhere would garble the text.
            if len(secret) >= 6:
                text = text.replace(secret, "***")
        return text

    def request_json(
        self,
        method: str,
        url: str,
        *,
        page: int = 1,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
    ) -> tuple[Any, httpx.Response]:
        """One request's JSON document and response, after retries; SourceError when it cannot be had."""
        shown = _shown_url(httpx.URL(url, params=params) if params else url)
        where = f"{self.label}: page {page} ({shown})"
        failures = 0  # 5xx, 429 without a reset time, timeouts and connection errors so far
        waits = 0  # rate-limit waits so far
        while True:
            try:
                response = self.client.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    headers=self.headers,
                    auth=self.auth,
                    timeout=self.timeout_seconds,
                    follow_redirects=True,  # renamed repositories answer 301; httpx drops auth on other hosts
                )
            except (httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
                raise SourceError(
                    f"{where}: the request could not be sent ({type(exc).__name__}: {self._scrub(str(exc))})",
                    hint="check the URL in the block",
                ) from None
            except httpx.TransportError as exc:
                what = "timed out" if isinstance(exc, httpx.TimeoutException) else "could not be reached"
                if failures < self.max_retries:
                    self.sleep(self._backoff(failures))
                    failures += 1
                    continue
                raise SourceError(
                    f"{where} {what} ({type(exc).__name__}: {self._scrub(str(exc))}), {failures + 1} attempts",
                    hint="check that the host is up and reachable from the worker; raise timeout_seconds in the "
                    "block if it is only slow",
                    transient=True,
                ) from None

            status = response.status_code
            if 200 <= status < 300:
                return self._json(response, where), response
            if status in (403, 429):
                wait = self._rate_limit_wait(response, where)
                if wait is not None:
                    if waits > self.max_retries:
                        raise SourceError(
                            f"{where}: still rate limited after {waits} waits (HTTP {status})",
                            hint="another client may be using the same token; run again later",
                            transient=True,
                            status=status,
                        )
                    self.sleep(wait)
                    waits += 1
                    continue
            if status == 429 or status >= 500:
                if failures < self.max_retries:
                    delay = self._backoff(failures)
                    retry_after = response.headers.get("retry-after")
                    asked = _retry_after_seconds(retry_after, self.clock()) if retry_after else None
                    if asked is not None and asked <= self.max_wait_seconds:
                        delay = asked
                    self.sleep(delay)
                    failures += 1
                    continue
                message = _api_message(response)
                raise SourceError(
                    f"{where} answered HTTP {status} {response.reason_phrase} {failures + 1} times"
                    + (f": {self._scrub(message)}" if message else ""),
                    hint="the service is failing or overloaded; run again later",
                    transient=True,
                    status=status,
                )
            raise self._refused(response, where)

    def _backoff(self, failures: int) -> float:
        return min(self.backoff_seconds * 2**failures, self.max_wait_seconds)

    def _json(self, response: httpx.Response, where: str) -> Any:
        try:
            return json_text.loads(response.content.decode("utf-8-sig"))
        except UnicodeDecodeError as exc:
            problem = f"is not UTF-8 text (bad byte at position {exc.start})"
        except json.JSONDecodeError as exc:
            problem = f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        kind = response.headers.get("content-type", "").split(";")[0].strip()
        raise SourceError(
            f"{where} {problem}; {('content type ' + kind) if kind else 'no content type'}, "
            f"{len(response.content)} bytes",
            hint="the server answered with something other than the API's JSON, perhaps a proxy or login page; "
            "check the URL in the block and run again",
            status=response.status_code,
        )

    def _rate_limit_wait(self, response: httpx.Response, where: str) -> float | None:
        """Seconds to wait before asking again, None when the answer is not a rate limit; raises if too long."""
        headers, now = response.headers, self.clock()
        reset_at: float | None = None
        if headers.get("retry-after"):
            seconds = _retry_after_seconds(headers["retry-after"], now)
            reset_at = None if seconds is None else now + seconds
        elif headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset"):
            epoch = _reset_epoch(headers["x-ratelimit-reset"])
            # The reset is whole seconds; a second more keeps us clear of clock skew.
            reset_at = None if epoch is None else epoch + 1
        elif "rate limit" in _api_message(response).lower():
            # GitHub's secondary limits may come without headers; its docs say to wait at least a minute.
            reset_at = now + 60
        if reset_at is None:
            return None
        wait = max(reset_at - now, 0.0)
        if wait <= self.max_wait_seconds:
            return wait
        moment = datetime.fromtimestamp(reset_at, UTC)
        raise SourceError(
            f"{where}: API rate limit exhausted (HTTP {response.status_code}); it resets at "
            f"{moment:%Y-%m-%d %H:%M:%S} UTC, in {_duration(wait)}, longer than the {self.max_wait_seconds:g} s "
            "this read may wait",
            hint="run again after the reset, use a token of its own for PPMS, or raise max_wait_seconds",
            transient=True,
            status=response.status_code,
            reset_at=moment,
        )

    def _refused(self, response: httpx.Response, where: str) -> SourceError:
        status = response.status_code
        message = self._scrub(_api_message(response))
        detail = f": {message}" if message else ""
        default_hints = {
            401: "check the block's token: it may be expired, revoked or mistyped",
            403: "the token lacks access; give it read access to the issues",
            404: "check the URL and names in the block; private items look missing to a token that cannot see them",
        }
        hint = self.hints.get(status) or default_hints.get(status) or "check the block's URL, names and token"
        if status == 401:
            return SourceError(f"{where}: token rejected (HTTP 401){detail}", hint=hint, status=status)
        return SourceError(
            f"{where} answered HTTP {status} {response.reason_phrase}{detail}".rstrip(), hint=hint, status=status
        )

    def fetch_pages(
        self, url: str, params: dict[str, Any] | None = None, *, max_pages: int = 100_000
    ) -> Iterator[Page]:
        """GET ``url`` and every page after it, following RFC 5988 ``Link: <...>; rel="next"`` headers."""
        origin, seen, number = _origin(url), set(), 1
        while True:
            data, response = self.request_json("GET", url, page=number, params=params)
            yield Page(number, _shown_url(response.request.url), data)
            link = response.links.get("next", {}).get("url")
            if not link:
                return
            link = urljoin(str(response.url), link)
            if _origin(link) != origin:
                # The token would travel with the request; an API never pages onto another host.
                raise SourceError(
                    f"{self.label}: page {number} links its next page to another host ({_origin(link)[1]}); "
                    "not followed",
                    hint="check the API URL in the block",
                )
            if link in seen or number >= max_pages:
                raise SourceError(
                    f"{self.label}: page {number} links back to a page already read ({_shown_url(link)})",
                    hint="the API's pagination is looping; run again later",
                )
            seen.add(link)
            url, params, number = link, None, number + 1


@contextlib.contextmanager
def _http_client(client: httpx.Client | None) -> Iterator[httpx.Client]:
    if client is not None:
        yield client
        return
    with httpx.Client(follow_redirects=True) as own:
        yield own
