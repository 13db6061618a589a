"""PPMS connectors: GitHub issues, Jira issues and CSV files read into normalised records (a ``Batch``).

``read_github`` and ``read_jira`` page through the trackers' REST APIs with a shared HTTP layer
(``Fetcher``): bounded retries with backoff on 5xx, timeouts and connection errors; rate limits waited out
when they reset within ``max_wait_seconds``, else a ``SourceError`` saying when they reset; 401/403/404
and malformed pages as ``SourceError`` naming the page and URL, with a hint. Any ``SourceError`` aborts the
whole read: a batch is all of a source or nothing, so its cursor never skips unread items. A single item
that cannot be read goes to ``Batch.rejected`` with the reason; the rest load.

Decisions worth knowing:

- Incremental: ``since`` becomes GitHub's ``since=`` and Jira's ``updated >= "yyyy-MM-dd HH:mm"`` (in the
  block's ``jql_timezone``, because Jira reads JQL dates in the account's time zone; rounded down to the
  minute). Both are inclusive, so the newest item of a run is read again next run (upserts are idempotent).
  ``Batch.cursor`` is the newest ``updated`` of every item listed (rejected ones and GitHub pull requests
  too: a rejected item is read again once someone edits it, which moves its updated time), or ``since`` when
  nothing was listed.
- Order: GitHub is read ``sort=created&direction=asc`` and Jira ``ORDER BY created ASC`` (a JQL's own ORDER
  BY is replaced). With offset pagination, an updated-time order moves an item edited during the read to
  the end and shifts the rest back by one, silently skipping an item; creation order only ever appends.
- GitHub status: closed → done (also closed as not planned: the record has no resolution); open with a
  label "in progress" (any case, "-" or "_" for the space), "wip", "doing", "started", "in development" or
  "in review", optionally prefixed "status:", → in_progress; else todo.
  Type: the issue's GitHub issue type when set, else the first label naming one (bug/defect →
  bug; feature/enhancement/story → feature; chore/maintenance/tech debt/refactor/docs → chore; task → task;
  "type: " prefixes allowed), else task. Estimate: the largest estimate label ("estimate: 3d", "estimate: 6h",
  "points: 5" × days_per_point; prefixes from the block; an unreadable one rejects the issue), else the first
  body line "Estimate: 2d" / "Points: 3" (prose there that is not an amount is ignored). Units: d, h, w (5 d).
  started_at: GitHub has no start time without per-issue timeline requests, so it is the issue's updated
  time while it carries an in-progress label (an upper bound; keep the earliest seen) and None otherwise.
- GitHub dependencies from body lines (outside code blocks, HTML comments and quotes): "Depends on #12",
  "Blocked by owner/repo#34" (or an issue URL) → this depends on it; "Blocks #56" → #56 depends on this.
- Jira status from ``status.statusCategory.key`` (new → todo, indeterminate → in_progress, done → done);
  started_at is ``statuscategorychangedate`` while in progress, done_at ``resolutiondate`` (else that
  date) when done. Dependencies from "Blocks" links: inwardIssue ("is blocked by") → this depends on it,
  outwardIssue ("blocks") → it depends on this; across projects too.
- Only edges whose dependent task is in the batch are kept. The store replaces a task's dependencies
  with those the batch declares for it, so an edge declared for a task outside the batch (GitHub "Blocks
  #56" when #56 was not updated; a Jira outward link to an issue outside the JQL or not updated) would wipe
  that task's other edges. Jira shows every link on both issues, so nothing is lost there; a GitHub
  "Blocks" line is seen only when the blocked issue is read in the same run (always on a full read).
- Keys: ``github:{owner}/{repo}#{n}`` (owner/repo lower-cased, as GitHub names are case-insensitive),
  ``jira:{KEY}``; CSV keys and projects are kept as written. Skills are lower-cased everywhere.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo

import httpx
from pydantic import ValidationError

from framework2.blocks.project_sources import GitHubSource, JiraSource
from framework2.errors import DataError, Framework2Error
from framework2.tasks import json_text
from framework2.tasks.planning.records import Batch, DependencyRecord, PersonRecord, ProjectRecord, TaskRecord

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


# --- HTTP layer ------------------------------------------------------------------------------------


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


# --- shared mapping helpers ------------------------------------------------------------------------


class _Reject(Exception):
    """One item cannot be read; the message is the reason."""


def _parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time (Jira's ``+0000`` offsets and bare dates too) as aware UTC; None if unreadable."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value.strip():
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    # A time without an offset is read as UTC; guessing a local zone would be worse.
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 or 9999-12-31T23:59-01:00: no UTC time exists for it
        return None


def _item_time(item: dict[str, Any], name: str, *, required: bool) -> datetime | None:
    value = item.get(name)
    if value in (None, ""):
        if required:
            raise _Reject(f"{name} is missing")
        return None
    moment = _parse_time(value)
    if moment is None:
        raise _Reject(f"{name} {value!r} is not an ISO 8601 time")
    return moment


def _validation_reason(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}" for e in exc.errors())


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _newest(current: datetime | None, candidate: datetime | None) -> datetime | None:
    if candidate is None:
        return current
    return candidate if current is None or candidate > current else current


def _owned_edges(edges: Sequence[DependencyRecord], tasks: Sequence[TaskRecord]) -> list[DependencyRecord]:
    """Edges whose dependent task is in the batch, each once (see the module docstring for why).

    Self-dependencies are kept: the store's validation quarantines them with a reason someone can act on.
    """
    keys = {t.key for t in tasks}
    return [e for e in dict.fromkeys(edges) if e.task in keys]


_TYPE_WORDS = {
    "bug": "bug",
    "defect": "bug",
    "feature": "feature",
    "enhancement": "feature",
    "feature request": "feature",
    "new feature": "feature",
    "improvement": "feature",
    "story": "feature",
    "user story": "feature",
    "chore": "chore",
    "maintenance": "chore",
    "tech debt": "chore",
    "technical debt": "chore",
    "refactor": "chore",
    "refactoring": "chore",
    "documentation": "chore",
    "docs": "chore",
    "task": "task",
    "sub task": "task",
    "subtask": "task",
    "epic": "epic",
}
_IN_PROGRESS_WORDS = {"in progress", "wip", "doing", "started", "in development", "in review"}


def _words(text: str) -> str:
    """Lower case with '-', '_' and runs of spaces as one space: 'In-Progress' → 'in progress'."""
    return re.sub(r"[\s_-]+", " ", text.strip().lower())


def _without_prefix(label: str, prefixes: Sequence[str]) -> str:
    words = _words(label)
    for prefix in prefixes:
        match = re.match(rf"^{prefix}\s*:\s*", words)
        if match:
            return words[match.end() :]
    return words


def _task_type(name: str) -> str:
    words = _words(name)
    return _TYPE_WORDS.get(words, words or "task")


def _prefixed(labels: Sequence[str], prefix: str) -> list[tuple[str, str]]:
    """(label, value after the prefix) for labels starting with ``prefix`` (case-insensitive)."""
    if not prefix:
        return []
    return [(label, label[len(prefix) :].strip()) for label in labels if label.lower().startswith(prefix.lower())]


_AMOUNT = re.compile(
    r"^(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>d|days?|h|hrs?|hours?|w|wks?|weeks?|pts?|points?|sp)?\.?$", re.I
)


_LEADING_AMOUNT = re.compile(r"\d+(?:\.\d+)?\s*(?:d|days?|h|hrs?|hours?|w|wks?|weeks?|pts?|points?|sp)?\b", re.I)


def _days(text: str, *, points: bool, days_per_point: float, hours_per_day: float) -> float | None:
    """'3d', '6h', '1w', '5' (days, or points when ``points``) in ideal days; None if unreadable."""
    match = _AMOUNT.match(text.strip())
    if not match:
        return None
    number, unit = float(match["number"]), (match["unit"] or "").lower()
    if unit.startswith("h"):
        return number / hours_per_day
    if unit.startswith("w"):
        return number * 5
    if unit.startswith(("p", "s")) or (not unit and points):
        return number * days_per_point
    return number


# --- GitHub ----------------------------------------------------------------------------------------

_REF = re.compile(
    r"\s*(?:[,:;&]|\band\b)?\s*"
    r"(?:https?://[^\s/]+/(?P<url_repo>[\w.-]+/[\w.-]+)/(?:issues|pull)/(?P<url_number>\d+)\b"
    r"|(?P<repo>[\w.-]+/[\w.-]+)?#(?P<number>\d+)\b)",
    re.I,
)
_DEPENDENCY_PHRASE = re.compile(r"\b(depends\s+on|blocked\s+by|blocks)\b", re.I)


def _readable_body(body: str) -> list[str]:
    """Body lines that state something: no fenced code, HTML comments (issue templates) or quoted replies."""
    body = re.sub(r"```.*?(```|$)", "", body, flags=re.S)
    body = re.sub(r"<!--.*?(-->|$)", "", body, flags=re.S)
    lines = []
    for raw in body.splitlines():
        if raw.lstrip().startswith(">"):
            continue
        # Markdown decoration around "Estimate: 2d": bold, inline code, list items, task boxes, headings.
        line = re.sub(r"[*`]", "", raw).strip()
        line = re.sub(r"^(?:[-+]\s+(?:\[[ xX]\]\s+)?|\d+[.)]\s+|#+\s+)", "", line).strip()
        if line:
            lines.append(line)
    return lines


def _github_key(repo: str, number: int | str) -> str:
    return f"github:{repo.lower()}#{number}"


def github_dependencies(body: str, repo: str, this: str) -> list[DependencyRecord]:
    """Edges stated in an issue body of ``repo``: "Depends on #12", "Blocked by o/r#3", "Blocks #56"."""
    edges = []
    for line in _readable_body(body or ""):
        for phrase in _DEPENDENCY_PHRASE.finditer(line):
            reverse = _words(phrase.group(1)) == "blocks"
            position = phrase.end()
            while ref := _REF.match(line, position):
                other = _github_key(ref["url_repo"] or ref["repo"] or repo, ref["url_number"] or ref["number"])
                edges.append(
                    DependencyRecord(task=other, depends_on=this)
                    if reverse
                    else DependencyRecord(task=this, depends_on=other)
                )
                position = ref.end()
    return edges


def _github_estimate(source: GitHubSource, labels: list[str], body: str) -> float | None:
    convert = {"days_per_point": source.days_per_point, "hours_per_day": source.hours_per_day}
    found: list[float] = []
    for prefix, points in ((source.estimate_label_prefix, False), (source.points_label_prefix, True)):
        for label, value in _prefixed(labels, prefix):
            days = _days(value, points=points, **convert)
            if days is None:
                raise _Reject(f"label {label!r} is not an estimate like '{prefix} 3d', '{prefix} 6h' or '{prefix} 2'")
            found.append(days)
    if found:
        return max(found)  # conflicting labels: plan with the larger
    # A body is prose: a line like "Estimate: about a week" is read as no estimate rather than rejected.
    for line in _readable_body(body):
        for prefix, points in ((source.estimate_label_prefix, False), (source.points_label_prefix, True)):
            if prefix and line.lower().startswith(prefix.lower()):
                amount = _LEADING_AMOUNT.match(line[len(prefix) :].strip())
                if amount:
                    return _days(amount.group(0), points=points, **convert)
    return None


def _github_task(source: GitHubSource, repo: str, item: dict[str, Any]) -> tuple[TaskRecord, list[DependencyRecord]]:
    number = item.get("number")
    if not isinstance(number, int) or isinstance(number, bool):
        raise _Reject(f"issue number {number!r} is not a number")
    key = _github_key(repo, number)
    labels = [
        str(label.get("name") if isinstance(label, dict) else label).strip()
        for label in item.get("labels") or []
        if (label.get("name") if isinstance(label, dict) else label)
    ]
    plain = [_without_prefix(label, ("status", "state")) for label in labels]

    state = item.get("state")
    if state == "closed":
        status = "done"
    elif state == "open":
        status = "in_progress" if any(word in _IN_PROGRESS_WORDS for word in plain) else "todo"
    else:
        raise _Reject(f"state {state!r} is neither 'open' nor 'closed'")

    issue_type = item.get("type")  # GitHub's issue types, where the organisation uses them
    if isinstance(issue_type, dict) and issue_type.get("name"):
        task_type = _task_type(str(issue_type["name"]))
    else:
        named = (_TYPE_WORDS.get(_without_prefix(label, ("type", "kind"))) for label in labels)
        task_type = next((t for t in named if t), "task")

    body = item.get("body") if isinstance(item.get("body"), str) else ""
    created = _item_time(item, "created_at", required=True)
    updated = _item_time(item, "updated_at", required=True)
    closed = _item_time(item, "closed_at", required=False)
    assignee = item.get("assignee") if isinstance(item.get("assignee"), dict) else {}
    milestone = item.get("milestone") if isinstance(item.get("milestone"), dict) else {}
    try:
        task = TaskRecord(
            key=key,
            project=f"github:{repo.lower()}",
            title=str(item.get("title") or ""),
            status=status,
            type=task_type,
            labels=labels,
            estimate_days=_github_estimate(source, labels, body),
            assignee=assignee.get("login"),
            required_skills=[v.lower() for _, v in _prefixed(labels, source.skill_label_prefix) if v],
            created_at=created,
            # Without the issue timeline the start is unknown; while labelled in progress, its last update
            # is an upper bound of when work started.
            started_at=updated if status == "in_progress" else None,
            done_at=(closed or updated) if status == "done" else None,
            updated_at=updated,
            milestone=milestone.get("title"),
        )
    except ValidationError as exc:
        raise _Reject(_validation_reason(exc)) from None
    return task, github_dependencies(body, repo, key)


def _github_payload(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        return {"item": repr(item)[:200]}
    keep = ("number", "title", "state", "html_url", "created_at", "updated_at", "closed_at")
    payload = {k: item.get(k) for k in keep if k in item}
    payload["labels"] = [label.get("name") if isinstance(label, dict) else label for label in item.get("labels") or []]
    return payload


def read_github(
    source: GitHubSource,
    since: datetime | None,
    *,
    client: httpx.Client | None = None,
    sleep: Sleep = time.sleep,
    clock: Clock = time.time,
    max_wait_seconds: float = 60.0,
    max_retries: int = 3,
) -> Batch:
    """Issues of the block's repositories updated at or after ``since`` (all when None), pull requests skipped.

    Raises SourceError when a repository cannot be read; single unreadable issues go to ``rejected``.
    """
    since = _utc(since)
    token = source.token.get_secret_value() if source.token else ""
    label = f"GitHub source '{source.label}'"
    _check_header_value(token, "token", label)
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    batch = Batch(cursor=since)
    edges: list[DependencyRecord] = []
    with _http_client(client) as http:
        fetcher = Fetcher(
            http,
            label=label,
            headers=headers,
            secrets=(token,),
            hints={
                401: "check the token in the GitHub Source block: it may be expired, revoked or mistyped",
                403: "the token lacks access: a fine-grained token needs Issues (read) on these repositories, "
                "a classic one the repo scope for private repositories",
                404: "check the repositories ('owner/name') and api_url in the GitHub Source block; GitHub answers "
                "404 for private repositories the token cannot see",
            },
            timeout_seconds=source.timeout_seconds,
            max_retries=max_retries,
            max_wait_seconds=max_wait_seconds,
            sleep=sleep,
            clock=clock,
        )
        for repo in source.repositories:
            batch.projects.append(ProjectRecord(key=f"github:{repo.lower()}", name=repo, source="github"))
            params: dict[str, Any] = {
                "state": "all",
                "sort": "created",
                "direction": "asc",
                "per_page": source.per_page,
            }
            if since is not None:
                params["since"] = since.strftime("%Y-%m-%dT%H:%M:%SZ")
            for page in fetcher.fetch_pages(f"{source.api_url}/repos/{repo}/issues", params):
                if not isinstance(page.data, list):
                    kind = type(page.data).__name__
                    raise SourceError(
                        f"{label}: page {page.number} ({page.url}) is a JSON {kind}, not a list of issues",
                        hint="check api_url in the GitHub Source block",
                    )
                for item in page.data:
                    if isinstance(item, dict):
                        batch.cursor = _newest(batch.cursor, _parse_time(item.get("updated_at")))
                        if "pull_request" in item:  # the issues API lists pull requests too
                            continue
                    try:
                        if not isinstance(item, dict):
                            raise _Reject(f"item is a JSON {type(item).__name__}, not an issue")
                        task, found = _github_task(source, repo, item)
                    except _Reject as exc:
                        number = item.get("number") if isinstance(item, dict) else None
                        batch.rejected.append(
                            {
                                "source": _github_key(repo, number) if number is not None else f"github:{repo}",
                                "reason": f"{_github_key(repo, number or '?')} (page {page.number}): {exc}",
                                "payload": _github_payload(item),
                            }
                        )
                        continue
                    batch.tasks.append(task)
                    edges.extend(found)
    batch.dependencies = _owned_edges(edges, batch.tasks)
    return batch


# --- Jira ------------------------------------------------------------------------------------------

JIRA_FIELDS = (
    "summary",
    "status",
    "issuetype",
    "labels",
    "assignee",
    "created",
    "updated",
    "resolutiondate",
    "issuelinks",
    "fixVersions",
    "project",
    "parent",
    "statuscategorychangedate",
)
_JIRA_STATUS = {"new": "todo", "undefined": "todo", "indeterminate": "in_progress", "done": "done"}
_JIRA_TIME_FIELDS = {"timeoriginalestimate", "timeestimate", "aggregatetimeoriginalestimate", "aggregatetimeestimate"}


def jira_jql(source: JiraSource, since: datetime | None) -> str:
    """The block's JQL, plus ``updated >= "..."`` when ``since`` is given, in creation order."""
    base = source.base_jql()
    orders = list(re.finditer(r"\border\s+by\b", base, re.I))
    condition = (base[: orders[-1].start()] if orders else base).strip()
    parts = [f"({condition})"] if condition else []
    since = _utc(since)
    if since is not None:
        # Jira reads JQL dates in the account's time zone and to the minute: round down so nothing is missed.
        local = since.astimezone(ZoneInfo(source.jql_timezone))
        parts.append(f'updated >= "{local:%Y-%m-%d %H:%M}"')
    return " AND ".join(parts) + " ORDER BY created ASC, key ASC"


