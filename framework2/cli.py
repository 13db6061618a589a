"""The ``framework2`` command line: init, start, run, health, dashboard, demo.

Every user-fixable problem prints one ``error:`` line and a ``hint:`` line and exits 1; no tracebacks.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import webbrowser
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import click
import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from framework2.errors import Framework2Error

app = typer.Typer(
    name="framework2",
    help="Framework Set 2: operations systems for software organisations, on Prefect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
DEFAULT_API = "http://127.0.0.1:4200/api"


def _settings():  # type: ignore[no-untyped-def]
    from framework2.config import get_settings

    return get_settings()


def _prefect_env() -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def check_prefect_api() -> None:
    """Fail fast and clearly when a configured Prefect API does not answer (none configured: ephemeral)."""
    from prefect.settings import PREFECT_API_URL

    api = PREFECT_API_URL.value()
    if not api:
        return
    try:
        httpx.get(f"{str(api).rstrip('/')}/health", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        raise Framework2Error(
            f"cannot reach the Prefect API at {api}: {type(exc).__name__}",
            hint="start it with `framework2 start`, fix PREFECT_API_URL, or unset it to use a temporary local API",
        ) from exc


def ui_url() -> str:
    """The Prefect UI URL for the configured API (or the local default)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    configured = PREFECT_UI_URL.value()
    if configured:
        return str(configured)
    api = PREFECT_API_URL.value() or DEFAULT_API
    return str(api).removesuffix("/api")


@app.command()
def init() -> None:
    """Create the store, register block types, create the work pool, deploy prefect.yaml, create automations."""
    from framework2.deployments.setup import init_steps

    _prefect_env()
    for title, action in init_steps(_settings()):
        with console.status(f"{title}…"):
            result = action()
        for line in [result] if isinstance(result, str) else result:
            console.print(f"[green]✓[/green] {title}: {escape(line)}")
    console.print(f"Done. Open the UI at {ui_url()} (start it with `framework2 start`).")


