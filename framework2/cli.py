"""The ``framework2`` command line: init, start, api, run, health, dashboard, demo.

Every user-fixable problem prints one ``error:`` line and a ``hint:`` line and exits 1; no tracebacks.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
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
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from framework2.errors import Framework2Error
from framework2.links import ui_url

app = typer.Typer(
    name="framework2",
    help="Framework Set 2: operations systems for software organisations, on Prefect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
# Errors and progress go to stderr, so `--json` output on stdout stays parseable when something goes wrong.
err_console = Console(stderr=True)


def _settings():  # type: ignore[no-untyped-def]
    from framework2.config import get_settings

    return get_settings()


def _prefect_env() -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The temporary server's first start creates and migrates its database: on a 2-core machine that can take
    # longer than Prefect's 20 s default, and the very first `framework2 demo` would fail.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


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


@app.command()
def init(
    # A plain string checked by init_steps: a bad value gets the usual one-line error and hint.
    pool: Annotated[
        str, typer.Option(help="process (framework2-process, a worker here) or kubernetes (framework2-kubernetes).")
    ] = "process",
    image: Annotated[
        str | None, typer.Option(help="With --pool kubernetes: the flow-run image, e.g. REGISTRY/framework2:TAG.")
    ] = None,
    base_job_template: Annotated[
        Path | None,
        typer.Option(help="With --pool kubernetes: the pool's template (default k8s/worker/base-job-template.json)."),
    ] = None,
) -> None:
    """Create the store, register block types, create the work pool, deploy prefect.yaml, create automations."""
    from framework2.deployments.setup import init_steps

    _prefect_env()
    steps = init_steps(_settings(), pool, image=image, base_job_template=base_job_template)
    for title, action in steps:
        with console.status(f"{title}…"):
            result = action()
        for line in [result] if isinstance(result, str) else result:
            console.print(f"[green]✓[/green] {title}: {escape(line)}")
    if pool == "kubernetes":
        console.print("Runs wait for the worker in your cluster: `kubectl apply -k k8s/worker/` (see README).")
    console.print(f"Done. Open the UI at {ui_url()} (start it with `framework2 start`).")


def _port_free(host: str, port: int) -> None:
    """Refuse clearly when the port is taken (uvicorn would log a traceback-like error and exit)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise Framework2Error(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                hint="stop what uses the port, or choose another with --port (or [api] port in framework2.toml)",
            ) from exc


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Address to listen on; default [api] host.")] = None,
    port: Annotated[int | None, typer.Option(help="Port; default [api] port (8200).")] = None,
    relay: Annotated[bool, typer.Option(help="Relay accepted webhooks to Prefect from this process.")] = True,
) -> None:
    """Serve the webhooks, the dashboard, /health and /metrics (FastAPI on uvicorn) until Ctrl-C."""
    from framework2.service.app import create_app, serve
    from framework2.store.engine import open_store

    _prefect_env()
    settings = _settings()
    host = host or settings.api.host
    port = port or settings.api.port
    open_store(settings)  # a clear error now rather than a failed start-up inside uvicorn
    _port_free(host, port)
    service = create_app(settings, relay=relay)
    console.print(f"  Dashboard:   [bold]http://{host}:{port}/framework-set-2/dashboard[/bold]")
    webhooks = f"http://{host}:{port}/webhook"
    console.print(f"  Webhooks:    POST {webhooks}/framework-set-2 (also {webhooks}/github, {webhooks}/jira)")
    console.print(f"  Health:      http://{host}:{port}/health/ready    Metrics: http://{host}:{port}/metrics")
    console.print(f"  OpenAPI:     http://{host}:{port}/openapi.json")
    serve(service, settings, host, port)