def _jira_estimate(source: JiraSource, fields: dict[str, Any]) -> float | None:
    name = source.estimate_field
    if not name:
        return None
    value = fields.get(name)
    if value is None or value == "":
        return None
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise _Reject(f"estimate field {name} {value!r} is not a number of zero or more")
    if name in _JIRA_TIME_FIELDS:  # time tracking is in seconds
        return number / 3600 / source.hours_per_day
    return number * source.days_per_point


def _jira_assignee(source: JiraSource, fields: dict[str, Any]) -> str | None:
    person = fields.get("assignee")
    if not isinstance(person, dict):
        return None
    return person.get(source.assignee_handle) or person.get("accountId")


def _jira_milestone(fields: dict[str, Any]) -> str | None:
    versions = [v.get("name") for v in fields.get("fixVersions") or [] if isinstance(v, dict) and v.get("name")]
    if versions:
        return str(versions[0])
    parent = fields.get("parent") if isinstance(fields.get("parent"), dict) else {}
    parent_fields = parent.get("fields") if isinstance(parent.get("fields"), dict) else {}
    parent_type = parent_fields.get("issuetype") if isinstance(parent_fields.get("issuetype"), dict) else {}
    if _words(str(parent_type.get("name") or "")) == "epic":
        return parent_fields.get("summary") or parent.get("key")
    return None


