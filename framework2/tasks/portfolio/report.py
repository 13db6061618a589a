"""What a portfolio lead reads: every project's health, its trend and its top reason, worst first; and who
works where in the coming weeks, what stays short, and which single move would help most."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from framework2.tasks.charts import figure_to_data_uri, plt
from framework2.tasks.portfolio.allocation import Allocation
from framework2.tasks.portfolio.dependencies import BlockedChain, GraphProblem, UpstreamRisk
from framework2.tasks.portfolio.health import HealthScore
from framework2.tasks.portfolio.slip_risk import SlipModel, SlipPrediction


def trend_arrow(score: float, previous: float | None) -> str:
    """↑/↓ with the change when the score moved by a point or more since the previous run, → otherwise."""
    if previous is None:
        return "new"
    if score >= previous + 1:
        return f"↑ {score - previous:+.0f}"
    if score <= previous - 1:
        return f"↓ {score - previous:+.0f}"
    return "→"


def portfolio_markdown(
    scores: Sequence[HealthScore],
    portfolio: HealthScore,
    previous: Mapping[str, float],
    threshold: float,
    *,
    portfolio_key: str = "portfolio",
) -> str:
    """The ppos-portfolio artifact: every project's health, trend and top reason, worst first, then the parts."""
    ordered = sorted(scores, key=lambda s: s.score)
    rows = [
        f"| {s.name} | {s.score:.0f}{' ⚠' if s.score < threshold else ''} "
        f"| {trend_arrow(s.score, previous.get(s.project))} | {s.top_reason()} |"
        for s in ordered
    ]
    overall = trend_arrow(portfolio.score, previous.get(portfolio_key))
    lines = [
        "# PPOS portfolio",
        "",
        f"**Portfolio health {portfolio.score:.0f}** ({overall}) over "
        f"{len(scores)} projects, weighted by open work; threshold {threshold:g} (⚠ below it). "
        f"Biggest loss across the portfolio: {portfolio.top_reason()}.",
        "",
        "| project | health | trend | top reason |",
        "|---|---:|---|---|",
        *(rows or ["| — | — | — | no projects yet: run PPMS (`ppms-sync`) first |"]),
        "",
        "## Components",
        "",
        "| project | " + " | ".join(c.label for c in (ordered[0].components if ordered else [])) + " |",
        "|---|" + "---:|" * (len(ordered[0].components) if ordered else 0),
    ]
    for s in ordered:
        cells = ["n/a" if c.score is None else f"{c.score:.0f} (-{c.contribution:.0f})" for c in s.components]
        lines.append(f"| {s.name} | " + " | ".join(cells) + " |")
    lines += ["", "Each cell: component score (points it takes off the health). n/a: does not apply, weight rescaled."]
    return "\n".join(lines)


def allocation_markdown(result: Allocation, moves: Sequence[Mapping[str, Any]], moves_note: str = "") -> str:
    """The allocation section: who works where each week, what stays short, and the best single moves."""
    lines = ["## Allocation", ""]
    lines += [f"- {sentence}" for sentence in result.explanation]
    if result.plan.empty:
        return "\n".join([*lines, "", "Nothing to allocate."])
    weeks = sorted(result.plan["week"].unique())
    lines += ["", "| person | " + " | ".join(f"week of {w}" for w in weeks) + " |", "|---|" + "---|" * len(weeks)]
    for person, rows in result.plan.groupby("person", sort=True):
        cells = []
        for week in weeks:
            here = rows[rows["week"] == week].sort_values("days", ascending=False)
            cells.append(", ".join(f"{r.project} {r.days:.1f} d" for r in here.itertuples()) or "—")
        lines.append(f"| {person} | " + " | ".join(cells) + " |")
    if not result.shortages.empty:
        lines += ["", "**Shortages** (demand no one with the skill has time for):", ""]
        lines += ["| skill | week | short (days) | projects |", "|---|---|---:|---|"]
        for r in result.shortages.head(15).itertuples():
            lines.append(f"| {r.skill} | {r.week} | {r.short_days:.1f} | {', '.join(r.projects)} |")
    lines += ["", "**What moving one person would change:**", ""]
    lines += [f"- {m['sentence']}" for m in moves] or [f"- {moves_note or 'no single move improves coverage'}"]
    return "\n".join(lines)


