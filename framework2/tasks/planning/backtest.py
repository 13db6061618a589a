"""Calibration backtest: would PPMS's dates have held in this project's past, and were they sharp?

For each project, PPMS goes back to past moments (Mondays 00:00 UTC, every ``every_days`` days, from
``warmup_days`` after the first task was created — at most ``lookback_days`` back — until ``horizon_days``
before now), rebuilds what was known then from the tasks' own timestamps (``snapshots.snapshot_at``), fits
the models only on that, and forecasts the scope open then exactly as ``ppms-forecast`` does. The forecast
is compared with when that same scope was really done. On the same cases it also runs the **baseline
practitioners already use**: throughput Monte Carlo over the project's daily completions of the 12 weeks
before the moment (zero days kept) for as many items as were open.

Reading it
----------
A case is one (project, moment). For each of P50/P85/P95 a case is **decided** when its scope is all done
(held if the last task finished on or before that date) or, while some of it is still open, when the date
has passed (a miss); otherwise undecided. Scores and the verdict are in ``scoring.py``: coverage with
Wilson intervals, pinball loss at P50/P85 and the P50-to-actual horizon ratio, for PPMS and the baseline
side by side; the verdict says *consistent*, *too early*, *too late*, *too wide*, *too narrow* or *too few
cases*, and whether PPMS beat the baseline.

A case that cannot be forecast is skipped with its reason (counted in ``skipped``); a case whose forecast
raises is skipped with the error, never stopping the others.

Track record
------------
The replay says what *today's* model would have said. ``track_record`` scores what PPMS actually
*published*: each stored forecast (at most one per project per ISO week, the week's first) against when the
scope open at that moment was done. It cannot be tuned after the fact, so it is the number to quote once
enough forecasts have come due.

Limits (``LIMITS``, shown with every result): estimates, dependencies and task types are today's values
(trackers do not keep their history); cases of one project overlap in time and are not independent, so the
intervals are optimistic about how much the cases say; scope added after a moment is not part of that
moment's forecast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta

import numpy as np
from pydantic import BaseModel, Field

from framework2.tasks.planning.flow import fit_durations_at
from framework2.tasks.planning.forecast import forecast_project
from framework2.tasks.planning.montecarlo import build_forecast, probability_by, to_days
from framework2.tasks.planning.records import DependencyRecord, PersonRecord, TaskRecord
from framework2.tasks.planning.scoring import (
    Coverage,
    ScoredCase,
    Scores,
    Verdict,
    covered_by,
    judge,
    judge_scores,
    more_trusted,
    score,
    summarise,
)
from framework2.tasks.planning.snapshots import scope_finish, snapshot_at, snapshot_moments
from framework2.tasks.planning.throughput import BASELINE_WINDOW_DAYS, daily_throughput, throughput_forecast

LIMITS = (
    "estimates, dependencies and types are today's values (trackers keep no history of them); cases of one "
    "project overlap in time, so they are not independent; scope added after a moment is not in its forecast"
)
MIN_OPEN_TASKS = 3
BASELINE = "throughput baseline (12 weeks)"

__all__ = [
    "BASELINE",
    "LIMITS",
    "BacktestCase",
    "BacktestResult",
    "Coverage",
    "PublishedForecast",
    "backtest",
    "backtest_case",
    "judge",
    "snapshot_at",
    "snapshot_moments",
    "track_record",
]


class BacktestCase(BaseModel):
    """One past moment of one project: what was forecast then, what the baseline said, and what happened."""

    project: str
    snapshot: date = Field(..., description="The Monday (00:00 UTC) the forecast was made as of.")
    open_tasks: int = Field(..., description="Tasks of the project open at that moment: the scope forecast.")
    method: str
    model: str = Field("", description="flow, plan or throughput (see forecast.py).")
    p50: date | None = Field(None, description="None: beyond the horizon, no date shown.")
    p85: date | None = None
    p95: date | None = None
    actual: date | None = Field(None, description="When the last of that scope was done; None while some is open.")
    rank: float | None = Field(
        None, description="Share of trials finished by the actual date (calibrated: spread evenly over 0-1)."
    )
    covered: dict[int, bool | None] = Field(
        ..., description="Per percentile: did its date hold (None: undecided, scope still open and date ahead)."
    )
    baseline: dict[int, date | None] | None = Field(
        None, description="The 12-week throughput baseline's P50/P85/P95 for as many items (None: no completions)."
    )
    baseline_covered: dict[int, bool | None] | None = None

    def scored(self) -> ScoredCase:
        return ScoredCase(
            snapshot=self.snapshot,
            dates={50: self.p50, 85: self.p85, 95: self.p95},
            actual=self.actual,
            covered=self.covered,
        )

    def baseline_scored(self) -> ScoredCase | None:
        if self.baseline is None or self.baseline_covered is None:
            return None
        return ScoredCase(
            snapshot=self.snapshot, dates=self.baseline, actual=self.actual, covered=self.baseline_covered
        )


class BacktestResult(BaseModel):
    """Every case, PPMS's and the baseline's scores on the same cases, and the verdict with its reason."""

    now: datetime
    cases: list[BacktestCase] = Field(default_factory=list)
    coverage: list[Coverage] = Field(default_factory=list, description="PPMS's coverage per percentile.")
    scores: Scores | None = Field(None, description="PPMS on every case.")
    baseline: Scores | None = Field(None, description="The throughput baseline on the cases it could forecast.")
    paired: Scores | None = Field(None, description="PPMS on exactly the cases the baseline forecast too.")
    skipped: dict[str, int] = Field(default_factory=dict, description="Moments not used, counted by why.")
    verdict: Verdict = "too few cases"
    reason: str = ""
    trusted: str | None = Field(None, description="Which of PPMS and the baseline held up better on the same cases.")

    def at(self, quantile: int) -> Coverage:
        """PPMS's coverage of one percentile."""
        return next(c for c in self.coverage if c.quantile == quantile)


