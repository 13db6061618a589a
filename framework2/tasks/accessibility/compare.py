"""What changed between two accessibility scans of the same pages, a table of what each page violates, and the
trend over many scans.

Violations are keyed by ``(url, rule_id)`` and compared by node count (the number of elements failing the rule):

- **new**: the rule is violated now and was not before on that page, or it now fails on more elements;
- **fixed**: the rule was violated before and is not now, or it now fails on fewer elements (partly fixed);
- **unchanged**: same rule, same number of elements.

Counting elements rather than matching selectors keeps the comparison stable when markup shifts around (axe's
selectors change with the DOM), at the price of not noticing one element fixed while another breaks the same rule.

Only a page scanned successfully both times is compared; a new violation there is a **regression**. A page that
fails to load now but was scanned before "could not be scanned": neither a regression nor fixed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import pandas as pd

from framework2.tasks.accessibility.scan import IMPACTS, PageScan, Violation

PageState = Literal[
    "compared",  # scanned ok now and before: new/fixed/unchanged are meaningful
    "first scan",  # scanned ok now, never before (or no previous scan at all)
    "recovered",  # scanned ok now, failed before: nothing to compare against
    "level changed",  # scanned ok both times but at different WCAG levels: not comparable
    "could not be scanned",  # failed now, scanned ok before
    "failed",  # failed now, and failed or absent before
    "not scanned now",  # scanned before, not in the current list of URLs
]
TREND_COLUMNS = [
    "scanned_at",
    "pages",
    "pages_ok",
    "pages_failed",
    "violations",
    *IMPACTS,
    "elements",
    "new",
    "fixed",
]


@dataclass(frozen=True)
class ViolationChange:
    """One (url, rule) whose node count is compared between the previous and the current scan."""

    url: str
    rule_id: str
    impact: str
    help: str
    help_url: str
    nodes_before: int
    nodes_now: int
    targets: tuple[str, ...]  # example selectors: current ones, or the previous ones for a fixed rule

    @property
    def delta(self) -> int:
        """Elements failing the rule now minus before."""
        return self.nodes_now - self.nodes_before


@dataclass(frozen=True)
class PageComparison:
    """One URL's state and, when it was scanned ok both times, its new, fixed and unchanged violations."""

    url: str
    state: PageState
    current: PageScan | None
    previous: PageScan | None
    new: tuple[ViolationChange, ...] = ()
    fixed: tuple[ViolationChange, ...] = ()
    unchanged: tuple[ViolationChange, ...] = ()

    @property
    def regression(self) -> bool:
        """A new violation on a page scanned ok both times."""
        return self.state == "compared" and bool(self.new)


@dataclass(frozen=True)
class Comparison:
    """Every page of the current scan (then pages only the previous one had) compared with the previous scan."""

    pages: tuple[PageComparison, ...]
    has_baseline: bool  # False when there was no previous scan at all

    @property
    def new(self) -> list[ViolationChange]:
        """New violations on every compared page."""
        return [c for p in self.pages for c in p.new]

    @property
    def fixed(self) -> list[ViolationChange]:
        """Fixed (or partly fixed) violations on every compared page."""
        return [c for p in self.pages for c in p.fixed]

    @property
    def unchanged(self) -> list[ViolationChange]:
        """Violations with the same node count as last time."""
        return [c for p in self.pages for c in p.unchanged]

    @property
    def regressions(self) -> list[PageComparison]:
        """Pages with at least one new violation, scanned ok both times."""
        return [p for p in self.pages if p.regression]

    @property
    def regressed(self) -> bool:
        """Whether any page regressed."""
        return any(p.regression for p in self.pages)

    @property
    def could_not_scan(self) -> list[PageComparison]:
        """Pages that failed to scan now although they were scanned ok last time."""
        return [p for p in self.pages if p.state == "could not be scanned"]

    def rows(self) -> list[dict[str, Any]]:
        """One row per compared (url, rule): change is "new", "fixed" or "unchanged" (for storing or a table)."""
        rows = []
        for page in self.pages:
            for change, items in (("new", page.new), ("fixed", page.fixed), ("unchanged", page.unchanged)):
                rows += [
                    {
                        "url": c.url,
                        "rule_id": c.rule_id,
                        "impact": c.impact,
                        "change": change,
                        "nodes_before": c.nodes_before,
                        "nodes_now": c.nodes_now,
                    }
                    for c in items
                ]
        return rows


def _latest_by_url(scans: Iterable[PageScan]) -> dict[str, PageScan]:
    # A list may hold one URL twice (e.g. merged from two runs): the latest scan is the one that counts.
    latest: dict[str, PageScan] = {}
    for scan in scans:
        if scan.url not in latest or scan.scanned_at >= latest[scan.url].scanned_at:
            latest[scan.url] = scan
    return latest