def jira_dependencies(this: str, links: Any) -> list[DependencyRecord]:
    """Edges from an issue's "Blocks" links: inward ("is blocked by") → this depends on it, outward the reverse."""
    edges = []
    for link in links if isinstance(links, list) else []:
        if not isinstance(link, dict):
            continue
        kind = link.get("type") if isinstance(link.get("type"), dict) else {}
        if _words(str(kind.get("name") or "")) != "blocks" and _words(str(kind.get("inward") or "")) != (
            "is blocked by"
        ):
            continue
        inward, outward = link.get("inwardIssue"), link.get("outwardIssue")
        if isinstance(inward, dict) and inward.get("key"):
            edges.append(DependencyRecord(task=this, depends_on=f"jira:{inward['key']}"))
        if isinstance(outward, dict) and outward.get("key"):
            edges.append(DependencyRecord(task=f"jira:{outward['key']}", depends_on=this))
    return edges


def _jira_task(source: JiraSource, issue: dict[str, Any]) -> tuple[TaskRecord, list[DependencyRecord]]:
    issue_key = issue.get("key")
    if not isinstance(issue_key, str) or not issue_key.strip():
        raise _Reject("issue has no key")
    fields = issue.get("fields")
    if not isinstance(fields, dict):
        raise _Reject("issue has no fields")
    key = f"jira:{issue_key}"
    project = fields.get("project") if isinstance(fields.get("project"), dict) else {}
    project_key = project.get("key") or issue_key.rsplit("-", 1)[0]

    status_field = fields.get("status") if isinstance(fields.get("status"), dict) else {}
    category = status_field.get("statusCategory") if isinstance(status_field.get("statusCategory"), dict) else {}
    status = _JIRA_STATUS.get(str(category.get("key")))
    if status is None:
        raise _Reject(
            f"status {status_field.get('name')!r} has status category {category.get('key')!r}, not one of "
            "new, indeterminate, done"
        )
    issue_type = fields.get("issuetype") if isinstance(fields.get("issuetype"), dict) else {}
    labels = [str(label) for label in fields.get("labels") or [] if str(label).strip()]
    created = _item_time(fields, "created", required=True)
    updated = _item_time(fields, "updated", required=True)
    resolved = _item_time(fields, "resolutiondate", required=False)
    category_changed = _item_time(fields, "statuscategorychangedate", required=False)
    try:
        task = TaskRecord(
            key=key,
            project=f"jira:{project_key}",
            title=str(fields.get("summary") or ""),
            status=status,
            type=_task_type(str(issue_type.get("name") or "task")),
            labels=labels,
            estimate_days=_jira_estimate(source, fields),
            assignee=_jira_assignee(source, fields),
            required_skills=[v.lower() for _, v in _prefixed(labels, source.skill_label_prefix) if v],
            created_at=created,
            # The status category last changed when it entered its current one: the start while in progress.
            started_at=category_changed if status == "in_progress" else None,
            done_at=(resolved or category_changed or updated) if status == "done" else None,
            updated_at=updated,
            milestone=_jira_milestone(fields),
        )
    except ValidationError as exc:
        raise _Reject(_validation_reason(exc)) from None
    return task, jira_dependencies(key, fields.get("issuelinks"))


