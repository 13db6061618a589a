"""PPIS competitor feeds: fetch over HTTP, parse JSON or CSV, split offers into valid and quarantined.

The plain functions (``check_feed_url``, ``fetch_feed``, ``parse_feed``, ``validate_offers``) need no
Prefect server; ``collect_feed`` wraps one feed's fetch+parse as a task whose retries apply only to
transient failures (timeouts, connection errors, 5xx, 429). A 4xx or a malformed document is
permanent: retrying would only delay the report.

Decisions worth knowing:

- Redirects are not followed. A redirect could leave the host allowlist and carry the auth header
  (which may be a custom header httpx would not strip) to another host; the error says where it
  pointed so the block's URL can be updated.
- Feeds are hostile input. A body may be at most ``ppis.feed_max_bytes`` after decompression (a gzip bomb is
  cut off, not inflated), a request has one deadline (``timeout_seconds``) over connect, headers and body
  together, and a feed may not reach private, loopback or link-local addresses unless its host is named in
  ``ppis.feed_host_allowlist``. The mechanics live in ``framework2.tasks.http_fetch``; breaking a limit fails
  the feed like any other error, with the limit and the setting to change in the reason.
- Errors name the feed (block name, else competitor) and host, never the full URL (its query may
  hold a key) and never the token; errors from the HTTP client are scrubbed of the token and not
  chained, because some of them quote header values.
- Row-level problems are not parse errors: an unparseable price becomes NaN, an unparseable
  ``observed_at`` becomes NaT, a missing sku becomes "" and ``validate_offers`` quarantines them
  with a reason. An unrecognised ``in_stock`` value counts as out of stock, the conservative reading
  for pricing (the competitor band is measured against in-stock offers only).
- A field named explicitly in ``field_mapping`` must exist in the feed; an optional field (in_stock,
  observed_at) that is unmapped and absent gets its default.
"""

from __future__ import annotations

import asyncio
import csv
import io
import ipaddress
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.runtime import task_run as task_run_runtime
from prefect.states import State
from prefect.tasks import Task, exponential_backoff

from framework2.blocks.competitor_feed import ALLOWED_SCHEMES, REQUIRED_OFFER_FIELDS, CompetitorFeed
from framework2.config import get_settings
from framework2.errors import FeedError
from framework2.tasks import json_text
from framework2.tasks.boundary import CONTROL_CHARACTERS, DECIMAL_NUMBER
from framework2.tasks.http_fetch import (
    BlockedAddress,
    BodyTooLarge,
    CorruptBody,
    DeadlineExceeded,
    IPNetwork,
    ResolutionFailed,
    UnsupportedEncoding,
    bounded_get,
    literal_address,
    non_public_kind,
)

OFFER_COLUMNS = ["competitor", "sku", "price", "in_stock", "observed_at", "feed"]

# A price feed has a handful of columns; thousands are not an export of offers (and pandas pays per column).
MAX_FEED_COLUMNS = 200
MAX_FEED_HEADER_CHARS = 20_000
# Integers longer than this are kept as their text (they are no price, sku or time we can use, and Python
# refuses to convert past 4,300 digits, with a ValueError that is no feed error).
_MAX_INT_DIGITS = 30
_NAME_CHARS = 40
# Controls (C0, C1), line/paragraph separators, direction overrides and the replacement character a lone
# surrogate became: none is in a catalogue SKU, and each makes a quoted reason read other than it is.
_CONTROL = f"{CONTROL_CHARACTERS}|\ufffd"
# What the CSV loads accept as a number (plain decimal); float() would also take "1_000", "１２" and "inf".
_DECIMAL = re.compile(DECIMAL_NUMBER, re.ASCII)
# Words pandas reads as a time relative to the moment of parsing, which is not when the offer was observed.
_RELATIVE_TIMES = {"now", "today", "tomorrow", "yesterday"}

_TRUE_WORDS = {"true", "t", "yes", "y", "1", "in stock", "in_stock", "instock", "available"}
_CURRENCY_MARKS = "$€£¥"


