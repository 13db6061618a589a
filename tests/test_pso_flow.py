"""PSO on a real Prefect server: a failing system is contained, health is stored, automations notify."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from prefect.automations import Automation
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from sqlalchemy import select

from framework2.config import get_settings
from framework2.deployments.automations import (
    ACCESSIBILITY_AUTOMATION,
    EXPERIMENT_AUTOMATION,
    FAILURE_AUTOMATION,
    HEALTH_AUTOMATION,
    PERFORMANCE_AUTOMATION,
    PROJECT_HEALTH_AUTOMATION,
    ROLLED_BACK_AUTOMATION,
    SLIPPED_AUTOMATION,
    UNDERCUT_AUTOMATION,
    ensure_automations,
)
from framework2.flows.orchestrator import orchestrate
from framework2.sample.world import FeedServer, build_routes, sample_market, save_feed_blocks, seed_store
from framework2.store.engine import open_store, session_scope
from framework2.store.models import AnalysisRun, SystemHealth
from framework2.systems import SYSTEMS, SystemSpec

pytestmark = pytest.mark.integration

BROKEN = SystemSpec(
    code="broken",
    title="Always fails",
    flow="tests.systems_for_tests:broken_flow",
    deployment="broken-system/broken-system",
    expected_interval=lambda _s: timedelta(hours=1),
)


@pytest.fixture
def with_broken_system(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SYSTEMS, "broken", BROKEN)


def run_pso(**kwargs):  # type: ignore[no-untyped-def]
    engine = open_store()
    market = sample_market(n_skus=40, seed=5)
    seed_store(engine, market)
    routes, feeds = build_routes(market)
    with FeedServer(routes) as server:
        names = save_feed_blocks(feeds, server.base_url)
        return asyncio.run(
            orchestrate(system_parameters={"ppis": {"feeds": names, "approval_wait_seconds": 0}}, **kwargs)
        )


def test_orchestrator_contains_a_failing_system_and_stores_health(
    prefect_server: str, store_url: str, with_broken_system: None
) -> None:
    report = run_pso(systems=["ppis", "broken"])

    outcomes = {o.system: o for o in report.outcomes}
    assert outcomes["ppis"].status == "completed"
    assert outcomes["broken"].status == "failed"
    assert "the broken system's data source is gone" in (outcomes["broken"].error or "")
    assert report.failed == ["broken"]
    assert report.health["broken"] == 0.0  # never succeeded
    assert report.health["ppis"] > 50

    engine = open_store()
    with session_scope(engine) as session:
        health = session.scalars(select(SystemHealth)).all()
        broken_runs = session.scalars(select(AnalysisRun).where(AnalysisRun.system == "broken")).all()
    assert {h.system for h in health} == {"ppis", "broken"}
    assert len(broken_runs) == 1 and broken_runs[0].status == "failed", "PSO records a run that died before start"

    import framework2

    health = framework2.pso.get_system_health()
    assert health["broken"]["score"] == 0.0 and health["ppis"]["score"] == report.health["ppis"]


def test_only_due_skips_a_system_that_ran_recently(prefect_server: str, store_url: str) -> None:
    first = run_pso(systems=["ppis"])
    assert first.outcomes[0].status == "completed"
    second = run_pso(systems=["ppis"], only_due=True)
    assert second.outcomes[0].status == "skipped"
    assert "not due" in second.outcomes[0].summary
    assert second.health["ppis"] == pytest.approx(first.health["ppis"], abs=1)


def test_automations_notify_on_failure_and_degraded_health(
    prefect_server: str, store_url: str, with_broken_system: None, http_server, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    http_server.route("/hook", method="POST")
    CustomWebhookNotificationBlock(
        name="ops", url=http_server.url_for("/hook"), method="POST", json_data={"text": "{{subject}}: {{body}}"}
    ).save("f2-ops", overwrite=True)
    monkeypatch.setenv("FRAMEWORK2_NOTIFICATIONS__BLOCK", "custom-webhook/f2-ops")
    get_settings.cache_clear()

    done = ensure_automations(get_settings())
    assert done[1:] == [
        f"created automation {FAILURE_AUTOMATION!r}",
        f"created automation {HEALTH_AUTOMATION!r}",
        f"created automation {UNDERCUT_AUTOMATION!r}",
        f"created automation {ROLLED_BACK_AUTOMATION!r}",
        f"created automation {SLIPPED_AUTOMATION!r}",
        f"created automation {PROJECT_HEALTH_AUTOMATION!r}",
        f"created automation {EXPERIMENT_AUTOMATION!r}",
        f"created automation {ACCESSIBILITY_AUTOMATION!r}",
        f"created automation {PERFORMANCE_AUTOMATION!r}",
    ]
    # idempotent: a second init updates in place instead of duplicating
    assert ensure_automations(get_settings())[1].startswith("updated")
    assert Automation.read(name=FAILURE_AUTOMATION).enabled

    run_pso(systems=["ppis", "broken"])

    # failure of broken-system, BROKEN and PPIS health crossing below 95 (one sample feed is broken), undercut
    received = http_server.wait_for_requests(4, path="/hook", timeout=90)
    texts = [r.json()["text"] for r in received]
    assert any("competitor undercut" in t and "3 SKUs" in t for t in texts), texts
    assert any("flow run failed" in t and "broken-system" in t for t in texts), texts
    assert any("health degraded" in t and "BROKEN" in t for t in texts), texts
    assert any("health degraded" in t and "PPIS" in t for t in texts), texts


def test_only_due_does_not_start_a_second_run_while_one_is_in_progress(prefect_server: str, store_url: str) -> None:
    from framework2.store.runs import start_run

    start_run(open_store(), "ppis", parameters={"note": "a run waiting for approval"})
    report = run_pso(systems=["ppis"], only_due=True)
    assert report.outcomes[0].status == "skipped"
    assert "still in progress" in report.outcomes[0].summary


def test_a_system_that_is_not_deployed_fails_with_the_fix(
    prefect_server: str, store_url: str, with_broken_system: None
) -> None:
    report = asyncio.run(orchestrate(systems=["broken"], execution="deployment"))
    [outcome] = report.outcomes
    assert outcome.status == "failed"
    assert "'broken-system/broken-system' does not exist" in outcome.error and "framework2 init" in outcome.error