def _jira_payload(issue: Any) -> dict[str, Any]:
    if not isinstance(issue, dict):
        return {"item": repr(issue)[:200]}
    fields = issue.get("fields") if isinstance(issue.get("fields"), dict) else {}
    status = fields.get("status") if isinstance(fields.get("status"), dict) else {}
    return {
        "key": issue.get("key"),
        "summary": fields.get("summary"),
        "status": status.get("name"),
        "created": fields.get("created"),
        "updated": fields.get("updated"),
    }


def iter_jira_issues(
    source: JiraSource,
    jql: str,
    fields: Sequence[str],
    *,
    client: httpx.Client | None = None,
    sleep: Sleep = time.sleep,
    clock: Clock = time.time,
    max_wait_seconds: float = 60.0,
    max_retries: int = 3,
) -> Iterator[tuple[int, Any]]:
    """Every issue ``jql`` finds, raw, with the page it came on (PPMS tasks and PCES requirements read through it).

    Pages are followed by the shape of the answer: ``nextPageToken``/``isLast`` (``/search/jql``) or
    ``startAt``/``total`` (the classic ``/search``). Raises SourceError when the search cannot be read.
    """
    token = source.api_token.get_secret_value()
    label = f"Jira source '{source.label}'"
    _check_header_value(token, "api_token", label)
    _check_header_value(source.email, "email", label)
    basic = base64.b64encode(f"{source.email}:{token}".encode()).decode()
    url = source.site_url + source.search_path
    query = {"jql": jql, "fields": list(fields), "maxResults": source.page_size}
    with _http_client(client) as http:
        fetcher = Fetcher(
            http,
            label=label,
            headers={"Accept": "application/json"},
            auth=(source.email, token),
            secrets=(token, basic),
            hints={
                401: "check email and api_token in the Jira Source block (the token must belong to that email)",
                403: "the account lacks 'Browse projects' permission on these projects",
                400: "Jira rejected the JQL; fix jql or project_keys in the Jira Source block",
                404: "check site_url and search_path in the Jira Source block",
                410: "this search endpoint was removed; set search_path to /rest/api/3/search/jql",
            },
            timeout_seconds=source.timeout_seconds,
            max_retries=max_retries,
            max_wait_seconds=max_wait_seconds,
            sleep=sleep,
            clock=clock,
        )
        body: dict[str, Any] = dict(query)
        number, tokens = 1, set()
        while True:
            document, _ = fetcher.request_json("POST", url, page=number, json_body=body)
            where = f"{label}: page {number} ({url})"
            if not isinstance(document, dict) or not isinstance(document.get("issues"), list):
                found = ", ".join(map(str, document)) if isinstance(document, dict) else type(document).__name__
                raise SourceError(
                    f"{where} has no 'issues' list (found: {found or 'nothing'})",
                    hint="check site_url and search_path in the Jira Source block",
                )
            for issue in document["issues"]:
                yield number, issue

            if "nextPageToken" in document or ("isLast" in document and "startAt" not in document):
                next_token = document.get("nextPageToken")
                if document.get("isLast") is True or not next_token:
                    break
                if next_token in tokens:
                    raise SourceError(f"{where} repeats a page token", hint="Jira's pagination is looping; run again")
                tokens.add(next_token)
                body = {**query, "nextPageToken": next_token}
            elif "startAt" in document or "total" in document:
                try:
                    start, total = int(document.get("startAt", body.get("startAt", 0))), int(document["total"])
                except (KeyError, TypeError, ValueError):
                    raise SourceError(
                        f"{where} has startAt but no numeric 'total'", hint="check search_path in the Jira Source block"
                    ) from None
                following = start + len(document["issues"])
                if not document["issues"] or following >= total or document.get("isLast") is True:
                    break
                body = {**query, "startAt": following}
            else:
                break  # neither shape: a single page
            number += 1