@app.command()
def start(
    host: str = "127.0.0.1",
    port: int = 4200,
    worker: Annotated[bool, typer.Option(help="Also run a process worker for the framework2 pool.")] = True,
) -> None:
    """Run the Prefect server and a worker in the foreground until Ctrl-C."""
    from framework2.deployments.setup import PROJECT_DIR, WORK_POOL

    _prefect_env()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)  # a service manager stops us like Ctrl-C does
    bin_dir = Path(sys.executable).parent
    api = f"http://{host}:{port}/api"
    env = os.environ | {"PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    procs = [
        subprocess.Popen([str(bin_dir / "prefect"), "server", "start", "--host", host, "--port", str(port)], env=env)
    ]
    try:
        _wait_for_api(api, timeout=90, proc=procs[0])
        console.rule("[bold green]Framework Set 2 is up")
        console.print(f"  Prefect UI:  [bold]http://{host}:{port}[/bold]")
        console.print(f"  API:         {api}    (export PREFECT_API_URL={api})")
        if worker:
            procs.append(
                subprocess.Popen(
                    [str(bin_dir / "prefect"), "worker", "start", "--pool", WORK_POOL, "--type", "process"],
                    env=env | {"FRAMEWORK2_PROJECT_DIR": str(PROJECT_DIR)},
                    cwd=PROJECT_DIR,
                )
            )
            console.print(f"  Worker:      polling work pool {WORK_POOL!r}")
        console.print("  Stop with Ctrl-C.")
        while all(p.poll() is None for p in procs):
            time.sleep(1)
        raise Framework2Error("a Prefect process stopped unexpectedly", hint="see its output above")
    except KeyboardInterrupt:
        console.print("stopping…")
    finally:
        for proc in reversed(procs):
            # A worker stops on a second SIGINT, not on SIGTERM.
            for _ in range(2):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
                    time.sleep(1)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _stop_on_sigterm(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _wait_for_api(api: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise Framework2Error(
                "the Prefect server exited during start-up", hint="is the port already in use? try --port 4300"
            )
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise Framework2Error(
        f"the Prefect server did not answer at {api} within {timeout:.0f} s", hint="check the output above for errors"
    )


@app.command()
def run(
    system: Annotated[
        str | None, typer.Argument(help="System code (e.g. ppis); omit to run the PSO master flow.")
    ] = None,
    deployment: Annotated[bool, typer.Option(help="Start deployments on workers instead of running here.")] = False,
) -> None:
    """Run the master flow (all systems) or one system now."""
    from framework2.flows.orchestrator import orchestrate
    from framework2.store.engine import open_store
    from framework2.systems import get_system

    _prefect_env()
    settings = _settings()
    open_store(settings)
    check_prefect_api()
    if system is None:
        report = asyncio.run(orchestrate(execution="deployment" if deployment else "subflow"))
        _print_report(report)
        if report.failed:
            raise typer.Exit(1)
        return
    spec = get_system(system)
    if deployment:
        _run_deployment(spec.deployment)
        return
    result = spec.load_flow()()
    console.print(f"[bold]{spec.code.upper()}[/bold] {result.summary}")


def _run_deployment(name: str) -> None:
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound
    from prefect.flow_runs import wait_for_flow_run

    from framework2.deployments.setup import WORK_POOL

    try:
        flow_run = run_deployment(name=name, timeout=0)
    except ObjectNotFound:
        raise Framework2Error(f"deployment {name!r} does not exist", hint="run `framework2 init` first") from None
    console.print(f"started {name}: {ui_url()}/runs/flow-run/{flow_run.id}")
    console.print(f"waiting for a worker on pool {WORK_POOL!r} (none running? start one with `framework2 start`)")
    final = wait_for_flow_run(flow_run.id, timeout=6 * 3600, poll_interval=5, log_states=True)
    state = final.state
    console.print(f"{name}: {state.name} {state.message or ''}" if state else f"{name}: no final state")
    if state is None or not state.is_completed():
        raise typer.Exit(1)


def _print_report(report: Any) -> None:
    table = Table(title="PSO roll-up")
    for col in ("system", "run", "health", "summary"):
        table.add_column(col)
    for o in report.outcomes:
        colour = {"completed": "green", "failed": "red"}.get(o.status, "yellow")
        table.add_row(
            o.system.upper(),
            f"[{colour}]{o.status}[/{colour}] {o.seconds:.1f}s",
            f"{report.health.get(o.system, 0):.1f}",
            o.summary or o.error or "",
        )
    console.print(table)
    console.print(f"Portfolio health: [bold]{report.portfolio_health:.1f}[/bold]")


def _age(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"


@app.command()
def health() -> None:
    """Per system: last run, its state and age, success rate and the latest health score."""
    from framework2.config import get_settings
    from framework2.store.engine import open_store
    from framework2.store.models import utcnow
    from framework2.store.runs import latest_health, recent_runs
    from framework2.systems import SYSTEMS

    settings = get_settings()
    engine = open_store(settings)
    scores = latest_health(engine)
    table = Table(title="Framework Set 2 health")
    for col in ("system", "last run", "state", "age", "success rate", "health", "why"):
        table.add_column(col)
    for code, spec in SYSTEMS.items():
        runs = recent_runs(engine, code, settings.coordination.success_window)
        finished = [r for r in runs if r.status in {"completed", "failed"}]
        rate = f"{sum(r.status == 'completed' for r in finished) / len(finished):.0%}" if finished else "—"
        last = runs[0] if runs else None
        score = scores.get(code)
        table.add_row(
            f"{code.upper()} {spec.title}",
            last.started_at.strftime("%Y-%m-%d %H:%M") if last else "never",
            last.status if last else "—",
            _age(utcnow() - last.started_at) if last else "—",
            rate,
            f"{score.score:.1f}" if score else "—",
            "; ".join(score.components.get("reasons", [])) if score else "run `framework2 run` first",
        )
    console.print(table)


load_app = typer.Typer(help="Load your own catalogue or sales history into the store from CSV.", no_args_is_help=True)
app.add_typer(load_app, name="load")


@load_app.command("catalogue")
def load_catalogue(
    path: Annotated[Path, typer.Argument(help="CSV: sku, name, category, cost, price[, guardrails]")],
) -> None:
    """Insert or update products; invalid rows are quarantined with their reason."""
    from framework2.store.engine import open_store
    from framework2.tasks.pricing.loading import load_catalogue_csv

    _print_load(load_catalogue_csv(open_store(_settings()), path), "products")


@load_app.command("sales")
def load_sales(path: Annotated[Path, typer.Argument(help="CSV: sku, day (YYYY-MM-DD), price, units")]) -> None:
    """Insert daily sales (a re-sent sku and day replaces the stored row); invalid rows are quarantined."""
    from framework2.store.engine import open_store
    from framework2.tasks.pricing.loading import load_sales_csv

    _print_load(load_sales_csv(open_store(_settings()), path), "sales rows")


def _print_load(report: Any, what: str) -> None:
    console.print(f"loaded {report.loaded} {what}; quarantined {report.quarantined} (run {report.run_id})")
    if report.quarantined:
        console.print("  see the quarantined_row table for each row and its reason", highlight=False)


@app.command()
def dashboard(open_browser: Annotated[bool, typer.Option("--open", help="Open it in a browser.")] = False) -> None:
    """Print (or open) the Prefect UI URL where runs, artifacts and approvals live."""
    url = ui_url()
    console.print(f"Prefect UI: {url}")
    console.print(f"  PSO roll-up artifact: {url}/artifacts/key/pso-rollup")
    console.print(f"  PPIS summary:         {url}/artifacts/key/ppis-summary")
    if open_browser:
        webbrowser.open(url)


@app.command()
def demo(
    skus: Annotated[int, typer.Option(help="Products in the sample catalogue.")] = 300,
    seed: Annotated[int, typer.Option(help="Random seed of the sample world.")] = 7,
) -> None:
    """Generate the sample world (store + loopback competitor feeds) and run every system on it."""
    from framework2.flows.orchestrator import orchestrate
    from framework2.sample.experience import SAMPLE_APP_DELAYS_MS, experience_inputs, write_experience_files
    from framework2.sample.pages import serve_pages
    from framework2.sample.performance import serve_slow_app
    from framework2.sample.world import (
        FeedServer,
        build_routes,
        sample_market,
        save_feed_blocks,
        seed_projects,
        seed_release_history,
        seed_requirements,
        seed_store,
    )
    from framework2.store.engine import open_store, redact

    _prefect_env()
    settings = _settings()
    engine = open_store(settings)
    check_prefect_api()
    with console.status("generating the sample world…"):
        market = sample_market(skus, seed)
        seed_store(engine, market)
        releases = seed_release_history(engine, seed=seed)
        projects = seed_projects(engine)
        routes, feeds = build_routes(market)
    console.print(
        f"sample world: {len(market.catalogue)} SKUs, {len(market.sales)} sales rows, "
        f"{len(feeds)} competitor feeds, {releases} past releases, {projects} project tasks, "
        f"store {redact(str(engine.url))}"
    )
    with console.status("writing sample experiments, journeys and real-user measurements…"):
        experience_files = write_experience_files(Path(settings.home), seed=seed)
    with FeedServer(routes) as server, serve_pages() as pages, serve_slow_app(SAMPLE_APP_DELAYS_MS) as app:
        names = save_feed_blocks(feeds, server.base_url)
        requirements = seed_requirements(settings.home)
        report = asyncio.run(
            orchestrate(
                execution="subflow",
                system_parameters={
                    "ppis": {"feeds": names, "approval_wait_seconds": 0},
                    "pces": {"sources": [requirements]},
                    "puxt": {"inputs": experience_inputs(experience_files, pages, app)},
                },
            )
        )
    _print_report(report)
    _print_pricing(engine)
    _print_planning()
    _print_portfolio()
    _print_experience()
    _print_launch_plan(engine)


def _print_experience() -> None:
    from framework2.api import puxt

    results = puxt.get_experiments()
    if results:
        table = Table(title="PUXT: what the experiments say")
        for col in ("experiment", "users", "decision", "why"):
            table.add_column(col)
        for r in results:
            table.add_row(r["experiment"], f"{sum(r['users'].values()):,}", r["decision"], r["reason"])
        console.print(table)
    todo = [t for t in puxt.get_optimizations() if t["kind"] != "experiment"]
    if todo:
        table = Table(title="PUXT: what to fix for users")
        for col in ("kind", "what"):
            table.add_column(col)
        for t in todo[:8]:
            table.add_row(t["kind"], t["title"])
        console.print(table)


def _print_portfolio() -> None:
    from framework2.api import ppos

    risk = {r["project"]: r for r in ppos.get_risk()}
    health = [h for h in ppos.get_health() if h["project"] != "portfolio"]
    if not health:
        return
    table = Table(title="PPOS: which projects are in trouble, and why")
    for col in ("project", "health", "P(slip)", "top reason"):
        table.add_column(col)
    for h in health:
        slip = risk.get(h["project"], {}).get("probability")
        table.add_row(h["project"], f"{h['score']:.0f}", f"{slip:.0%}" if slip is not None else "—", h["top_reason"])
    console.print(table)


def _print_planning() -> None:
    from framework2.api import ppms

    forecasts = [f for f in ppms.get_forecasts() if f["milestone"] is None]
    if not forecasts:
        return
    table = Table(title="PPMS: when will each project be done?")
    for col in ("project", "P50", "P85", "P95", "target", "odds"):
        table.add_column(col, no_wrap=True)
    for f in sorted(forecasts, key=lambda f: f["project"]):
        odds = f["probability_on_time"]
        table.add_row(
            f["project"],
            str(f["p50"] or "—"),
            str(f["p85"] or "—"),
            str(f["p95"] or "—"),
            str(f["target_date"] or "—"),
            f"{odds:.0%}" if odds is not None else "—",
        )
    console.print(table)
    calibration = ppms.get_calibration()
    if calibration:
        console.print(f"How far to trust P85 ({calibration['verdict']}): {calibration['reason']}.", highlight=False)


def _print_launch_plan(engine) -> None:  # type: ignore[no-untyped-def]
    from framework2.flows.launch import DEMO_APP, predict
    from framework2.tasks.launch.plan import release_plan
    from framework2.tasks.launch.release import ReleaseRequest

    request = ReleaseRequest(app=DEMO_APP.app, namespace=DEMO_APP.namespace, image=DEMO_APP.image or "web:1")
    prediction, _ = predict(engine, request)
    console.print(
        f"\n[bold]PLOS:[/bold] no cluster configured, so this is the plan for {request.image}, not a release."
    )
    for i, step in enumerate(release_plan(request).steps, 1):
        console.print(f"  {i}. {step}", highlight=False)
    console.print(f"  Launch-success prediction: {prediction.summary()}", highlight=False)
    console.print(f"  {prediction.reason}", highlight=False)


def _print_pricing(engine) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from framework2.store.engine import session_scope
    from framework2.store.models import AnalysisRun, PriceRecommendation

    with session_scope(engine) as session:
        run = session.scalars(
            select(AnalysisRun)
            .where(AnalysisRun.system == "ppis", AnalysisRun.status == "completed")
            .order_by(AnalysisRun.started_at.desc())
        ).first()
        if run is None:
            return
        recs = session.scalars(
            select(PriceRecommendation)
            .where(PriceRecommendation.run_id == run.id)
            .order_by(PriceRecommendation.profit_delta.desc().nulls_last())
            .limit(5)
        ).all()
    table = Table(title="PPIS: top recommendations by expected profit")
    for col in ("sku", "current", "recommended", "status", "why"):
        table.add_column(col)
    for r in recs:
        table.add_row(r.sku, f"{r.current_price:.2f}", f"{r.recommended_price:.2f}", r.status, r.explanation)
    console.print(table)
    console.print(run.outcome.get("summary", ""))


def main() -> None:
    """Entry point: run the CLI, turning user-fixable errors into one line and a hint."""
    try:
        app(standalone_mode=False)
    except Framework2Error as exc:
        console.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False, soft_wrap=True)
        if exc.hint:
            console.print(f"[yellow]hint:[/yellow] {escape(exc.hint)}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except httpx.ConnectError as exc:
        console.print(f"[red]error:[/red] cannot reach the Prefect API: {exc}", highlight=False)
        console.print("[yellow]hint:[/yellow] start it with `framework2 start` or fix PREFECT_API_URL", highlight=False)
        sys.exit(1)
    finally:
        from framework2.store.engine import dispose_all

        dispose_all()


if __name__ == "__main__":
    main()
