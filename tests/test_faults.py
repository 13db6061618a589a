"""The fault suite: a worker machine lost mid-run, the store gone for a while, an outside API slower than its
timeout. Each fault is real — a SIGKILLed `prefect worker` and its flow-run process, a TCP proxy in front of
the machine's PostgreSQL that cuts and refuses connections, a loopback HTTP server that answers too late — and
each test checks the same four things: the run fails or recovers cleanly (a final state, a clear reason),
retries are bounded (counted where the attempts land: at the proxy, at the HTTP server), the run takes
bounded time, and nothing stored is lost, half-written or stored twice.

What happens to a run whose worker died is part of the contract checked here. Prefect 3.8 by itself does
nothing: the flow run stays Running. The automation `framework2 init` creates marks it Crashed once its
heartbeats stop (which sets off the failure notification and, for a release, the auto-rollback); what frees
the system meanwhile is the store's lease (framework2/store/locks.py), which a rerun takes over once it expired.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from prefect.automations import Automation
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import StateType
from prefect.deployments import run_deployment
from sqlalchemy import func, select
from sqlalchemy.engine import Engine, make_url

import framework2.store.locks as locks
from framework2.blocks import CompetitorFeed
from framework2.config import get_settings
from framework2.deployments.automations import unresponsive_run_automation
from framework2.sample.world import sample_market
from framework2.store import pricing as pricing_store
from framework2.store.engine import dispose_all, open_store, session_scope
from framework2.store.locks import current_holder
from framework2.store.models import (
    AnalysisRun,
    CompetitorOffer,
    FeedSnapshot,
    MarketPosition,
    PmSourceCursor,
    PmTask,
    PriceRecommendation,
    Product,
    QuarantinedRow,
    SalesRecord,
)
from framework2.store.runs import as_utc, run_for_flow_run
from framework2.systems import SYSTEMS
from tests.fault_fixtures import StoreOutageProxy, kill_machine, wait_gone
from tests.http_fixtures import LoopbackHTTPServer, Reply

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).with_name("prefect"))
# Every table a pricing run writes rows of its own into, and what a run that stored nothing leaves in them.
PRICING_RESULTS = (MarketPosition, PriceRecommendation, FeedSnapshot, QuarantinedRow)
NOTHING = {model.__tablename__: 0 for model in PRICING_RESULTS}


# --- helpers --------------------------------------------------------------------------------------------------------


def count(engine: Engine, model: type, *where: Any) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def rows_of_run(engine: Engine, run_id: str) -> dict[str, int]:
    """How many rows of each pricing result table belong to ``run_id``."""
    return {model.__tablename__: count(engine, model, model.run_id == run_id) for model in PRICING_RESULTS}


def prices(engine: Engine) -> dict[str, float]:
    with session_scope(engine) as session:
        return dict(session.execute(select(Product.sku, Product.price)).all())


def seed_clean_market(engine: Engine, n_skus: int = 30) -> pd.DataFrame:
    """A catalogue and its sales history, all valid: a run's only rows are then the ones it concluded (the
    sample world's zero-cost product would add a quarantine row to every run). Returns the catalogue."""
    market = sample_market(n_skus=n_skus, seed=4)
    catalogue = market.catalogue.astype({"sku": str, "category": str})
    pricing_store.upsert_catalogue(engine, catalogue)
    pricing_store.replace_sales(engine, market.sales.astype({"sku": str}))
    return catalogue


def offers_for(catalogue: pd.DataFrame, n: int = 10) -> list[dict[str, Any]]:
    """A competitor feed document: ``n`` of our SKUs offered 5 % below our price."""
    return [{"sku": sku, "price": round(price * 0.95, 2)} for sku, price in catalogue[["sku", "price"]].head(n).values]


