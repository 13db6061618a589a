"""Calibration backtest: how often did the forecast's P85 date actually hold?

For each project, PPMS goes back to past moments (``snapshot_at``: Mondays 00:00 UTC, every
``every_days`` days, from ``warmup_days`` after the first task was created — at most ``lookback_days``
back — until ``horizon_days`` before now), rebuilds what was known then from the tasks' own timestamps
(tasks created by then; done, in progress or to do by then; no assignee on work nobody had started),
trains the duration model only on the work finished by then (and what was running then, as censored),
and forecasts the scope open at that moment exactly as ``ppms-forecast`` does. The forecast is then
compared with when that same scope was actually finished.

Reading it
----------
A case is one (project, moment). For each of P50/P85/P95 a case is **decided** when its scope is all done
(covered if the last task finished on or before that date) or, while some of it is still open, when the
date has passed (a miss); otherwise it is left out of that percentile and counted as undecided. The
**coverage** of P85 is the share of decided cases covered; a calibrated forecast covers about 85 %.

Verdict on P85 (``TOLERANCE``): with at least ``MIN_CASES`` decided cases, *consistent* when the 95 %
Wilson interval of the coverage reaches 0.85 or the coverage is within 0.85 ± 0.10, *over-confident*
(dates too early: add margin, look for unrecorded dependencies or work the team does outside the tracker)
when it is below, *conservative* when above; with fewer cases, too few to tell. Why ±0.10: on synthetic
histories made the way the forecast assumes work happens (``synthetic_team_history``; see
tests/test_planning_backtest.py) P85 coverage over about 100 cases ranged 0.81-0.93 across seeds — cases
of one project overlap in time, so the Wilson interval alone is too narrow — while a team that loses half
its time to untracked work scored below 0.10.

Track record
------------
The replay says what *today's* model would have said. ``track_record`` scores what PPMS actually
*published*: each stored forecast (at most one per project per ISO week, the week's first, so nightly runs
do not count the same scope seven times) against when the scope open at that moment was done, with the
same decided/undecided rules. It cannot be tuned after the fact, so it is the number to quote once enough
forecasts have come due.

Limits (``LIMITS``, shown with every result): estimates, dependencies and task types are today's values (trackers do not
keep their history), so a re-estimated task looks better known than it was; cases of one project overlap
in time and are not independent, so the interval is optimistic about how much the cases say; and scope
added after a moment is not part of that moment's forecast (``risk_factors`` reports scope growth).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from framework2.tasks.planning.durations import fit_duration_model
from framework2.tasks.planning.forecast import forecast_project
from framework2.tasks.planning.montecarlo import probability_by, to_days
from framework2.tasks.planning.records import DependencyRecord, PersonRecord, TaskRecord

LIMITS = (
    "estimates, dependencies and types are today's values (trackers keep no history of them); cases of one "
    "project overlap in time, so they are not independent; scope added after a moment is not in its forecast"
)
QUANTILES = (50, 85, 95)
MIN_CASES = 10
TOLERANCE = 0.10
WIDE_INTERVAL = 0.25
MIN_OPEN_TASKS = 3

Verdict = Literal["consistent", "over-confident", "conservative", "too few cases"]


class BacktestCase(BaseModel):
    """One past moment of one project: what was forecast then, and what happened."""

    project: str
    snapshot: date = Field(..., description="The Monday (00:00 UTC) the forecast was made as of.")
    open_tasks: int = Field(..., description="Tasks of the project open at that moment: the scope forecast.")
    method: str
    p50: date
    p85: date
    p95: date
    actual: date | None = Field(None, description="When the last of that scope was done; None while some is open.")
    rank: float | None = Field(
        None, description="Share of trials finished by the actual date (calibrated: spread evenly over 0-1)."
    )
    covered: dict[int, bool | None] = Field(
        ..., description="Per percentile: did its date hold (None: undecided, scope still open and date ahead)."
    )


class Coverage(BaseModel):
    """How often one percentile's date held."""

    quantile: int
    decided: int
    covered: int
    undecided: int
    share: float | None = Field(None, description="covered / decided.")
    low: float | None = Field(None, description="Lower end of the 95 % Wilson interval.")
    high: float | None = Field(None, description="Upper end of the 95 % Wilson interval.")


