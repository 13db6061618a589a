"""One requirement change through the event-driven chain on a real Prefect server and a worker, by its numbers:
requirement.changed → pces-change-impact (pauses; answered) → scope.changed → ppms-forecast →
forecast.updated → ppos-project-health, and the owner's inbox on a loopback receiver. A typo does none of it."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.flow_runs import resume_flow_run
from sqlalchemy import select

from framework2.config import get_settings
from framework2.flows.common import paused_for_input
from framework2.store.engine import open_store, session_scope
from tests.http_fixtures import Reply
from tests.test_cli import framework2, process_worker

pytestmark = pytest.mark.integration

SHOP = "sample:shop"


async def _runs(deployment: str) -> list[Any]:
    """The runs of one deployment that a trigger (not its schedule) started, oldest first."""
    async with get_client() as client:
        runs = await client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment])), limit=50
        )
    return sorted((r for r in runs if not r.auto_scheduled), key=lambda r: r.created)


def _wait(what: str, check: Any, timeout: float = 420) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def _completed(deployment: str, count: int = 1) -> list[Any] | None:
    runs = asyncio.run(_runs(deployment))
    done = [r for r in runs if r.state and r.state.is_final()]
    return done if len(done) >= count else None


def test_a_requirement_change_moves_forecast_health_and_people_and_a_typo_moves_nothing(
    own_prefect_server: str, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http_server
) -> None:  # type: ignore[no-untyped-def]
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    import framework2.flows.context as pces
    import framework2.flows.planning as ppms
    from framework2.blocks.requirements_source import RequirementsSource
    from framework2.sample.requirements import write_sample_requirements
    from framework2.sample.world import seed_projects
    from framework2.store.models import ChangeImpactRow, PmForecast, PpHealth

    engine = open_store()
    seed_projects(engine)
    folder = write_sample_requirements(tmp_path / "requirements")
    RequirementsSource(path=str(folder)).save("reqs", overwrite=True)
    http_server.route("/ana", Reply(200), method="POST")
    CustomWebhookNotificationBlock(
        name="ana", url=http_server.url_for("/ana"), method="POST", json_data={"text": "{{subject}}: {{body}}"}
    ).save("ana-inbox", overwrite=True)
    for key, value in {
        "FRAMEWORK2_PCES__REQUIREMENTS_SOURCES": '["reqs"]',
        "FRAMEWORK2_PCES__IMPACT_POLICY": json.dumps({"approval_min_effort_days": 1, "approval_on_risk": "never"}),
        "FRAMEWORK2_PCES__STAKEHOLDERS": '{"ana": {"mode": "immediate", "channel": "custom-webhook/ana-inbox"}}',
        "FRAMEWORK2_PCES__APPROVAL_WAIT": "10m",
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    pces.ingest()  # the first versions, before any trigger exists
    ppms.forecast(projects=[SHOP])

    assert framework2("init").returncode == 0
    with process_worker():
        # A typo in one requirement and two criteria added to another, read by the hourly ingest.
        typo = folder / "search" / "suggestions.md"
        typo.write_text(typo.read_text().replace("types.", "tpyes."))
        checkout = folder / "checkout" / "guest-checkout.md"
        checkout.write_text(
            checkout.read_text() + "- [ ] A guest can pay with a saved wallet\n- [ ] A guest keeps the address\n"
        )
        pces.ingest()

        # Impact → pause: the owner hears at once, with the run's link and the deadline.
        paused = asyncio.run(paused_for_input("pces-change-impact", timeout=420))
        [asked] = http_server.wait_for_requests(1, "/ana", timeout=120)
        assert f"/runs/flow-run/{paused}" in asked.json()["text"] and "approval needed" in asked.json()["text"]
        resume_flow_run(paused, run_input={"decision": "approve", "approver": "olga", "note": "for launch"})

        # Decision → scope in the plan → one re-forecast of the shop → one health run after it.
        _wait("the change-impact run to end", lambda: _completed("pces-change-impact"))
        [forecast] = _wait("the triggered re-forecast", lambda: _completed("ppms-forecast"))
        assert forecast.parameters["projects"] == [SHOP] and forecast.state.is_completed()
        health_runs = _wait("the health run the forecast starts", lambda: _completed("ppos-project-health"))
        decided = http_server.wait_for_requests(2, "/ana", timeout=120)[-1].json()["text"]
        time.sleep(5)  # anything else the chain would start has started by now
        impacts = asyncio.run(_runs("pces-change-impact"))
        forecasts = asyncio.run(_runs("ppms-forecast"))

    # The typo started nothing: one impact run, for REQ-1; one forecast; the health run(s) after it.
    assert [r.parameters["requirement"] for r in impacts] == ["REQ-1"] and len(forecasts) == 1
    assert all(r.state.is_completed() for r in health_runs)
    with session_scope(engine) as session:
        impact = session.scalars(select(ChangeImpactRow).where(ChangeImpactRow.requirement == "REQ-1")).one()
        newest = session.scalars(
            select(PmForecast)
            .where(PmForecast.project == SHOP, PmForecast.milestone.is_(None))
            .order_by(PmForecast.created_at.desc())
        ).first()
        health = session.scalars(select(PpHealth).where(PpHealth.project == SHOP).order_by(PpHealth.id.desc())).first()
    report = impact.report
    assert impact.status == "approved" and len(report["added_tasks"]) == 2
    # The forecast PPMS published after the decision is the impact's "after", date for date.
    assert newest.p85.isoformat() == report["schedule_after"]["p85"]
    assert newest.p50.isoformat() == report["schedule_after"]["p50"]
    scope = next(c for c in health.components if c["name"] == "scope_change")
    assert f"REQ-1 v{impact.version} {report['effort_delta_days']:+.1f} d" in scope["explanation"]
    assert "approved by olga" in decided and "for launch" in decided


def test_the_demo_walk_shows_every_hop_and_the_impact_date_is_the_published_one(
    prefect_server: str, store_url: str, tmp_path: Path
) -> None:
    import framework2.flows.context as pces
    import framework2.flows.planning as ppms
    from framework2.sample.change_walk import walk_a_change
    from framework2.sample.world import seed_projects, seed_requirements

    seed_projects(open_store())
    source = seed_requirements(tmp_path / "home")
    pces.ingest(sources=[source])
    ppms.forecast(projects=[SHOP])
    said: list[str] = []

    walk = walk_a_change(tmp_path / "home" / "sample-requirements", source, say=said.append)

    assert walk.agrees, (walk.impact_p85, walk.published_p85)
    assert [h.hop for h in walk.hops] == [
        "typo in REQ-3",
        "edit REQ-1",
        "impact (PCES)",
        "approval",
        "re-forecast (PPMS)",
        "health (PPOS)",
        "people",
    ]
    assert "(1 cosmetic)" in walk.hops[0].what and "nothing was triggered" in walk.hops[0].what
    assert "Needs approval" in walk.hops[2].what and "approved by demo-lead" in walk.hops[3].what
    assert "the same date the impact predicted" in walk.hops[4].what
    assert "scope change" in walk.hops[5].what and "REQ-1 v2" in walk.hops[5].what
    assert len(walk.messages) == 2 and "approval needed" in walk.messages[0] and "approved" in walk.messages[1]
    assert len(said) == len(walk.hops)
