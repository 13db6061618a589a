"""PPOS end to end on a real Prefect server over the sample projects after a PPMS run: health stored as a
time series, the portfolio artifact, degraded/recovered on the crossing only, and the notification."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from prefect.artifacts import Artifact
from prefect.automations import Automation
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from sqlalchemy import select

from framework2.config import get_settings
from framework2.deployments.automations import ensure_automations
from framework2.flows.planning import project_management
from framework2.sample.world import seed_projects
from framework2.store.engine import open_store, session_scope
from framework2.store.models import PpAllocation, PpHealth, PpRisk

pytestmark = pytest.mark.integration


@pytest.fixture
def planned(prefect_server: str, store_url: str) -> None:
    seed_projects(open_store())
    project_management()


def test_health_is_scored_stored_and_published_for_every_project_and_the_portfolio(
    planned: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import framework2.flows.portfolio as portfolio

    emitted: list[tuple[str, str, dict]] = []

    def record(_system: str, event: str, project: str, _name: str, data: dict) -> None:
        emitted.append((event, project, data))

    monkeypatch.setattr(portfolio, "emit_about_project", record)

    result = portfolio.project_operations()

    with session_scope(open_store()) as session:
        rows = session.scalars(select(PpHealth)).all()
        stored = {r.project: (r.score, r.components, r.top_reason) for r in rows}
    assert set(stored) == {"sample:shop", "sample:payments", "portfolio"}
    for project in ("sample:shop", "sample:payments"):
        score, components, top = stored[project]
        assert 0 <= score <= 100 and top
        assert {c["name"] for c in components} >= {"schedule", "blocked_ratio", "staffing_gaps"}
        assert sum(c["contribution"] for c in components) == pytest.approx(100 - score, abs=1e-6)
    assert result.system == "ppos" and "portfolio health" in result.summary
    artifact = Artifact.get("ppos-portfolio")
    assert artifact is not None and "| project | health | trend | top reason |" in artifact.data
    assert "Web shop relaunch" in artifact.data and "Payments v2" in artifact.data
    assert "## Dependencies" in artifact.data and "is blocked because" in artifact.data
    assert "## Slip risk (more than 10 days late)" in artifact.data and "using the heuristic" in artifact.data
    with session_scope(open_store()) as session:
        risks = session.scalars(select(PpRisk)).all()
    assert {r.project for r in risks} == {"sample:shop", "sample:payments"}
    assert all(0 < r.probability < 1 and r.features and r.basis == "heuristic" for r in risks)
    assert result.metrics["slip_model"]["mode"] == "heuristic"
    assert "## Allocation" in artifact.data and "**What moving one person would change:**" in artifact.data
    assert result.metrics["blocked_chains"] > 0 and result.metrics["critical_chain"]
    with session_scope(open_store()) as session:
        planned = session.scalars(select(PpAllocation)).all()
    assert planned and all(a.days > 0 for a in planned)

    import framework2

    assert [h["project"] for h in framework2.ppos.get_health()][-1] in {"sample:shop", "sample:payments", "portfolio"}
    assert {r["project"] for r in framework2.ppos.get_risk()} == {"sample:shop", "sample:payments"}
    assert len(framework2.ppos.get_allocation()) == len(planned)

    below = [p for p in ("sample:shop", "sample:payments", "portfolio") if stored[p][0] < 95]
    assert sorted(p for e, p, _ in emitted if e == "health.degraded") == sorted(below)
    assert all(payload["top_reason"] and payload["threshold"] == 95 for _, _, payload in emitted)

    emitted.clear()
    portfolio.project_health()  # still below: no second alert, and the trend is now an arrow
    assert emitted == []
    table = Artifact.get("ppos-portfolio").data.split("## Components")[0]
    assert "| new |" not in table and "→" in table


@pytest.fixture
def automations_removed_after() -> Iterator[None]:
    """The server is shared by the session: leave no automation behind for tests that create their own."""
    yield
    for automation in asyncio.run(_all_automations()):
        if automation.name.startswith("framework2:"):
            automation.delete()


async def _all_automations() -> list[Automation]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return [Automation(**a.model_dump()) for a in await client.read_automations()]


def test_degraded_project_health_notifies_through_the_automation(
    planned: None, http_server, monkeypatch: pytest.MonkeyPatch, automations_removed_after: None
) -> None:  # type: ignore[no-untyped-def]
    from framework2.flows.portfolio import project_health

    http_server.route("/hook", method="POST")
    CustomWebhookNotificationBlock(
        name="ops", url=http_server.url_for("/hook"), method="POST", json_data={"text": "{{subject}}: {{body}}"}
    ).save("f2-ppos", overwrite=True)
    monkeypatch.setenv("FRAMEWORK2_NOTIFICATIONS__BLOCK", "custom-webhook/f2-ppos")
    monkeypatch.setenv("FRAMEWORK2_ALERTS__HEALTH_SCORE_BELOW", "100")  # every project is below a perfect score
    get_settings.cache_clear()
    ensure_automations(get_settings())

    project_health()

    received = http_server.wait_for_requests(1, path="/hook", timeout=60)
    texts = [r.json()["text"] for r in received]
    assert any("project health degraded" in t and "Top reason:" in t for t in texts), texts


def test_an_empty_portfolio_runs_and_says_what_to_do(prefect_server: str, store_url: str) -> None:
    from framework2.flows.portfolio import project_operations

    result = project_operations()

    assert result.metrics["projects"] == {} and result.metrics["portfolio"] == 100
    assert result.metrics["slip_risk"] == {} and result.metrics["allocation"]["short_days"] == 0
    artifact = Artifact.get("ppos-portfolio")
    assert "no projects yet: run PPMS" in artifact.data and "No project has open work." in artifact.data
