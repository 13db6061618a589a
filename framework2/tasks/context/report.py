"""What a lead reads about a requirement change: what changed, what it touches and costs, what was decided."""

from __future__ import annotations

from typing import Any

from framework2.tasks.context.impact import Decision, ImpactReport


def impact_markdown(
    requirement: str, version: int, diff: dict[str, Any], report: ImpactReport, decision: Decision
) -> str:
    """The pces-impact artifact: what changed, what it touches and costs, and what the policy decided."""
    lines = [
        f"# {requirement} v{version}: {decision.action.replace('_', ' ')}",
        "",
        diff.get("summary", ""),
        "",
        report.explanation,
        "",
        f"- Tasks: {', '.join(report.tasks) or '—'}",
        f"- Components: {', '.join(report.components) or '—'}; services: {', '.join(report.services) or '—'}",
        f"- Effort: {report.effort_delta_days:+.1f} working days (P10-P90 {report.effort_band[0]:+.1f} to "
        f"{report.effort_band[1]:+.1f})",
        f"- Schedule: P50 {report.p50_shift_days:+.0f} d, P85 {report.p85_shift_days:+.0f} d"
        if report.p50_shift_days is not None and report.p85_shift_days is not None
        else f"- Schedule: {report.schedule_note or 'no forecast'}",
        f"- Risk: {report.risk} ({'; '.join(report.risk_reasons) or 'nothing raises it'})",
        f"- Owners: {', '.join(report.owners) or '—'}",
        "",
        "**Decision:** " + "; ".join(decision.reasons),
    ]
    return "\n".join(lines)