class TransientFeedError(FeedError):
    """The feed may work if asked again: timeout, connection failure, HTTP 5xx or 429."""

    transient = True


class PermanentFeedError(FeedError):
    """Asking again will not help until someone changes the feed or its block (e.g. HTTP 4xx)."""

    transient = False


class MalformedFeedError(PermanentFeedError):
    """The feed answered, but the document as a whole cannot be read as offers."""


@dataclass
class FeedCollection:
    """One feed's snapshot: the parsed offers and where and when they came from."""

    feed: str
    competitor: str
    fetched_at: datetime
    offers: pd.DataFrame
    size_bytes: int
    attempts: int = 1


@dataclass
class FeedOutcome:
    """Result of one feed in ``collect_all``: a collection, or the error that stopped it."""

    feed: str
    competitor: str
    collection: FeedCollection | None = None
    error: FeedError | None = None

    @property
    def ok(self) -> bool:
        """True when the feed was collected."""
        return self.collection is not None

    @property
    def transient(self) -> bool:
        """True when the failure may go away on a later attempt."""
        return isinstance(self.error, TransientFeedError)

    @property
    def reason(self) -> str:
        """Why the feed failed ("" when it did not)."""
        return str(self.error) if self.error else ""


# --- URL policy -------------------------------------------------------------------------------------


def _host(url: str) -> str:
    """host[:port] of a URL, without user info, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    try:
        port = parts.port
    except ValueError:  # a non-numeric port; httpx will refuse the URL with its own message
        return host
    return f"{host}:{port}" if port else host


def host_is_allowlisted(url: str, allowlist: Sequence[str]) -> bool:
    """True when ``allowlist`` names the URL's host, alone or with its port ("127.0.0.1:8080"; a URL without a
    port has its scheme's, so "feeds.example.com:443" matches https://feeds.example.com/x)."""
    try:
        # The host as httpx reads it: the client that connects must not see a different host than we allowed.
        parsed = httpx.URL(url.strip())
        host = parsed.host.lower()
        port = urlsplit(url.strip()).port or {"https": 443, "http": 80}.get(parsed.scheme)
    except (httpx.InvalidURL, ValueError):
        return False
    allowed = {entry.strip().lower() for entry in allowlist}
    if not host:
        return False
    if host in allowed or f"{host}:{port}" in allowed or f"[{host}]:{port}" in allowed:
        return True
    address = literal_address(host)
    return address is not None and any(
        "/" in entry and address in network
        for entry, network in zip(allowlist, _networks_of(allowlist), strict=True)
        if network is not None
    )


def _networks_of(allowlist: Sequence[str]) -> list[IPNetwork | None]:
    """Each allowlist entry's IP address or network, None for a host name."""
    networks: list[IPNetwork | None] = []
    for entry in allowlist:
        text = entry.strip()
        if text.startswith("[") and "]" in text:
            text = text[1 : text.index("]")]
        elif text.count(":") == 1:
            text = text.split(":", 1)[0]
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            networks.append(None)
    return networks


def private_networks(allowlist: Sequence[str]) -> tuple[IPNetwork, ...]:
    """The non-public addresses a feed URL may name directly: the allowlist's IP addresses and networks
    ("10.1.2.3", "10.1.2.3:8080", "[fd00::1]:8443", "10.0.0.0/8"). A URL with a host name never reaches one,
    because whoever runs the name's DNS decides where it points: listing a competitor's host must not let it
    point at 169.254.169.254 or at an internal address listed for another feed."""
    return tuple(n for n in _networks_of(allowlist) if n is not None)


def _private_hint(address: object) -> str:
    return (
        f"feeds may not reach internal networks; if this feed really is served from one, write its address "
        f"'{address}' in the feed URL and name it (or its network, e.g. 10.0.0.0/8) in ppis.feed_host_allowlist; "
        "a host name never reaches an internal address. Otherwise fix the feed URL"
    )


