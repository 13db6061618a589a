"""What a PUXT owner reads after an accessibility scan: how many violations on which pages, what is new since the
last scan (with where to look and how to fix it), which pages could not be scanned and why, and the trend."""

from __future__ import annotations

import html
from collections.abc import Sequence

import pandas as pd

from framework2.tasks.accessibility.compare import Comparison, PageComparison
from framework2.tasks.accessibility.scan import IMPACTS, PageScan
from framework2.tasks.charts import figure_to_data_uri, plt

# Newest rows of the trend table; the chart shows the whole history.
TREND_ROWS = 20
IMPACT_COLOURS = {"critical": "#b2182b", "serious": "#ef8a62", "moderate": "#fddbc7", "minor": "#999999"}


def _cell(text: object) -> str:
    # A pipe inside a cell would end it, even inside backticks.
    return str(text).replace("|", "\\|").replace("\n", " ")


def _text(text: object) -> str:
    # axe's help texts name elements ("<html> element must ..."): escaped, or markdown renders them as tags.
    return html.escape(_cell(text), quote=False)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _level(scans: Sequence[PageScan]) -> str:
    return "/".join(sorted({s.level for s in scans})) or "AA"


def _change_text(page: PageComparison) -> str:
    if page.state == "failed":
        return "failed last time too" if page.previous is not None else "not scanned before"
    if page.state != "compared":
        return page.state
    parts = []
    if page.new:
        parts.append(f"⚠ {len(page.new)} new")
    if page.fixed:
        parts.append(f"{len(page.fixed)} fixed")
    return ", ".join(parts) or "no change"


def _example(targets: Sequence[str]) -> str:
    return f"`{_cell(targets[0])}`" if targets else "—"


def _rule_link(rule_id: str, help_url: str) -> str:
    return f"[{rule_id}]({help_url})" if help_url else rule_id


def _headline(current: Sequence[PageScan], comparison: Comparison) -> list[str]:
    ok = [s for s in current if s.ok]
    failed = [s for s in current if not s.ok]
    violations = sum(len(s.violations) for s in ok)
    elements = sum(s.element_count for s in ok)
    with_violations = sum(1 for s in ok if s.violations)
    if comparison.has_baseline:
        since = f"{len(comparison.new)} new since the last scan"
        if comparison.fixed:
            since += f", {len(comparison.fixed)} fixed"
    else:
        since = "first scan, nothing to compare with yet"
    lines = [
        f"**{_plural(violations, 'violation')} ({_plural(elements, 'element')}) on {with_violations} of "
        f"{_plural(len(ok), 'page')} scanned at WCAG level {_level(current)}; {since}.**",
        "",
    ]
    if comparison.regressions:
        pages = ", ".join(p.url for p in comparison.regressions)
        lines.append(f"- ⚠ Regression on {_plural(len(comparison.regressions), 'page')}: {pages}")
    if failed:
        lines.append(
            f"- {_plural(len(failed), 'page')} could not be scanned (see below); their violations are unknown, "
            "not zero."
        )
    versions = {
        (p.previous.axe_version, p.current.axe_version)
        for p in comparison.pages
        if p.state == "compared" and p.previous and p.current and p.previous.axe_version != p.current.axe_version
    }
    for before, now in sorted(versions, key=str):
        lines.append(f"- axe-core changed from {before} to {now} since the last scan: some changes may be new rules.")
    return lines


def _pages_table(current: Sequence[PageScan], comparison: Comparison) -> list[str]:
    by_url = {p.url: p for p in comparison.pages}
    lines = [
        "| page | status | since last scan | " + " | ".join(IMPACTS) + " | elements |",
        "|---|---|---|" + "---:|" * (len(IMPACTS) + 1),
    ]
    for scan in current:
        page = by_url.get(scan.url)
        change = _change_text(page) if page else "—"
        if scan.ok:
            counts = scan.impact_counts()
            cells = [str(counts[i]) for i in IMPACTS] + [str(scan.element_count)]
            status = "ok"
        else:
            cells = ["—"] * (len(IMPACTS) + 1)
            status = "**failed**"
        lines.append(f"| {_cell(scan.url)} | {status} | {change} | " + " | ".join(cells) + " |")
    return lines


def _new_section(comparison: Comparison) -> list[str]:
    lines = ["## New since the last scan", ""]
    if not comparison.has_baseline:
        return [*lines, "No previous scan: every violation below is reported, none is called new."]
    if not comparison.new:
        return [*lines, "No new violations on pages scanned both times."]
    lines += [
        "| page | rule | impact | elements (before → now) | example | how to fix |",
        "|---|---|---|---:|---|---|",
    ]
    for c in comparison.new:
        lines.append(
            f"| {_cell(c.url)} | {_rule_link(c.rule_id, c.help_url)} | {c.impact} | {c.nodes_before} → {c.nodes_now} "
            f"| {_example(c.targets)} | {_text(c.help)} |"
        )
    if comparison.fixed:
        lines += ["", "**Fixed** (or fewer elements failing):", ""]
        lines += [
            f"- {c.url}: {_rule_link(c.rule_id, c.help_url)} ({c.nodes_before} → {c.nodes_now} elements)"
            for c in comparison.fixed
        ]
    return lines


