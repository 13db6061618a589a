"""The framework2 command line as a user runs it: clear one-line errors, and init → worker → PSO."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from prefect.automations import Automation
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

from framework2.flows.launch import RollbackRequest, blue_green_release
from framework2.flows.orchestrator import orchestrate
from framework2.store.engine import open_store
from framework2.store.runs import run_for_flow_run
from framework2.systems import get_system
from framework2.tasks.launch.release import ReleaseRequest

CLI = str(Path(sys.executable).with_name("framework2"))
PREFECT = str(Path(sys.executable).with_name("prefect"))


def framework2(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLI, *args], env=os.environ | (env or {}), cwd=cwd, capture_output=True, text=True, timeout=300
    )


@contextlib.contextmanager
def process_worker(pool: str = "framework2-process") -> Iterator[subprocess.Popen]:
    """A `prefect worker` on ``pool`` polling every second, stopped as a person would (two Ctrl-C). When the block
    fails, the worker's own log is printed (pytest shows it with the failure)."""
    log = tempfile.NamedTemporaryFile("w+", prefix="worker-", suffix=".log", delete=False)  # noqa: SIM115
    worker = subprocess.Popen(
        [PREFECT, "worker", "start", "--pool", pool],
        env=os.environ | {"PREFECT_WORKER_QUERY_SECONDS": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield worker
    except BaseException:
        log.flush()
        print("".join(Path(log.name).read_text(errors="replace").splitlines(keepends=True)[-80:]))
        raise
    finally:
        for _ in range(2):  # a worker stops on a second SIGINT
            worker.send_signal(signal.SIGINT)
        worker.wait(timeout=30)
        log.close()
        os.unlink(log.name)


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


def test_a_bad_option_value_is_a_usage_error_not_a_traceback(tmp_path: Path) -> None:
    result = framework2("api", "--port", "abc", cwd=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "Traceback" not in out and "--port" in out, out


def test_health_on_a_new_store_says_what_to_do(tmp_path: Path) -> None:
    env = {"FRAMEWORK2_STORE__URL": f"sqlite:///{tmp_path / 's.db'}", "COLUMNS": "200"}
    result = framework2("health", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "PPIS" in result.stdout and "never" in result.stdout and "framework2 run" in result.stdout


def runs_started(deployment_id, failure: str, timeout: float = 30) -> list:  # type: ignore[no-untyped-def]
    """The flow runs of a deployment, waiting until an automation or trigger has created one."""

    async def runs() -> list:
        async with get_client() as client:
            return await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
            )

    deadline = time.monotonic() + timeout
    while not (found := asyncio.run(runs())):
        assert time.monotonic() < deadline, failure
        time.sleep(0.5)
    return found


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
    assert {"pso-orchestrator", "ppis-hourly-pricing", "ppis-approve-prices"} <= set(deployed)
    assert {"plos-launch-operations", "plos-blue-green-release", "plos-rollback", "plos-release-status"} <= set(
        deployed
    )
    assert {"ppms-project-management", "ppms-forecast", "ppms-backtest", "ppms-assign"} <= set(deployed)
    assert deployed["ppms-forecast"].schedules[0].schedule.cron == "0 3 * * *"  # nightly
    assert {"ppos-project-operations", "ppos-project-health", "pces-ingest", "pces-change-impact"} <= set(deployed)
    puxt = {"puxt-user-experience", "puxt-experiments", "puxt-journeys", "puxt-accessibility", "puxt-performance"}
    assert puxt | {"plos-scale-up"} <= set(deployed)
    assert deployed["puxt-accessibility"].schedules[0].schedule.cron == "0 6 * * *"
    assert deployed["puxt-performance"].schedules[0].schedule.cron == "*/15 * * * *"
    impact = Automation.read(name="pces-change-impact__automation_1")
    assert "framework2.pces.requirement.changed" in impact.trigger.expect
    assert deployed["ppos-project-health"].schedules[0].schedule.cron == "*/15 * * * *"
    # Scope changes and rolled-back releases re-forecast (a deployment trigger from prefect.yaml).
    # A change that entered a plan re-forecasts that project; a published forecast re-scores health.
    reforecast = Automation.read(name="ppms-forecast__automation_1")
    assert reforecast.trigger.expect == {"framework2.pces.scope.changed"}
    health = Automation.read(name="ppos-project-health__automation_1")
    assert "framework2.ppms.forecast.updated" in health.trigger.expect
    assert "framework2.pces.requirement.changed" not in health.trigger.expect  # one run per change, not per hop
    release_form = deployed["plos-blue-green-release"].parameter_openapi_schema
    assert "request" in release_form["required"] and "ReleaseRequest" in release_form["definitions"]
    assert "approver" in deployed["ppis-approve-prices"].parameter_openapi_schema["required"]
    pricing = deployed["ppis-hourly-pricing"]
    assert pricing.schedules[0].schedule.cron == "0 * * * *"
    assert "guardrails" in pricing.parameter_openapi_schema["properties"]  # the UI form
    assert deployed["pso-orchestrator"].parameters == {"execution": "deployment", "only_due": True}

    with process_worker():
        report = asyncio.run(orchestrate(systems=["ppis"], execution="deployment"))
        # `framework2 run <system> --deployment` follows the run to its end for every system (it once crashed
        # on an un-awaited coroutine after the run had started).
        for code in ("ppis", "ppms", "ppos", "pces", "puxt", "plos"):
            ran = framework2("run", code, "--deployment", env={"COLUMNS": "200"})
            out = ran.stdout + ran.stderr
            assert "Traceback" not in out and f"started {get_system(code).deployment}" in out, out
            assert "Completed" in out or "Failed" in out, out  # the states it passed through, to the last
            assert ran.returncode == (0 if "Completed" in out.splitlines()[-1] else 1), out
    [outcome] = report.outcomes
    assert outcome.status == "completed", outcome.error
    stored = run_for_flow_run(open_store(), outcome.flow_run_id)
    assert stored is not None and stored.status == "completed"
    assert "CATALOGUE IS EMPTY" in outcome.summary  # nothing seeded: said plainly, not crashed

    # The seed's "deployment failure → auto-rollback": a failed release run starts plos-rollback for its app.
    rollback_id = deployed["plos-rollback"].id
    failed = blue_green_release(
        ReleaseRequest(cluster_block="no-such-cluster", namespace="shop", app="web", image="web:2"), return_state=True
    )
    assert failed.is_failed() and "no-such-cluster" in failed.message

    runs = runs_started(rollback_id, "the auto-rollback automation did not start plos-rollback")
    assert runs[0].parameters["request"]["app"] == "web"
    assert runs[0].parameters["request"]["namespace"] == "shop"
    assert "Failed" in runs[0].parameters["reason"]
    assert runs[0].parameters["release_run_id"] == str(failed.state_details.flow_run_id)
    RollbackRequest.model_validate(runs[0].parameters["request"])  # the release form fits the rollback form

    # A changed requirement starts pces-change-impact for that requirement (the trigger renders the event).
    from framework2.events import emit

    impact_id = deployed["pces-change-impact"].id
    emit("pces", "requirement.changed", {"requirement": "REQ-77", "kind": "changed"})

    started = runs_started(impact_id, "requirement.changed did not start pces-change-impact")
    assert started[0].parameters == {"requirement": "REQ-77", "version": None}

    # A slow page (PUXT) starts plos-scale-up for the app that serves it: "response time > 100 ms → scale up".
    scale_id = deployed["plos-scale-up"].id
    emit(
        "puxt",
        "response_time.exceeded",
        {"url": "http://shop/checkout", "app": "web", "namespace": "shop", "reason": "p95 total 160 ms > 100 ms"},
    )

    scaled = runs_started(scale_id, "response_time.exceeded did not start plos-scale-up")
    assert scaled[0].parameters == {"app": "web", "namespace": "shop", "reason": "p95 total 160 ms > 100 ms"}


def test_load_validates_quarantines_and_upserts(tmp_path: Path) -> None:
    env = {"FRAMEWORK2_STORE__URL": f"sqlite:///{tmp_path / 's.db'}"}
    catalogue = tmp_path / "catalogue.csv"
    catalogue.write_text(
        "sku,name,category,cost,price,max_change_pct\n"
        "A1,Mug,kitchen,2.50,6.99,0.05\n"
        "B2,Plate,kitchen,0,4.99,\n"  # zero cost: quarantined
        "C3,Bowl,,1.00,3.99,\n"  # no category: quarantined
        "D4,Cup,kitchen,1.20,2.99,\n"
    )
    result = framework2("load", "catalogue", str(catalogue), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "loaded 2 products; quarantined 2" in result.stdout

    sales = tmp_path / "sales.csv"
    sales.write_text(
        "sku,day,price,units\nA1,2026-11-01,6.99,4\nA1,2026-11-02,6.99,5\n"
        "A1,yesterday,6.99,1\nZZ,2026-11-01,1.00,1\nD4,2026-11-01,2.99,-2\nD4,2026-11-02,2.99,1.5\n"
    )
    result = framework2("load", "sales", str(sales), env=env, cwd=tmp_path)
    assert "loaded 2 sales rows; quarantined 4" in result.stdout, result.stdout + result.stderr
    # a corrected day replaces the stored one instead of duplicating or wiping history
    sales.write_text("sku,day,price,units\nA1,2026-11-02,6.49,9\n")
    assert "loaded 1 sales rows" in framework2("load", "sales", str(sales), env=env, cwd=tmp_path).stdout

    from framework2.store.engine import make_engine
    from framework2.store.pricing import load_catalogue, load_sales
    from framework2.store.runs import recent_runs

    engine = make_engine(env["FRAMEWORK2_STORE__URL"])
    stored = load_sales(engine, since=date(2026, 1, 1)).sort_values("day")
    assert stored[["sku", "price", "units"]].values.tolist() == [["A1", 6.99, 4], ["A1", 6.49, 9]]
    assert load_catalogue(engine).set_index("sku").loc["A1", "max_change_pct"] == 0.05
    assert recent_runs(engine, "ppis") == [], "a load is not a pricing run"
    reasons = {r.outcome.get("summary") for r in recent_runs(engine, "ppis-load")}
    assert "loaded 2 sales rows, quarantined 4" in reasons


def test_load_of_a_file_without_the_needed_columns_is_a_clear_error(tmp_path: Path) -> None:
    env = {"FRAMEWORK2_STORE__URL": f"sqlite:///{tmp_path / 's.db'}"}
    bad = tmp_path / "c.csv"
    bad.write_text("id,title\n1,x\n")
    assert_clear_error(framework2("load", "catalogue", str(bad), env=env, cwd=tmp_path), "lacks column(s)")
    assert_clear_error(framework2("load", "sales", str(tmp_path / "nope.csv"), env=env, cwd=tmp_path), "does not exist")


def test_unreachable_prefect_api_is_one_clear_line(tmp_path: Path) -> None:
    env = {"FRAMEWORK2_STORE__URL": f"sqlite:///{tmp_path / 's.db'}", "PREFECT_API_URL": "http://127.0.0.1:1/api"}
    assert_clear_error(framework2("run", env=env, cwd=tmp_path), "cannot reach the Prefect API", "127.0.0.1:1")
    assert_clear_error(framework2("run", "ppis", "--deployment", env=env, cwd=tmp_path), "framework2 start")


@pytest.mark.integration
def test_start_runs_server_worker_and_api_and_stops_them_on_ctrl_c(tmp_path: Path) -> None:
    import httpx

    from tests.conftest import free_port

    port, service_port = free_port(), free_port()
    env = os.environ | {"PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_WORKER_QUERY_SECONDS": "1"}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen(
        [CLI, "start", "--port", str(port), "--api-port", str(service_port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        lines: list[str] = []
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if "Webhooks:" in line:
                break
        assert any(f"http://127.0.0.1:{port}" in line for line in lines), "".join(lines)
        assert any("polling work pool" in line for line in lines), "".join(lines)
        assert httpx.get(f"{api}/health", timeout=5).status_code == 200
        service = f"http://127.0.0.1:{service_port}"
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"{service}/health/ready", timeout=5)
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        assert ready is not None and ready.status_code == 200, ready and ready.text
        page = httpx.get(f"{service}/framework-set-2/dashboard", timeout=30)
        assert page.status_code == 200 and "System health" in page.text
        deadline = time.monotonic() + 60
        workers: list = []
        while not workers and time.monotonic() < deadline:
            reply = httpx.post(f"{api}/work_pools/framework2-process/workers/filter", json={}, timeout=5)
            workers = reply.json() if reply.status_code == 200 else []
            time.sleep(1)
        assert workers, "the worker never registered with the framework2-process pool"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=90)
    assert proc.returncode == 0
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{api}/health", timeout=2)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{service}/health", timeout=2)