def check_feed_url(url: str, allowlist: list[str]) -> None:
    """Refuse what the URL alone shows is not allowed (PermanentFeedError).

    That is: non-http(s) URLs, hosts outside a non-empty ``allowlist``, and IP addresses that are not public
    unless the allowlist names them. A host name's addresses are checked when the feed is fetched.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        got = f"'{scheme}://'" if scheme else "no scheme"
        raise PermanentFeedError(
            f"feed URL uses {got}; only http:// and https:// are collected",
            hint="point the Competitor Feed block at the competitor's http(s) endpoint",
        )
    if not parts.hostname:
        raise PermanentFeedError(
            "feed URL has no host", hint="write a full URL such as https://feeds.example.com/prices"
        )
    if host_is_allowlisted(url, allowlist):
        return
    if allowlist:
        allowed = {entry.strip().lower() for entry in allowlist}
        raise PermanentFeedError(
            f"feed host '{_host(url)}' is not in the feed host allowlist",
            hint=f"add it to ppis.feed_host_allowlist (now: {', '.join(sorted(allowed))}) or fix the feed URL",
        )
    address = literal_address(parts.hostname)
    kind = non_public_kind(address) if address is not None else None
    if kind:
        raise PermanentFeedError(f"feed host '{_host(url)}' is a {kind} address", hint=_private_hint(address))


# --- fetch -----------------------------------------------------------------------------------------


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


# --- parse -----------------------------------------------------------------------------------------


def _short(value: Any) -> str:
    # Surrogates and NUL out too: a reason is stored with the feed's snapshot.
    text = json_text.clean_text(str(value))
    return text if len(text) <= _NAME_CHARS else text[: _NAME_CHARS - 3] + "..."


def _names(values: Sequence[Any], limit: int = 10) -> str:
    # A feed names its own fields: quote few of them, each cut short, so a hostile header cannot fill the log.
    shown = [_short(v) for v in list(values)[:limit]]
    more = f", ... ({len(values) - limit} more)" if len(values) > limit else ""
    return (", ".join(shown) + more) if shown else "none"


def _json_records(feed: CompetitorFeed, text: str) -> list[dict[str, Any]]:
    label = feed.label
    try:
        # Lone surrogates become U+FFFD (no store can hold them); NUL stays, for the sku check to name.
        document = json_text.loads(text, nul=False, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise MalformedFeedError(
            f"feed '{label}' is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            hint="check that the URL serves the JSON export (format='csv' if it is CSV)",
        ) from None
    except RecursionError:
        raise MalformedFeedError(
            f"feed '{label}' nests JSON arrays or objects too deeply to read (more than about a thousand levels)",
            hint="an offer list is a few levels deep; ask the competitor to fix the export",
        ) from None

    node, walked = document, []
    for key in (feed.records_path or "").split(".") if feed.records_path else []:
        if not isinstance(node, dict) or key not in node:
            where = ".".join(walked) or "the top level"
            keys = _names(list(node)) if isinstance(node, dict) else f"a {type(node).__name__}, not an object"
            raise MalformedFeedError(
                f"feed '{label}': records_path '{feed.records_path}' not found: "
                f"no key '{key}' at {_short(where)} (found: {keys})",
                hint="fix records_path in the Competitor Feed block",
            )
        node = node[key]
        walked.append(key)
    if not isinstance(node, list):
        where = f"records_path '{feed.records_path}'" if feed.records_path else "the document"
        extra = f" with keys {_names(list(node))}" if isinstance(node, dict) else ""
        raise MalformedFeedError(
            f"feed '{label}': {where} is a JSON {type(node).__name__}{extra}, not a list of offers",
            hint="set records_path to the dotted path of the offer list, e.g. 'data.offers'",
        )
    for position, item in enumerate(node):
        if not isinstance(item, dict):
            raise MalformedFeedError(
                f"feed '{label}': offer #{position + 1} is a JSON {type(item).__name__}, not an object",
                hint="records_path must point at a list of offer objects",
            )
    return node


def _bounded_int(text: str) -> int | str:
    return int(text) if len(text) <= _MAX_INT_DIGITS else text


def _check_fields(feed: CompetitorFeed, present: Sequence[str]) -> dict[str, str | None]:
    """Map our fields to the feed's column names, None for optional fields the feed does not have."""
    available = set(present)
    columns: dict[str, str | None] = {}
    missing = []
    for ours in ("sku", "price", "in_stock", "observed_at"):
        theirs = feed.source_field(ours)
        if theirs in available:
            columns[ours] = theirs
        elif ours in REQUIRED_OFFER_FIELDS or ours in feed.field_mapping:
            missing.append(f"'{theirs}' (our {ours})" if theirs != ours else f"'{ours}'")
        else:
            columns[ours] = None
    if missing:
        raise MalformedFeedError(
            f"feed '{feed.label}': field(s) {', '.join(missing)} not found; fields present: {_names(present)}",
            hint="fix field_mapping in the Competitor Feed block (our field -> the feed's field name)",
        )
    return columns


