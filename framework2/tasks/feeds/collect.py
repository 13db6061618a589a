"""Collecting every configured feed: retries for transient failures only, and one outcome per feed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.runtime import task_run as task_run_runtime
from prefect.states import State
from prefect.tasks import Task, exponential_backoff

from framework2.blocks.competitor_feed import CompetitorFeed
from framework2.errors import FeedError
from framework2.tasks.feeds.fetch import configured_max_bytes, fetch_feed
from framework2.tasks.feeds.model import (
    OFFER_COLUMNS,
    FeedCollection,
    FeedOutcome,
    MalformedFeedError,
    PermanentFeedError,
    TransientFeedError,
)
from framework2.tasks.feeds.parse import parse_feed, validate_offers
from framework2.tasks.feeds.policy import check_feed_url, host_is_allowlisted


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
