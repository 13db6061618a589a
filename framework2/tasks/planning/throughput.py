"""Throughput Monte Carlo: "when will N more items be done", from the team's recent daily completions.

This is what practitioners already use (resample the daily completed-item counts of the last 12 weeks, zero
days kept, until N items are done). It answers a different question from a scope forecast — *any* N items,
not *these* items, which wait behind new urgent work — so PPMS shows it next to the scope forecast, uses it
as a floor under it (these N items cannot be done sooner than N items at the team's rate), and the backtest
scores it on the same cases as the baseline to beat.

Window (``recent_rate``), said plainly in the answer:

1. the project's last 12 weeks (``BASELINE_WINDOW_DAYS``) when its completions go back that far and hold at
   least ``MIN_WINDOW_ITEMS`` items;
2. otherwise the window back to the project's ``MIN_WINDOW_ITEMS``-th latest completion, at least
   ``MIN_WINDOW_DAYS`` and at most ``MAX_WINDOW_DAYS`` long (a young project: a shorter window; a slow one:
   a longer one);
3. otherwise the organisation's last 12 weeks divided by the number of projects that completed work in
   them (a new project gets an average project's rate);
4. otherwise no answer, with why.

Counts are per calendar day (weekends are zero days in the history, so they are in the draws too).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from framework2.errors import DataError

BASELINE_WINDOW_DAYS = 84
MIN_WINDOW_DAYS = 14
MAX_WINDOW_DAYS = 365
MIN_WINDOW_ITEMS = 10
# Elements per random-number block: bounds the temporaries to ~32 MB.
_BLOCK = 4_000_000

RngLike = np.random.Generator | int | None


def daily_throughput(done_dates: Sequence[date], today: date, *, days: int = BASELINE_WINDOW_DAYS) -> list[int]:
    """Items completed per calendar day over the ``days`` days ending today (inclusive), zero days kept."""
    first = today - timedelta(days=days - 1)
    counts = [0] * days
    for d in done_dates:
        if first <= d <= today:
            counts[(d - first).days] += 1
    return counts


def throughput_forecast(
    daily_done_counts: Sequence[float], remaining_items: int, trials: int, rng: RngLike
) -> np.ndarray:
    """Days to finish ``remaining_items`` per trial, resampling daily completed-item counts (zeros kept).

    Each trial draws days with replacement from ``daily_done_counts`` until the cumulative count reaches the
    remaining items; the result is the number of days drawn. Counts may be fractional (a scaled rate).
    Vectorised: blocks of days for all unfinished trials at once, ``cumsum`` and the first crossing.
    """
    counts = np.asarray(daily_done_counts, dtype=float)
    if counts.ndim != 1 or counts.size == 0 or not np.isfinite(counts).all() or (counts < 0).any():
        raise DataError("daily completed-item counts must be a non-empty list of counts >= 0", "see daily_throughput")
    if counts.sum() == 0:
        raise DataError(
            f"no items were completed in the {counts.size}-day window", "a throughput forecast needs completed items"
        )
    if remaining_items < 0 or trials < 1:
        raise ValueError(f"need remaining_items >= 0 and trials >= 1, got {remaining_items}, {trials}")
    gen = np.random.default_rng(rng)
    days = np.zeros(trials, dtype=np.int64)
    if remaining_items == 0:
        return days
    need = remaining_items - 1e-9  # fractional counts: reaching N within rounding is reaching it
    left = np.full(trials, need)
    active = np.arange(trials)
    # First block sized for ~1.5x the mean need, so most trials finish in one pass.
    horizon = math.ceil(1.5 * remaining_items / counts.mean()) + 8
    while active.size:
        block = max(8, min(horizon, _BLOCK // active.size))
        cum = np.cumsum(counts[gen.integers(0, counts.size, size=(active.size, block))], axis=1)
        done = cum[:, -1] >= left[active]
        first = (cum[done] >= left[active[done], None]).argmax(axis=1)
        days[active[done]] += first + 1
        rest = active[~done]
        days[rest] += block
        left[rest] -= cum[~done, -1]
        active = rest
    return days


class ThroughputRate(BaseModel):
    """The daily completion counts a throughput answer resamples, and where they came from."""

    counts: list[float] = Field(..., description="Completed items per calendar day, oldest first, zero days kept.")
    start: date = Field(..., description="The first day of the window.")
    source: Literal["project", "project (short window)", "project (long window)", "organisation average"]
    reason: str = Field(..., description="The window in words, e.g. '52 items in the last 12 weeks'.")

    @property
    def items(self) -> float:
        return float(sum(self.counts))


def recent_rate(
    project_done: Sequence[date],
    organisation_done: Sequence[tuple[str, date]],
    today: date,
) -> ThroughputRate | str:
    """The throughput window for a project (see module docstring), or why there is none.

    ``project_done`` are the project's completion dates; ``organisation_done`` (project, date) pairs of every
    project's, the project's included.
    """
    past = sorted(d for d in project_done if d <= today)
    window_start = today - timedelta(days=BASELINE_WINDOW_DAYS - 1)
    in_window = sum(1 for d in past if d >= window_start)
    if past and past[0] <= window_start and in_window >= MIN_WINDOW_ITEMS:
        return ThroughputRate(
            counts=[float(c) for c in daily_throughput(past, today)],
            start=window_start,
            source="project",
            reason=f"{in_window} items completed in the last 12 weeks",
        )
    if len(past) >= MIN_WINDOW_ITEMS:
        # Back to the MIN_WINDOW_ITEMS-th latest completion: a young project's whole history, or a slow one's
        # last few months — at least two weeks, at most a year.
        young = past[0] > window_start
        back_to = past[0] if young else past[-MIN_WINDOW_ITEMS]
        days = max(MIN_WINDOW_DAYS, (today - back_to).days + 1)
        if days <= MAX_WINDOW_DAYS:
            counts = daily_throughput(past, today, days=days)
            why = (
                f"only {days} days of completions ({sum(counts)} items) since the project's first finished item on "
                f"{past[0].isoformat()}"
                if young
                else f"the last {days} days ({sum(counts)} items): the last 12 weeks held only {in_window}"
            )
            return ThroughputRate(
                counts=[float(c) for c in counts],
                start=today - timedelta(days=days - 1),
                source="project (short window)" if young else "project (long window)",
                reason=f"{why}; a {'shorter' if young else 'longer'} window than the usual 12 weeks",
            )
    recent = [(p, d) for p, d in organisation_done if window_start <= d <= today]
    active = {p for p, _ in recent}
    if len(recent) >= MIN_WINDOW_ITEMS:
        counts = daily_throughput([d for _, d in recent], today)
        share = 1.0 / len(active)
        return ThroughputRate(
            counts=[c * share for c in counts],
            start=window_start,
            source="organisation average",
            reason=(
                f"the project has too little history of its own ({len(past)} items done); the organisation's "
                f"{len(recent)} items in the last 12 weeks over {len(active)} active project(s), i.e. an average "
                "project's rate"
            ),
        )
    return (
        f"{len(past)} items done in the project and {len(recent)} in the organisation in the last 12 weeks; a "
        f"throughput answer needs {MIN_WINDOW_ITEMS} over at least {MIN_WINDOW_DAYS} days"
    )


def calendar_to_working(days: np.ndarray, start: date) -> np.ndarray:
    """Calendar-day offsets from the start of ``start`` as working-day offsets ending on the same day.

    A finish on day d (calendar, 1 = ``start`` itself) becomes the working days from ``start`` through that
    day; a weekend finish counts as the Friday before it.
    """
    d = np.asarray(days, dtype=np.int64)
    first = np.datetime64(start, "D")
    ends = first + np.maximum(d, 0).astype("timedelta64[D]")
    return np.busday_count(first, ends).astype(float)