@app.command()
def start(
    host: str = "127.0.0.1",
    port: int = 4200,
    worker: Annotated[bool, typer.Option(help="Also run a process worker for the framework2 pool.")] = True,
    api_service: Annotated[
        bool, typer.Option("--api/--no-api", help="Also serve webhooks, dashboard, health and metrics.")
    ] = True,
    api_port: Annotated[int | None, typer.Option(help="Port of that service; default [api] port (8200).")] = None,
) -> None:
    """Run the Prefect server, a worker and the webhook/dashboard service in the foreground until Ctrl-C."""
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
        if api_service:
            service_port = api_port or _settings().api.port
            _port_free(host, service_port)
            procs.append(
                subprocess.Popen(
                    [str(bin_dir / "framework2"), "api", "--host", host, "--port", str(service_port)], env=env
                )
            )
            console.print(f"  Dashboard:   [bold]http://{host}:{service_port}/framework-set-2/dashboard[/bold]")
            console.print(f"  Webhooks:    POST http://{host}:{service_port}/webhook/framework-set-2")
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

    from framework2.deployments.setup import KUBERNETES_WORK_POOL, WORK_POOL

    try:
        flow_run = run_deployment(name=name, timeout=0)
    except ObjectNotFound:
        raise Framework2Error(f"deployment {name!r} does not exist", hint="run `framework2 init` first") from None
    link = f"{ui_url()}/runs/flow-run/{flow_run.id}"
    console.print(f"started {name}: {link}")
    # The deployment's own pool: after `framework2 init --pool kubernetes` that is not the process pool.
    pool = flow_run.work_pool_name or WORK_POOL
    start = (
        "apply the worker: `kubectl apply -k k8s/worker/`"
        if pool == KUBERNETES_WORK_POOL
        else "start one with `framework2 start`"
    )
    console.print(f"waiting for a worker on pool {pool!r} (none running? {start})")
    state = asyncio.run(_follow_flow_run(flow_run.id, link))
    console.print(f"{name}: {state.name} {state.message or ''}" if state else f"{name}: no final state")
    if state is None or not state.is_completed():
        raise typer.Exit(1)


async def _follow_flow_run(flow_run_id: Any, link: str, timeout: float = 6 * 3600, poll: float = 2.0) -> Any:
    """Print each state the run enters until a final one (returned); a pause says where to answer it."""
    from prefect.client.orchestration import get_client

    seen = None
    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while time.monotonic() < deadline:
            state = (await client.read_flow_run(flow_run_id)).state
            if state is not None and state.name != seen:
                seen = state.name
                console.print(f"  {state.name}" + (f": {state.message}" if state.message else ""))
                if state.is_paused():
                    console.print(f"  waiting for an answer: open {link} and press Resume to fill in the form")
            if state is not None and state.is_final():
                return state
            await asyncio.sleep(poll)
    return None


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


@app.command("webhook-secret")
def webhook_secret() -> None:
    """Print the shared secret webhook senders sign with (from the Secret block `framework2 init` created)."""
    from prefect.blocks.system import Secret

    _prefect_env()
    check_prefect_api()
    name = _settings().webhooks.secret_block
    try:
        value = Secret.load(name).get()
    except ValueError as exc:
        raise Framework2Error(
            f"there is no Secret block {name!r}", hint="run `framework2 init`, or set [webhooks] secret_block"
        ) from exc
    print(value)


@app.command()
def health() -> None:
    """Per system: last run, its state and age, success rate, health score and whether it is healthy.

    Exits 1 when a system that has run is unhealthy (rules: framework2/service/observability.py). A system
    that never ran is listed as "never run" and does not count: it may simply not be deployed yet.
    """
    from framework2.config import get_settings
    from framework2.service.observability import system_status
    from framework2.store.engine import open_store
    from framework2.store.models import utcnow

    settings = get_settings()
    statuses = system_status(open_store(settings), settings, utcnow())
    table = Table(title="Framework Set 2 health")
    for col in ("system", "last run", "state", "age", "success rate", "health", "healthy", "why"):
        table.add_column(col)
    for s in statuses:
        if s.never_run:
            verdict, why = "—", "never run: `framework2 run` starts it"
        else:
            verdict = "[green]yes[/green]" if s.healthy else "[red]NO[/red]"
            why = "; ".join(s.reasons or s.health_reasons)
        table.add_row(
            f"{s.code.upper()} {s.title}",
            s.last_run_at.strftime("%Y-%m-%d %H:%M") if s.last_run_at else "never",
            s.last_state or "never run",
            _age(timedelta(seconds=s.age_seconds)) if s.age_seconds is not None else "—",
            f"{s.success_rate:.0%}" if s.success_rate is not None else "—",
            f"{s.health_score:.1f}" if s.health_score is not None else "—",
            verdict,
            escape(why),  # reasons quote errors, which may contain [brackets] rich would take for markup
        )
    console.print(table)
    unhealthy = [s.code.upper() for s in statuses if not s.healthy]
    never = [s.code.upper() for s in statuses if s.never_run]
    if never:
        console.print(f"never run (not counted): {', '.join(never)}", highlight=False)
    if unhealthy:
        console.print(f"[red]unhealthy:[/red] {', '.join(unhealthy)}", highlight=False)
        raise typer.Exit(1)
    if len(never) < len(statuses):
        console.print("[green]every system that has run is healthy[/green]")


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