def _frame_from_records(feed: CompetitorFeed, records: list[dict[str, Any]]) -> pd.DataFrame:
    if not records:
        # An empty list is a valid document (the competitor lists nothing); there are no fields to check.
        return pd.DataFrame()
    present = list(dict.fromkeys(key for record in records for key in record))
    columns = _check_fields(feed, present)
    return pd.DataFrame(
        {
            ours: pd.Series([r.get(theirs) if theirs else None for r in records], dtype=object)
            for ours, theirs in columns.items()
        }
    )


def _misshapen_line(text: str) -> str | None:
    """What is wrong with the CSV's shape, else None: a header too wide or too long, or the first row whose
    width differs from the header's ('line N has X cells, the header has Y').

    pandas would read rows that all carry one extra cell by making the first column the index (every value then
    lands one column to the left: the price read as the sku) and fill short rows with blanks (read as "in stock,
    observed now"): neither is what the feed says, so such a feed is refused whole and its last good snapshot
    stands in."""
    try:
        rows = csv.reader(io.StringIO(text))
        header = next(rows, None)
        if header is None:
            return None
        if len(header) > MAX_FEED_COLUMNS:
            return f"the header has {len(header):,} columns; a price feed has at most {MAX_FEED_COLUMNS}"
        if sum(map(len, header)) > MAX_FEED_HEADER_CHARS:
            return f"the header is {sum(map(len, header)):,} characters long; at most {MAX_FEED_HEADER_CHARS:,}"
        for row in rows:
            if row and len(row) != len(header):
                return f"line {rows.line_num} has {len(row)} cells, the header has {len(header)}"
    except csv.Error as exc:  # e.g. a cell over the csv module's limit, a stray quote
        return f"line {rows.line_num}: {exc}"
    return None