def _change(url: str, rule_id: str, now: Violation | None, before: Violation | None) -> ViolationChange:
    ref = now or before
    assert ref is not None  # a key comes from at least one side
    return ViolationChange(
        url=url,
        rule_id=rule_id,
        impact=ref.impact,
        help=ref.help,
        help_url=ref.help_url,
        nodes_before=before.nodes if before else 0,
        nodes_now=now.nodes if now else 0,
        targets=ref.targets,
    )


def compare_page(current: PageScan | None, previous: PageScan | None) -> PageComparison:
    """Compare one URL's current scan with its previous one (either may be missing, not both)."""
    ref = current if current is not None else previous
    if ref is None:
        raise ValueError("compare_page needs at least one scan")
    url = ref.url
    if current is None:
        return PageComparison(url, "not scanned now", None, previous)
    if not current.ok:
        state: PageState = "could not be scanned" if previous is not None and previous.ok else "failed"
        return PageComparison(url, state, current, previous)
    if previous is None:
        return PageComparison(url, "first scan", current, None)
    if not previous.ok:
        return PageComparison(url, "recovered", current, previous)
    if previous.level != current.level:
        return PageComparison(url, "level changed", current, previous)
    now = {v.rule_id: v for v in current.violations}
    before = {v.rule_id: v for v in previous.violations}
    new, fixed, unchanged = [], [], []
    for rule_id in sorted(now.keys() | before.keys()):
        change = _change(url, rule_id, now.get(rule_id), before.get(rule_id))
        if change.delta > 0:
            new.append(change)
        elif change.delta < 0:
            fixed.append(change)
        else:
            unchanged.append(change)
    return PageComparison(url, "compared", current, previous, tuple(new), tuple(fixed), tuple(unchanged))


def compare(current: Sequence[PageScan], previous: Sequence[PageScan] | None) -> Comparison:
    """Compare the current scans with the previous ones, page by page (see the module docstring for the rules).

    ``previous=None`` means there has been no scan before: every page is a "first scan", nothing is new.
    """
    now = _latest_by_url(current)
    before = _latest_by_url(previous or ())
    pages = [compare_page(scan, before.get(url)) for url, scan in now.items()]
    pages += [compare_page(None, scan) for url, scan in before.items() if url not in now]
    return Comparison(pages=tuple(pages), has_baseline=previous is not None)


def summarise(scans: Sequence[PageScan]) -> list[dict[str, Any]]:
    """Table rows of what each page violates: one row per (page, rule) with its impact and element count.

    Every page gets at least one row so that absence never reads as "clean": a clean page has one row with
    ``rule_id`` None and 0 nodes, a failed page one row with status "failed", ``rule_id`` None and the error.
    """
    rows: list[dict[str, Any]] = []
    for scan in scans:
        base = {"url": scan.url, "status": scan.status, "level": scan.level, "scanned_at": scan.scanned_at}
        if not scan.ok:
            rows.append(base | {"rule_id": None, "impact": None, "nodes": None, "help_url": None, "error": scan.error})
            continue
        if not scan.violations:
            rows.append(base | {"rule_id": None, "impact": None, "nodes": 0, "help_url": None, "error": None})
        rows += [
            base | {"rule_id": v.rule_id, "impact": v.impact, "nodes": v.nodes, "help_url": v.help_url, "error": None}
            for v in scan.violations
        ]
    return rows


def trend(history: Sequence[tuple[datetime, Sequence[PageScan]]]) -> pd.DataFrame:
    """One row per scan time, oldest first: pages scanned ok and failed, violated rules in total and per impact,
    failing elements, and new/fixed violations against the scan before (``<NA>`` for the first)."""
    rows = []
    previous: Sequence[PageScan] | None = None
    for scanned_at, scans in sorted(history, key=lambda item: item[0]):
        ok = [s for s in scans if s.ok]
        impacts = dict.fromkeys(IMPACTS, 0)
        for scan in ok:
            for impact, count in scan.impact_counts().items():
                if impact in impacts:
                    impacts[impact] += count
        diff = compare(scans, previous) if previous is not None else None
        rows.append(
            {
                "scanned_at": scanned_at,
                "pages": len(scans),
                "pages_ok": len(ok),
                "pages_failed": len(scans) - len(ok),
                "violations": sum(len(s.violations) for s in ok),
                **impacts,
                "elements": sum(s.element_count for s in ok),
                "new": len(diff.new) if diff else pd.NA,
                "fixed": len(diff.fixed) if diff else pd.NA,
            }
        )
        previous = scans
    frame = pd.DataFrame(rows, columns=TREND_COLUMNS)
    return frame.astype({c: "Int64" for c in TREND_COLUMNS if c != "scanned_at"})