def _violations_section(current: Sequence[PageScan]) -> list[str]:
    rows = [(s, v) for s in current if s.ok for v in s.violations]
    lines = ["## All violations", ""]
    if not rows:
        return [*lines, "None on the pages that could be scanned."]
    order = {impact: i for i, impact in enumerate(IMPACTS)}
    rows.sort(key=lambda sv: (order.get(sv[1].impact, len(IMPACTS)), sv[0].url, sv[1].rule_id))
    lines += ["| page | rule | impact | elements | example | how to fix |", "|---|---|---|---:|---|---|"]
    for scan, v in rows:
        lines.append(
            f"| {_cell(scan.url)} | {_rule_link(v.rule_id, v.help_url)} | {v.impact} | {v.nodes} "
            f"| {_example(v.targets)} | {_text(v.help)} |"
        )
    return lines


def _failed_section(current: Sequence[PageScan], comparison: Comparison) -> list[str]:
    failed = [s for s in current if not s.ok]
    if not failed:
        return []
    state = {p.url: p.state for p in comparison.pages}
    lines = ["## Pages that could not be scanned", "", "| page | reason | HTTP | last scan |", "|---|---|---:|---|"]
    for scan in failed:
        before = "was ok" if state.get(scan.url) == "could not be scanned" else "—"
        http = str(scan.http_status) if scan.http_status is not None else "—"
        lines.append(f"| {_cell(scan.url)} | {_text(scan.error or 'unknown')} | {http} | {before} |")
    return lines


def _trend_section(trend_df: pd.DataFrame, chart: str | None) -> list[str]:
    lines = ["## Accessibility trend", ""]
    if trend_df.empty:
        return [*lines, "No scans yet."]
    shown = trend_df.sort_values("scanned_at").tail(TREND_ROWS)
    if len(trend_df) > len(shown):
        lines += [f"Newest {len(shown)} of {len(trend_df)} scans.", ""]
    lines += [
        "| scanned at | pages ok | failed | violations | " + " | ".join(IMPACTS) + " | elements | new | fixed |",
        "|---|" + "---:|" * (len(IMPACTS) + 6),
    ]
    for row in shown.itertuples(index=False):
        when = pd.Timestamp(row.scanned_at).strftime("%Y-%m-%d %H:%M")
        cells = [row.pages_ok, row.pages_failed, row.violations, *(getattr(row, i) for i in IMPACTS), row.elements]
        cells += ["—" if pd.isna(row.new) else row.new, "—" if pd.isna(row.fixed) else row.fixed]
        lines.append(f"| {when} | " + " | ".join(str(c) for c in cells) + " |")
    if chart:
        lines += ["", f"![accessibility violations over time]({chart})"]
    return lines


def accessibility_markdown(
    current: Sequence[PageScan], comparison: Comparison, trend_df: pd.DataFrame, *, chart: str | None = None
) -> str:
    """The puxt-accessibility artifact: headline, per-page table, new violations with how to fix them, all
    violations, pages that could not be scanned and why, and the trend table (with ``chart`` if given)."""
    lines = ["# PUXT accessibility", ""]
    if not current:
        lines += ["No pages were scanned: configure the URLs to monitor.", ""]
    else:
        lines += _headline(current, comparison)
        lines += ["", "## Pages", "", *_pages_table(current, comparison)]
        lines += ["", *_new_section(comparison)]
        lines += ["", *_violations_section(current)]
        failed = _failed_section(current, comparison)
        lines += ["", *failed] if failed else []
    lines += ["", *_trend_section(trend_df, chart)]
    return "\n".join(lines).rstrip() + "\n"


def trend_chart(trend_df: pd.DataFrame) -> str | None:
    """Violated rules per impact over time, stacked, with failed pages marked; None with fewer than two scans."""
    if len(trend_df) < 2:
        return None
    data = trend_df.sort_values("scanned_at")
    times = pd.to_datetime(data["scanned_at"])
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.stackplot(
        times,
        *(data[i].astype(float).to_numpy() for i in IMPACTS),
        labels=list(IMPACTS),
        colors=[IMPACT_COLOURS[i] for i in IMPACTS],
        alpha=0.9,
    )
    failed = data["pages_failed"].astype(float).to_numpy() > 0
    if failed.any():
        # Failed pages hide their violations: mark those scans so a dip is not read as progress.
        ax.scatter(times[failed], [0] * int(failed.sum()), marker="x", color="#252525", label="pages failed", zorder=3)
    ax.set_ylabel("violated rules")
    ax.set_title("Accessibility violations over time", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", ncol=5)
    fig.autofmt_xdate()
    fig.tight_layout()
    return figure_to_data_uri(fig)
