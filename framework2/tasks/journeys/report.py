"""What a product team reads after a PUXT journeys run: the ranked recommendations first, then the funnel (chart and
table, per segment), the most common session paths, where people go next and the Markov removal effects."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta

import numpy as np
import pandas as pd

from framework2.tasks.charts import figure_to_data_uri, plt
from framework2.tasks.journeys.funnels import FunnelResult
from framework2.tasks.journeys.paths import PathsResult
from framework2.tasks.journeys.recommend import Recommendation, format_duration
from framework2.tasks.journeys.removal import RemovalResult

MAX_CHART_SEGMENTS = 8
_BAR = "#4c72b0"


def _cell(value: object) -> str:
    """Text safe inside a markdown table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _pct(x: float, digits: int = 0) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f} %"


def funnel_chart(result: FunnelResult, *, by_segment: bool = True) -> str:
    """PNG data URI: users per step as horizontal bars labelled with conversion; with segments, a second panel
    compares each segment's share of its step-1 users reaching every step (largest segments, at most 8)."""
    table = result.table
    segments: list[str] = []
    if by_segment and not result.by_segment.empty:
        sizes = result.by_segment[result.by_segment["step_index"] == 1].sort_values(
            ["users", "segment"], ascending=[False, True]
        )
        segments = [str(s) for s in sizes["segment"].head(MAX_CHART_SEGMENTS)]
    n = len(table)
    height = max(2.2, 0.55 * n + 1.2)
    fig, axes = plt.subplots(1, 2 if segments else 1, figsize=(11 if segments else 7, height), squeeze=False)
    ax = axes[0][0]
    y = np.arange(n)
    users = table["users"].to_numpy(dtype=float)
    ax.barh(y, users, color=_BAR)
    top = users.max() if n and users.max() > 0 else 1.0
    for i, row in enumerate(table.itertuples()):
        label = f"{int(row.users):,}"
        if i > 0:
            label += f"  ({_pct(row.step_conversion)} of previous, {_pct(row.overall_conversion)} of step 1)"
        ax.text(row.users + top * 0.01, i, label, va="center", fontsize=8)
    ax.set_yticks(y, [str(s) for s in table["step"]])
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.9)
    ax.set_xlabel("users")
    ax.set_title(f"Funnel ({result.entered:,} users entered)", fontsize=10)
    if segments:
        ax2 = axes[0][1]
        width = 0.8 / len(segments)
        for j, seg in enumerate(segments):
            part = result.by_segment[result.by_segment["segment"] == seg].sort_values("step_index")
            share = 100 * part["overall_conversion"].to_numpy(dtype=float)
            ax2.barh(y - 0.4 + width * (j + 0.5), share, height=width, label=seg)
        ax2.set_yticks(y, [str(s) for s in table["step"]])
        ax2.invert_yaxis()
        ax2.set_xlim(0, 105)
        ax2.set_xlabel("% of the segment's step-1 users")
        ax2.set_title(f"By {result.segment_by}", fontsize=10)
        ax2.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return figure_to_data_uri(fig)


def format_window(window: timedelta) -> str:
    """A funnel window in words: "1 day", "7 days", "2 h", else a short duration."""
    seconds = window.total_seconds()
    if seconds % 86400 == 0:
        days = int(seconds // 86400)
        return f"{days} day" + ("" if days == 1 else "s")
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)} h"
    return format_duration(seconds)