@contextmanager
def logged(name: str) -> Iterator[list[str]]:
    """The messages logger ``name`` emits in the block (a handler of its own: Prefect's logging setup replaces
    the root handlers pytest's caplog relies on)."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger, handler = logging.getLogger(name), Collect()
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def flow_run_state(flow_run_id: Any) -> Any:
    async def read() -> Any:
        async with get_client() as client:
            return (await client.read_flow_run(flow_run_id)).state

    return asyncio.run(read())


# --- a worker machine lost mid-run ----------------------------------------------------------------------------------


@pytest.fixture
def pricing_deployment(prefect_server: str) -> Iterator[tuple[str, str]]:
    """A process work pool of its own and a deployment of the real PPIS flow from this checkout, reading one
    competitor feed; yields (deployment, feed block name). Removed afterwards, with its runs — the one a dead
    worker left Running for good included — so the session's server carries no trace of the test."""
    pool, feed = f"faults-{uuid.uuid4().hex[:8]}", f"faults-feed-{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        async with get_client() as client:
            await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
            flow_id = await client.create_flow_from_name("ppis-hourly-pricing")
            await client.create_deployment(
                flow_id=flow_id,
                name=pool,
                work_pool_name=pool,
                entrypoint="framework2/flows/pricing.py:hourly_pricing",
                pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}],
                parameters={"feeds": [feed], "approval_wait_seconds": 0},
            )

    async def remove() -> None:
        async with get_client() as client:
            deployment = await client.read_deployment_by_name(f"ppis-hourly-pricing/{pool}")
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
            )
            for run in runs:
                await client.delete_flow_run(run.id)
            await client.delete_deployment(deployment.id)
            await client.delete_work_pool(pool)

    asyncio.run(create())
    yield f"ppis-hourly-pricing/{pool}", feed
    asyncio.run(remove())


