"""PUXT journey recommendations: what to fix first, ranked by the extra conversions per week it should bring.

Every recommendation carries an **impact** = estimated extra conversions per week, computed from observed
counts scaled by ``7 / span_days`` (the days the events cover, at least one), and an assumption about how much
is recoverable, stated in its reason:

- ``segment`` — a segment converts significantly worse than everyone else at one step (funnel ``flags``,
  p < 0.01): impact = (rest's rate - segment's rate) x the segment's users at the step x the segment's own
  conversion from the next step to the end. The whole gap counts as recoverable: the other users show the rate
  is achievable, so the gap is a defect (a broken payment form on mobile) rather than human nature.
- ``drop_off`` — users who reach a step and do not reach the next: impact = ``DROP_OFF_RECOVERY`` (a tenth)
  x the drop-off x the conversion from the next step to the end (recovered users still have to get through the
  rest). Nothing shows how much of a drop-off is avoidable, hence the modest tenth. The step's Markov removal
  share ("carries 31 % of conversions") is quoted as evidence but not multiplied in: every step of a linear
  funnel carries all conversions, so it would not separate them.
- ``slow_step`` — a step whose p90 time from the previous step is at least ``SLOW_FACTOR`` times the median
  p90 of the other steps and at least ``SLOW_MIN_SECONDS``: impact = ``SLOW_RECOVERY`` (a twentieth) x the
  users lost on the way into it x the conversion from it to the end.
- ``loop_path`` — a top path (at least ``PATH_MIN_SHARE`` of sessions) that returns to an event and converts
  below the average session: impact = ``PATH_RECOVERY`` x its sessions x (average rate - its rate).
- ``dead_path`` — a top path that never converts although most of its sessions go on past the shown steps
  (long journeys that lead nowhere; short ones that simply end are drop-offs, covered above): impact =
  ``PATH_RECOVERY`` x its sessions x the average rate.

**Ranking** is by impact, largest first (rounded to 1e-9 so float noise cannot reorder), then by kind in the
order above, then by title: deterministic for the same inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from framework2.tasks.journeys.funnels import FunnelResult
from framework2.tasks.journeys.paths import ARROW, PathsResult
from framework2.tasks.journeys.removal import RemovalResult

DROP_OFF_RECOVERY = 0.1
SLOW_FACTOR = 3.0
SLOW_MIN_SECONDS = 60.0
SLOW_RECOVERY = 0.05
PATH_MIN_SHARE = 0.01
PATH_RECOVERY = 0.1
KIND_ORDER: dict[str, int] = {"segment": 0, "drop_off": 1, "slow_step": 2, "loop_path": 3, "dead_path": 4}


@dataclass(frozen=True)
class Recommendation:
    """One thing to fix: what, why (with numbers), the estimated extra conversions per week, and the evidence."""

    kind: str
    title: str
    reason: str
    impact: float
    evidence: dict[str, Any] = field(default_factory=dict)
    step: str | None = None
    segment: str | None = None


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def _count(x: float) -> str:
    return f"{x:,.0f}" if x >= 10 else f"{x:.1f}"


def format_duration(seconds: float) -> str:
    """Seconds as a short human duration ("45 s", "3.2 min", "1.5 h", "2.0 d"); "—" when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _downstream(users: np.ndarray, index: int) -> float:
    """Share of the users at step ``index`` (0-based) who reach the last step."""
    if index >= len(users) or users[index] == 0:
        return 0.0
    return float(users[-1] / users[index])


def _removal_text(removal: RemovalResult | None, step: str) -> tuple[str, dict[str, Any]]:
    if removal is None or removal.conversions == 0:
        return "", {}
    share, effect = removal.share_of(step), removal.effect_of(step)
    if share is None or effect is None:
        return "", {}
    return (
        f"; it carries {_pct(share)} of conversions (removal effect {effect:.2f})",
        {"removal_share": share, "removal_effect": effect},
    )