def _funnel_table(result: FunnelResult) -> list[str]:
    lines = [
        f"| step | users | conversion from previous (95 % CI) | of step 1 | drop-off after | "
        f"median time ({result.time_basis}) | p90 time |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for i, row in enumerate(result.table.itertuples()):
        conv = "—" if i == 0 else f"{_pct(row.step_conversion, 1)} ({_pct(row.ci_low, 1)}–{_pct(row.ci_high, 1)})"
        drop = "—" if i == len(result.table) - 1 else f"{int(row.drop_off):,} ({_pct(row.drop_off_share)})"
        lines.append(
            f"| {_cell(row.step)} | {int(row.users):,} | {conv} | {_pct(row.overall_conversion, 1)} | {drop} "
            f"| {format_duration(row.median_seconds)} | {format_duration(row.p90_seconds)} |"
        )
    return lines


def _segment_table(result: FunnelResult) -> list[str]:
    if result.by_segment.empty:
        return []
    steps = [str(s) for s in result.table["step"]]
    lines = [
        "",
        f"### By {_cell(result.segment_by)}",
        "",
        "Each cell: users (conversion from the previous step).",
        "",
        f"| {_cell(result.segment_by)} | " + " | ".join(_cell(s) for s in steps) + " |",
        "|---|" + "---:|" * len(steps),
    ]
    for seg, part in result.by_segment.groupby("segment", sort=True):
        cells = [
            f"{int(r.users):,}" + ("" if r.step_index == 1 else f" ({_pct(r.step_conversion)})")
            for r in part.sort_values("step_index").itertuples()
        ]
        lines.append(f"| {_cell(seg)} | " + " | ".join(cells) + " |")
    flags = result.flags
    # Only the worse side: with two segments the better one is the same test seen from the other end.
    flags = flags[flags["difference"] < 0] if not flags.empty else flags
    if not flags.empty:
        lines += ["", "Significantly worse than everyone else (two-proportion z-test, p < 0.01):", ""]
        for f in flags.itertuples():
            p_text = "p < 0.001" if f.p_value < 0.001 else f"p = {f.p_value:.3f}"
            lines.append(
                f"- {_cell(f.segment)}, {_cell(f.from_step)} → {_cell(f.to_step)}: {_pct(f.rate, 1)} vs "
                f"{_pct(f.rest_rate, 1)} ({100 * f.difference:+.1f} points, z = {f.z:.1f}, {p_text})"
            )
    return lines


def _paths_section(paths: PathsResult, top: int) -> list[str]:
    goal = paths.goal
    lines = [
        "## Top session paths",
        "",
        f"{paths.sessions:,} sessions, {paths.distinct_paths:,} distinct paths (first {paths.k} steps, repeats "
        "collapsed)" + (f"; {_pct(paths.conversion_rate, 1)} reach {_cell(goal)}." if goal else "."),
        "",
        "| # | path | sessions | share | conversion | loops |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for i, row in enumerate(paths.top.head(top).itertuples(), start=1):
        more = " → …" if row.continued else ""
        conv = _pct(row.conversion_rate, 1) if goal else "—"
        lines.append(
            f"| {i} | {_cell(row.path)}{more} | {int(row.sessions):,} | {_pct(row.share, 1)} | {conv} "
            f"| {'↻' if row.loops else ''} |"
        )
    if paths.top.empty:
        lines.append("| — | no sessions | | | | |")
    if not paths.next_steps.empty:
        lines += ["", "**Where people go next** (most frequent moves):", ""]
        lines += ["| from | to | moves | share of moves from there |", "|---|---|---:|---:|"]
        for row in paths.next_steps.head(15).itertuples():
            lines.append(f"| {_cell(row.source)} | {_cell(row.target)} | {int(row.count):,} | {_pct(row.share)} |")
    lines += [f"- {n}" for n in paths.notes]
    return lines


def _removal_section(removal: RemovalResult) -> list[str]:
    lines = [
        "## Removal effects",
        "",
        f"A first-order Markov chain over {removal.sessions:,} session paths (start → events → conversion or "
        f"null); P(conversion) = {_pct(removal.conversion_probability, 2)} (observed "
        f"{_pct(removal.observed_conversion_rate, 2)}). A step's removal effect is the share of conversions lost "
        "if its visitors left instead of going on; share normalises the effects to 100 %.",
        "",
    ]
    if removal.note:
        lines += [f"*{_cell(removal.note)}*", ""]
    lines += ["| step | removal effect | share | sessions | converting |", "|---|---:|---:|---:|---:|"]
    for row in removal.effects.itertuples():
        lines.append(
            f"| {_cell(row.step)} | {row.removal_effect:.2f} | {_pct(row.share, 1)} | {int(row.sessions):,} "
            f"| {int(row.converting_sessions):,} |"
        )
    if removal.effects.empty:
        lines.append("| — | | | | |")
    return lines


def _quarantine_section(quarantined: pd.DataFrame) -> list[str]:
    if quarantined.empty:
        return []
    reasons = quarantined["reason"].value_counts().head(8)
    lines = ["## Data quality", "", f"{len(quarantined):,} row(s) were quarantined and left out:", ""]
    lines += [f"- {int(count):,} × {_cell(reason)}" for reason, count in reasons.items()]
    return lines


def journeys_markdown(
    funnel: FunnelResult,
    paths: PathsResult | None,
    removal: RemovalResult | None,
    recs: Sequence[Recommendation],
    *,
    top_paths: int = 10,
    top_recommendations: int = 10,
    chart: str | None = None,
) -> str:
    """The puxt-journeys artifact: recommendations, funnel (chart, table, segments), paths, removal effects and
    data quality. ``chart`` is a ready data URI; by default :func:`funnel_chart` draws one."""
    steps = " → ".join(funnel.steps)
    converted = funnel.converted
    summary = (
        f"{funnel.users_total:,} users over {funnel.span_days:.0f} days; {funnel.entered:,} entered the funnel "
        f"{_cell(steps)} and {converted:,} reached {_cell(funnel.steps[-1])} "
        f"({_pct(converted / funnel.entered, 1) if funnel.entered else '—'}) within "
        f"{format_window(funnel.window)} of the first step" + ("" if funnel.ordered else " (steps in any order)") + "."
    )
    lines = ["# PUXT user journeys", "", summary, "", "## Recommendations", ""]
    if recs:
        lines += ["Ranked by estimated extra conversions per week.", ""]
        for i, rec in enumerate(recs[:top_recommendations], start=1):
            lines.append(f"{i}. **{_cell(rec.title)}** (~{rec.impact:,.1f} conversions/week) — {rec.reason}")
        if len(recs) > top_recommendations:
            lines.append(f"\n…and {len(recs) - top_recommendations} more with smaller impact.")
    else:
        lines.append("Nothing stands out: no drop-off, slow step, segment gap or looping path worth acting on.")
    lines += ["", "## Funnel", "", f"![funnel]({chart or funnel_chart(funnel)})", "", *_funnel_table(funnel)]
    lines += _segment_table(funnel)
    lines += [f"- {n}" for n in funnel.notes]
    if paths is not None:
        lines += ["", *_paths_section(paths, top_paths)]
    if removal is not None:
        lines += ["", *_removal_section(removal)]
    quality = _quarantine_section(funnel.quarantined)
    if quality:
        lines += ["", *quality]
    return "\n".join(lines)