def _csv_frame(feed: CompetitorFeed, text: str) -> pd.DataFrame:
    # One reading of line ends for the shape check and for pandas: a lone \r ends a line for pandas but is a
    # stray character to the csv module, and the two disagreeing let a misshapen feed past the check.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        # pandas' parser ends a cell at NUL: "1\x0099" would be read as the price 1.
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise MalformedFeedError(
            f"feed '{feed.label}' is not valid CSV: line {line} contains a NUL character",
            hint="a CSV feed is text; check that the URL serves the CSV export, not a binary file",
        )
    misshapen = _misshapen_line(text)
    if misshapen is not None:
        raise MalformedFeedError(
            f"feed '{feed.label}' is not valid CSV: {misshapen}",
            hint="every row of the feed must have one cell per column of its header; ask the competitor to fix "
            "the export (a value with a comma must be quoted)",
        )
    try:
        # Everything as text: parsing values is ours to do, row by row, without failing the document.
        raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True, index_col=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error) as exc:
        raise MalformedFeedError(
            f"feed '{feed.label}' is not valid CSV: {str(exc).strip()}",
            hint="check that the URL serves the CSV export (format='json' if it is JSON)",
        ) from None
    raw.columns = [str(c).strip() for c in raw.columns]
    twice = sorted({c for c in raw.columns if list(raw.columns).count(c) > 1})
    if twice:
        raise MalformedFeedError(
            f"feed '{feed.label}' is not valid CSV: column {_names(twice, 3)} appears twice in the header",
            hint="ask the competitor to fix the export: one column per field",
        )
    columns = _check_fields(feed, list(raw.columns))
    return pd.DataFrame(
        {
            ours: raw[theirs].astype(object) if theirs else pd.Series([None] * len(raw), dtype=object)
            for ours, theirs in columns.items()
        }
    )


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _sku(value: Any) -> str:
    if _blank(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _price(value: Any) -> float:
    if isinstance(value, bool) or _blank(value):
        return math.nan
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = str(value).strip().strip(_CURRENCY_MARKS).strip()
        if not _DECIMAL.fullmatch(text):
            return math.nan
        number = float(text)
    return number if math.isfinite(number) else math.nan


def _in_stock(value: Any) -> bool:
    if _blank(value):
        return True
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    # Anything not clearly "in stock" ("no", "sold out", "backorder", "maybe") is read as out of stock.
    return str(value).strip().lower() in _TRUE_WORDS


_EARLIEST_OBSERVED = pd.Timestamp("1970-01-01", tz="UTC")
_LATEST_OBSERVED = pd.Timestamp("2200-01-01", tz="UTC")


def _observed_at(value: Any, fetched_at: pd.Timestamp) -> pd.Timestamp:
    if _blank(value):
        return fetched_at
    try:
        if isinstance(value, bool):
            return pd.NaT
        if isinstance(value, int | float):
            # Unix seconds; anything past year 5000 is not one (and pandas wraps such numbers silently).
            if not -1e11 < value < 1e11:
                return pd.NaT
            stamp = pd.Timestamp(value, unit="s", tz="UTC")
        elif str(value).strip().lower() in _RELATIVE_TIMES:
            return pd.NaT
        else:
            stamp = pd.Timestamp(str(value).strip())
    except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime):
        return pd.NaT
    if stamp is pd.NaT:
        return pd.NaT
    # A feed without an offset is read as UTC; guessing the competitor's local zone would be worse.
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    # Pandas keeps far years at a coarser resolution, and the offers table holds nanoseconds: an observation
    # outside 1970-2200 is not a readable time (quarantined), not a crash of the whole feed.
    return stamp if _EARLIEST_OBSERVED <= stamp <= _LATEST_OBSERVED else pd.NaT


def empty_offers() -> pd.DataFrame:
    """No offers, with the offer columns and their types."""
    return pd.DataFrame(
        {
            "competitor": pd.Series(dtype=object),
            "sku": pd.Series(dtype=object),
            "price": pd.Series(dtype=float),
            "in_stock": pd.Series(dtype=bool),
            "observed_at": pd.Series(dtype="datetime64[ns, UTC]"),
            "feed": pd.Series(dtype=object),
        }
    )


def parse_feed(feed: CompetitorFeed, content: bytes, fetched_at: datetime) -> pd.DataFrame:
    """Parse a feed document into offers (``OFFER_COLUMNS``); MalformedFeedError if it is unreadable."""
    label = feed.label
    if not content.strip():
        raise MalformedFeedError(
            f"feed '{label}' returned an empty body",
            hint="check the feed URL and that the competitor's export is being produced",
        )
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MalformedFeedError(
            f"feed '{label}' is not UTF-8 text (bad byte at position {exc.start})",
            hint=f"check that the URL serves the {feed.format.upper()} export, not a file download",
        ) from None

    raw = _frame_from_records(feed, _json_records(feed, text)) if feed.format == "json" else _csv_frame(feed, text)
    if raw.empty:
        return empty_offers()

    stamp = pd.Timestamp(fetched_at)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    observed = [_observed_at(v, stamp) for v in raw["observed_at"]]
    offers = pd.DataFrame(
        {
            "competitor": feed.competitor,
            "sku": raw["sku"].map(_sku).astype(object),
            "price": raw["price"].map(_price).astype(float),
            "in_stock": raw["in_stock"].map(_in_stock).astype(bool),
            "observed_at": pd.to_datetime(pd.Series(observed, dtype=object), utc=True).astype("datetime64[ns, UTC]"),
            "feed": label,
        }
    )
    return offers[OFFER_COLUMNS].reset_index(drop=True)