class BacktestResult(BaseModel):
    """Every case, coverage per percentile and the verdict on P85, with the reason in words."""

    now: datetime
    cases: list[BacktestCase] = Field(default_factory=list)
    coverage: list[Coverage] = Field(default_factory=list)
    skipped: dict[str, int] = Field(default_factory=dict, description="Moments not used, counted by why.")
    verdict: Verdict = "too few cases"
    reason: str = ""

    def at(self, quantile: int) -> Coverage:
        """The coverage of one percentile."""
        return next(c for c in self.coverage if c.quantile == quantile)


def wilson_interval(covered: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion (sane near 0 and 1, unlike the normal approximation)."""
    if n == 0:
        return 0.0, 1.0
    p = covered / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # In exact arithmetic the interval holds p; rounding at p = 0 or 1 can put an end a hair past it.
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def snapshot_at(
    tasks: Sequence[TaskRecord], dependencies: Sequence[DependencyRecord], at: datetime
) -> tuple[list[TaskRecord], list[DependencyRecord]]:
    """What was known at ``at``: tasks created by then with their status then, and the edges among them.

    A task marked done without a finish time counts as done from its last update.
    """
    known: list[TaskRecord] = []
    for t in tasks:
        if t.created_at > at:
            continue
        finished = t.done_at if t.done_at is not None else (t.updated_at if t.status == "done" else None)
        if finished is not None and finished <= at:
            known.append(t)
        elif t.started_at is not None and t.started_at <= at:
            known.append(t.model_copy(update={"status": "in_progress", "done_at": None, "updated_at": at}))
        else:
            update = {"status": "todo", "started_at": None, "done_at": None, "assignee": None, "updated_at": at}
            known.append(t.model_copy(update=update))
    keys = {t.key for t in known}
    return known, [d for d in dependencies if d.task in keys and d.depends_on in keys]


def snapshot_moments(
    tasks: Sequence[TaskRecord],
    now: datetime,
    every_days: int,
    warmup_days: int,
    horizon_days: int,
    lookback_days: int = 365,
) -> list[datetime]:
    """Mondays 00:00 UTC from ``warmup_days`` after the first task (and at most ``lookback_days`` back)
    until ``horizon_days`` before ``now``."""
    if not tasks:
        return []
    now = now.astimezone(UTC)
    earliest = min(t.created_at for t in tasks).astimezone(UTC) + timedelta(days=warmup_days)
    first = max(earliest, now - timedelta(days=lookback_days))
    monday = datetime.combine(first.date() + timedelta(days=(7 - first.weekday()) % 7), datetime.min.time(), UTC)
    last = now - timedelta(days=horizon_days)
    moments = []
    while monday <= last:
        moments.append(monday)
        monday += timedelta(days=every_days)
    return moments


def _finish_of(scope: Sequence[TaskRecord]) -> datetime | None:
    """When the last task of ``scope`` was done; None while any is still open."""
    ends = []
    for t in scope:
        end = t.done_at if t.done_at is not None else (t.updated_at if t.status == "done" else None)
        if end is None:
            return None
        ends.append(end)
    return max(ends)


def _covered(actual: date | None, dates: dict[int, date], now: datetime) -> dict[int, bool | None]:
    """Per percentile: held (finished by its date), missed (finished later, or still open with the date
    passed), or None (still open, date ahead)."""
    return {
        q: (actual <= when) if actual is not None else (False if now.date() > when else None)
        for q, when in dates.items()
    }


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
) -> BacktestCase | str:
    """Forecast ``project`` as of ``at`` and score it against what happened; a reason string when the
    moment cannot make a case."""
    known, edges = snapshot_at(tasks, dependencies, at)
    open_then = [t for t in known if t.project == project and t.status != "done"]
    if len(open_then) < MIN_OPEN_TASKS:
        return f"fewer than {MIN_OPEN_TASKS} open tasks"
    done_then = [t for t in known if t.status == "done"]
    model = fit_duration_model(
        [t for t in done_then if t.project == project],
        organisation=done_then,
        min_items=min_history_items,
        in_progress=[t for t in known if t.status == "in_progress"],
        now=at,
    )
    forecast, _, finish = forecast_project(
        project, known, edges, people, model, now=at, trials=trials, rng=rng, min_history_items=min_history_items
    )
    if not forecast.available or finish is None or forecast.p50_date is None:
        return "no forecast possible then (too little history)"
    assert forecast.p85_date is not None and forecast.p95_date is not None
    by_key = {t.key: t for t in tasks}
    ended = _finish_of([by_key[t.key] for t in open_then])
    actual = ended.date() if ended is not None else None
    dates = {50: forecast.p50_date, 85: forecast.p85_date, 95: forecast.p95_date}
    covered = _covered(actual, dates, now)
    rank = None
    if actual is not None:
        rank = probability_by(finish, to_days(actual, forecast.start, workdays=forecast.workdays))
    return BacktestCase(
        project=project,
        snapshot=at.date(),
        open_tasks=len(open_then),
        method=forecast.method,
        p50=dates[50],
        p85=dates[85],
        p95=dates[95],
        actual=actual,
        rank=rank,
        covered=covered,
    )


class PublishedForecast(BaseModel):
    """A forecast PPMS stored at the time (``pm_forecast``), to be scored against what happened."""

    project: str
    made_at: datetime
    method: str
    p50: date
    p85: date
    p95: date


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
        ended = _finish_of(scope)
        actual = ended.date() if ended is not None else None
        covered = _covered(actual, {50: f.p50, 85: f.p85, 95: f.p95}, now)
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
                covered=covered,
            )
        )
    return cases, summarise(cases)


def summarise(cases: Sequence[BacktestCase]) -> list[Coverage]:
    """Coverage of each percentile over the cases, with its Wilson interval."""
    out = []
    for q in QUANTILES:
        decided = [c.covered[q] for c in cases if c.covered.get(q) is not None]
        hits = sum(1 for v in decided if v)
        low, high = wilson_interval(hits, len(decided))
        out.append(
            Coverage(
                quantile=q,
                decided=len(decided),
                covered=hits,
                undecided=len(cases) - len(decided),
                share=hits / len(decided) if decided else None,
                low=low if decided else None,
                high=high if decided else None,
            )
        )
    return out


def judge(p85: Coverage) -> tuple[Verdict, str]:
    """The verdict on the P85 coverage, and what it means for a project lead."""
    if p85.decided < MIN_CASES or p85.share is None:
        return "too few cases", (
            f"only {p85.decided} past moments could be checked; at least {MIN_CASES} are needed to say how far to "
            "trust the P85 dates — read them as unverified"
        )
    seen = f"the P85 date held in {p85.covered} of {p85.decided} past cases ({p85.share:.0%}; 95 % interval " + (
        f"{p85.low:.0%}-{p85.high:.0%})"
    )
    assert p85.low is not None and p85.high is not None
    if p85.low <= 0.85 <= p85.high or abs(p85.share - 0.85) <= TOLERANCE:
        if p85.high - p85.low > WIDE_INTERVAL:
            return "consistent", (
                f"{seen}: consistent with 85 %, but so few cases leave the interval wide — take P85 as roughly "
                "right; the check sharpens as history grows"
            )
        return "consistent", f"{seen}: consistent with 85 %, so the P85 dates can be taken at their word"
    if p85.share < 0.85:
        return "over-confident", (
            f"{seen}: the forecasts were too early. Add margin to the dates and look for what the tracker does "
            "not show — unrecorded dependencies, work outside the tracker, fewer people than assignees"
        )
    return "conservative", f"{seen}: the dates were later than needed; P85 behaves like a higher percentile"


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
) -> BacktestResult:
    """Replay the forecast at past moments of each project and score how often P50/P85/P95 held.

    ``on_progress(done, total)`` is called after each moment (a year of a dozen projects is a few hundred).
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
    for done, (project, at) in enumerate(moments, 1):
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
        )
        if isinstance(case, str):
            skipped[case] = skipped.get(case, 0) + 1
        else:
            cases.append(case)
        if on_progress is not None:
            on_progress(done, len(moments))
    coverage = summarise(cases)
    verdict, reason = judge(next(c for c in coverage if c.quantile == 85))
    return BacktestResult(now=now, cases=cases, coverage=coverage, skipped=skipped, verdict=verdict, reason=reason)
