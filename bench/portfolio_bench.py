"""PPOS portfolio benchmark: 200 projects x 50 tasks through the health flow and the full system run.

Usage: .venv/bin/python bench/portfolio_bench.py [--projects 200 --tasks 50 --people 120] [--quick]

The portfolio is synthetic and stored the way PPMS stores a real one (``store_batch`` into a fresh SQLite
store): per project a year of finished work and an open backlog with chains of dependencies (a few across
projects), required skills, people with skills and capacity, a target date and a stored PPMS forecast
(inserted directly: forecasting 200 projects is PPMS's job and has its own benchmark).

Measured in one run, on an ephemeral local Prefect server:

- **compute**: ``operate`` called as a plain function with artifacts and events switched off — the time
  PPOS spends on its own work (loading, the duration model, health, the dependency graph, the allocation);
- **flow**: the same pipeline as a Prefect flow run (``ppos-project-health``, then the system run
  ``ppos-project-operations``), wall clock from call to return.

The flow's Prefect overhead is ``flow - compute`` (run creation, state changes, the artifact and event
calls), printed with its share. The target: the health flow finishes well inside its 15-minute schedule
(printed as the share of 900 s it uses). Exits non-zero only when something crashes.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from results import record  # bench/results.py: a row for run_all.py's summary

SCHEDULE_SECONDS = 15 * 60
SKILLS = ("python", "frontend", "db", "infra", "design")


def synthetic_portfolio(projects: int, tasks_per_project: int, people: int, seed: int = 0):  # type: ignore[no-untyped-def]
    """A Batch of ``projects`` projects with ``tasks_per_project`` open tasks each, history and people."""
    from framework2.tasks.planning.records import Batch, DependencyRecord, PersonRecord, ProjectRecord, TaskRecord

    rng = np.random.default_rng(seed)
    now = datetime.now(UTC)
    staff = [
        PersonRecord(
            handle=f"p{i}",
            skills=sorted(set(rng.choice(SKILLS, size=int(rng.integers(1, 3)), replace=False).tolist())),
            weekly_capacity_days=float(rng.choice([3.0, 4.0, 5.0])),
        )
        for i in range(people)
    ]
    batch = Batch(people=staff, cursor=now)
    for p in range(projects):
        key = f"bench:p{p}"
        batch.projects.append(
            ProjectRecord(
                key=key,
                name=f"Project {p}",
                source="csv",
                target_date=(now + timedelta(days=int(rng.integers(20, 120)))).date(),
            )
        )
        team = rng.choice(people, size=3, replace=False)
        for h in range(20):  # finished history
            done = now - timedelta(days=float(rng.uniform(1, 300)))
            batch.tasks.append(
                TaskRecord(
                    key=f"{key}#h{h}",
                    project=key,
                    status="done",
                    estimate_days=float(rng.choice([1, 2, 3, 5])),
                    assignee=f"p{team[h % 3]}",
                    created_at=done - timedelta(days=20),
                    started_at=done - timedelta(days=float(rng.uniform(0.5, 8))),
                    done_at=done,
                    updated_at=done,
                )
            )
        for t in range(tasks_per_project):
            started = rng.uniform() < 0.1
            batch.tasks.append(
                TaskRecord(
                    key=f"{key}#{t}",
                    project=key,
                    status="in_progress" if started else "todo",
                    estimate_days=float(rng.choice([0.5, 1, 2, 3, 5, 8])),
                    assignee=f"p{team[t % 3]}" if started else None,
                    required_skills=[str(rng.choice(SKILLS))],
                    created_at=now - timedelta(days=float(rng.uniform(1, 60))),
                    started_at=now - timedelta(days=1) if started else None,
                    updated_at=now,
                )
            )
            if t >= 2 and rng.uniform() < 0.5:
                batch.dependencies.append(
                    DependencyRecord(task=f"{key}#{t}", depends_on=f"{key}#{int(rng.integers(max(0, t - 5), t))}")
                )
        if p > 0 and rng.uniform() < 0.2:  # some projects wait on another
            other = f"bench:p{int(rng.integers(0, p))}"
            batch.dependencies.append(DependencyRecord(task=f"{key}#{tasks_per_project - 1}", depends_on=f"{other}#0"))
    return batch


def seed_forecasts(engine, batch, run_id: str) -> None:  # type: ignore[no-untyped-def]
    """A stored PPMS forecast per project (what ppms-forecast would have written)."""
    from framework2.store.engine import session_scope
    from framework2.store.models import PmForecast

    rng = np.random.default_rng(1)
    today = datetime.now(UTC).date()
    with session_scope(engine) as session:
        for project in batch.projects:
            p50 = today + timedelta(days=int(rng.integers(20, 100)))
            session.add(
                PmForecast(
                    run_id=run_id,
                    project=project.key,
                    method="dependency-graph",
                    p50=p50,
                    p85=p50 + timedelta(days=14),
                    p95=p50 + timedelta(days=25),
                    target_date=project.target_date,
                    probability_on_time=float(rng.uniform(0.05, 0.99)),
                    remaining_tasks=50,
                )
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--projects", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--people", type=int, default=120)
    parser.add_argument("--quick", action="store_true", help="20 projects x 20 tasks, 20 people")
    args = parser.parse_args()
    if args.quick:
        args.projects, args.tasks, args.people = 20, 20, 20

    home = Path(tempfile.mkdtemp(prefix="ppos-bench-"))
    os.environ["FRAMEWORK2_STORE__URL"] = f"sqlite:///{home / 'store.db'}"
    os.environ["FRAMEWORK2_HOME"] = str(home)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ["PREFECT_HOME"] = str(home / "prefect")

    from prefect.testing.utilities import prefect_test_harness

    import framework2.flows.portfolio as ppos
    from framework2.config import get_settings
    from framework2.store.engine import open_store
    from framework2.store.planning import store_batch
    from framework2.store.runs import start_run

    batch = synthetic_portfolio(args.projects, args.tasks, args.people)
    engine = open_store()
    t0 = time.perf_counter()
    store_batch(engine, batch, "bench")
    seed_forecasts(engine, batch, start_run(engine, "ppms"))
    print(
        f"portfolio: {args.projects} projects x {args.tasks} open tasks (+20 finished each), {args.people} people, "
        f"{len(batch.dependencies)} dependencies; stored in {time.perf_counter() - t0:.1f} s"
    )
    settings = get_settings()

    def compute(allocation: bool) -> float:
        artifact, event = ppos.create_markdown_artifact, ppos.emit_about_project
        ppos.create_markdown_artifact = lambda **_kw: None  # type: ignore[assignment]
        ppos.emit_about_project = lambda *_a, **_kw: None  # type: ignore[assignment]
        try:
            start = time.perf_counter()
            ppos.operate(engine, settings, start_run(engine, "ppos"), allocation=allocation)
            return time.perf_counter() - start
        finally:
            ppos.create_markdown_artifact, ppos.emit_about_project = artifact, event

    rows = []
    with prefect_test_harness(server_startup_timeout=60):
        for name, allocation, run in (
            ("ppos-project-health", False, ppos.project_health),
            ("ppos-project-operations", True, ppos.project_operations),
        ):
            plain = compute(allocation)
            start = time.perf_counter()
            run()
            flow = time.perf_counter() - start
            rows.append((name, plain, flow))

    print(f"\n{'flow':<26}{'compute s':>11}{'flow s':>9}{'overhead s':>12}{'overhead':>10}{'of 15 min':>11}")
    for name, plain, flow in rows:
        overhead = max(0.0, flow - plain)
        print(
            f"{name:<26}{plain:>11.2f}{flow:>9.2f}{overhead:>12.2f}{overhead / flow:>10.0%}"
            f"{flow / SCHEDULE_SECONDS:>11.1%}"
        )
    health_flow = rows[0][2]
    verdict = "meets" if health_flow < SCHEDULE_SECONDS / 10 else "MISSES"
    print(f"\nhealth flow {health_flow:.1f} s: {verdict} the target of well inside its 15-minute schedule (< 10 %)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux; the whole process
    for name, plain, flow in rows:
        record(
            "portfolio",
            f"PPOS {name} as a flow run",
            f"{args.projects} projects x {args.tasks} tasks, {args.people} people",
            flow,
            peak_mb=peak,
            baseline="the same work as plain functions (no Prefect)",
            baseline_seconds=plain,
            target="< 10 % of the 15-minute schedule" if name == "ppos-project-health" else "",
            met=flow < SCHEDULE_SECONDS / 10 if name == "ppos-project-health" else None,
            note=f"Prefect overhead {max(0.0, flow - plain) / flow:.0%}",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
