"""Orchestration overhead: what Prefect and PSO cost on top of the systems' own work, and how it grows.

Usage: .venv/bin/python bench/orchestration_bench.py [--quick]

Measured in one run on a local Prefect server (``prefect_test_harness``) with a fresh SQLite store:

1. **Full PSO run** over the demo's sample world (every system as a subflow): the wall time of the master flow
   minus the time spent inside the systems' computations, i.e. each system's own run record (``analysis_run``
   started → finished, written inside the system's flow body). Systems are run one at a time here
   (``[coordination] maxParallelSystems = 1``) so that the subtraction is exact; in production independent
   systems overlap.
2. **Growth with the number of systems**: PSO over 1, 2, 4 and all systems on an empty store, where each system
   finds nothing configured and returns at once, so nearly all of the wall time is orchestration.
3. **Growth with the number of tasks**: a flow running N no-op Prefect tasks against the same N plain function
   calls (the baseline measured in the same run): the cost per task.

Prints the tables and the fitted cost per system and per task. Exits non-zero only when something crashes;
the targets (overhead under 25 % of a full run, under 2 s per system and 50 ms per task) are reported, not fatal.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from results import record  # bench/results.py: a row for run_all.py's summary

OVERHEAD_SHARE_TARGET = 0.25
PER_SYSTEM_TARGET_S = 2.0
PER_TASK_TARGET_S = 0.05


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def inside_seconds(engine: Any, run_ids: list[str]) -> dict[str, float]:
    """Each system run's own duration, from its run record."""
    from sqlmodel import Session, select

    from framework2.store.models import AnalysisRun
    from framework2.store.runs import as_utc

    with Session(engine) as session:
        runs = session.exec(select(AnalysisRun).where(AnalysisRun.id.in_(run_ids))).all()  # type: ignore[attr-defined]
    return {r.system: (as_utc(r.finished_at) - as_utc(r.started_at)).total_seconds() for r in runs if r.finished_at}


