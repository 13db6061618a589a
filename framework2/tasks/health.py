"""System health: a 0–100 score from recent success rate, freshness against the schedule, and quality.

Freshness is 1 while the last good run is younger than 1.5× the expected interval (a run takes time),
then falls linearly to 0 at 3× the interval. A system that never ran scores 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from framework2.config import HealthWeights


@dataclass(frozen=True)
class RunRecord:
    """The parts of a stored run that health needs."""

    status: str
    started_at: datetime
    finished_at: datetime | None
    quality: float | None = None
    quality_reason: str | None = None


@dataclass
class HealthScore:
    system: str
    score: float
    success_rate: float
    freshness: float
    quality: float
    last_status: str | None
    last_run_at: datetime | None
    reasons: list[str] = field(default_factory=list)

    def components(self) -> dict[str, Any]:
        return {
            "success_rate": round(self.success_rate, 4),
            "freshness": round(self.freshness, 4),
            "quality": round(self.quality, 4),
            "reasons": self.reasons,
        }


def human_span(delta: timedelta, *, spaced: bool = False) -> str:
    """A short duration for people: 45s, 40m, 3h, 2d (``spaced``: 45 s, 40 min, 3 h, 2 d); negative counts as 0."""
    seconds = max(0, int(delta.total_seconds()))
    units = (" s", " min", " h", " d") if spaced else ("s", "m", "h", "d")
    if seconds < 120:
        return f"{seconds}{units[0]}"
    if seconds < 7200:
        return f"{seconds // 60}{units[1]}"
    if seconds < 172800:
        return f"{seconds // 3600}{units[2]}"
    return f"{seconds // 86400}{units[3]}"


def freshness(age: timedelta, interval: timedelta) -> float:
    """1.0 up to 1.5× the interval, linear down to 0.0 at 3×."""
    ratio = age / interval if interval.total_seconds() > 0 else 0.0
    if ratio <= 1.5:
        return 1.0
    return max(0.0, 1.0 - (ratio - 1.5) / 1.5)


def score_health(
    system: str,
    runs: Sequence[RunRecord],
    *,
    now: datetime,
    expected_interval: timedelta,
    weights: HealthWeights,
) -> HealthScore:
    """Score one system from its recent runs (any order)."""
    finished = sorted((r for r in runs if r.status in {"completed", "failed"}), key=lambda r: r.started_at)
    if not finished:
        return HealthScore(system, 0.0, 0.0, 0.0, 0.0, None, None, ["no finished run yet"])
    reasons: list[str] = []
    failures = sum(r.status == "failed" for r in finished)
    success_rate = 1 - failures / len(finished)
    if failures:
        reasons.append(f"{failures} of the last {len(finished)} runs failed")
    good = [r for r in finished if r.status == "completed"]
    last = finished[-1]
    if good:
        last_good = good[-1]
        age = now - (last_good.finished_at or last_good.started_at)
        fresh = freshness(age, expected_interval)
        if fresh < 1:
            reasons.append(f"last good run {human_span(age)} ago (expected every {human_span(expected_interval)})")
        quality = 1.0 if last_good.quality is None else float(last_good.quality)
        if quality < 1:
            why = f": {last_good.quality_reason}" if last_good.quality_reason else ""
            reasons.append(f"quality of the last good run {quality:.2f}{why}")
    else:
        fresh, quality = 0.0, 0.0
        reasons.append("no successful run in the window")
    total = weights.success + weights.freshness + weights.quality
    score = 100 * (weights.success * success_rate + weights.freshness * fresh + weights.quality * quality) / total
    return HealthScore(
        system=system,
        score=round(score, 2),
        success_rate=success_rate,
        freshness=fresh,
        quality=quality,
        last_status=last.status,
        last_run_at=last.finished_at or last.started_at,
        reasons=reasons,
    )
