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

from framework2.tasks.feeds.collect import (
    collect_all,
    collect_feed,
    collect_feed_once,
    retry_transient_only,
)
from framework2.tasks.feeds.fetch import (
    configured_max_bytes,
    fetch_feed,
)
from framework2.tasks.feeds.model import (
    MAX_FEED_COLUMNS,
    MAX_FEED_HEADER_CHARS,
    OFFER_COLUMNS,
    FeedCollection,
    FeedOutcome,
    MalformedFeedError,
    PermanentFeedError,
    TransientFeedError,
)
from framework2.tasks.feeds.parse import (
    empty_offers,
    parse_feed,
    validate_offers,
)
from framework2.tasks.feeds.policy import (
    check_feed_url,
    host_is_allowlisted,
    private_networks,
)

__all__ = [
    "FeedCollection",
    "FeedOutcome",
    "MAX_FEED_COLUMNS",
    "MAX_FEED_HEADER_CHARS",
    "MalformedFeedError",
    "OFFER_COLUMNS",
    "PermanentFeedError",
    "TransientFeedError",
    "check_feed_url",
    "collect_all",
    "collect_feed",
    "collect_feed_once",
    "configured_max_bytes",
    "empty_offers",
    "fetch_feed",
    "host_is_allowlisted",
    "parse_feed",
    "private_networks",
    "retry_transient_only",
    "validate_offers",
]