# --- validate --------------------------------------------------------------------------------------


def validate_offers(
    offers: pd.DataFrame, our_prices: pd.Series, ratio_limit: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split offers into (valid, quarantined); quarantined rows get a ``reason``. Nothing is dropped.

    ``our_prices`` is indexed by sku with our current price. Checks, first failing one wins: sku
    present, price a number, price positive, observed_at readable, sku in our catalogue, price within
    ``ratio_limit`` times / divided by our price, and not a repeat of an earlier valid row for the
    same competitor and sku (the first is kept).
    """
    if offers.empty:
        quarantined = offers.copy()
        quarantined["reason"] = pd.Series(dtype=object)
        return offers.copy(), quarantined

    # Positional work: offers concatenated from several feeds often repeat index labels.
    frame = offers.reset_index(drop=True)
    ours = our_prices[~our_prices.index.duplicated(keep="first")]
    ours.index = ours.index.map(str)
    sku = frame["sku"].fillna("").astype(str)
    price = pd.to_numeric(frame["price"], errors="coerce")
    our_price = sku.map(ours).astype(float)
    reasons = pd.Series("", index=frame.index, dtype=object)

    def flag(mask: pd.Series, reason: pd.Series | str) -> None:
        # Earlier checks win: a row with no price should not also be called "unknown sku".
        todo = mask & (reasons == "")
        reasons[todo] = reason[todo] if isinstance(reason, pd.Series) else reason

    flag(sku.str.strip() == "", "sku is missing")
    flag(price.isna(), "price is missing or not a number")
    flag(price <= 0, "price must be positive (got " + price.astype(str) + ")")
    if "observed_at" in frame:
        flag(frame["observed_at"].isna(), "observed_at is missing or not a readable timestamp")
    flag(sku.str.contains(_CONTROL, regex=True), "sku contains a control character (e.g. NUL or a line break)")
    flag(~sku.isin(ours.index), "unknown sku '" + sku.map(_short) + "' (not in the catalogue)")

    comparable = our_price.notna() & (our_price > 0)
    limit_text = f"{ratio_limit:g}"
    price_text = price.map(lambda p: f"{p:.2f}")
    ours_text = our_price.map(lambda p: f"{p:.2f}")
    flag(
        comparable & (price > our_price * ratio_limit),
        "price " + price_text + f" is more than {limit_text}x our price " + ours_text,
    )
    flag(
        comparable & (price < our_price / ratio_limit),
        "price " + price_text + f" is less than 1/{limit_text} of our price " + ours_text,
    )

    # Duplicates are judged among rows still valid, so a bad first row does not shadow a good repeat.
    # A feed may carry a price history (the same sku at several times; positioning takes the latest), so
    # only a repeat of competitor + sku + observation time is a duplicate.
    competitor = frame["competitor"].astype(str)
    observed = pd.to_datetime(frame["observed_at"], utc=True, errors="coerce").astype(str)
    still_valid = reasons == ""
    keys = (competitor + "\x00" + sku + "\x00" + observed).where(still_valid)
    repeats = still_valid & keys.duplicated(keep="first")
    flag(repeats, "duplicate of an earlier row for competitor '" + competitor + "' sku '" + sku + "' at " + observed)

    bad = (reasons != "").to_numpy()
    valid = offers.iloc[~bad].copy()
    quarantined = offers.iloc[bad].copy()
    quarantined["reason"] = reasons[bad].to_numpy(dtype=object)
    return valid, quarantined


# --- collect ---------------------------------------------------------------------------------------


async def collect_feed_once(
    client: httpx.AsyncClient, feed: CompetitorFeed, allowlist: list[str], max_bytes: int | None = None
) -> FeedCollection:
    """Check the URL, fetch and parse one feed, once (no retries); ``max_bytes`` defaults to the setting."""
    check_feed_url(feed.url, allowlist)
    content = await fetch_feed(client, feed, allowlist, max_bytes=max_bytes)
    # Stamp the snapshot when the answer arrived: that is when the offers were known to hold.
    fetched_at = datetime.now(UTC)
    # In a thread: parsing a large document takes seconds, and the other feeds' deadlines run meanwhile.
    offers = await asyncio.to_thread(parse_feed, feed, content, fetched_at)
    return FeedCollection(
        feed=feed.label,
        competitor=feed.competitor,
        fetched_at=fetched_at,
        offers=offers,
        size_bytes=len(content),
    )


def retry_transient_only(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry condition for Prefect: retry TransientFeedError, nothing else."""
    error = state.data
    return isinstance(error, TransientFeedError)


@task(
    name="ppis-collect-feed",
    task_run_name="collect-feed-{feed.label}",
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=10),
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_transient_only,
    # A fetch must really happen every run; also keeps the block (and its token) out of cache keys.
    cache_policy=NO_CACHE,
    tags=["ppis", "competitor-feed"],
)
async def collect_feed(feed: CompetitorFeed, allowlist: list[str], max_bytes: int | None = None) -> FeedCollection:
    """Collect one competitor feed; transient failures are retried with exponential backoff.

    ``max_bytes`` caps the decompressed body; None reads ``ppis.feed_max_bytes`` from settings.
    """
    logger = get_run_logger()
    async with httpx.AsyncClient(timeout=feed.timeout_seconds, follow_redirects=False) as client:
        collection = await collect_feed_once(client, feed, allowlist, max_bytes)
    collection.attempts = max(task_run_runtime.run_count, 1)
    logger.info(
        "feed '%s': %d offers, %d bytes, attempt %d",
        collection.feed,
        len(collection.offers),
        collection.size_bytes,
        collection.attempts,
    )
    return collection