def read_jira(
    source: JiraSource,
    since: datetime | None,
    *,
    client: httpx.Client | None = None,
    sleep: Sleep = time.sleep,
    clock: Clock = time.time,
    max_wait_seconds: float = 60.0,
    max_retries: int = 3,
) -> Batch:
    """Issues matching the block's JQL updated at or after ``since`` (all when None), as tasks.

    Raises SourceError when the search cannot be read (see ``iter_jira_issues``).
    """
    since = _utc(since)
    label = f"Jira source '{source.label}'"
    fields = [*JIRA_FIELDS, *([source.estimate_field] if source.estimate_field else [])]
    batch = Batch(cursor=since)
    edges: list[DependencyRecord] = []
    projects: dict[str, ProjectRecord] = {}
    issues = iter_jira_issues(
        source,
        jira_jql(source, since),
        fields,
        client=client,
        sleep=sleep,
        clock=clock,
        max_wait_seconds=max_wait_seconds,
        max_retries=max_retries,
    )
    for number, issue in issues:
        fields_of = issue.get("fields") if isinstance(issue, dict) else None
        if isinstance(fields_of, dict):
            batch.cursor = _newest(batch.cursor, _parse_time(fields_of.get("updated")))
        try:
            if not isinstance(issue, dict):
                raise _Reject(f"item is a JSON {type(issue).__name__}, not an issue")
            task, found_edges = _jira_task(source, issue)
        except _Reject as exc:
            issue_key = issue.get("key") if isinstance(issue, dict) else None
            batch.rejected.append(
                {
                    "source": f"jira:{issue_key}" if issue_key else label,
                    "reason": f"jira:{issue_key or '?'} (page {number}): {exc}",
                    "payload": _jira_payload(issue),
                }
            )
            continue
        batch.tasks.append(task)
        edges.extend(found_edges)
        project = fields_of.get("project") if isinstance(fields_of.get("project"), dict) else {}
        projects.setdefault(
            task.project,
            ProjectRecord(key=task.project, name=project.get("name") or task.project[5:], source="jira"),
        )
    for key in source.project_keys:
        projects.setdefault(f"jira:{key}", ProjectRecord(key=f"jira:{key}", name=key, source="jira"))
    batch.projects = list(projects.values())
    batch.dependencies = _owned_edges(edges, batch.tasks)
    return batch