ppms_app = typer.Typer(
    help="PPMS on a task history file: forecast its open scope, or backtest the forecast on its past.",
    no_args_is_help=True,
)
app.add_typer(ppms_app, name="ppms")


def _json_out(model: Any) -> None:
    # Plain print: rich would wrap long lines and break the JSON.
    print(model.model_dump_json(indent=2))


def _date_text(when: Any) -> str:
    return str(when) if when is not None else "beyond 5 years"


@ppms_app.command("forecast")
def ppms_forecast(
    path: Annotated[Path, typer.Argument(help="Tasks CSV (key, project, title, status, created_at, started_at, ...)")],
    project: Annotated[
        str | None, typer.Option("--project", help="Project key (needed if the file has several).")
    ] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Forecast as the file stood at the end of this day (YYYY-MM-DD).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole forecast as JSON.")] = False,
    trials: Annotated[int, typer.Option(min=100, max=100_000, help="Monte Carlo trials.")] = 10_000,
) -> None:
    """When will the project's open scope be done: P50/P85/P95, which model and why, the throughput answer."""
    from datetime import date

    from framework2.tasks.planning.history import forecast_file

    day = None
    if as_of is not None:
        try:
            day = date.fromisoformat(as_of)
        except ValueError:
            raise Framework2Error(f"--as-of {as_of!r} is not a date", hint="write it as YYYY-MM-DD") from None
    result = forecast_file(path, project=project, as_of=day, trials=trials)
    if as_json:
        _json_out(result)
        return
    f = result.forecast
    console.print(
        f"[bold]{escape(result.project)}[/bold] as of {result.as_of:%Y-%m-%d %H:%M} UTC: "
        f"{result.open_tasks} open tasks",
        highlight=False,
    )
    if result.note:
        console.print(f"[yellow]{escape(result.note)}[/yellow]", highlight=False, soft_wrap=True)
    if result.rejected_rows:
        console.print(
            f"{result.rejected_rows} row(s) could not be read and were left out, e.g. "
            f"{escape(result.rejected_reasons[0])}",
            highlight=False,
            soft_wrap=True,
        )
    if not f.available:
        console.print(f"no forecast: {escape(f.reason)}", highlight=False, soft_wrap=True)
        return
    table = Table(title=f"{f.model} model, {f.trials:,} trials")
    for col in ("", "P50", "P85", "P95"):
        table.add_column(col, no_wrap=True)
    table.add_row("these open items", _date_text(f.p50_date), _date_text(f.p85_date), _date_text(f.p95_date))
    if f.throughput is not None and f.model != "throughput":
        t = f.throughput
        table.add_row(
            f"any {t.items} items (throughput)", _date_text(t.p50_date), _date_text(t.p85_date), _date_text(t.p95_date)
        )
    console.print(table)
    console.print(f"model: {escape(f.model_reason)}", highlight=False, soft_wrap=True)
    if f.horizon_note:
        console.print(f"[yellow]{escape(f.horizon_note)}[/yellow]", highlight=False, soft_wrap=True)
    console.print(f"durations: {escape(result.durations)}", highlight=False, soft_wrap=True)
    console.print(
        f"how far to trust it: run `framework2 ppms backtest {escape(str(path))}` to score it on this file's past",
        highlight=False,
    )


