"""From webhook to flow run: after `framework2 init`, every event the webhook accepts starts the deployment its
table names, with the event's data rendered into the run's parameters by the deployment triggers in prefect.yaml.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

from framework2.config import Settings
from framework2.service.app import create_app
from framework2.service.webhooks import INBOUND_EVENTS
from tests.test_cli import framework2
from tests.test_webhooks import PATH, serve, signed

ROOT = Path(__file__).resolve().parents[1]

# system, event → (data sent, deployment expected to start, the parameters its run must get)
CASES: dict[tuple[str, str], tuple[dict[str, Any], str, dict[str, Any]]] = {
    ("ppis", "prices.changed"): ({"feeds": ["acme"]}, "ppis-hourly-pricing", {"feeds": ["acme"]}),
    ("ppms", "tasks.changed"): ({"tracker": "jira", "key": "PAY-1", "action": "updated"}, "ppms-sync", {}),
    ("ppms", "forecast.requested"): ({"projects": ["PAY"]}, "ppms-forecast", {"projects": ["PAY"]}),
    ("ppos", "health.requested"): ({"reason": "board meeting"}, "ppos-project-health", {}),
    ("pces", "requirement.changed"): (
        {"requirement": "REQ-9", "version": 3},
        "pces-change-impact",
        {"requirement": "REQ-9", "version": 3},
    ),
    ("pces", "requirements.updated"): ({"requirements_source": "docs"}, "pces-ingest", {"sources": ["docs"]}),
    ("puxt", "release.deployed"): ({"release": "v2.1"}, "puxt-performance", {}),
    ("puxt", "experiment.updated"): ({"experiment": "checkout-button"}, "puxt-experiments", {}),
    ("plos", "release.requested"): (
        {"app": "web", "image": "registry.example.com/web:2.1", "namespace": "shop"},
        "plos-blue-green-release",
        {
            "request": {
                "app": "web",
                "image": "registry.example.com/web:2.1",
                "namespace": "shop",
                "cluster_block": "plos",
            }
        },
    ),
    ("plos", "rollback.requested"): (
        {"app": "web", "reason": "incident INC-7"},
        "plos-rollback",
        {"request": {"app": "web", "namespace": "default", "cluster_block": "plos"}, "reason": "incident INC-7"},
    ),
    ("plos", "deployment.failed"): (
        {"app": "web", "state": "failure"},
        "plos-release-status",
        {"request": {"app": "web"}},
    ),
    ("pso", "run.requested"): (
        {"systems": ["ppis", "puxt"]},
        "pso-orchestrator",
        # the deployment's own parameter (execution) stays; the trigger's override only_due
        {"execution": "deployment", "only_due": False, "systems": ["ppis", "puxt"]},
    ),
}


def test_every_inbound_event_has_a_case_and_a_trigger_in_prefect_yaml() -> None:
    assert set(CASES) == {(spec.system, spec.name) for spec in INBOUND_EVENTS}
    deployments = {d["name"]: d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    for spec in INBOUND_EVENTS:
        assert spec.deployment == CASES[(spec.system, spec.name)][1]
        triggers = deployments[spec.deployment].get("triggers", [])
        assert any(spec.prefect_event in t["expect"] for t in triggers), f"no trigger for {spec.prefect_event}"


async def _manual_runs(names: list[str]) -> dict[str, list[Any]]:
    async with get_client() as client:
        runs = await client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=names)),
            limit=200,
        )
        ids = {d.id: d.name for d in await client.read_deployments()}
    found: dict[str, list[Any]] = {}
    for run in runs:
        if run.auto_scheduled:  # the deployment's own schedule, not a trigger
            continue
        found.setdefault(ids[run.deployment_id], []).append(run)
    return found


async def _delete(runs: list[Any]) -> None:
    async with get_client() as client:
        for run in runs:
            await client.delete_flow_run(run.id)


def _outbox_report() -> list[str]:
    """Where the deliveries stand, so a failure says whether the relay or the server's triggers lagged."""
    from sqlmodel import Session, select

    from framework2.store.engine import open_store
    from framework2.store.models import WebhookDelivery

    with Session(open_store()) as session:
        rows = session.exec(select(WebhookDelivery)).all()
    return [f"outbox {r.system} {r.event}: {r.status}, {r.attempts} attempts, last error {r.last_error}" for r in rows]


def _missing(runs: dict[str, list[Any]]) -> list[str]:
    """What the started runs still lack: each case's deployment with its parameters, and the chained runs."""
    problems = []
    for (system, event), (_data, deployment, params) in CASES.items():
        started = [r.parameters for r in runs.get(deployment, [])]
        if params not in started:
            problems.append(f"{system} {event}: {deployment} started with {started}, expected {params}")
    # A requirement change re-forecasts only once its scope enters a plan (tests/test_change_chain.py), so the
    # webhook's change of an unknown requirement starts the impact run and nothing downstream.
    return problems


@pytest.mark.integration
def test_each_webhook_starts_its_deployment_with_the_data_as_parameters(
    own_prefect_server: str, store_url: str
) -> None:
    result = framework2("init")
    assert result.returncode == 0, result.stdout + result.stderr
    secret = framework2("webhook-secret")
    assert secret.returncode == 0 and len(secret.stdout.strip()) == 64, secret.stdout + secret.stderr

    names = sorted({deployment for _data, deployment, _params in CASES.values()})
    before = {run.id for runs in asyncio.run(_manual_runs(names)).values() for run in runs}
    settings = Settings()  # the default secret block that init created
    with serve(create_app(settings)) as url:
        for (system, event), (data, _deployment, _params) in CASES.items():
            body, headers = signed(secret.stdout.strip(), {"system": system, "event": event, "data": data})
            answer = httpx.post(url + PATH, content=body, headers=headers, timeout=10)
            assert answer.status_code == 202, answer.text

        # Each trigger fires on its own schedule (about 2 s), but right after `init` a loaded machine's server can
        # answer slowly and the relay backs off: wait until every expected run is there, up to two minutes.
        deadline = time.monotonic() + 120
        while True:
            runs = {
                name: [r for r in found if r.id not in before]
                for name, found in asyncio.run(_manual_runs(names)).items()
            }
            problems = _missing(runs)
            if not problems or time.monotonic() > deadline:
                break
            time.sleep(1)
    try:
        assert not problems, "\n".join(problems + _outbox_report())
    finally:
        # Nothing else should execute these runs (no worker runs here; later tests start workers on this pool).
        asyncio.run(_delete([r for found in runs.values() for r in found]))