# --- CSV -------------------------------------------------------------------------------------------

TASK_COLUMNS = (
    "key",
    "project",
    "title",
    "status",
    "type",
    "labels",
    "estimate_days",
    "estimate_hours",
    "assignee",
    "required_skills",
    "created_at",
    "started_at",
    "done_at",
    "updated_at",
    "milestone",
    "depends_on",
    "business_value",
    "time_criticality",
    "risk_reduction",
    "reach",
    "impact",
    "confidence",
)
PEOPLE_COLUMNS = ("handle", "name", "skills", "weekly_capacity_days", "time_off")
# An estimate in hours becomes ideal days at this many hours of focused work a day.
HOURS_PER_DAY = 8.0
# No single task is estimated at more than ten years of work; a larger number is a unit or typing mistake.
MAX_ESTIMATE_DAYS = 3650.0
EARLIEST_DATE = datetime(1970, 1, 1, tzinfo=UTC)
FUTURE_YEARS = 5
MAX_CELL_CHARS = 2**20
_SCORE_COLUMNS = ("business_value", "time_criticality", "risk_reduction", "reach", "impact", "confidence")
_CSV_STATUS = {
    "todo": "todo",
    "to do": "todo",
    "open": "todo",
    "new": "todo",
    "backlog": "todo",
    "planned": "todo",
    "in progress": "in_progress",
    "doing": "in_progress",
    "started": "in_progress",
    "wip": "in_progress",
    "done": "done",
    "closed": "done",
    "resolved": "done",
    "complete": "done",
    "completed": "done",
}


def _csv_text(path_or_text: str | Path) -> tuple[str, str]:
    """(text, name for messages). A ``str`` holding a line break is CSV text; any other is a file path."""
    if isinstance(path_or_text, str) and "\n" in path_or_text:
        return path_or_text.lstrip("\ufeff"), "CSV text"
    path = Path(path_or_text)
    try:
        return path.read_text(encoding="utf-8-sig"), path.name
    except FileNotFoundError:
        raise DataError(f"CSV file {path} does not exist", hint="check the path in framework2.toml") from None
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path.name} is not UTF-8 text (bad byte at position {exc.start})",
            hint="save the file as CSV UTF-8 from the spreadsheet",
        ) from None
    except OSError as exc:
        raise DataError(
            f"CSV file {path} cannot be read: {exc.strerror}", hint="check the path and its permissions"
        ) from None


