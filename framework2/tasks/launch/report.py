"""What a person reads about a release: the timeline, the analysed metrics against their thresholds, the plan."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.dates as mdates
import yaml

from framework2.tasks.charts import figure_to_data_uri, plt
from framework2.tasks.launch.analysis import AnalysisResult, parse_condition
from framework2.tasks.launch.state import TimelineEntry

PHASE_MARK = {"successful": "✅", "failed": "❌", "inconclusive": "❔", "no_data": "∅", "error": "⚠️"}


def timeline_markdown(
    title: str,
    entries: Sequence[TimelineEntry],
    analyses: dict[str, AnalysisResult],
    decision: str,
    chart: str | None = None,
) -> str:
    """The release timeline: steps with the colour carrying traffic, then every measurement against its condition."""
    lines = [
        f"# {title}",
        "",
        f"**Decision:** {decision}",
        "",
        "| time (UTC) | step | traffic on | detail |",
        "|---|---|---|---|",
    ]
    for e in entries:
        detail = e.detail.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {e.at:%H:%M:%S} | {e.step} | {e.traffic or '—'} | {detail} |")
    for name, result in analyses.items():
        lines += [
            "",
            f"## {name} analysis: {result.phase}",
            "",
            result.reason,
            "",
            "| time | metric | value | condition | phase | note |",
            "|---|---|---:|---|---|---|",
        ]
        for row in result.table_rows():
            mark = PHASE_MARK.get(row["phase"], "")
            note = row["note"].replace("|", "\\|")
            lines.append(
                f"| {row['time'][11:19]} | {row['metric']} | {row['value']} | {row['condition']} | "
                f"{mark} {row['phase']} | {note} |"
            )
    if chart:
        lines += ["", "## Analysed metrics", "", f"![metrics against their thresholds]({chart})"]
    return "\n".join(lines) + "\n"


def _thresholds(condition: str | None) -> list[float]:
    if not condition:
        return []
    return [c.threshold for group in parse_condition(condition).groups for c in group]


def metrics_chart(analyses: dict[str, AnalysisResult], specs: dict[str, tuple[str | None, str | None]]) -> str | None:
    """One panel per metric: measured values over time, the success threshold (green) and failure one (red).

    ``specs`` maps a metric name to its (success, failure) conditions. None when nothing was measured.
    """
    series: dict[str, list] = {}
    for result in analyses.values():
        for m in result.measurements:
            series.setdefault(m.metric, []).append(m)
    if not series:
        return None
    fig, axes = plt.subplots(len(series), 1, figsize=(8, 2.4 * len(series)), squeeze=False)
    for ax, (name, points) in zip(axes[:, 0], series.items(), strict=True):
        good = [(m.at, m.value) for m in points if m.value is not None]
        if good:
            ax.plot([t for t, _ in good], [v for _, v in good], marker="o", color="#1f77b4", label="measured")
        for m in points:
            if m.value is None:  # errors and no-data are shown where they happened, not silently skipped
                ax.axvline(m.at, color="#999999", linestyle=":", linewidth=1, label=f"{m.phase.replace('_', ' ')}")
        success, failure = specs.get(name, (None, None))
        for value in _thresholds(success):
            ax.axhline(value, color="#2ca02c", linestyle="--", linewidth=1, label=f"success {success}")
        for value in _thresholds(failure):
            ax.axhline(value, color="#d62728", linestyle="--", linewidth=1, label=f"failure {failure}")
        bad = [(m.at, m.value) for m in points if m.phase == "failed" and m.value is not None]
        if bad:
            ax.scatter([t for t, _ in bad], [v for _, v in bad], color="#d62728", zorder=3, label="failed")
        ax.set_title(name, fontsize=10)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        ax.legend(unique.values(), unique.keys(), fontsize=7, loc="best")
    fig.tight_layout()
    return figure_to_data_uri(fig)


def plan_markdown(title: str, steps: Sequence[str], manifests: Sequence[dict], notes: Sequence[str]) -> str:
    """The release plan: numbered steps, the notes that matter, and the manifests as YAML."""
    lines = [f"# {title}", ""]
    lines += [f"> {note}" for note in notes]
    lines += ["", "## Steps", ""] + [f"{i}. {step}" for i, step in enumerate(steps, 1)]
    lines += ["", "## Manifests", "", "```yaml", yaml.safe_dump_all(manifests, sort_keys=False).rstrip(), "```"]
    return "\n".join(lines) + "\n"