def test_worker_killed_mid_run_leaves_no_half_results_and_rerun_stores_once(
    prefect_server: str,
    store_url: str,
    http_server: LoopbackHTTPServer,
    pricing_deployment: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deployment, feed = pricing_deployment
    engine = open_store()
    catalogue = seed_clean_market(engine)
    seeded_prices = prices(engine)
    # The feed holds its answer, so the run is caught mid-way: inputs read, lock taken, feeds being collected.
    http_server.route("/offers", Reply(200, offers_for(catalogue), delay=600))
    CompetitorFeed(competitor="acme", url=http_server.url_for("/offers"), timeout_seconds=300).save(feed)
    worker_log = tmp_path / "worker.log"  # the worker's and its flow run's output, quoted when something fails

    with open(worker_log, "w") as log:
        worker = subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", deployment.split("/")[1], "--type", "process"],
            env=os.environ | {"PREFECT_WORKER_QUERY_SECONDS": "1"},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        flow_run = run_deployment(deployment, timeout=0)
        try:
            http_server.wait_for_requests(1, path="/offers", timeout=120)
        except AssertionError as exc:
            raise AssertionError(f"the run never reached its feed: {exc}\n{worker_log.read_text()}") from None
        assert worker.poll() is None, worker_log.read_text()
        killed = run_for_flow_run(engine, str(flow_run.id))
        assert killed is not None and killed.status == "running"
        assert current_holder(engine, "ppis").holder == killed.id
    finally:
        victims = kill_machine(worker.pid)  # the worker and its flow-run process, frozen then killed together
        worker.wait(timeout=30)
        wait_gone(victims)
    assert len(victims) >= 2, f"the flow run was not a child of the worker: {victims}\n{worker_log.read_text()}"

    # Nothing of the dead run reached the store but its run row and its lease: results commit in one
    # transaction at the end, and no price moved.
    assert rows_of_run(engine, killed.id) == NOTHING
    assert prices(engine) == seeded_prices
    # Its lease lasts as long as a run may take (the configured approval wait included): over an hour.
    lease = current_holder(engine, "ppis")
    ttl = SYSTEMS["ppis"].run_limit(get_settings(), {"approval_wait_seconds": 0})
    assert lease.holder == killed.id and as_utc(lease.expires_at) - as_utc(lease.acquired_at) == ttl

    # While that lease lasts, a rerun (the next hour's, or one started by hand) does not price twice: it skips and
    # names the holder.
    http_server.route("/offers", Reply(200, offers_for(catalogue)))
    skipped = _price_now(feed)
    assert skipped.status == "skipped" and f"pricing run {killed.id}" in skipped.summary, skipped.summary
    assert rows_of_run(engine, skipped.run_id) == NOTHING

    # Once the lease has expired (the rerun's clock is moved past it; waiting is not an option in a test), a rerun
    # takes it over and prices the catalogue once.
    real_utcnow = locks.utcnow
    monkeypatch.setattr(locks, "utcnow", lambda: real_utcnow() + ttl + timedelta(minutes=1))
    with logged("framework2.store.locks") as lock_log:
        rerun = _price_now(feed)
    assert rerun.status == "completed", rerun.summary
    assert f"took over the ppis lock from pricing run {killed.id}: it expired at" in "\n".join(lock_log)
    skus = len(catalogue)
    assert rerun.metrics["skus"] == skus and rerun.metrics["feeds"] == {feed: "fresh"}
    assert rows_of_run(engine, rerun.run_id) == {
        "market_position": skus,
        "price_recommendation": skus,
        "feed_snapshot": 1,
        "quarantined_row": 0,
    }
    # Exactly one set of results in the store: the rerun's, none of the dead run's or of the skipped run's.
    assert count(engine, PriceRecommendation) == count(engine, MarketPosition) == skus
    assert count(engine, FeedSnapshot) == 1
    assert rows_of_run(engine, killed.id) == NOTHING
    assert current_holder(engine, "ppis") is None  # released at the rerun's end
    with session_scope(engine) as session:
        stored = {r.id: r for r in session.scalars(select(AnalysisRun)).all()}
    # The dead run never completed; no process survived to record its end, so its row still says running.
    assert stored[killed.id].status == "running" and stored[killed.id].finished_at is None
    assert [stored[rerun.run_id].status, stored[skipped.run_id].status] == ["completed", "skipped"]

    # Prefect by itself never hears of the death: with no worker left to report it the flow run stays Running
    # until the unresponsive-run automation's window has passed (10 minutes by default; see the next test).
    state = flow_run_state(flow_run.id)
    assert state.type == StateType.RUNNING, state


def test_a_run_whose_worker_died_is_marked_crashed_once_its_heartbeats_stop(
    prefect_server: str,
    store_url: str,
    http_server: LoopbackHTTPServer,
    pricing_deployment: tuple[str, str],
    tmp_path: Path,
) -> None:
    deployment, feed = pricing_deployment
    catalogue = seed_clean_market(open_store())
    http_server.route("/offers", Reply(200, offers_for(catalogue), delay=600))
    CompetitorFeed(competitor="acme", url=http_server.url_for("/offers"), timeout_seconds=300).save(feed)
    # What `framework2 init` creates, with a window a test can wait for (heartbeats every 30 s, Prefect's minimum).
    watch = unresponsive_run_automation(timedelta(seconds=45))
    watch.name = f"faults-unresponsive-{uuid.uuid4().hex[:8]}"
    watch.create()
    worker_log = tmp_path / "worker.log"
    try:
        with open(worker_log, "w") as log:
            worker = subprocess.Popen(
                [PREFECT, "worker", "start", "--pool", deployment.split("/")[1], "--type", "process"],
                env=os.environ | {"PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"},
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            flow_run = run_deployment(deployment, timeout=0)
            http_server.wait_for_requests(1, path="/offers", timeout=120)  # running, its first heartbeat sent
        finally:
            victims = kill_machine(worker.pid)
            worker.wait(timeout=30)
            wait_gone(victims)
        killed_at = time.monotonic()
        state = flow_run_state(flow_run.id)
        while not state.is_final() and time.monotonic() - killed_at < 150:
            time.sleep(2)
            state = flow_run_state(flow_run.id)
    finally:
        Automation.read(name=watch.name).delete()

    assert state.type == StateType.CRASHED, f"{state}\n{worker_log.read_text()}"
    assert "no heartbeat for 0:00:45" in (state.message or "")
    # Marked within the window after the last heartbeat (at most 30 s before the kill), plus the trigger's check.
    assert time.monotonic() - killed_at < 45 + 30, state


def _price_now(feed: str) -> Any:
    """A PPIS run in this process, on the session's Prefect server."""
    from framework2.flows.pricing import hourly_pricing

    return hourly_pricing(feeds=[feed], approval_wait_seconds=0)


# --- the store unavailable for a while ------------------------------------------------------------------------------

# The first statement of `ppis-load-inputs` (retries=2, retry_delay_seconds=[2, 10]): the catalogue read.
CATALOGUE_READ = b"WHERE product.active IS true"
LOAD_RETRY_DELAYS = (2, 10)


@pytest.fixture
def proxied_store(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[StoreOutageProxy, Engine]]:
    """The machine's PostgreSQL (a fresh database) behind an outage proxy, configured as the store; seeded."""
    proxy = StoreOutageProxy(("127.0.0.1", make_url(postgres_url).port or 5432)).start()
    monkeypatch.setenv("FRAMEWORK2_STORE__URL", proxy.url_for(postgres_url))
    monkeypatch.setenv("FRAMEWORK2_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    engine = open_store()
    seed_clean_market(engine)
    yield proxy, engine
    proxy.close()
    get_settings.cache_clear()
    dispose_all()


def stored_state(engine: Engine) -> dict[str, Any]:
    """Everything a pricing run may touch, to compare before and after a fault."""
    with session_scope(engine) as session:
        recommendations = session.execute(
            select(PriceRecommendation.run_id, PriceRecommendation.sku, PriceRecommendation.recommended_price)
        ).all()
        positions = session.execute(select(MarketPosition.run_id, MarketPosition.sku, MarketPosition.position)).all()
        runs = session.execute(select(AnalysisRun.id, AnalysisRun.status)).all()
    return {
        "prices": prices(engine),
        "sales": count(engine, SalesRecord),
        "recommendations": sorted(recommendations),
        "positions": sorted(positions),
        "runs": dict(runs),
    }


def test_store_outage_shorter_than_the_retries_is_ridden_out_and_the_run_stores_once(
    prefect_server: str, proxied_store: tuple[StoreOutageProxy, Engine]
) -> None:
    from framework2.flows.pricing import hourly_pricing

    proxy, engine = proxied_store
    proxy.outage_on(CATALOGUE_READ, seconds=1.0)  # down just when the run reads its inputs, for a second

    started = time.monotonic()
    result = hourly_pricing(feeds=[], approval_wait_seconds=0)
    took = time.monotonic() - started

    assert proxy.triggered, "the outage never started: the catalogue read was not seen"
    assert result.status == "completed", result.summary
    # The first read was cut; the retry came after the configured delay, when the store was back.
    assert proxy.reads(CATALOGUE_READ) == 2 and proxy.refused == 0
    assert LOAD_RETRY_DELAYS[0] <= took < 60
    skus = result.metrics["skus"]
    assert rows_of_run(engine, result.run_id) == {
        "market_position": skus,
        "price_recommendation": skus,
        "feed_snapshot": 0,
        "quarantined_row": 0,
    }
    assert count(engine, PriceRecommendation) == count(engine, MarketPosition) == skus  # stored once
    assert stored_state(engine)["runs"] == {result.run_id: "completed"}
    assert current_holder(engine, "ppis") is None


def test_store_outage_longer_than_the_retries_fails_the_run_after_bounded_attempts_and_loses_nothing(
    prefect_server: str, proxied_store: tuple[StoreOutageProxy, Engine]
) -> None:
    from framework2.flows.pricing import hourly_pricing

    proxy, engine = proxied_store
    first = hourly_pricing(feeds=[], approval_wait_seconds=0)
    assert first.status == "completed"
    before = stored_state(engine)
    proxy.outage_on(CATALOGUE_READ)  # down from the next run's input read until the test brings it back

    started = time.monotonic()
    with logged("prefect.flow_runs") as run_log, logged("framework2.store.locks") as lock_log:
        state = hourly_pricing(feeds=[], approval_wait_seconds=0, return_state=True)
    took = time.monotonic() - started
    outage_attempts = [a.at - proxy.outage_started for a in proxy.attempts if a.refused]
    proxy.restore()

    assert state.is_failed(), state
    message = state.message or ""
    # The run's own error says which store and what to check; failing to record it afterwards does not mask it.
    assert f"StoreError: cannot reach the store at postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/" in message
    assert f'"127.0.0.1", port {proxy.port} failed' in message and "check [store] url" in message, message
    assert any("could not mark run" in m and "holds the pricing lock until" in m for m in run_log), run_log
    assert any("could not release the ppis lock" in m for m in lock_log), lock_log
    # Bounded: the input read was tried 1 + 2 times — cut once, then refused after each retry delay — and then
    # the run tried once to record its failure and once to release its lease. Nothing else knocked.
    assert proxy.reads(CATALOGUE_READ) == 1 and len(outage_attempts) == 4, outage_attempts
    retry_1, retry_2, record_failure, release = outage_attempts
    assert LOAD_RETRY_DELAYS[0] <= retry_1 < retry_2 and retry_2 - retry_1 >= LOAD_RETRY_DELAYS[1]
    assert retry_2 <= record_failure <= release < retry_2 + 10
    assert sum(LOAD_RETRY_DELAYS) <= took < 60

    # Nothing stored before is lost, and the failed run left no results, no price change, no "completed".
    after = stored_state(engine)
    [failed_run] = set(after["runs"]) - set(before["runs"])
    assert {k: v for k, v in after.items() if k != "runs"} == {k: v for k, v in before.items() if k != "runs"}
    assert after["runs"] == before["runs"] | {failed_run: "running"}  # the store was down when it failed
    assert rows_of_run(engine, failed_run) == NOTHING
    # Its lease could not be released either, so it stays until it expires (the killed-worker case above).
    assert current_holder(engine, "ppis").holder == failed_run


# --- an outside API slower than its timeout -------------------------------------------------------------------------


def test_slow_competitor_feed_is_asked_one_plus_retries_times_and_pricing_falls_back_to_its_stale_snapshot(
    prefect_server: str, store_url: str, http_server: LoopbackHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from framework2.flows.pricing import hourly_pricing

    retries, timeout = 2, 0.5
    monkeypatch.setenv("FRAMEWORK2_PPIS__FEED_RETRIES", str(retries))
    monkeypatch.setenv("FRAMEWORK2_PPIS__FEED_RETRY_DELAY", "200ms")  # then 400 ms, plus up to 50 % jitter
    get_settings.cache_clear()
    engine = open_store()
    catalogue = seed_clean_market(engine)
    feed = f"faults-slow-{uuid.uuid4().hex[:8]}"
    CompetitorFeed(competitor="acme", url=http_server.url_for("/offers"), timeout_seconds=timeout).save(feed)
    http_server.route("/offers", Reply(200, offers_for(catalogue, n=10)))
    fresh = hourly_pricing(feeds=[feed], approval_wait_seconds=0)
    assert fresh.metrics["feeds"] == {feed: "fresh"} and fresh.quality == 1.0
    with session_scope(engine) as session:
        good = session.scalars(select(FeedSnapshot).where(FeedSnapshot.run_id == fresh.run_id)).one()
    offers_before = count(engine, CompetitorOffer, CompetitorOffer.snapshot_id == good.id)
    assert offers_before == 10

    http_server.route("/offers", Reply(200, offers_for(catalogue, n=10), delay=5))  # now answers far too late
    started = time.monotonic()
    slow = hourly_pricing(feeds=[feed], approval_wait_seconds=0)
    took = time.monotonic() - started

    # Bounded: one request plus the configured retries, each given up after the block's timeout.
    assert len(http_server.requests_to("/offers")) == 1 + (1 + retries)
    assert (1 + retries) * timeout <= took < 30
    # The run completes on the last good snapshot and says so.
    assert slow.status == "completed"
    assert slow.metrics["feeds"] == {feed: "stale"} and f"feeds {feed} stale" in slow.summary
    assert slow.quality == 0.5  # a stale feed counts half
    with session_scope(engine) as session:
        snapshots = session.scalars(select(FeedSnapshot).order_by(FeedSnapshot.id)).all()
        positions = dict(
            session.execute(
                select(MarketPosition.sku, MarketPosition.n_offers).where(MarketPosition.run_id == slow.run_id)
            ).all()
        )
    assert [(s.run_id, s.status) for s in snapshots] == [(fresh.run_id, "ok"), (slow.run_id, "failed")]
    # The reason says which feed, what happened and what to do about it.
    assert snapshots[1].reason.startswith(f"feed '{feed}' timed out after {timeout} s (127.0.0.1:{http_server.port}")
    assert "raise timeout_seconds in the block" in snapshots[1].reason
    # The earlier snapshot is intact and priced the slow run's market: the same ten SKUs have an offer.
    assert count(engine, CompetitorOffer, CompetitorOffer.snapshot_id == good.id) == offers_before
    assert sorted(sku for sku, n in positions.items() if n) == sorted(catalogue["sku"].head(10))
    assert count(engine, PriceRecommendation, PriceRecommendation.run_id == fresh.run_id) == len(catalogue)


def test_slow_github_source_fails_the_sync_after_bounded_attempts_and_keeps_what_was_read_before(
    prefect_server: str, store_url: str, http_server: LoopbackHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from framework2.blocks.project_sources import GitHubSource
    from framework2.flows.planning import sync
    from framework2.tasks.planning.connectors import SourceError

    timeout = 0.5  # the block's, per request
    max_retries, backoff = 3, (1, 2, 4)  # read_github's: 3 retries, waiting 1 s, then twice as long each time
    block = f"faults-gh-{uuid.uuid4().hex[:8]}"
    GitHubSource(api_url=http_server.url, repositories=["octo/shop"], timeout_seconds=timeout).save(block)
    monkeypatch.setenv("FRAMEWORK2_PPMS__GITHUB_SOURCES", f'["{block}"]')
    get_settings.cache_clear()
    engine = open_store()
    issues = "/repos/octo/shop/issues"
    http_server.route(issues, Reply(200, [_issue(1), _issue(2)]))
    sync()
    with session_scope(engine) as session:
        tasks_before = sorted(session.scalars(select(PmTask.key)).all())
        cursor_before = session.scalars(select(PmSourceCursor.cursor)).all()
    assert len(tasks_before) == 2 and len(cursor_before) == 1

    http_server.route(issues, Reply(200, [_issue(1), _issue(2), _issue(3)], delay=5))
    started = time.monotonic()
    with pytest.raises(SourceError) as failed:
        sync()
    took = time.monotonic() - started

    # Bounded: one request plus read_github's three retries, with their backoff between them.
    assert len(http_server.requests_to(issues)) == 1 + (1 + max_retries)
    assert (1 + max_retries) * timeout + sum(backoff) <= took < 45
    assert "timed out" in str(failed.value) and f"{1 + max_retries} attempts" in str(failed.value)
    assert "raise timeout_seconds in the block" in failed.value.hint
    with session_scope(engine) as session:
        runs = session.execute(select(AnalysisRun.status, AnalysisRun.error).order_by(AnalysisRun.started_at)).all()
        tasks_after = sorted(session.scalars(select(PmTask.key)).all())
        cursor_after = session.scalars(select(PmSourceCursor.cursor)).all()
    assert [status for status, _error in runs] == ["completed", "failed"]
    assert "timed out" in runs[1].error
    assert tasks_after == tasks_before and cursor_after == cursor_before  # nothing lost, nothing half-read


def _issue(number: int) -> dict[str, Any]:
    """A GitHub issue as GET /repos/{owner}/{repo}/issues lists it (the fields PPMS reads)."""
    return {
        "id": 1000 + number,
        "number": number,
        "title": f"Issue {number}",
        "state": "open",
        "labels": [],
        "assignee": None,
        "assignees": [],
        "milestone": None,
        "body": "",
        "created_at": "2026-01-05T09:00:00Z",
        "updated_at": f"2026-01-0{5 + number}T09:00:00Z",
        "closed_at": None,
        "html_url": f"https://github.com/octo/shop/issues/{number}",
    }