def _csv_rows(
    text: str, name: str, required: Sequence[str], known: Sequence[str]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row with normalised column names) for each non-blank row; DataError on a bad header."""
    # Long cells (a pasted description) are fine up to a bound; past it, an unclosed quote is the usual cause.
    csv.field_size_limit(max(csv.field_size_limit(), MAX_CELL_CHARS))
    reader = csv.DictReader(io.StringIO(text), restkey="__extra__")
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise DataError(f"{name} is not readable CSV: {exc}", hint="export the sheet as CSV") from None
    if not header:
        raise DataError(f"{name} is empty", hint=f"the first row must name the columns: {', '.join(known)}")
    columns = [re.sub(r"\s+", "_", (h or "").strip().lower()) for h in header]
    twice = sorted({c for c in columns if c and columns.count(c) > 1})
    if twice:
        raise DataError(
            f"{name}: column(s) {', '.join(twice)} appear more than once in the header",
            hint="keep one of each; the file does not say which one is meant",
        )
    missing = [c for c in required if c not in columns]
    if missing:
        raise DataError(
            f"{name}: required column(s) {', '.join(missing)} missing; columns found: "
            f"{', '.join(c or '(blank)' for c in columns)}",
            hint=f"name the columns in the first row; known columns: {', '.join(known)}",
        )
    reader.fieldnames = columns
    try:
        for row in reader:
            cells = [v for k, v in row.items() if k != "__extra__"]
            if not row.get("__extra__") and all(not (v or "").strip() for v in cells):
                continue
            yield reader.line_num, row
    except csv.Error as exc:
        hint = "fix the quoting"
        if "field larger than field limit" in str(exc):
            hint = f"a cell runs past {MAX_CELL_CHARS:,} characters, which usually means a quote that is never closed"
        raise DataError(f"{name} line {reader.line_num} is not readable CSV: {exc}", hint=hint) from None


def _cell(row: dict[str, Any], column: str) -> str:
    value = row.get(column)
    return value.strip() if isinstance(value, str) else ""


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(";") if part.strip()]


class _RowProblems:
    """Collects every problem of a row, so one pass tells the user all that needs fixing."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def time(self, row: dict[str, Any], column: str) -> datetime | None:
        value = _cell(row, column)
        if not value:
            return None
        moment = _parse_time(value)
        if moment is None:
            self.reasons.append(f"{column} {value!r} is not a date (write e.g. 2026-03-01 or 2026-03-01T09:00Z)")
            return None
        latest = datetime.now(UTC) + timedelta(days=366 * FUTURE_YEARS)
        if not EARLIEST_DATE <= moment <= latest:
            # 9999-12-31 and 0001-01-01 are "no date" placeholders; 2204 is a typo. Either would move "now" or
            # the first moment of a history by centuries.
            self.reasons.append(
                f"{column} {value!r} is not a plausible date (between {EARLIEST_DATE.year} and {latest.year})"
            )
            return None
        return moment

    def number(self, row: dict[str, Any], column: str, *, upper: float | None = None) -> float | None:
        value = _cell(row, column)
        if not value:
            return None
        try:
            number = float(value)
        except ValueError:
            self.reasons.append(f"{column} {value!r} is not a number")
            return None
        if not math.isfinite(number) or number < 0:
            self.reasons.append(
                f"{column} {value!r} is negative" if number < 0 else f"{column} {value!r} is not finite"
            )
            return None
        if upper is not None and number > upper:
            self.reasons.append(f"{column} {value!r} is more than {upper:g}")
            return None
        return number

    def order(self, earlier: tuple[str, datetime | None], later: tuple[str, datetime | None]) -> None:
        (first_name, first), (second_name, second) = earlier, later
        if first and second and second < first:
            self.reasons.append(f"{second_name} {second:%Y-%m-%d %H:%M} is before {first_name} {first:%Y-%m-%d %H:%M}")


def _reject_row(batch: Batch, name: str, line: int, ident: str, reasons: list[str], row: dict[str, Any]) -> None:
    payload = {k: v for k, v in row.items() if k != "__extra__"}
    batch.rejected.append(
        {
            "source": ident or f"{name} line {line}",
            "reason": f"{name} line {line}: " + "; ".join(reasons),
            "payload": {**payload, "line": line},
        }
    )


# Text columns of a task row and the most the store keeps of each (pm_task's column sizes; titles are free text).
_CSV_TEXT_LIMITS = {"key": 200, "project": 200, "assignee": 200, "milestone": 200, "type": 32, "title": 10_000}
_CSV_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