def _segment_recs(result: FunnelResult, removal: RemovalResult | None, weekly: float) -> list[Recommendation]:
    recs = []
    flags = result.flags
    for flag in flags[flags["difference"] < 0].itertuples():
        part = result.by_segment[result.by_segment["segment"] == flag.segment]
        users = part["users"].to_numpy()
        downstream = _downstream(users, flag.step_index - 1)
        gap = flag.rest_rate - flag.rate
        impact = gap * flag.users * downstream * weekly
        extra, removal_evidence = _removal_text(removal, flag.from_step)
        p_text = "p < 0.001" if flag.p_value < 0.001 else f"p = {flag.p_value:.3f}"
        then = (
            ""
            if flag.to_step == result.steps[-1]
            else f", who then reach {result.steps[-1]} at their observed {_pct(downstream)}"
        )
        recs.append(
            Recommendation(
                kind="segment",
                title=f"Fix the {flag.from_step} step for {flag.segment} ({result.segment_by})",
                reason=(
                    f"Only {_pct(flag.rate)} of {flag.segment} users who reach {flag.from_step} go on to "
                    f"{flag.to_step}, against {_pct(flag.rest_rate)} of everyone else "
                    f"({100 * flag.difference:+.0f} points, z = {flag.z:.1f}, {p_text}; "
                    f"{flag.users:,} vs {flag.rest_users:,} users){extra}. Bringing {flag.segment} up to the "
                    f"others' rate would add ~{_count(impact)} conversions per week{then}."
                ),
                impact=float(impact),
                evidence={
                    "segment_by": result.segment_by,
                    "segment": str(flag.segment),
                    "step": flag.from_step,
                    "next_step": flag.to_step,
                    "rate": float(flag.rate),
                    "rest_rate": float(flag.rest_rate),
                    "difference": float(flag.difference),
                    "z": float(flag.z),
                    "p_value": float(flag.p_value),
                    "users": int(flag.users),
                    "rest_users": int(flag.rest_users),
                    "downstream_conversion": downstream,
                    **removal_evidence,
                },
                step=flag.from_step,
                segment=str(flag.segment),
            )
        )
    return recs


def _drop_off_recs(result: FunnelResult, removal: RemovalResult | None, weekly: float) -> list[Recommendation]:
    recs = []
    table = result.table
    users = table["users"].to_numpy()
    for k in range(len(table) - 1):
        row = table.iloc[k]
        if row["drop_off"] <= 0:
            continue
        step, nxt = str(row["step"]), str(table["step"].iloc[k + 1])
        downstream = _downstream(users, k + 1)
        impact = DROP_OFF_RECOVERY * row["drop_off"] * downstream * weekly
        extra, removal_evidence = _removal_text(removal, step)
        then = (
            ""
            if k + 1 == len(table) - 1
            else f" (they then reach {result.steps[-1]} at the observed {_pct(downstream)})"
        )
        recs.append(
            Recommendation(
                kind="drop_off",
                title=f"Reduce the drop-off after {step}",
                reason=(
                    f"{_pct(row['drop_off_share'])} of users who reach {step} leave before {nxt} "
                    f"({int(row['drop_off']):,} of {int(row['users']):,}){extra}. Recovering a tenth of the "
                    f"drop-off would add ~{_count(impact)} conversions per week{then}."
                ),
                impact=float(impact),
                evidence={
                    "step": step,
                    "next_step": nxt,
                    "users": int(row["users"]),
                    "drop_off": int(row["drop_off"]),
                    "drop_off_share": float(row["drop_off_share"]),
                    "downstream_conversion": downstream,
                    "recovery": DROP_OFF_RECOVERY,
                    **removal_evidence,
                },
                step=step,
            )
        )
    return recs


def _slow_recs(result: FunnelResult, weekly: float) -> list[Recommendation]:
    if not result.ordered:
        return []  # unordered times run from the window start, so later steps are slower by construction
    table = result.table
    users = table["users"].to_numpy()
    p90 = table["p90_seconds"].to_numpy(dtype=float)
    recs = []
    for k in range(1, len(table)):
        others = np.array([p90[j] for j in range(1, len(table)) if j != k and np.isfinite(p90[j])])
        if not np.isfinite(p90[k]) or len(others) == 0:
            continue
        typical = float(np.median(others))
        if p90[k] < SLOW_MIN_SECONDS or typical <= 0 or p90[k] < SLOW_FACTOR * typical:
            continue
        prev, step = str(table["step"].iloc[k - 1]), str(table["step"].iloc[k])
        lost = int(users[k - 1] - users[k])
        downstream = _downstream(users, k)
        impact = SLOW_RECOVERY * lost * downstream * weekly
        recs.append(
            Recommendation(
                kind="slow_step",
                title=f"Speed up {prev} → {step}",
                reason=(
                    f"The p90 time from {prev} to {step} is {format_duration(p90[k])}, "
                    f"{p90[k] / typical:.1f}x the other steps' typical p90 of {format_duration(typical)} "
                    f"(median {format_duration(table['median_seconds'].iloc[k])}). Making it faster and so "
                    f"keeping a twentieth of the {lost:,} users lost on the way would add ~{_count(impact)} "
                    f"conversions per week."
                ),
                impact=float(impact),
                evidence={
                    "step": prev,
                    "next_step": step,
                    "p90_seconds": float(p90[k]),
                    "typical_p90_seconds": typical,
                    "median_seconds": float(table["median_seconds"].iloc[k]),
                    "lost_users": lost,
                    "downstream_conversion": downstream,
                    "recovery": SLOW_RECOVERY,
                },
                step=step,
            )
        )
    return recs


