"""PPIS pipeline steps as Prefect tasks: store I/O with retries, one analysis step each."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from framework2.blocks.competitor_feed import CompetitorFeed
from framework2.config import CompetitorRule, PricingGuardrails, PricingSettings
from framework2.store import pricing as store
from framework2.store.engine import store_unreachable
from framework2.store.models import utcnow
from framework2.store.runs import quarantine
from framework2.tasks.feeds import check_feed_url, collect_feed, empty_offers, validate_offers
from framework2.tasks.pricing.inputs import validate_catalogue, validate_sales
from framework2.tasks.pricing.market import price_positions
from framework2.tasks.pricing.report import FeedStatus

SYSTEM = "ppis"


@dataclass
class PricingInputs:
    catalogue: pd.DataFrame
    sales: pd.DataFrame
    window: tuple[str, str]
    known_prices: pd.Series  # every stored product, quarantined ones too: their offers are not "unknown"
    rejected: dict[str, pd.DataFrame] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)


@task(name="ppis-load-inputs", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def load_inputs(engine: Engine, history_days: int) -> PricingInputs:
    """Catalogue and sales history from the store, validated (read-only, so safe to retry)."""
    since = utcnow().date() - timedelta(days=history_days)
    try:
        raw = store.load_catalogue(engine)
        stored_sales = store.load_sales(engine, since)
    except OperationalError as exc:  # a connection lost or refused: say which store, then the retries try again
        raise store_unreachable(engine, exc) from exc
    catalogue, bad_catalogue = validate_catalogue(raw)
    sales, bad_sales = validate_sales(stored_sales, pd.Index(raw["sku"]))
    # A product quarantined above takes its sales with it; its own quarantine row says why.
    sales = sales[sales["sku"].isin(catalogue["sku"])]
    window = (str(sales["day"].min().date()), str(sales["day"].max().date())) if len(sales) else ("", "")
    known = raw.drop_duplicates("sku").set_index("sku")["price"]
    return PricingInputs(catalogue, sales, window, known, rejected={"catalogue": bad_catalogue, "sales": bad_sales})


def quarantine_inputs(engine: Engine, run_id: str, inputs: PricingInputs) -> dict[str, int]:
    """Store the rejected input rows of this run with their reasons; returns counts per source."""
    return {
        source: quarantine(engine, system=SYSTEM, source=source, rows=frame.to_dict("records"), run_id=run_id)
        for source, frame in inputs.rejected.items()
    }


@dataclass
class Market:
    offers: pd.DataFrame
    feeds: list[FeedStatus]


def collect_market(
    engine: Engine, run_id: str, feed_names: list[str], settings: PricingSettings, our_prices: pd.Series
) -> Market:
    """Collect every feed concurrently; a failed feed falls back to its last good snapshot if young enough."""
    logger = get_run_logger()
    statuses: list[FeedStatus] = []
    frames: list[pd.DataFrame] = []
    futures = {}
    delay = settings.feed_retry_delay.total_seconds()
    collect = collect_feed.with_options(
        retries=settings.feed_retries, retry_delay_seconds=[delay * 2**i for i in range(settings.feed_retries)]
    )
    for name in feed_names:
        try:
            feed = CompetitorFeed.load(name)
            check_feed_url(feed.url, settings.feed_host_allowlist)
        except Exception as exc:  # missing block, refused URL: the feed is unusable, the run goes on
            futures[name] = (None, exc)
            continue
        futures[name] = (collect.submit(feed, settings.feed_host_allowlist), feed)
    for name, (future, feed_or_exc) in futures.items():
        competitor = getattr(feed_or_exc, "competitor", name)
        now = utcnow()
        if future is not None:
            future.wait()
        if future is not None and future.state.is_completed():
            collected = future.result()
            valid, bad = validate_offers(collected.offers, our_prices, settings.offer_price_ratio_limit)
            n_bad = quarantine(engine, system=SYSTEM, source=f"feed:{name}", rows=bad.to_dict("records"), run_id=run_id)
            store.save_snapshot(
                engine,
                run_id=run_id,
                feed=name,
                competitor=competitor,
                fetched_at=collected.fetched_at,
                status="ok",
                offers=valid,
                quarantined=n_bad,
            )
            valid = valid.assign(feed=name)
            frames.append(valid)
            statuses.append(FeedStatus(name, competitor, "fresh", len(valid), n_bad))
            continue
        reason = _failure_reason(future, feed_or_exc)
        store.save_snapshot(
            engine, run_id=run_id, feed=name, competitor=competitor, fetched_at=now, status="failed", reason=reason
        )
        fallback = store.last_good_snapshot(engine, name, now, settings.max_snapshot_age)
        if fallback is None:
            logger.warning("feed %s unavailable (%s) and no usable snapshot", name, reason)
            statuses.append(FeedStatus(name, competitor, "unavailable", reason=reason))
            continue
        snapshot, offers = fallback
        age = (now - snapshot.fetched_at).total_seconds() / 60
        logger.warning("feed %s failed (%s); using snapshot from %.0f min ago", name, reason, age)
        frames.append(offers)
        statuses.append(FeedStatus(name, competitor, "stale", len(offers), reason=reason, snapshot_age_minutes=age))
    offers = pd.concat(frames, ignore_index=True) if frames else empty_offers()
    return Market(offers, statuses)


def _failure_reason(future, feed_or_exc) -> str:  # type: ignore[no-untyped-def]
    if future is None:
        return f"{type(feed_or_exc).__name__}: {feed_or_exc}"
    try:
        exc = future.state.result(raise_on_failure=False)
    except Exception as err:
        exc = err
    return str(exc) if isinstance(exc, BaseException) else (future.state.message or "failed")


@task(name="ppis-position", cache_policy=NO_CACHE)
def position(
    catalogue: pd.DataFrame, offers: pd.DataFrame, rules: list[CompetitorRule], policy: PricingGuardrails
) -> pd.DataFrame:
    """Price index and market position per SKU."""
    return price_positions(catalogue, offers, rules, policy.competitor_reference)
