"""The framework2 command line as a user runs it: clear one-line errors, and init → worker → PSO."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client

from framework2.flows.orchestrator import orchestrate
from framework2.store.engine import open_store
from framework2.store.runs import run_for_flow_run

CLI = str(Path(sys.executable).with_name("framework2"))
PREFECT = str(Path(sys.executable).with_name("prefect"))


def framework2(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLI, *args], env=os.environ | (env or {}), cwd=cwd, capture_output=True, text=True, timeout=300
    )


def assert_clear_error(result: subprocess.CompletedProcess, *expected: str) -> None:
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "Traceback" not in out, out
    assert "error:" in out and "hint:" in out, out
    for text in expected:
        assert text in out, out


def test_missing_config_file_is_one_clear_line(tmp_path: Path) -> None:
    result = framework2("health", env={"FRAMEWORK2_CONFIG": str(tmp_path / "missing.toml")}, cwd=tmp_path)
    assert_clear_error(result, "missing.toml does not exist")


def test_invalid_config_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "framework2.toml").write_text('[ppis]\nmarketAnalysisInterval = "soon"\n')
    assert_clear_error(framework2("health", cwd=tmp_path), "ppis.market_analysis_interval", "soon")


def test_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    env = {"FRAMEWORK2_STORE__URL": "postgresql+psycopg://app:hunter2@127.0.0.1:1/store"}
    result = framework2("run", "ppis", env=env, cwd=tmp_path)
    assert_clear_error(result, "cannot reach the store", "127.0.0.1:1/store")
    assert "hunter2" not in result.stdout + result.stderr


def test_unknown_system_lists_known_ones(tmp_path: Path) -> None:
    env = {"FRAMEWORK2_STORE__URL": f"sqlite:///{tmp_path / 's.db'}"}
    assert_clear_error(framework2("run", "nope", env=env, cwd=tmp_path), "unknown system 'nope'", "ppis")


def test_health_on_a_new_store_says_what_to_do(tmp_path: Path) -> None:
    env = {"FRAMEWORK2_STORE__URL": f"sqlite:///{tmp_path / 's.db'}", "COLUMNS": "200"}
    result = framework2("health", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "PPIS" in result.stdout and "never" in result.stdout and "framework2 run" in result.stdout


@pytest.mark.integration
def test_init_deploys_everything_and_pso_runs_systems_on_a_worker(prefect_server: str, store_url: str) -> None:
    first = framework2("init")
    assert first.returncode == 0, first.stdout + first.stderr
    again = framework2("init")  # idempotent
    assert again.returncode == 0 and "already exists" in again.stdout, again.stdout + again.stderr

    async def deployments() -> dict:
        async with get_client() as client:
            found = await client.read_deployments()
            return {d.name: d for d in found}

    deployed = asyncio.run(deployments())
    assert {"pso-orchestrator", "ppis-hourly-pricing"} <= set(deployed)
    pricing = deployed["ppis-hourly-pricing"]
    assert pricing.schedules[0].schedule.cron == "0 * * * *"
    assert "guardrails" in pricing.parameter_openapi_schema["properties"]  # the UI form
    assert deployed["pso-orchestrator"].parameters == {"execution": "deployment", "only_due": True}

    worker = subprocess.Popen(
        [PREFECT, "worker", "start", "--pool", "framework2-process"],
        env=os.environ | {"PREFECT_WORKER_QUERY_SECONDS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        report = asyncio.run(orchestrate(systems=["ppis"], execution="deployment"))
    finally:
        for _ in range(2):  # a worker stops on a second SIGINT
            worker.send_signal(signal.SIGINT)
        worker.wait(timeout=30)
    [outcome] = report.outcomes
    assert outcome.status == "completed", outcome.error
    stored = run_for_flow_run(open_store(), outcome.flow_run_id)
    assert stored is not None and stored.status == "completed"
    assert "CATALOGUE IS EMPTY" in outcome.summary  # nothing seeded: said plainly, not crashed
