"""Operator health and metrics: system status rules, liveness/readiness, /metrics and the CLI exit code."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prefect.settings import PREFECT_API_URL, temporary_settings
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event
from sqlalchemy.engine import Engine

from framework2.config import Settings, get_settings
from framework2.service.observability import (
    WEBHOOK_OUTCOMES,
    readiness,
    record_webhook,
    router,
    store_metrics,
    system_status,
)
from framework2.store.engine import open_store, session_scope
from framework2.store.models import AnalysisRun, SystemHealth, WebhookDelivery, utcnow
from tests.conftest import free_port

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CLI = str(Path(sys.executable).with_name("framework2"))


def add_run(
    engine: Engine,
    system: str,
    status: str,
    started: datetime,
    *,
    took: timedelta = timedelta(minutes=1),
    error: str | None = None,
) -> None:
    with session_scope(engine) as session:
        session.add(
            AnalysisRun(
                id=str(uuid.uuid4()),
                system=system,
                status=status,
                started_at=started,
                finished_at=None if status == "running" else started + took,
                error=error,
            )
        )


def add_health(engine: Engine, system: str, score: float, at: datetime, reasons: list[str] | None = None) -> None:
    with session_scope(engine) as session:
        session.add(
            SystemHealth(
                system=system,
                measured_at=at,
                score=score,
                success_rate=1.0,
                freshness=1.0,
                quality=1.0,
                components={"reasons": reasons or []},
            )
        )


def add_delivery(engine: Engine, status: str, received: datetime) -> None:
    with session_scope(engine) as session:
        session.add(
            WebhookDelivery(
                source="framework-set-2",
                delivery_id=str(uuid.uuid4()),
                event_id=str(uuid.uuid4()),
                system="ppis",
                event="market.changed",
                status=status,
                received_at=received,
            )
        )


def with_window(settings: Settings, runs: int) -> Settings:
    coordination = settings.coordination.model_copy(update={"success_window": runs})
    return settings.model_copy(update={"coordination": coordination})


@pytest.fixture
def engine(store_url: str) -> Engine:
    return open_store(get_settings())


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = FastAPI()
    app.include_router(router)
    with TestClient(app) as test_client:
        yield test_client


def families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(family: Any, suffix: str = "", **labels: str) -> float | None:
    found = [s.value for s in family.samples if s.name == family.name + suffix and s.labels == labels]
    return found[0] if found else None


# --- system_status -------------------------------------------------------------------------------------


def test_system_status_applies_the_rules_per_system(engine: Engine) -> None:
    add_run(engine, "ppis", "failed", NOW - timedelta(hours=5), error="feed down")
    for ago in (timedelta(hours=3), timedelta(hours=2), timedelta(minutes=50)):
        add_run(engine, "ppis", "completed", NOW - ago)
    add_health(engine, "ppis", 60.0, NOW - timedelta(hours=2))  # an older, lower score is superseded
    add_health(engine, "ppis", 97.5, NOW - timedelta(minutes=45), ["1 of the last 4 runs failed"])
    add_run(engine, "plos", "completed", NOW - timedelta(minutes=40))  # every 15 min: stale after 30
    add_run(engine, "ppms", "completed", NOW - timedelta(hours=3))
    add_run(engine, "ppms", "failed", NOW - timedelta(hours=1), error="jira answered 500 [retry later]\ntraceback…")
    add_run(engine, "ppos", "completed", NOW - timedelta(minutes=10))
    add_health(engine, "ppos", 80.0, NOW - timedelta(minutes=5), ["quality of the last good run 0.50"])
    add_run(engine, "puxt", "skipped", NOW - timedelta(minutes=30))

    status = {s.code: s for s in system_status(engine, get_settings(), NOW)}

    assert list(status) == ["ppis", "ppms", "ppos", "pces", "puxt", "plos"]
    ppis = status["ppis"]
    assert ppis.healthy and ppis.reasons == [] and ppis.fresh is True
    assert ppis.success_rate == 0.75 and ppis.finished_in_window == 4
    assert ppis.last_state == "completed" and ppis.age_seconds == 50 * 60
    assert ppis.last_success_at == NOW - timedelta(minutes=49)
    assert ppis.health_score == 97.5 and ppis.health_reasons == ["1 of the last 4 runs failed"]
    assert ppis.expected_interval_seconds == 3600 and ppis.stale_after_seconds == 7200

    plos = status["plos"]
    assert not plos.healthy and plos.fresh is False
    assert plos.reasons == ["stale: last success 39 min ago, expected every 15 min (stale after 30 min)"]

    ppms = status["ppms"]
    assert not ppms.healthy and ppms.fresh is True and ppms.success_rate == 0.5
    assert ppms.reasons == ["last run failed: jira answered 500 [retry later]"]

    ppos = status["ppos"]
    assert not ppos.healthy and ppos.fresh is True
    assert ppos.reasons == ["health 80.0 below 95 (quality of the last good run 0.50)"]

    pces = status["pces"]  # never run: said so, not counted as unhealthy
    assert pces.never_run and pces.healthy and pces.fresh is None
    assert pces.last_run_at is None and pces.last_state is None and pces.success_rate is None

    puxt = status["puxt"]  # only skipped (nothing configured): ran, but nothing to judge
    assert not puxt.never_run and puxt.healthy and puxt.fresh is None
    assert puxt.last_state == "skipped" and puxt.success_rate is None


def test_system_status_window_stuck_runs_and_finished_runs_behind_the_window(engine: Engine) -> None:
    settings = with_window(get_settings(), 3)
    for hours in range(10, 15):  # failures older than the 3-run window do not count
        add_run(engine, "ppis", "failed", NOW - timedelta(hours=hours))
    add_run(engine, "ppis", "completed", NOW - timedelta(minutes=70))
    add_run(engine, "ppis", "completed", NOW - timedelta(minutes=40))
    add_run(engine, "ppis", "running", NOW - timedelta(minutes=5))  # in progress, not stuck
    add_run(engine, "puxt", "completed", NOW - timedelta(hours=3))
    add_run(engine, "puxt", "running", NOW - timedelta(hours=2))  # limit 20 min: a crash left it behind
    add_run(engine, "ppms", "completed", NOW - timedelta(hours=2))  # behind three skipped runs
    add_run(engine, "plos", "failed", NOW - timedelta(minutes=20), error="cluster unreachable")
    for minutes in (3, 2, 1):
        add_run(engine, "ppms", "skipped", NOW - timedelta(minutes=minutes))
        add_run(engine, "plos", "skipped", NOW - timedelta(minutes=minutes))

    status = {s.code: s for s in system_status(engine, settings, NOW)}

    ppis = status["ppis"]
    assert ppis.healthy and ppis.last_state == "running"
    assert ppis.finished_in_window == 2 and ppis.success_rate == 1.0
    puxt = status["puxt"]
    assert not puxt.healthy and puxt.last_state == "running"
    assert puxt.reasons == [
        "newest run started 2 h ago is still 'running' past its time limit (crashed?)",
        "stale: last success 2 h ago, expected every 60 min (stale after 2 h)",
    ]
    ppms = status["ppms"]
    assert ppms.healthy and ppms.fresh is True and ppms.success_rate is None
    assert ppms.last_success_at == NOW - timedelta(hours=2) + timedelta(minutes=1)
    plos = status["plos"]
    assert not plos.healthy and plos.last_state == "skipped"
    assert plos.reasons[0] == "last run failed: cluster unreachable" and "no successful run yet" in plos.reasons


def test_status_and_metrics_read_a_bounded_number_of_statements(engine: Engine) -> None:
    rows = [
        {
            "id": str(uuid.uuid4()),
            "system": code,
            "status": "completed" if i % 5 else "failed",
            "started_at": NOW - timedelta(minutes=i),
            "finished_at": NOW - timedelta(minutes=i) + timedelta(seconds=30),
            "parameters": {},
            "inputs": {},
            "outcome": {},
            "model_version": "",
            "quarantined": 0,
        }
        for code in ("ppis", "plos", "ppms")
        for i in range(2000)
    ]
    with session_scope(engine) as session:
        session.execute(AnalysisRun.__table__.insert(), rows)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        store_metrics(engine, get_settings(), NOW)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # At most four small reads per system plus two aggregates, however many runs are stored; each read of
    # runs is LIMITed (the window) or aggregated in the database.
    assert len(statements) <= 4 * 6 + 2
    reads = [s for s in statements if "FROM analysis_run" in s]
    assert all("LIMIT" in s or "count(" in s for s in reads), reads


# --- liveness and readiness ----------------------------------------------------------------------------


@pytest.mark.integration
def test_ready_when_store_and_prefect_answer(prefect_server: str, store_url: str, client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    response = client.get("/health/ready")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ready" and body["failed"] == []
    backend = store_url.split(":")[0].split("+")[0]  # sqlite, or postgresql on the postgres backend
    assert body["checks"]["store"]["ok"] and f"SELECT 1 answered by {backend}" in body["checks"]["store"]["detail"]
    assert body["checks"]["prefect"]["detail"] == "the Prefect API's /health answered 200"
    # anyone who reaches the port may ask: the answer names no URL, port or file path
    assert prefect_server.split("//")[1].split("/")[0] not in response.text and "/tmp" not in response.text
    for check in body["checks"].values():
        assert 0 <= check["latency_ms"] < 2000


def test_not_ready_when_prefect_api_port_is_closed(store_url: str, client: TestClient) -> None:
    api = f"http://127.0.0.1:{free_port()}/api"
    with temporary_settings({PREFECT_API_URL: api}):
        started = time.perf_counter()
        response = client.get("/health/ready")
        elapsed = time.perf_counter() - started
    body = response.json()
    assert response.status_code == 503, body
    assert body["status"] == "not ready" and body["failed"] == ["prefect"]
    assert body["checks"]["store"]["ok"]
    assert body["checks"]["prefect"]["detail"].startswith("cannot reach the Prefect API: ConnectError")
    assert api not in response.text and str(api.split(":")[-1].split("/")[0]) not in response.text
    assert elapsed < 2.5
    assert client.get("/health").status_code == 200  # liveness does not depend on anything


@pytest.mark.integration
def test_not_ready_when_store_is_unreachable(
    prefect_server: str, store_url: str, monkeypatch: pytest.MonkeyPatch, client: TestClient
) -> None:
    monkeypatch.setenv("FRAMEWORK2_STORE__URL", f"postgresql+psycopg://app:hunter2@127.0.0.1:{free_port()}/store")
    get_settings.cache_clear()
    response = client.get("/health/ready")
    body = response.json()
    assert response.status_code == 503, body
    assert body["failed"] == ["store"] and body["checks"]["prefect"]["ok"]
    assert "cannot reach the store" in body["checks"]["store"]["detail"]
    assert "hunter2" not in response.text and "app@" not in response.text


async def test_readiness_never_waits_past_its_timeout(store_url: str) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        started = time.perf_counter()
        report = await readiness(prefect_api_url=f"http://127.0.0.1:{silent.getsockname()[1]}/api", timeout=0.5)
        elapsed = time.perf_counter() - started
    assert report.failed == ["prefect"]
    detail = report.checks["prefect"].detail
    assert detail == "no answer within 0.5 s" or "ReadTimeout" in detail, detail
    assert elapsed < 1.5


def test_systems_endpoint_reports_the_verdicts(engine: Engine, client: TestClient) -> None:
    add_run(engine, "ppms", "failed", utcnow() - timedelta(minutes=5), error="boom")
    body = client.get("/health/systems").json()
    assert body["healthy"] is False and body["unhealthy"] == ["ppms"]
    assert body["never_run"] == ["ppis", "ppos", "pces", "puxt", "plos"]
    ppms = next(s for s in body["systems"] if s["code"] == "ppms")
    assert ppms["reasons"] == ["last run failed: boom", "no successful run yet"] and ppms["fresh"] is False


# --- metrics -------------------------------------------------------------------------------------------


def test_metrics_expose_the_seeded_numbers(engine: Engine, client: TestClient) -> None:
    now = utcnow()
    add_run(engine, "ppis", "failed", now - timedelta(hours=25))  # outside the 24 h window
    add_run(engine, "ppis", "completed", now - timedelta(minutes=50))
    add_run(engine, "ppis", "completed", now - timedelta(minutes=30))
    add_run(engine, "ppis", "running", now - timedelta(minutes=1))
    add_run(engine, "plos", "completed", now - timedelta(hours=2))
    add_health(engine, "ppis", 97.5, now - timedelta(minutes=29))
    add_delivery(engine, "queued", now - timedelta(seconds=90))
    add_delivery(engine, "queued", now - timedelta(seconds=10))
    add_delivery(engine, "delivered", now - timedelta(hours=1))
    before = families(client.get("/metrics").text)["framework2_webhooks"]

    record_webhook("accepted")
    record_webhook("accepted")
    record_webhook("rate_limited")
    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = families(response.text)
    assert found["framework2_store_up"].samples[0].value == 1
    score = found["framework2_system_health_score"]
    assert value(score, system="ppis") == 97.5 and value(score, system="plos") is None
    runs = found["framework2_runs"]
    assert value(runs, system="ppis", state="completed") == 2
    assert value(runs, system="ppis", state="running") == 1
    assert value(runs, system="ppis", state="failed") == 0
    assert value(runs, system="pces", state="completed") == 0
    last = found["framework2_last_success_timestamp_seconds"]
    expected = (now - timedelta(minutes=29)).timestamp()
    assert value(last, system="ppis") == pytest.approx(expected, abs=1e-3)
    assert value(last, system="pces") is None
    fresh = found["framework2_system_fresh"]
    assert value(fresh, system="ppis") == 1 and value(fresh, system="plos") == 0 and value(fresh, system="pces") is None
    healthy = found["framework2_system_healthy"]
    assert value(healthy, system="ppis") == 1 and value(healthy, system="plos") == 0
    assert found["framework2_webhook_outbox_queued"].samples[0].value == 2
    assert 90 <= found["framework2_webhook_outbox_oldest_age_seconds"].samples[0].value < 150
    webhooks = found["framework2_webhooks"]
    assert {s.labels["outcome"] for s in webhooks.samples if s.name.endswith("_total")} == set(WEBHOOK_OUTCOMES)
    for outcome, added in (("accepted", 2), ("rate_limited", 1), ("duplicate", 0)):
        assert value(webhooks, "_total", outcome=outcome) == value(before, "_total", outcome=outcome) + added


def test_metrics_still_served_and_systems_503_when_the_store_is_down(
    store_url: str, monkeypatch: pytest.MonkeyPatch, client: TestClient
) -> None:
    monkeypatch.setenv("FRAMEWORK2_STORE__URL", f"postgresql+psycopg://app@127.0.0.1:{free_port()}/store")
    get_settings.cache_clear()
    response = client.get("/metrics")
    found = families(response.text)
    assert response.status_code == 200
    assert found["framework2_store_up"].samples[0].value == 0
    assert "framework2_webhooks" in found and "framework2_runs" not in found
    systems = client.get("/health/systems")
    assert systems.status_code == 503 and "cannot reach the store" in systems.json()["error"]


def test_record_webhook_refuses_an_unknown_outcome() -> None:
    with pytest.raises(ValueError, match="unknown webhook outcome 'acepted'"):
        record_webhook("acepted")


# --- CLI -----------------------------------------------------------------------------------------------


def test_cli_health_exits_1_only_when_a_system_that_ran_is_unhealthy(store_url: str, tmp_path: Path) -> None:
    def health() -> subprocess.CompletedProcess:
        return subprocess.run(
            [CLI, "health"], env=os.environ | {"COLUMNS": "200"}, cwd=tmp_path, capture_output=True, text=True
        )

    new = health()
    assert new.returncode == 0, new.stdout + new.stderr
    assert "never run" in new.stdout and "healthy" in new.stdout

    engine = open_store(get_settings())
    add_run(engine, "ppis", "completed", utcnow() - timedelta(minutes=20))
    add_run(engine, "ppms", "failed", utcnow() - timedelta(minutes=10), error="jira answered 500")
    failing = health()
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "last run failed: jira answered 500" in failing.stdout
    assert "unhealthy: PPMS" in failing.stdout and "Traceback" not in failing.stderr
    assert "never run (not counted): PPOS, PCES, PUXT, PLOS" in failing.stdout