def pso(systems: list[str] | None, **kwargs: Any) -> tuple[float, Any]:
    from framework2.flows.orchestrator import orchestrate

    start = time.perf_counter()
    report = asyncio.run(orchestrate(systems=systems, execution="subflow", **kwargs))
    return time.perf_counter() - start, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller sample world and fewer task counts")
    args = parser.parse_args(argv)
    skus = 100 if args.quick else 300
    task_counts = [10, 50] if args.quick else [10, 100, 400]

    home = Path(tempfile.mkdtemp(prefix="orchestration-bench-"))
    os.environ["FRAMEWORK2_STORE__URL"] = f"sqlite:///{home / 'store.db'}"
    os.environ["FRAMEWORK2_HOME"] = str(home)
    os.environ["PREFECT_HOME"] = str(home / "prefect")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # thousands of task-run lines otherwise
    # One system at a time, so that wall time minus the systems' own time is exactly the orchestration.
    os.environ["FRAMEWORK2_COORDINATION__MAX_PARALLEL_SYSTEMS"] = "1"

    from prefect import flow, task
    from prefect.testing.utilities import prefect_test_harness

    import framework2.flows.orchestrator as orchestrator
    from framework2.config import get_settings
    from framework2.sample.demo import run_sample_world
    from framework2.store.engine import dispose_all, open_store
    from framework2.systems import SYSTEMS

    def noop(i: int) -> int:
        return i

    noop_task = task(noop, name="noop", persist_result=False, cache_policy=None)

    @flow(name="bench-tasks", persist_result=False)
    def many_tasks(n: int) -> int:
        return sum(noop_task(i) for i in range(n))

    with prefect_test_harness(server_startup_timeout=60):
        # 1. The full run on the sample world, as `framework2 demo` runs it; only the master flow is timed.
        timed: dict[str, float] = {}
        original = orchestrator.orchestrate

        async def timed_orchestrate(**kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await original(**kwargs)
            finally:
                timed["wall"] = time.perf_counter() - started

        orchestrator.orchestrate = timed_orchestrate  # type: ignore[assignment]
        try:
            full_report, engine = run_sample_world(get_settings(), skus=skus, seed=7, say=lambda _line: None)
        finally:
            orchestrator.orchestrate = original
        full_wall = timed["wall"]
        inside_full = inside_seconds(engine, [o.run_id for o in full_report.outcomes if o.run_id])
        dispose_all()

        # 2. Growth with the number of systems, on an empty store.
        codes = list(SYSTEMS)
        empty = home / "empty.db"
        os.environ["FRAMEWORK2_STORE__URL"] = f"sqlite:///{empty}"
        get_settings.cache_clear()
        empty_engine = open_store(get_settings())
        pso([codes[0]])  # warm-up: imports and first-call costs
        by_systems = []
        for n in sorted({1, 2, 4, len(codes)}):
            seconds, rep = pso(codes[:n])
            own = sum(inside_seconds(empty_engine, [o.run_id for o in rep.outcomes if o.run_id]).values())
            by_systems.append((n, seconds, own))

        # 3. Growth with the number of tasks.
        many_tasks(1)  # warm-up
        by_tasks = []
        for n in task_counts:
            start = time.perf_counter()
            many_tasks(n)
            flow_s = time.perf_counter() - start
            start = time.perf_counter()
            sum(noop(i) for i in range(n))
            plain_s = time.perf_counter() - start
            by_tasks.append((n, flow_s, plain_s))

    full_inside = sum(inside_full.values())
    overhead = full_wall - full_inside
    share = overhead / full_wall
    print(f"full PSO run over the sample world ({skus} SKUs, {len(full_report.outcomes)} systems, one at a time)")
    print(f"{'system':<8}{'inside s':>10}")
    for code, secs in sorted(inside_full.items()):
        print(f"{code:<8}{secs:>10.2f}")
    print(f"wall {full_wall:.2f} s, inside the systems {full_inside:.2f} s, orchestration {overhead:.2f} s "
          f"({share:.0%}; target < {OVERHEAD_SHARE_TARGET:.0%})")  # fmt: skip

    print(f"\n{'systems':>8}{'wall s':>9}{'inside s':>10}{'overhead s':>12}")
    for n, seconds, own in by_systems:
        print(f"{n:>8}{seconds:>9.2f}{own:>10.2f}{seconds - own:>12.2f}")
    xs = np.array([n for n, _, _ in by_systems], dtype=float)
    ys = np.array([s - own for _, s, own in by_systems])
    per_system, fixed = np.polyfit(xs, ys, 1)
    print(f"fit: {fixed:.2f} s fixed (health roll-up, artifacts, events) + {per_system:.2f} s per system")

    print(f"\n{'tasks':>8}{'flow s':>9}{'plain s':>10}{'per task ms':>13}")
    for n, flow_s, plain_s in by_tasks:
        print(f"{n:>8}{flow_s:>9.2f}{plain_s:>10.4f}{1000 * (flow_s - plain_s) / n:>13.1f}")
    tx = np.array([n for n, _, _ in by_tasks], dtype=float)
    ty = np.array([f - p for _, f, p in by_tasks])
    per_task, task_fixed = np.polyfit(tx, ty, 1)
    print(f"fit: {task_fixed:.2f} s per flow run + {1000 * per_task:.1f} ms per task")
    print(f"\n{os.cpu_count()} CPU(s) visible; peak RSS {peak_mb():,.0f} MB (server in-process)")

    record(
        "orchestration",
        "full PSO run, orchestration = wall - inside the systems",
        f"{len(full_report.outcomes)} systems, sample world ({skus} SKUs)",
        full_wall,
        peak_mb=peak_mb(),
        baseline="time inside the systems' computations",
        baseline_seconds=full_inside,
        target=f"orchestration < {OVERHEAD_SHARE_TARGET:.0%} of the run",
        met=share < OVERHEAD_SHARE_TARGET,
        note=f"orchestration {overhead:.2f} s ({share:.0%})",
    )
    record(
        "orchestration",
        "PSO orchestration per system (empty store, fitted)",
        f"1-{len(codes)} systems",
        float(per_system),
        target=f"< {PER_SYSTEM_TARGET_S:g} s per system",
        met=per_system < PER_SYSTEM_TARGET_S,
        note=f"+ {fixed:.2f} s fixed",
    )
    record(
        "orchestration",
        "Prefect task overhead per task (fitted)",
        f"{task_counts[0]}-{task_counts[-1]} no-op tasks",
        float(per_task),
        baseline="the same calls as plain functions",
        baseline_seconds=by_tasks[-1][2] / by_tasks[-1][0],
        target=f"< {1000 * PER_TASK_TARGET_S:.0f} ms per task",
        met=per_task < PER_TASK_TARGET_S,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