@ppms_app.command("backtest")
def ppms_backtest(
    path: Annotated[Path, typer.Argument(help="Tasks CSV (key, project, title, status, created_at, started_at, ...)")],
    project: Annotated[str | None, typer.Option("--project", help="Only this project (default: all).")] = None,
    every: Annotated[str, typer.Option("--every", help="Days between past moments: 28d, 4w or 14.")] = "28d",
    as_json: Annotated[bool, typer.Option("--json", help="Print every case and the scores as JSON.")] = False,
    trials: Annotated[int, typer.Option(min=100, max=100_000, help="Monte Carlo trials per case.")] = 2_000,
) -> None:
    """Replay the forecast at past moments and score it (coverage, pinball loss, horizon ratio) against what
    happened, with the 12-week throughput baseline on the same cases."""
    from rich.progress import Progress

    from framework2.tasks.planning.history import backtest_file, parse_every

    days = parse_every(every)
    with Progress(console=err_console, transient=True) as progress:
        job = progress.add_task("replaying past moments", total=None)
        result = backtest_file(
            path,
            project=project,
            every_days=days,
            trials=trials,
            on_progress=lambda done, total: progress.update(job, completed=done, total=total),
        )
    if as_json:
        _json_out(result)
        return
    table = Table(title=f"{len(result.cases)} past moments every {days} days, {', '.join(result.projects)[:80]}")
    for col in ("forecaster", "cases", "P50", "P85", "P95", "loss50", "loss85", "ratio"):
        table.add_column(col, no_wrap=col != "forecaster")
    for scores in (result.scores, result.paired, result.baseline):
        if scores is None or (scores is result.paired and result.baseline and scores.cases == result.scores.cases):
            continue
        label = scores.forecaster if scores is not result.paired else "PPMS (baseline's cases)"
        held = [f"{c.share:.0%}" if c.share is not None else "—" for c in scores.coverage]
        pinball = [f"{scores.pinball[q]:.1f} d" if q in scores.pinball else "—" for q in (50, 85)]
        ratio = f"{scores.median_ratio:.2f}" if scores.median_ratio is not None else "—"
        table.add_row(label, str(scores.cases), *held, *pinball, ratio)
    console.print(table)
    console.print(
        "P50/P85/P95: share of cases whose date held; loss50/loss85: mean pinball loss in days (lower is better); "
        "ratio: median P50 horizon / actual horizon (1 is right)",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"[bold]{result.verdict}[/bold]: {escape(result.reason)}.", highlight=False, soft_wrap=True)
    if result.note:
        console.print(f"[yellow]{escape(result.note)}[/yellow]", highlight=False, soft_wrap=True)
    if result.by_project:
        per = Table(title="each project on its own (PPMS; loss in days, baseline's in brackets)", box=box.SIMPLE_HEAD)
        for col in ("project", "cases", "P50", "P85", "P95", "loss50", "loss85", "ratio"):
            per.add_column(col, no_wrap=col != "project", overflow="fold")
        per.add_column("verdict", min_width=10)
        for part in result.by_project:
            s, b = part.scores, part.baseline
            if s is None:
                continue
            held = [f"{c.share:.0%}" if c.share is not None else "—" for c in s.coverage]
            losses = []
            for q in (50, 85):
                text = f"{s.pinball[q]:.1f}" if q in s.pinball else "—"
                if b is not None and q in b.pinball:
                    text += f" ({b.pinball[q]:.1f})"
                losses.append(text)
            ratio = f"{s.median_ratio:.2f}" if s.median_ratio is not None else "—"
            per.add_row(escape(part.project), str(part.cases), *held, *losses, ratio, part.verdict)
        console.print(per)
    if result.skipped:
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(result.skipped.items()))
        console.print(f"moments not used: {escape(skipped)}", highlight=False, soft_wrap=True)
    if result.rejected_rows:
        console.print(
            f"{result.rejected_rows} row(s) of the file could not be read and were left out, e.g. "
            f"{escape(result.rejected_reasons[0])}",
            highlight=False,
            soft_wrap=True,
        )
    if not result.cases:
        console.print(
            f"no past moment could be replayed: the file needs open work at Mondays at least {days} days apart "
            "after its first six weeks",
            highlight=False,
        )


def _print_load(report: Any, what: str) -> None:
    console.print(f"loaded {report.loaded} {what}; quarantined {report.quarantined} (run {report.run_id})")
    if report.quarantined:
        console.print("  see the quarantined_row table for each row and its reason", highlight=False)


@app.command()
def dashboard(open_browser: Annotated[bool, typer.Option("--open", help="Open it in a browser.")] = False) -> None:
    """Print (or open) the system dashboard's URL and the Prefect UI's, where runs, artifacts and approvals live."""
    settings = _settings()
    page = f"http://{settings.api.host}:{settings.api.port}/framework-set-2/dashboard"
    url = ui_url()
    console.print(f"System dashboard: {page}   (served by `framework2 api` or `framework2 start`)")
    console.print(f"Prefect UI:       {url}")
    console.print(f"  PSO roll-up artifact: {url}/artifacts/key/pso-rollup")
    console.print(f"  PPIS summary:         {url}/artifacts/key/ppis-summary")
    if open_browser:
        webbrowser.open(page)


