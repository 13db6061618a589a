"""Scoring forecasts against what happened: coverage *and* sharpness, and a verdict that tells them apart.

Coverage alone cannot tell a useful forecast from a useless one: a P85 ten years out "holds" every time. So
each set of past cases is scored on

- **coverage** of P50, P85 and P95 (the share of decided cases finished by that date) with 95 % Wilson
  intervals;
- **pinball loss** at P50 and P85 (the quantile loss: for quantile q and forecast f of outcome y,
  (y - f) * q when y >= f, (f - y) * (1 - q) otherwise; mean over cases whose scope is done, in calendar
  days). Lower is better; it punishes a late date as well as an early one, weighted as the quantile says;
- **horizon ratio**: the median over finished cases of (P50 days ahead) / (actual days ahead), each at
  least one day. 1 is right; the target band is 0.67-1.5.

Verdicts (``judge_scores``), from the coverage of P50 and P85 (each *ok* when its interval reaches the
nominal value or it is within ``TOLERANCE`` of it, else *low* or *high*) and the horizon ratio:

| P50 | P85 | verdict |
|---|---|---|
| ok | ok, ratio in 0.67-1.5 | consistent |
| low | low or ok | too early (dates before the work is done: add margin, look for work outside the tracker) |
| high | high or ok | too late (dates after the work is done: the spread or the level is too pessimistic) |
| ok or low | high | too wide (the upper dates cover everything because they are far out) |
| ok or high | low | too narrow (the typical case is right, the bad ones are not covered) |
| ok | ok, ratio outside 0.67-1.5 | too wide / too narrow by the ratio's side |

with fewer than ``MIN_CASES`` decided cases: too few cases to tell.

A beyond-horizon percentile (no date shown) is scored as the horizon's last day: it held if the work was done
within the horizon, and its distance counts in the pinball loss — "cannot tell" earns no credit for sharpness.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from framework2.tasks.planning.montecarlo import MAX_HORIZON_DAYS

QUANTILES = (50, 85, 95)
MIN_CASES = 10
TOLERANCE = 0.10
WIDE_INTERVAL = 0.35
RATIO_BAND = (0.67, 1.5)

Verdict = Literal["consistent", "too early", "too late", "too wide", "too narrow", "too few cases"]


class Coverage(BaseModel):
    """How often one percentile's date held."""

    quantile: int
    decided: int
    covered: int
    undecided: int
    share: float | None = Field(None, description="covered / decided.")
    low: float | None = Field(None, description="Lower end of the 95 % Wilson interval.")
    high: float | None = Field(None, description="Upper end of the 95 % Wilson interval.")


class Scores(BaseModel):
    """One forecaster's scores over a set of past cases."""

    forecaster: str = Field(..., description="Which forecaster, e.g. 'ppms' or 'throughput baseline (12 weeks)'.")
    cases: int = Field(0, description="Cases it made a forecast for.")
    finished: int = Field(0, description="Cases whose scope is done: the ones pinball and ratio are measured on.")
    coverage: list[Coverage] = Field(default_factory=list)
    pinball: dict[int, float] = Field(default_factory=dict, description="Mean pinball loss per quantile, days.")
    median_ratio: float | None = Field(None, description="Median of P50 days ahead / actual days ahead.")
    beyond_horizon: int = Field(0, description="Cases whose P85 was beyond the horizon (no date shown).")

    def at(self, quantile: int) -> Coverage:
        """The coverage of one percentile."""
        return next(c for c in self.coverage if c.quantile == quantile)


class ScoredCase(BaseModel):
    """What scoring needs of one case: the moment, the dates per percentile (None: beyond the horizon), the
    actual finish (None: still open) and whether each date held (None: undecided)."""

    snapshot: date
    dates: dict[int, date | None]
    actual: date | None
    covered: dict[int, bool | None]