def _path_recs(paths: PathsResult, weekly: float) -> list[Recommendation]:
    if paths.goal is None or paths.sessions == 0 or paths.conversions == 0:
        return []
    average = paths.conversion_rate
    recs = []
    for row in paths.top.itertuples():
        if row.length < 2 or row.share < PATH_MIN_SHARE:
            continue
        evidence = {
            "path": row.path,
            "sessions": int(row.sessions),
            "share": float(row.share),
            "conversion_rate": float(row.conversion_rate),
            "average_conversion_rate": average,
            "recovery": PATH_RECOVERY,
        }
        if row.loops and row.conversion_rate < average:
            repeated = [s for s in dict.fromkeys(row.steps) if row.steps.count(s) > 1]
            impact = PATH_RECOVERY * row.sessions * (average - row.conversion_rate) * weekly
            recs.append(
                Recommendation(
                    kind="loop_path",
                    title=f"Break the loop: {row.path}",
                    reason=(
                        f"{int(row.sessions):,} sessions ({_pct(row.share)}) follow {row.path}, coming back to "
                        f"{', '.join(repeated)}; they convert at {_pct(row.conversion_rate)} against "
                        f"{_pct(average)} for the average session. If a tenth of them converted like the average, "
                        f"~{_count(impact)} more conversions per week."
                    ),
                    impact=float(impact),
                    evidence={**evidence, "repeated": repeated},
                    step=repeated[0],
                )
            )
        elif row.conversions == 0 and row.continued * 2 >= row.sessions:
            impact = PATH_RECOVERY * row.sessions * average * weekly
            recs.append(
                Recommendation(
                    kind="dead_path",
                    title=f"Find out why {row.path}{ARROW}… never converts",
                    reason=(
                        f"{int(row.sessions):,} sessions ({_pct(row.share)}) start with {row.path} and mostly go "
                        f"on, yet none reaches {paths.goal}. If a tenth of them converted like the average session "
                        f"({_pct(average)}), ~{_count(impact)} more conversions per week."
                    ),
                    impact=float(impact),
                    evidence=evidence,
                    step=row.steps[-1],
                )
            )
    return recs


def recommend(
    funnel_result: FunnelResult, paths_result: PathsResult | None = None, removal_result: RemovalResult | None = None
) -> list[Recommendation]:
    """Ranked recommendations from a funnel, its session paths and the removal effects (see module docstring)."""
    weekly = 7.0 / max(funnel_result.span_days, 1.0)
    recs = [
        *_segment_recs(funnel_result, removal_result, weekly),
        *_drop_off_recs(funnel_result, removal_result, weekly),
        *_slow_recs(funnel_result, weekly),
    ]
    if paths_result is not None:
        recs += _path_recs(paths_result, 7.0 / max(paths_result.span_days, 1.0))
    return sorted(recs, key=lambda r: (-round(r.impact, 9), KIND_ORDER[r.kind], r.title))


def recommendations_frame(recs: list[Recommendation]) -> pd.DataFrame:
    """Recommendations as a table (rank, kind, title, impact per week, step, segment, reason)."""
    return pd.DataFrame(
        [
            {
                "rank": i,
                "kind": r.kind,
                "title": r.title,
                "impact_per_week": r.impact,
                "step": r.step,
                "segment": r.segment,
                "reason": r.reason,
            }
            for i, r in enumerate(recs, start=1)
        ],
        columns=["rank", "kind", "title", "impact_per_week", "step", "segment", "reason"],
    )
