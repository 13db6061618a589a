"""Large price changes wait for a person: the run pauses with a form, and only approved changes apply."""

from __future__ import annotations

import asyncio
import contextvars
import re
import threading

import pytest
from prefect.client.orchestration import get_client
from prefect.flow_runs import resume_flow_run
from sqlalchemy import select

from framework2.errors import DataError
from framework2.flows.common import paused_for_input
from framework2.flows.pricing import approve_prices, hourly_pricing
from framework2.sample.world import sample_market, seed_store
from framework2.store.engine import open_store, session_scope
from framework2.store.models import AnalysisRun, PriceRecommendation, Product
from tests.test_pricing_flow import latest_artifact

pytestmark = pytest.mark.integration


async def paused_run_id(flow_name: str = "ppis-hourly-pricing", timeout: float = 60) -> str:
    """The id of the paused ``flow_name`` run, once its input form is saved and it can be resumed."""
    return await paused_for_input(flow_name, timeout)


def recommendations(run_id: str) -> list[PriceRecommendation]:
    with session_scope(open_store()) as session:
        return list(session.scalars(select(PriceRecommendation).where(PriceRecommendation.run_id == run_id)).all())


def test_selected_approval_applies_only_the_chosen_large_changes(prefect_server: str, store_url: str) -> None:
    seed_store(open_store(), sample_market(n_skus=40, seed=11))
    box: dict = {}
    # The run goes on in a thread (as on a worker) carrying this test's Prefect settings.
    context = contextvars.copy_context()
    worker = threading.Thread(
        target=context.run, args=(lambda: box.setdefault("result", hourly_pricing(approval_wait_seconds=120)),)
    )
    worker.start()
    flow_run_id = asyncio.run(paused_run_id())

    with session_scope(open_store()) as session:  # nothing applied or stored while waiting
        assert session.scalars(select(PriceRecommendation)).all() == []
    # Decide as a person would: from the approval request artifact the paused run published.
    request = asyncio.run(latest_artifact("ppis-approval-request"))
    listed = re.findall(r"^\| (SKU-\d+) \|", request, flags=re.MULTILINE)
    assert len(listed) >= 3
    skus = listed[:2]
    resume_flow_run(
        flow_run_id,
        run_input={"decision": "approve selected", "approved_skus": skus, "approver": "ana@pricing", "note": "checked"},
    )
    worker.join(timeout=120)

    result = box["result"]
    assert asyncio.run(flow_run_state(flow_run_id)) == "COMPLETED"
    recs = recommendations(result.run_id)
    approved = [r for r in recs if r.status == "approved"]
    rejected = [r for r in recs if r.status == "rejected"]
    assert approved and rejected
    assert {r.sku for r in approved} == set(skus)
    assert listed[2] in {r.sku for r in rejected}
    assert all(r.decided_by == "ana@pricing" and r.decision_note == "checked" for r in approved + rejected)
    assert all(r.decided_by is None for r in recs if r.status in {"applied", "unchanged"})
    prices = current_prices()
    assert all(prices[r.sku] == pytest.approx(r.recommended_price) for r in approved)
    assert all(prices[r.sku] == pytest.approx(r.current_price) for r in rejected)


async def flow_run_state(flow_run_id: str) -> str:
    async with get_client() as client:
        return (await client.read_flow_run(flow_run_id)).state.type.value


def test_without_a_decision_in_time_changes_stay_pending_and_the_run_completes(
    prefect_server: str, store_url: str
) -> None:
    seed_store(open_store(), sample_market(n_skus=40, seed=11))
    result = hourly_pricing(approval_wait_seconds=2)

    stored = run_for(result.run_id)
    assert asyncio.run(flow_run_state(stored.flow_run_id)) == "COMPLETED"  # not failed by the pause timeout
    recs = recommendations(result.run_id)
    pending = [r for r in recs if r.status == "pending_approval"]
    assert pending and all(r.decided_by is None for r in recs), "nobody decided anything"
    prices = current_prices()
    assert all(prices[r.sku] == pytest.approx(r.current_price) for r in pending)


def test_pending_changes_can_be_approved_after_the_run_and_stale_ones_are_not_applied(
    prefect_server: str, store_url: str
) -> None:
    engine = open_store()
    seed_store(engine, sample_market(n_skus=40, seed=11))
    result = hourly_pricing(approval_wait_seconds=0)
    pending = [r for r in recommendations(result.run_id) if r.status == "pending_approval"]
    first, moved = pending[0], pending[1]
    # Someone changes one price by hand before the approval: that recommendation is now stale.
    with session_scope(engine) as session:
        session.get(Product, moved.sku).price = moved.current_price + 1.0

    counts = approve_prices(approver="bob", decision="approve selected", skus=[first.sku, moved.sku], note="ok")

    assert counts == {"approved": 1, "rejected": len(pending) - 2, "superseded": 1, "still_pending": 0}
    after = {r.sku: r for r in recommendations(result.run_id)}
    assert after[first.sku].status == "approved" and after[first.sku].decided_by == "bob"
    assert after[moved.sku].status == "superseded"
    prices = current_prices()
    assert prices[first.sku] == pytest.approx(first.recommended_price)
    assert prices[moved.sku] == pytest.approx(moved.current_price + 1.0), "a newer price is never overwritten"


def test_approval_with_unknown_skus_changes_nothing(prefect_server: str, store_url: str) -> None:
    seed_store(open_store(), sample_market(n_skus=40, seed=11))
    result = hourly_pricing(approval_wait_seconds=0)
    pending = [r for r in recommendations(result.run_id) if r.status == "pending_approval"]
    with pytest.raises(DataError, match="sku-typo"):
        approve_prices(approver="bob", decision="approve selected", skus=[pending[0].sku, "sku-typo"])
    with pytest.raises(DataError, match="needs the SKUs"):
        approve_prices(approver="bob", decision="approve selected")
    assert all(r.status == "pending_approval" for r in recommendations(result.run_id) if r.sku == pending[0].sku)


def test_approving_an_older_run_is_refused(prefect_server: str, store_url: str) -> None:
    seed_store(open_store(), sample_market(n_skus=30, seed=2))
    old = hourly_pricing(approval_wait_seconds=0)
    hourly_pricing(approval_wait_seconds=0)
    with pytest.raises(DataError, match="not the newest pricing run"):
        approve_prices(approver="bob", decision="approve all", run_id=old.run_id)


def run_for(run_id: str) -> AnalysisRun:
    with session_scope(open_store()) as session:
        return session.get(AnalysisRun, run_id)


def current_prices() -> dict[str, float]:
    with session_scope(open_store()) as session:
        return {p.sku: p.price for p in session.scalars(select(Product)).all()}