def baseline_dates(
    done_dates: Sequence[date], items: int, start: date, trials: int, rng: np.random.Generator
) -> dict[int, date | None] | None:
    """The 12-week throughput Monte Carlo's P50/P85/P95 dates for ``items``; None without completions."""
    counts = daily_throughput(done_dates, start - timedelta(days=1), days=BASELINE_WINDOW_DAYS)
    if sum(counts) == 0:
        return None
    days = throughput_forecast(counts, items, trials, rng)
    forecast = build_forecast(days.astype(float), method="throughput", start=start, workdays=False)
    return {50: forecast.p50_date, 85: forecast.p85_date, 95: forecast.p95_date}


def backtest_case(
    project: str,
    tasks: Sequence[TaskRecord],
    dependencies: Sequence[DependencyRecord],
    people: Sequence[PersonRecord],
    at: datetime,
    *,
    now: datetime,
    trials: int,
    rng: np.random.Generator,
    min_history_items: int,
    dependence_cache: dict | None = None,
) -> BacktestCase | str:
    """Forecast ``project`` as of ``at`` and score it against what happened; a reason string when the
    moment cannot make a case."""
    known, edges = snapshot_at(tasks, dependencies, at)
    open_then = [t for t in known if t.project == project and t.status != "done"]
    if len(open_then) < MIN_OPEN_TASKS:
        return f"fewer than {MIN_OPEN_TASKS} open tasks"
    done_then = [t for t in known if t.status == "done"]
    model = fit_durations_at(project, known, at, min_history_items=min_history_items)
    forecast, _, finish = forecast_project(
        project,
        known,
        edges,
        people,
        model,
        now=at,
        trials=trials,
        rng=rng,
        min_history_items=min_history_items,
        dependence_cache=dependence_cache,
    )
    if not forecast.available or finish is None:
        return "no forecast possible then (too little history)"
    by_key = {t.key: t for t in tasks}
    ended = scope_finish([by_key[t.key] for t in open_then])
    actual = ended.date() if ended is not None and ended <= now else None
    start = at.date()
    dates = {50: forecast.p50_date, 85: forecast.p85_date, 95: forecast.p95_date}
    rank = None
    if actual is not None:
        rank = probability_by(finish, to_days(actual, forecast.start, workdays=forecast.workdays))
    done_dates = [t.done_at.date() for t in done_then if t.project == project and t.done_at is not None]
    baseline = baseline_dates(done_dates, len(open_then), start, trials, rng)
    return BacktestCase(
        project=project,
        snapshot=start,
        open_tasks=len(open_then),
        method=forecast.method,
        model=forecast.model,
        p50=dates[50],
        p85=dates[85],
        p95=dates[95],
        actual=actual,
        rank=rank,
        covered=covered_by(actual, dates, now.date(), start),
        baseline=baseline,
        baseline_covered=covered_by(actual, baseline, now.date(), start) if baseline is not None else None,
    )


class PublishedForecast(BaseModel):
    """A forecast PPMS stored at the time (``pm_forecast``), to be scored against what happened."""

    project: str
    made_at: datetime
    method: str
    p50: date | None
    p85: date | None
    p95: date | None


def _weekly_first(published: Sequence[PublishedForecast]) -> list[PublishedForecast]:
    first: dict[tuple[str, int, int], PublishedForecast] = {}
    for f in sorted(published, key=lambda f: f.made_at):
        year, week, _ = f.made_at.isocalendar()
        first.setdefault((f.project, year, week), f)
    return list(first.values())