def read_csv(
    path_or_text: str | Path,
    *,
    project_default: str | None = None,
    now: datetime | None = None,
    require_dates: bool = False,
) -> Batch:
    """Tasks from a CSV (columns in ``TASK_COLUMNS``; ``key`` and ``title`` required, ``project`` unless
    ``project_default``). Bad rows go to ``rejected`` with reasons naming the column and value. An estimate may
    be given in ``estimate_hours`` instead of ``estimate_days`` (``HOURS_PER_DAY`` hours a day).

    Blank times: created_at falls back to the earliest of started_at/done_at/updated_at, then ``now``;
    updated_at to the latest of the others. A blank status is read from the dates: done with a done_at,
    in progress with a started_at, else to do. ``require_dates`` rejects a row with no date at all (a history
    file, where "now" is its latest moment, must not date a row by the clock). Dates outside 1970 to five years
    ahead, and estimates above ten years of work, are rejected as mistakes.
    """
    text, name = _csv_text(path_or_text)
    required = ["key", "title"] + ([] if project_default else ["project"])
    now = _utc(now) or datetime.now(UTC)
    batch = Batch()
    seen: dict[str, int] = {}
    projects: dict[str, ProjectRecord] = {}
    edges: list[DependencyRecord] = []
    for line, row in _csv_rows(text, name, required, TASK_COLUMNS):
        problems = _RowProblems()
        key = _cell(row, "key")
        if row.get("__extra__"):
            problems.reasons.append(f"{len(row['__extra__'])} more cell(s) than the header has columns")
        short = sum(1 for k, v in row.items() if k != "__extra__" and v is None)
        if short:
            # Which cells are missing is unknown (a dropped comma shifts every later one): refuse, do not guess.
            problems.reasons.append(f"{short} fewer cell(s) than the header has columns")
        if not key:
            problems.reasons.append("key is empty")
        elif key in seen:
            problems.reasons.append(f"key {key!r} repeats line {seen[key]}")
        project = _cell(row, "project") or (project_default or "")
        if not project:
            problems.reasons.append("project is empty")
        for column, limit in _CSV_TEXT_LIMITS.items():
            # What the store cannot hold (NUL on PostgreSQL, a key past its column) would fail the whole write.
            text = project if column == "project" else _cell(row, column)
            if len(text) > limit:
                problems.reasons.append(f"{column} is {len(text):,} characters long; at most {limit} are stored")
            elif bad := _CSV_CONTROL.search(text):
                problems.reasons.append(f"{column} holds the control character U+{ord(bad.group()):04X}")
        status_text = _cell(row, "status")
        status = _CSV_STATUS.get(_words(status_text)) if status_text else None
        if status_text and status is None:
            problems.reasons.append(f"status {status_text!r} is not one of todo, in_progress, done")
        estimate = problems.number(row, "estimate_days", upper=MAX_ESTIMATE_DAYS)
        hours = problems.number(row, "estimate_hours", upper=MAX_ESTIMATE_DAYS * HOURS_PER_DAY)
        if hours is not None:
            if estimate is not None:
                problems.reasons.append("both estimate_days and estimate_hours are set (give one)")
            else:
                estimate = hours / HOURS_PER_DAY
        scores = {column: problems.number(row, column) for column in _SCORE_COLUMNS}
        created, started = problems.time(row, "created_at"), problems.time(row, "started_at")
        done, updated = problems.time(row, "done_at"), problems.time(row, "updated_at")
        problems.order(("created_at", created), ("started_at", started))
        problems.order(("started_at", started), ("done_at", done))
        problems.order(("created_at", created), ("done_at", done))
        if not status_text:
            # No status column (an export of dates only): the dates say where the task is.
            status = "done" if done else "in_progress" if started else "todo"
        elif status in ("todo", "in_progress") and done:
            problems.reasons.append(f"status {status_text!r} but done_at is set (a finished task's status is done)")
        if require_dates and not (created or started or done or updated):
            problems.reasons.append(
                "no date at all (created_at, started_at, done_at or updated_at): a history needs one"
            )
        known_times = [t for t in (started, done, updated) if t]
        created = created or (min(known_times) if known_times else now)
        updated = updated or max([created, *known_times])
        if not problems.reasons:
            try:
                task = TaskRecord(
                    key=key,
                    project=project,
                    title=_cell(row, "title"),
                    status=status,
                    type=_task_type(_cell(row, "type")),
                    labels=_split(_cell(row, "labels")),
                    estimate_days=estimate,
                    assignee=_cell(row, "assignee") or None,
                    required_skills=[s.lower() for s in _split(_cell(row, "required_skills"))],
                    created_at=created,
                    started_at=started,
                    done_at=done,
                    updated_at=updated,
                    milestone=_cell(row, "milestone") or None,
                    **scores,
                )
            except ValidationError as exc:
                problems.reasons.append(_validation_reason(exc))
        if problems.reasons:
            _reject_row(batch, name, line, key, problems.reasons, row)
            continue
        seen[key] = line
        batch.tasks.append(task)
        batch.cursor = _newest(batch.cursor, task.updated_at)
        projects.setdefault(project, ProjectRecord(key=project, name=project, source="csv"))
        edges.extend(DependencyRecord(task=key, depends_on=other) for other in _split(_cell(row, "depends_on")))
    batch.projects = list(projects.values())
    batch.dependencies = _owned_edges(edges, batch.tasks)
    return batch


def _time_off(value: str, problems: _RowProblems) -> list[tuple[date, date]]:
    spans = []
    for part in _split(value):
        first_text, _, last_text = part.partition("..")
        try:
            first = date.fromisoformat(first_text.strip())
            last = date.fromisoformat(last_text.strip()) if last_text.strip() else first
        except ValueError:
            problems.reasons.append(f"time_off {part!r} is not a day or range like 2026-12-24..2027-01-02")
            continue
        if last < first:
            problems.reasons.append(f"time_off {part!r} ends before it starts")
            continue
        spans.append((first, last))
    return spans


def read_people_csv(path_or_text: str | Path) -> Batch:
    """People from a CSV (``handle`` required; name, skills "a;b", weekly_capacity_days, time_off
    "2026-12-24..2027-01-02;2027-02-03"). Bad rows go to ``rejected`` with reasons naming the column and value.
    """
    text, name = _csv_text(path_or_text)
    batch = Batch()
    seen: dict[str, int] = {}
    for line, row in _csv_rows(text, name, ["handle"], PEOPLE_COLUMNS):
        problems = _RowProblems()
        handle = _cell(row, "handle")
        if not handle:
            problems.reasons.append("handle is empty")
        elif handle in seen:
            problems.reasons.append(f"handle {handle!r} repeats line {seen[handle]}")
        capacity = problems.number(row, "weekly_capacity_days", upper=7)
        time_off = _time_off(_cell(row, "time_off"), problems)
        if not problems.reasons:
            try:
                person = PersonRecord(
                    handle=handle,
                    name=_cell(row, "name"),
                    skills=[s.lower() for s in _split(_cell(row, "skills"))],
                    time_off=time_off,
                    **({"weekly_capacity_days": capacity} if capacity is not None else {}),
                )
            except ValidationError as exc:
                problems.reasons.append(_validation_reason(exc))
        if problems.reasons:
            _reject_row(batch, name, line, handle, problems.reasons, row)
            continue
        seen[handle] = line
        batch.people.append(person)
    return batch


__all__ = [
    "JIRA_FIELDS",
    "PEOPLE_COLUMNS",
    "TASK_COLUMNS",
    "Fetcher",
    "Page",
    "SourceError",
    "github_dependencies",
    "jira_dependencies",
    "jira_jql",
    "read_csv",
    "read_github",
    "read_jira",
    "read_people_csv",
]