async def collect_all(
    feeds: Sequence[CompetitorFeed], allowlist: list[str], max_bytes: int | None = None
) -> list[FeedOutcome]:
    """Collect several feeds concurrently without Prefect, one attempt each; a FeedError fails only its feed.

    Outcomes are in the order of ``feeds``. Errors that are not FeedErrors are bugs and are raised.
    ``max_bytes`` caps each decompressed body; None reads ``ppis.feed_max_bytes`` from settings.
    """
    cap = configured_max_bytes() if max_bytes is None else max_bytes
    async with httpx.AsyncClient(follow_redirects=False) as client:
        results = await asyncio.gather(
            *(collect_feed_once(client, feed, allowlist, cap) for feed in feeds), return_exceptions=True
        )
    outcomes = []
    for feed, result in zip(feeds, results, strict=True):
        if isinstance(result, FeedCollection):
            outcomes.append(FeedOutcome(feed.label, feed.competitor, collection=result))
        elif isinstance(result, FeedError):
            outcomes.append(FeedOutcome(feed.label, feed.competitor, error=result))
        else:
            raise result
    return outcomes


__all__ = [
    "OFFER_COLUMNS",
    "FeedCollection",
    "FeedOutcome",
    "MalformedFeedError",
    "PermanentFeedError",
    "TransientFeedError",
    "check_feed_url",
    "collect_all",
    "collect_feed",
    "collect_feed_once",
    "configured_max_bytes",
    "fetch_feed",
    "host_is_allowlisted",
    "parse_feed",
    "retry_transient_only",
    "validate_offers",
]