@app.command()
def demo(
    skus: Annotated[int, typer.Option(help="Products in the sample catalogue.")] = 300,
    seed: Annotated[int, typer.Option(help="Random seed of the sample world.")] = 7,
) -> None:
    """Generate the sample world (store + loopback competitor feeds) and run every system on it."""
    from framework2.sample.demo import run_sample_world

    _prefect_env()
    settings = _settings()
    check_prefect_api()
    report, engine = run_sample_world(settings, skus=skus, seed=seed, say=console.print, status=console.status)
    _print_report(report)
    _print_pricing(engine)
    _print_planning()
    _print_portfolio()
    _print_experience()
    _print_launch_plan(engine)
    _walk_a_change(settings)


def _walk_a_change(settings: Any) -> None:
    from framework2.sample.change_walk import walk_a_change

    console.print("[bold]One requirement change through the chain[/bold] (PCES → approval → PPMS → PPOS → people)")
    with console.status("walking a requirement change through the systems…"):
        walk = walk_a_change(
            Path(settings.home) / "sample-requirements", "sample-requirements", say=lambda t: console.print(escape(t))
        )
    if not walk.agrees:
        console.print(f"[red]the impact's P85 {walk.impact_p85} is not PPMS's {walk.published_p85}[/red]")


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
    for col in ("project", "model", "P50", "P85", "P95", "target", "odds"):
        table.add_column(col, no_wrap=True)
    for f in sorted(forecasts, key=lambda f: f["project"]):
        odds = f["probability_on_time"]
        details = f.get("details") or {}
        beyond = details.get("beyond_horizon") or []
        table.add_row(
            f["project"],
            str(details.get("model", "—")),
            *(str(f[f"p{q}"] or ("beyond 5 years" if q in beyond else "—")) for q in (50, 85, 95)),
            str(f["target_date"] or "—"),
            f"{odds:.0%}" if odds is not None else "—",
        )
    console.print(table)
    calibration = ppms.get_calibration()
    if calibration:
        console.print(
            f"How far to trust these dates ({calibration['verdict']}): {calibration['reason']}.", highlight=False
        )


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


# typer >= 0.29 carries its own click: its usage errors, Exit and Abort are not the installed click's classes.
_CLICK_EXIT: tuple[type[BaseException], ...] = (click.exceptions.Exit, typer.Exit)
_CLICK_ERROR: tuple[type[BaseException], ...] = (click.ClickException,)
_CLICK_ABORT: tuple[type[BaseException], ...] = (click.exceptions.Abort, typer.Abort)
try:
    from typer._click.exceptions import ClickException as _TyperClickException

    _CLICK_ERROR += (_TyperClickException,)
except ImportError:  # pragma: no cover - an older typer raises click's own
    pass


def main() -> None:
    """Entry point: run the CLI, turning user-fixable errors into one line and a hint."""
    try:
        code = app(standalone_mode=False)
        # Without standalone mode click returns a typer.Exit's code instead of raising it.
        if isinstance(code, int) and code != 0:
            sys.exit(code)
    except Framework2Error as exc:
        err_console.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False, soft_wrap=True)
        if exc.hint:
            err_console.print(f"[yellow]hint:[/yellow] {escape(exc.hint)}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except _CLICK_EXIT as exc:
        sys.exit(exc.exit_code)
    except _CLICK_ERROR as exc:  # a bad option value or a missing argument: click's usage message, exit 2
        exc.show()
        sys.exit(exc.exit_code)
    except _CLICK_ABORT:
        sys.exit(130)
    except httpx.ConnectError as exc:
        err_console.print(f"[red]error:[/red] cannot reach the Prefect API: {exc}", highlight=False)
        err_console.print(
            "[yellow]hint:[/yellow] start it with `framework2 start` or fix PREFECT_API_URL", highlight=False
        )
        sys.exit(1)
    finally:
        from framework2.store.engine import dispose_all

        dispose_all()


if __name__ == "__main__":
    main()
