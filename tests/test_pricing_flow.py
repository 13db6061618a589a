"""PPIS end to end on a real Prefect server: feeds over loopback HTTP, the store, artifacts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from sqlalchemy import select

from framework2.config import get_settings
from framework2.flows.pricing import hourly_pricing
from framework2.sample.world import FeedServer, Route, build_routes, sample_market, save_feed_blocks, seed_store
from framework2.store.engine import open_store, session_scope
from framework2.store.models import FeedSnapshot, PriceRecommendation, Product, QuarantinedRow

pytestmark = pytest.mark.integration


@pytest.fixture
def world(prefect_server: str, store_url: str) -> Iterator[tuple[FeedServer, list[str]]]:
    engine = open_store()
    market = sample_market(n_skus=60, seed=3)
    seed_store(engine, market)
    routes, feeds = build_routes(market)
    with FeedServer(routes) as server:
        yield server, save_feed_blocks(feeds, server.base_url)


async def latest_artifact(key: str) -> str:
    async with get_client() as client:
        found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    return str(sorted(found, key=lambda a: a.created)[-1].data)


def test_hourly_pricing_stores_explained_recommendations_and_quarantines_bad_input(world) -> None:  # type: ignore[no-untyped-def]
    _server, names = world
    result = hourly_pricing(feeds=names, approval_wait_seconds=0)

    assert result.status == "completed"
    feeds = result.metrics["feeds"]
    assert feeds["sample-flaky-market"] == "unavailable"
    assert all(state == "fresh" for name, state in feeds.items() if name != "sample-flaky-market")
    assert result.quality == pytest.approx(0.8, abs=0.05)  # 4 of 5 feeds fresh, a few bad offers
    assert result.metrics["undercuts"] >= 3  # the sample competitor's promotion, plus any natural ones

    engine = open_store()
    with session_scope(engine) as session:
        recs = session.scalars(select(PriceRecommendation).where(PriceRecommendation.run_id == result.run_id)).all()
        products = {p.sku: p for p in session.scalars(select(Product)).all()}
        quarantined = session.scalars(select(QuarantinedRow).where(QuarantinedRow.run_id == result.run_id)).all()
        flaky = session.scalars(select(FeedSnapshot).where(FeedSnapshot.feed == "sample-flaky-market")).one()
    # 60 products, one with zero cost quarantined
    assert len(recs) == 59
    assert all(r.explanation for r in recs)
    applied = [r for r in recs if r.status == "applied"]
    assert applied, "small changes inside the approval band are applied"
    for r in applied:
        assert products[r.sku].price == pytest.approx(r.recommended_price)
        assert abs(r.change_pct) <= get_settings().ppis.guardrails.approval_change_pct + 1e-9
    for r in (r for r in recs if r.status == "pending_approval"):
        assert products[r.sku].price == pytest.approx(r.current_price), "pending changes are not applied"
    reasons = sorted(q.reason for q in quarantined)
    assert any("cost must be a positive number" in r for r in reasons)
    assert any("must be positive" in r for r in reasons)  # the negative competitor price
    assert any("unknown sku" in r for r in reasons)
    assert any("duplicate" in r for r in reasons)
    assert any("more than 10" in r for r in reasons)  # the absurd price
    assert flaky.status == "failed" and flaky.reason

    summary = asyncio.run(latest_artifact("ppis-summary"))
    assert "data:image/png;base64," in summary
    assert "sample-flaky-market: UNAVAILABLE" in summary
    assert "## By category" in summary and "| apparel |" in summary
    assert f"**{result.metrics['undercuts']} SKUs undercut**" in summary
    table = asyncio.run(latest_artifact("ppis-recommendations"))
    assert "binding" in table and "why" in table


def test_hourly_pricing_runs_on_a_postgresql_store(
    prefect_server: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRAMEWORK2_STORE__URL", postgres_url)
    monkeypatch.setenv("FRAMEWORK2_PPIS__FEED_HOST_ALLOWLIST", '["127.0.0.1"]')  # the sample feeds' host
    get_settings.cache_clear()
    try:
        engine = open_store()
        market = sample_market(n_skus=30, seed=4)
        seed_store(engine, market)
        routes, feeds = build_routes(market)
        with FeedServer(routes) as server:
            first = hourly_pricing(feeds=save_feed_blocks(feeds, server.base_url), approval_wait_seconds=0)
            second = hourly_pricing(feeds=[f.block_name for f in feeds], approval_wait_seconds=0)
    finally:
        get_settings.cache_clear()
    assert first.status == second.status == "completed"
    with session_scope(engine) as session:
        assert len(session.scalars(select(PriceRecommendation)).all()) == 2 * 29
        snapshots = session.scalars(select(FeedSnapshot).where(FeedSnapshot.status == "ok")).all()
    assert len(snapshots) == 2 * 4


def test_a_run_skips_while_an_earlier_one_is_still_in_progress(world) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from framework2.store.locks import acquire
    from framework2.store.runs import run_status, start_run

    earlier = start_run(open_store(), "ppis", parameters={"approval_wait_seconds": 3000})  # waiting for a person
    acquire(open_store(), "ppis", holder=earlier, ttl=timedelta(minutes=65), label=f"pricing run {earlier}")
    result = hourly_pricing(feeds=world[1], approval_wait_seconds=0)
    assert result.status == "skipped" and earlier in result.summary
    assert run_status(open_store(), result.run_id) == "skipped"


def test_programmatic_api_answers_from_the_store(world) -> None:  # type: ignore[no-untyped-def]
    import framework2

    assert framework2.ppis.get_recommendations() == []  # nothing ran yet: empty, not an error
    _server, names = world
    result = hourly_pricing(feeds=names, approval_wait_seconds=0)

    top = framework2.ppis.get_recommendations(limit=5)
    assert len(top) == 5 and all(r["run_id"] == result.run_id for r in top)
    profits = [r["profit_delta"] for r in top]
    assert profits == sorted(profits, reverse=True)
    why = framework2.ppis.explain(top[0]["sku"])
    assert why["recommendation"]["explanation"] == top[0]["explanation"]
    assert why["run"]["inputs"]["sales_window"] and why["run"]["model_version"]
    pending = framework2.ppis.get_recommendations(status="pending_approval")
    assert all(r["status"] == "pending_approval" for r in pending)
    assert len(framework2.ppis.get_market_position()) == 59


def test_failed_feed_falls_back_to_its_last_good_snapshot(world, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    server, names = world
    first = hourly_pricing(feeds=names, approval_wait_seconds=0)
    assert first.metrics["feeds"]["sample-competitor-01"] == "fresh"

    monkeypatch.setenv("FRAMEWORK2_PPIS__FEED_RETRIES", "0")
    get_settings.cache_clear()
    path = next(p for p in server.routes if "competitor-01" in p)
    server.routes[path] = Route(500, "text/plain", b"upstream down")
    second = hourly_pricing(feeds=names, approval_wait_seconds=0)

    assert second.status == "completed"
    assert second.metrics["feeds"]["sample-competitor-01"] == "stale"
    summary = asyncio.run(latest_artifact("ppis-summary"))
    assert "sample-competitor-01: STALE" in summary and "500" in summary

    monkeypatch.setenv("FRAMEWORK2_PPIS__MAX_SNAPSHOT_AGE", "1ms")
    get_settings.cache_clear()
    third = hourly_pricing(feeds=names, approval_wait_seconds=0)
    assert third.metrics["feeds"]["sample-competitor-01"] == "unavailable"
    assert third.quality < second.quality < first.quality + 1e-9