def dependency_markdown(
    problems: Sequence[GraphProblem],
    chains: Sequence[BlockedChain],
    critical: Sequence[str],
    critical_days: float,
    upstream: Mapping[str, UpstreamRisk],
    *,
    top: int = 15,
) -> str:
    """The dependency view: what is wrong with the graph, the longest blocked chains, the critical chain
    across projects, and the projects whose risk comes from upstream."""
    lines = ["## Dependencies", ""]
    lines += [f"- ⚠ {p.message}" for p in problems]
    if critical:
        lines.append(
            f"- Critical chain across projects: {len(critical)} tasks, about {critical_days:.0f} working days: "
            + " → ".join(critical[:12])
            + (" → …" if len(critical) > 12 else "")
        )
    inherited = sorted((u for u in upstream.values() if u.via), key=lambda u: -u.inherited)
    lines += [f"- {u.explanation}" for u in inherited[:top]]
    if chains:
        lines += ["", f"**Blocked chains** (longest first, {min(top, len(chains))} of {len(chains)}):", ""]
        lines += ["| task | waits on (transitively) | why |", "|---|---|---|"]
        for chain in chains[:top]:
            lines.append(f"| {chain.task} | {len(chain.chain) - 1} | {chain.explanation} |")
    elif not problems:
        lines.append("- Nothing is blocked by open work.")
    return "\n".join(lines)


def risk_markdown(
    model: SlipModel, predictions: Sequence[SlipPrediction], names: Mapping[str, str], target_accuracy: float = 95
) -> str:
    """The slip-risk section: each project's chance of slipping, its drivers and the mitigations they call for,
    riskiest first, with how the probabilities were made and how reliable they have been."""
    lines = [f"## Slip risk (more than {model.slip_days} days late)", "", model.reason + "."]
    if model.calibration_error is not None:
        accuracy = 100 * (1 - model.calibration_error)
        verdict = "meets" if accuracy >= target_accuracy else "misses"
        lines.append(
            f"Calibration accuracy 100 x (1 - expected calibration error) = {accuracy:.0f} %: {verdict} the "
            f"target of {target_accuracy:g} % (`[ppos] predictionAccuracy`)."
        )
    lines.append("")
    if not predictions:
        return "\n".join([*lines, "No project has open work."])
    lines += ["| project | P(slip) | drivers | what to do |", "|---|---:|---|---|"]
    for p in sorted(predictions, key=lambda p: -p.probability):
        drivers = "; ".join(d.text for d in p.drivers) or "—"
        todo = "; ".join(m.suggestion for m in p.mitigations) or "—"
        lines.append(f"| {names.get(p.project, p.project)} | {p.probability:.0%} | {drivers} | {todo} |")
    return "\n".join(lines)


def health_chart(
    series: Mapping[str, Sequence[tuple[datetime, float]]], names: Mapping[str, str], threshold: float
) -> str | None:
    """Each project's health over time (and the portfolio's, thicker) against the threshold; None without
    at least two points anywhere."""
    if not any(len(points) > 1 for points in series.values()):
        return None
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for key, points in sorted(series.items()):
        if not points:
            continue
        times, scores = zip(*points, strict=True)
        portfolio = key == "portfolio"
        ax.plot(
            times,
            scores,
            linewidth=2.4 if portfolio else 1.2,
            color="#252525" if portfolio else None,
            label=names.get(key, key),
        )
    ax.axhline(threshold, color="#d62728", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    ax.set_ylim(0, 102)
    ax.set_ylabel("health")
    ax.set_title("Project health over time", fontsize=10)
    ax.legend(fontsize=7, loc="lower left", ncol=2)
    fig.autofmt_xdate()
    fig.tight_layout()
    return figure_to_data_uri(fig)