def wilson_interval(covered: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion (sane near 0 and 1, unlike the normal approximation)."""
    if n == 0:
        return 0.0, 1.0
    p = covered / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # In exact arithmetic the interval holds p; rounding at p = 0 or 1 can put an end a hair past it.
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def pinball_loss(actual: float, forecast: float, quantile: float) -> float:
    """The quantile (pinball) loss of ``forecast`` for ``actual`` at ``quantile`` in (0, 1)."""
    return (actual - forecast) * quantile if actual >= forecast else (forecast - actual) * (1.0 - quantile)


def covered_by(actual: date | None, dates: dict[int, date | None], now: date, start: date) -> dict[int, bool | None]:
    """Per percentile: held (finished by its date), missed (finished later, or still open with the date passed),
    or None (still open, date ahead). A missing date (beyond the horizon) stands for the horizon's last day."""
    out: dict[int, bool | None] = {}
    for q, when in dates.items():
        when = when if when is not None else start + timedelta(days=MAX_HORIZON_DAYS)
        out[q] = (actual <= when) if actual is not None else (False if now > when else None)
    return out


def summarise(cases: Sequence[ScoredCase]) -> list[Coverage]:
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


def score(forecaster: str, cases: Sequence[ScoredCase]) -> Scores:
    """Coverage, pinball loss at P50/P85 and the median horizon ratio of ``cases``."""
    finished = [c for c in cases if c.actual is not None]

    def ahead(c: ScoredCase, q: int) -> float:
        when = c.dates.get(q)
        return float((when - c.snapshot).days if when is not None else MAX_HORIZON_DAYS)

    pinball = {}
    ratio = None
    if finished:
        actual = np.array([(c.actual - c.snapshot).days for c in finished], dtype=float)  # type: ignore[operator]
        for q in (50, 85):
            forecast = np.array([ahead(c, q) for c in finished])
            pinball[q] = float(np.mean([pinball_loss(a, f, q / 100) for a, f in zip(actual, forecast, strict=True)]))
        p50 = np.array([ahead(c, 50) for c in finished])
        ratio = float(np.median(np.maximum(p50, 1.0) / np.maximum(actual, 1.0)))
    return Scores(
        forecaster=forecaster,
        cases=len(cases),
        finished=len(finished),
        coverage=summarise(cases),
        pinball=pinball,
        median_ratio=ratio,
        beyond_horizon=sum(1 for c in cases if c.dates.get(85) is None),
    )


def _pct(value: float) -> float:
    """A share as the whole percent it is printed as, so a verdict never contradicts the numbers it shows."""
    return round(value * 100) / 100


def _side(c: Coverage) -> Literal["ok", "low", "high"]:
    nominal = c.quantile / 100
    assert c.share is not None and c.low is not None and c.high is not None
    share, low, high = _pct(c.share), _pct(c.low), _pct(c.high)
    if low <= nominal <= high or abs(share - nominal) <= TOLERANCE + 1e-9:
        return "ok"
    return "low" if share < nominal else "high"


def _held(c: Coverage) -> str:
    return f"P{c.quantile} held in {c.covered} of {c.decided} ({c.share:.0%}; 95 % interval {c.low:.0%}-{c.high:.0%})"


def judge_scores(scores: Scores) -> tuple[Verdict, str]:
    """The verdict on a forecaster's scores and what it means for a project lead (see the module docstring)."""
    p50, p85 = scores.at(50), scores.at(85)
    if p85.decided < MIN_CASES or p50.share is None or p85.share is None:
        return "too few cases", (
            f"only {p85.decided} of {scores.cases} past moments could be checked (the others' scope was still open "
            f"and their dates not yet passed); at least {MIN_CASES} are needed to say how far to trust the dates — "
            "read them as unverified"
        )
    low, high = RATIO_BAND
    ratio = scores.median_ratio
    seen = f"{_held(p50)}, {_held(p85)}" + (f"; P50 was typically x{ratio:.2f} the actual time" if ratio else "")
    s50, s85 = _side(p50), _side(p85)
    verdict: Verdict
    if s50 == "ok" and s85 == "ok":
        if ratio is None or low <= ratio <= high:
            verdict, meaning = "consistent", "the dates can be taken at their word"
            if p85.high - p85.low > WIDE_INTERVAL:
                meaning = (
                    "consistent, but so few cases (and cases of one project overlap in time) leave the intervals "
                    "wide: take the dates as roughly right; the check sharpens as history grows"
                )
        elif ratio > high:
            verdict, meaning = "too wide", "coverage is right but the dates are typically far later than the work"
        else:
            verdict, meaning = "too narrow", "coverage is right but the dates are typically far earlier than the work"
    elif s50 == "low" and s85 != "high":
        verdict, meaning = (
            "too early",
            (
                "the dates came before the work was done. Add margin and look for what the tracker does not show — "
                "unrecorded dependencies, work outside the tracker, fewer people than assignees"
            ),
        )
    elif s50 == "high" and s85 != "low":
        verdict, meaning = (
            "too late",
            ("more of the work was done by the dates than they promised: the forecast leans pessimistic"),
        )
    elif s85 == "high":
        verdict, meaning = "too wide", "the upper dates hold because they are far out, not because they are sharp"
    else:
        verdict, meaning = "too narrow", "typical cases are right but the slow ones are not covered"
    return verdict, f"{seen}: {meaning}"


def more_trusted(ours: Scores, baseline: Scores) -> tuple[str | None, str]:
    """Which of two forecasters scored on the *same* cases held up better (lower pinball loss at P50 and P85
    summed), and a sentence with the numbers; None when neither has finished cases."""
    if not ours.pinball or not baseline.pinball:
        return None, f"no finished case to compare PPMS with the {baseline.forecaster}"
    mine = ours.pinball[50] + ours.pinball[85]
    theirs = baseline.pinball[50] + baseline.pinball[85]
    winner = ours.forecaster if mine <= theirs else baseline.forecaster
    named = winner if winner == ours.forecaster else f"the {winner}"
    return winner, (
        f"on the same {ours.finished} finished cases {named} held up better: pinball loss P50 "
        f"{ours.pinball[50]:.1f} vs {baseline.pinball[50]:.1f} days, P85 {ours.pinball[85]:.1f} vs "
        f"{baseline.pinball[85]:.1f} (PPMS vs {baseline.forecaster}); P85 held "
        + (f"{ours.at(85).share:.0%}" if ours.at(85).share is not None else "—")
        + " vs "
        + (f"{baseline.at(85).share:.0%}" if baseline.at(85).share is not None else "—")
    )


def judge(p85: Coverage) -> tuple[Verdict, str]:
    """A verdict from the P85 coverage alone (the track record of published forecasts, which keeps only dates)."""
    if p85.decided < MIN_CASES or p85.share is None:
        return "too few cases", (
            f"only {p85.decided} published forecasts have come due; at least {MIN_CASES} are needed to say how far "
            "to trust the P85 dates"
        )
    side = _side(p85)
    if side == "ok":
        return "consistent", f"{_held(p85)}: consistent with 85 %"
    if side == "low":
        return "too early", f"{_held(p85)}: the published dates came before the work was done"
    return "too late", f"{_held(p85)}: the published dates came later than needed"
