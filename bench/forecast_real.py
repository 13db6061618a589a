"""PPMS forecasts on real histories: PPMS against the 12-week throughput baseline on the same cases.

Usage: .venv/bin/python bench/forecast_real.py [--trials 2000] [--quick]

Reads the public histories in ``../shared/data/real-history`` (or ``FRAMEWORK2_REAL_HISTORY``) and prints

1. the scope backtest of 7digital (every 28 days, the whole history): with its backlog (prioritised but not
   done) and as a tracker that records only starts (the open scope is the work in progress). Columns:
   P50/P85/P95 held, mean pinball loss at P50/P85 in days, median P50 horizon / actual horizon, median P85
   horizon against the median actual horizon — for PPMS and for the baseline on the same cases;
2. the duration model on estimate-vs-actual data (Renzo's pomodoros, story points): per-task P50/P85 held and
   pinball loss, against "estimate x the typical overrun".

The issue's targets, per scope backtest: P85 held 80-90 %, P50 40-60 %, median P50/actual 0.67-1.5, pinball at
P50 and P85 no worse than the baseline. Each row says met or MISSED; a miss is reported, never hidden, and the
script exits 0 unless something crashed.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from results import record, text_table

from framework2.sample.real_history import effort_check, renzo_tasks, seven_digital, story_point_issues
from framework2.tasks.planning.backtest import BacktestResult, backtest
from framework2.tasks.planning.scoring import Scores

TARGETS = "P85 80-90%, P50 40-60%, P50/actual 0.67-1.5, pinball <= baseline"


def _met(ours: Scores, baseline: Scores) -> bool:
    p50, p85 = ours.at(50).share or 0.0, ours.at(85).share or 0.0
    ratio = ours.median_ratio or 0.0
    return (
        0.80 <= p85 <= 0.90
        and 0.40 <= p50 <= 0.60
        and 0.67 <= ratio <= 1.5
        and all(ours.pinball[q] <= baseline.pinball[q] for q in (50, 85))
    )


def _horizons(result: BacktestResult, baseline: bool) -> str:
    finished = [c for c in result.cases if c.actual is not None and (not baseline or c.baseline)]
    p85 = [(((c.baseline or {}).get(85) if baseline else c.p85) or c.snapshot) - c.snapshot for c in finished]
    actual = [c.actual - c.snapshot for c in finished]  # type: ignore[operator]
    return f"{np.median([d.days for d in p85]):.0f} vs {np.median([d.days for d in actual]):.0f} d"


def _row(name: str, scores: Scores, horizons: str) -> tuple[object, ...]:
    held = [f"{c.share:.0%}" if c.share is not None else "—" for c in scores.coverage]
    return (
        name,
        scores.cases,
        *held,
        f"{scores.pinball[50]:.1f}",
        f"{scores.pinball[85]:.1f}",
        f"{scores.median_ratio:.2f}",
        horizons,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2_000)
    parser.add_argument("--quick", action="store_true", help="500 trials: a smoke run, not the figures")
    args = parser.parse_args(argv)
    trials = 500 if args.quick else args.trials

    rows = []
    for label, with_backlog in (("7digital, backlog", True), ("7digital, work in progress", False)):
        tasks = seven_digital(with_backlog=with_backlog)
        now = max(t.done_at for t in tasks if t.done_at is not None)
        started = time.perf_counter()
        result = backtest(tasks, [], [], now=now, every_days=28, lookback_days=5_000, horizon_days=0, trials=trials)
        seconds = time.perf_counter() - started
        assert result.scores is not None and result.paired is not None and result.baseline is not None
        met = _met(result.paired, result.baseline)
        rows.append(_row(f"{label}: PPMS", result.paired, _horizons(result, False)) + ("met" if met else "MISSED",))
        rows.append(_row(f"{label}: throughput 12 weeks", result.baseline, _horizons(result, True)) + ("",))
        failed = sum(n for why, n in result.skipped.items() if why.startswith("forecast failed"))
        record(
            "forecast_real",
            f"PPMS backtest, {label}",
            f"{len(result.cases)} cases x {trials:,} trials",
            seconds,
            baseline="12-week throughput Monte Carlo (accuracy, same cases)",
            target=TARGETS,
            met=met,
            note=(
                f"P50 {result.paired.at(50).share:.0%}, P85 {result.paired.at(85).share:.0%}, "
                f"ratio {result.paired.median_ratio:.2f}, pinball {result.paired.pinball[50]:.0f}/"
                f"{result.paired.pinball[85]:.0f} vs {result.baseline.pinball[50]:.0f}/"
                f"{result.baseline.pinball[85]:.0f} d; {failed} crashed"
            ),
        )
    header = ("history", "cases", "P50", "P85", "P95", "pinball50", "pinball85", "P50/actual", "P85 vs actual", "")
    print("Scope backtests (every 28 days; pinball in days; horizons are medians over finished cases)")
    print(text_table(header, rows))

    effort_rows = []
    for check in (
        effort_check(renzo_tasks(), dataset="Renzo pomodoros (hours)", scale=60 / 25),
        effort_check(story_point_issues(), dataset="story points (hours)", scale=1.0, window=200, step=50),
    ):
        effort_rows.append(
            (
                check.dataset,
                check.tasks,
                f"{check.coverage[50]:.0%}",
                f"{check.coverage[85]:.0%}",
                f"{check.pinball[50]:.3f}",
                f"{check.pinball[85]:.3f}",
                f"{check.baseline_coverage[50]:.0%}",
                f"{check.baseline_pinball[50]:.3f}",
                f"{check.baseline_pinball[85]:.3f}",
                f"{check.median_ratio:.2f}",
            )
        )
    print()
    print("Duration model, estimate vs actual, rolling origin (baseline: estimate x the window's typical overrun)")
    header = ("data", "tasks", "P50", "P85", "pinball50", "pinball85", "base held", "base p50", "base p85", "P50/act")
    print(text_table(header, effort_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
