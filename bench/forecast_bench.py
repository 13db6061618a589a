"""PPMS forecast benchmark: vectorised schedule Monte Carlo vs a plain per-trial Python loop.

Usage: .venv/bin/python bench/forecast_bench.py [--tasks 2000 --trials 10000 --workers 8] [--quick]

The graph is a random layered DAG (``--tasks`` tasks in layers of 50, each task after the first layer
depending on 1-3 tasks of the two layers before it, ~2 on average) with lognormal durations (task
estimates lognormal, times a lognormal error per trial). Durations are generated task-major and handed
over as a (trials, n) Fortran-ordered view, which is what ``sample_durations`` returns; one row also
times a C-ordered copy to show the price of the transposing copy ``simulate_schedule`` then makes.

Each ``simulate_schedule`` figure is the best of ``--repeat`` runs (wall clock, forward pass plus the
critical-path backward pass), without and with ``--workers`` capacity. Peak MB is a separate untimed
run under ``tracemalloc`` (numpy reports its buffers to it): memory allocated by the call on top of the
inputs, including the returned sample. numpy runs these element-wise loops on one core, so the figure
does not depend on the 2 cores of the target.

The baseline is the same algorithm written plainly: per trial, Python loops over the tasks (forward
pass with best-fit worker choice when capacity applies, then the backward critical-path pass) on
Python floats, with the graph order and predecessor lists prepared outside the timing. It runs on
``--naive-trials`` trials and is extrapolated linearly to ``--trials`` (trials are independent, so the
per-trial loop scales exactly linearly); its finish times are checked against the vectorised ones.

Exits non-zero only when something crashes; missing the target is reported, not fatal.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import timedelta

import numpy as np
from results import record, text_table  # bench/results.py: a row for run_all.py's summary, the tables

from framework2.tasks.planning.durations import fit_duration_model
from framework2.tasks.planning.forecast import forecast_project
from framework2.tasks.planning.montecarlo import (
    _dispatch_order,
    _graph,
    simulate_schedule,
)
from framework2.tasks.planning.records import DependencyRecord
from framework2.tasks.planning.synthetic import synthetic_task_history

TARGET_SECONDS = 2.0
LAYER = 50


def random_dag(n: int, rng: np.random.Generator) -> tuple[list[str], list[tuple[str, str]]]:
    """Layered DAG: each task outside the first layer depends on 1-3 tasks from the two layers before it."""
    ids = [f"T{i}" for i in range(n)]
    deps: list[tuple[str, str]] = []
    for i in range(LAYER, n):
        layer = i // LAYER
        pool = np.arange(max(0, layer - 2) * LAYER, layer * LAYER)
        for p in rng.choice(pool, size=int(rng.integers(1, 4)), replace=False):
            deps.append((ids[i], ids[p]))
    return ids, deps


def per_trial_loop(
    durations: np.ndarray, preds: list[list[int]], order: list[int], workers: int | None
) -> tuple[list[float], list[list[bool]]]:
    """The plain version: one trial at a time, Python loops over tasks and workers."""
    n = durations.shape[1]
    project, criticals = [], []
    for row in durations.tolist():
        finish, start, prev = [0.0] * n, [0.0] * n, [-1] * n
        free, owner = [0.0] * (workers or 1), [-1] * (workers or 1)
        for j in order:
            ready = 0.0
            for p in preds[j]:
                if finish[p] > ready:
                    ready = finish[p]
            if workers is not None:
                w, fit, earliest = -1, -1.0, 0
                for s in range(workers):
                    f = free[s]
                    if fit < f <= ready:
                        w, fit = s, f
                    if f < free[earliest]:
                        earliest = s
                w = earliest if w < 0 else w
                if free[w] > ready:
                    ready = free[w]
                prev[j], owner[w] = owner[w], j
            start[j] = ready
            finish[j] = ready + row[j]
            if workers is not None:
                free[w] = finish[j]
        end = max(finish)
        critical = [f == end for f in finish]
        for j in reversed(order):
            if critical[j]:
                st = start[j]
                for p in preds[j]:
                    if finish[p] == st:
                        critical[p] = True
                q = prev[j]
                if q >= 0 and finish[q] == st:
                    critical[q] = True
        project.append(end)
        criticals.append(critical)
    return project, criticals


def best_of(repeat: int, fn: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def traced_peak_mb(fn: Callable[[], object]) -> float:
    tracemalloc.start()
    tracemalloc.reset_peak()
    result = fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del result
    return peak / 2**20


def whole_forecast(ids: list[str], deps: list[tuple[str, str]], trials: int, seed: int) -> tuple[float, float, str]:
    """Seconds and peak MB of ``forecast_project`` on a project whose open scope is this graph (5 % running,
    the rest waiting, created over the last two months), after 3,000 finished tasks; and the model's reason.

    The dependence (how much open items move together) is given, as the nightly forecast gets it from the
    weekly calibration; estimating it replays the past and is timed by the backtest, not here.
    """
    rng = np.random.default_rng(seed)
    history = synthetic_task_history(3_000 + len(ids), seed=seed)
    done = history[:3_000]
    now = max(t.done_at for t in done if t.done_at is not None)
    scope = []
    for i, task in enumerate(history[3_000:]):
        running = i < len(ids) // 20
        scope.append(
            task.model_copy(
                update={
                    "key": ids[i],
                    "status": "in_progress" if running else "todo",
                    "started_at": now - timedelta(days=float(rng.uniform(0, 10))) if running else None,
                    "done_at": None,
                    "created_at": now - timedelta(days=float(rng.uniform(1, 60))),
                    "updated_at": now,
                }
            )
        )
    tasks = [*done, *scope]
    edges = [DependencyRecord(task=a, depends_on=b) for a, b in deps]
    model = fit_duration_model(done, in_progress=[t for t in scope if t.status == "in_progress"], now=now)

    def run() -> object:
        return forecast_project(done[0].project, tasks, edges, [], model, now=now, trials=trials, dependence=0.3)

    seconds, (forecast, _, _) = best_of(1, run)  # type: ignore[misc]
    return seconds, traced_peak_mb(run), forecast.model_reason  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    """Generate the graph, time vectorised and per-trial schedules, print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2_000)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=8, help="capacity for the constrained runs")
    parser.add_argument("--naive-trials", type=int, default=200, help="trials run by the per-trial loop")
    parser.add_argument("--repeat", type=int, default=3, help="vectorised runs per figure (best is shown)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke run: 500 tasks x 2,000 trials")
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.trials, args.naive_trials, args.repeat = 500, 2_000, 50, 1

    rng = np.random.default_rng(args.seed)
    t = time.perf_counter()
    ids, deps = random_dag(args.tasks, rng)
    estimates = rng.lognormal(0.7, 0.6, args.tasks)
    # Task-major generation, handed over as a (trials, n) view: the layout sample_durations returns.
    durations = (estimates[:, None] * rng.lognormal(0.1, 0.5, (args.tasks, args.trials))).T
    gen_seconds = time.perf_counter() - t
    size = f"{args.tasks:,} tasks x {args.trials:,} trials"
    input_mb = durations.nbytes / 2**20

    def run(d: np.ndarray, workers: int | None) -> Callable[[], object]:
        return lambda: simulate_schedule(ids, d, deps, workers=workers)

    simulate_schedule(ids[:LAYER], durations[:10, :LAYER], [])  # warm-up: imports, first-call costs
    c_ordered = np.ascontiguousarray(durations)
    cases = [
        ("simulate_schedule, unlimited", durations, None),
        ("simulate_schedule, unlimited, C-ordered input", c_ordered, None),
        (f"simulate_schedule, workers={args.workers}", durations, args.workers),
    ]
    timed = []
    for name, d, workers in cases:
        seconds, sample = best_of(args.repeat, run(d, workers))
        timed.append((name, seconds, traced_peak_mb(run(d, workers)), workers, sample))
        del sample
    del c_ordered
    forecast_seconds, forecast_peak, model_text = whole_forecast(ids, deps, args.trials, args.seed)

    preds, topo = _graph(ids, deps)
    naive = {}
    for workers in (None, args.workers):
        part = durations[: args.naive_trials]
        # The dispatch order simulate_schedule derives for these trials (from their mean durations).
        order = (
            topo if workers is None else _dispatch_order(preds, topo, part.mean(axis=0), np.zeros(len(ids)), workers)
        )
        t = time.perf_counter()
        project, _ = per_trial_loop(part, preds, order, workers)
        naive[workers] = (time.perf_counter() - t) * args.trials / len(part)
        check = simulate_schedule(ids, part, deps, workers=workers).project_finish
        naive[(workers, "diff")] = float(np.abs(np.asarray(project) - check).max())

    rows = [("generate DAG + lognormal durations (not timed)", size, f"{gen_seconds:.2f}", "", "", "", "")]
    for name, seconds, peak, workers, _ in timed:
        verdict = "PASS" if seconds < TARGET_SECONDS else "MISS"
        ratio = f"{naive[workers] / seconds:,.0f}x"
        rows.append((name, size, f"{seconds:.2f}", f"{peak:.0f}", f"< {TARGET_SECONDS:.0f} s", verdict, ratio))
    verdict = "PASS" if forecast_seconds < TARGET_SECONDS else "MISS"
    ratio = f"{naive[None] / forecast_seconds:,.0f}x"
    rows.append(
        (
            "forecast_project, flow model (history of 3,000 done)",
            size,
            f"{forecast_seconds:.2f}",
            f"{forecast_peak:.0f}",
            f"< {TARGET_SECONDS:.0f} s",
            verdict,
            ratio,
        )
    )
    for workers in (None, args.workers):
        label = "unlimited" if workers is None else f"workers={workers}"
        rows.append(
            (
                f"per-trial Python loop, {label} ({args.naive_trials} trials, extrapolated)",
                size,
                f"{naive[workers]:.1f}",
                "",
                "",
                "",
                "1x",
            )
        )
    header = ("workload", "size", "seconds", "peak MB", "target", "result", "loop / ours")
    print(text_table(header, rows))
    print()
    print(
        f"graph: {len(deps):,} dependencies ({len(deps) / args.tasks:.2f} per task); input durations "
        f"{input_mb:.0f} MB, not in peak MB; {os.cpu_count()} CPU(s) visible, numpy element-wise ops use one"
    )
    print(
        "per-trial loop vs vectorised project finish on the same trials: max |diff| "
        f"{naive[(None, 'diff')]:.1e} (unlimited), {naive[(args.workers, 'diff')]:.1e} (workers={args.workers})"
    )
    print(f"forecast_project: {model_text}")
    record(
        "forecast",
        "PPMS forecast of one project (flow model, dependence given)",
        size,
        forecast_seconds,
        peak_mb=forecast_peak,
        baseline=f"per-trial Python loop of its schedule alone ({args.naive_trials} trials, extrapolated)",
        baseline_seconds=naive[None],
        target=f"< {TARGET_SECONDS:.0f} s",
        met=forecast_seconds < TARGET_SECONDS,
        note="waits, remaining times, copula, graph, throughput floor, percentiles; model fit not timed",
    )
    for name, seconds, peak, workers, _ in timed:
        if "C-ordered" in name:
            continue
        record(
            "forecast",
            f"PPMS Monte Carlo, {name}",
            size,
            seconds,
            peak_mb=peak,
            baseline=f"per-trial Python loop ({args.naive_trials} trials, extrapolated)",
            baseline_seconds=naive[workers],
            target=f"< {TARGET_SECONDS:.0f} s",
            met=seconds < TARGET_SECONDS,
            note="peak = traced allocations, inputs excluded",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