def track_record(
    published: Sequence[PublishedForecast],
    tasks: Sequence[TaskRecord],
    *,
    now: datetime,
) -> tuple[list[BacktestCase], list[Coverage]]:
    """Score the forecasts PPMS published (the first per project and week) against when the scope open
    at that moment was actually done; the cases and the coverage per percentile."""
    by_key = {t.key: t for t in tasks}
    cases = []
    for f in _weekly_first(published):
        known, _ = snapshot_at([t for t in tasks if t.project == f.project], [], f.made_at)
        scope = [by_key[t.key] for t in known if t.status != "done"]
        if not scope:
            continue
        ended = scope_finish(scope)
        actual = ended.date() if ended is not None else None
        dates = {50: f.p50, 85: f.p85, 95: f.p95}
        cases.append(
            BacktestCase(
                project=f.project,
                snapshot=f.made_at.date(),
                open_tasks=len(scope),
                method=f.method,
                p50=f.p50,
                p85=f.p85,
                p95=f.p95,
                actual=actual,
                covered=covered_by(actual, dates, now.date(), f.made_at.date()),
            )
        )
    return cases, summarise([c.scored() for c in cases])


def backtest(
    tasks: Sequence[TaskRecord],
    dependencies: Sequence[DependencyRecord],
    people: Sequence[PersonRecord],
    *,
    now: datetime,
    projects: Sequence[str] | None = None,
    every_days: int = 14,
    warmup_days: int = 42,
    horizon_days: int = 14,
    lookback_days: int = 365,
    trials: int = 2_000,
    min_history_items: int = 30,
    seed: int = 0,
    on_progress: Callable[[int, int], None] | None = None,
    dependence_cache: dict | None = None,
) -> BacktestResult:
    """Replay the forecast at past moments of each project, score it and the throughput baseline.

    ``on_progress(done, total)`` is called after each moment (a year of a dozen projects is a few hundred).
    ``dependence_cache`` (filled here) holds each replayed moment's draws, so estimating today's dependence
    afterwards (``flow.estimate_dependence``) costs almost nothing more.
    """
    if every_days < 1:
        raise ValueError(f"every_days must be at least 1, got {every_days}")
    rng = np.random.default_rng(seed)
    names = sorted({t.project for t in tasks}) if projects is None else list(projects)
    moments = [
        (project, at)
        for project in names
        for at in snapshot_moments(
            [t for t in tasks if t.project == project], now, every_days, warmup_days, horizon_days, lookback_days
        )
    ]
    cases: list[BacktestCase] = []
    skipped: dict[str, int] = {}
    cache: dict = {} if dependence_cache is None else dependence_cache
    for done, (project, at) in enumerate(moments, 1):
        try:
            case = backtest_case(
                project,
                tasks,
                dependencies,
                people,
                at,
                now=now,
                trials=trials,
                rng=rng,
                min_history_items=min_history_items,
                dependence_cache=cache,
            )
        except Exception as exc:  # one bad moment must not cost the whole backtest
            case = f"forecast failed: {type(exc).__name__}: {str(exc)[:200]}"
        if isinstance(case, str):
            skipped[case] = skipped.get(case, 0) + 1
        else:
            cases.append(case)
        if on_progress is not None:
            on_progress(done, len(moments))
    return summarise_backtest(cases, now=now, skipped=skipped)


def summarise_backtest(
    cases: Sequence[BacktestCase], *, now: datetime, skipped: dict[str, int] | None = None
) -> BacktestResult:
    """Scores of PPMS and the baseline over ``cases``, and the verdict."""
    ours = score("PPMS", [c.scored() for c in cases])
    with_baseline = [c for c in cases if c.baseline_scored() is not None]
    baseline = score(BASELINE, [c.baseline_scored() for c in with_baseline]) if with_baseline else None  # type: ignore[misc]
    paired = score("PPMS", [c.scored() for c in with_baseline]) if with_baseline else None
    verdict, reason = judge_scores(ours)
    trusted = None
    if baseline is not None and paired is not None:
        trusted, comparison = more_trusted(paired, baseline)
        reason += f". {comparison[0].upper()}{comparison[1:]}"
        if len(with_baseline) < len(cases):
            reason += f" (the baseline could forecast {len(with_baseline)} of the {len(cases)} cases)"
    return BacktestResult(
        now=now,
        cases=list(cases),
        coverage=ours.coverage,
        scores=ours,
        baseline=baseline,
        paired=paired,
        skipped=dict(skipped or {}),
        verdict=verdict,
        reason=reason,
        trusted=trusted,
    )
