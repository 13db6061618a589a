"""PUXT accessibility: comparing scans, the per-page table, the trend and the markdown report.

Most tests build PageScans by hand; one scans pages served from tmp_path twice, changing them in between.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from framework2.sample.pages import PAGES_DIR, serve_pages
from framework2.tasks.accessibility.compare import TREND_COLUMNS, compare, summarise, trend
from framework2.tasks.accessibility.report import accessibility_markdown, trend_chart
from framework2.tasks.accessibility.scan import PageScan, Violation, scan_pages

T0 = datetime(2025, 5, 1, 6, tzinfo=UTC)


def violation(rule_id: str, nodes: int = 1, impact: str = "serious", target: str = "img") -> Violation:
    return Violation(
        rule_id=rule_id,
        impact=impact,
        description=f"{rule_id} description",
        help=f"Fix {rule_id}",
        help_url=f"https://dequeuniversity.com/rules/axe/4.11/{rule_id}",
        wcag_tags=("wcag2a",),
        nodes=nodes,
        targets=(target,) * min(nodes, 5),
    )


def ok(url: str, *violations: Violation, at: datetime = T0, level: str = "AA") -> PageScan:
    return PageScan(url, "ok", level, at, 200, None, "4.11.0", tuple(violations), passes=10)  # type: ignore[arg-type]


def failed(url: str, reason: str = "connection refused (net::ERR_CONNECTION_REFUSED)", at: datetime = T0) -> PageScan:
    return PageScan(url, "failed", "AA", at, None, reason)


# --- compare -------------------------------------------------------------------------------------------------------


def test_new_fixed_and_unchanged_are_keyed_by_url_and_rule_with_node_counts() -> None:
    before = [ok("/a", violation("label", 2), violation("image-alt", 3), violation("link-name", 1), violation("list"))]
    now = [ok("/a", violation("label", 2), violation("image-alt", 1), violation("link-name", 4), violation("region"))]
    result = compare(now, before)
    [page] = result.pages
    assert page.state == "compared" and page.regression and result.regressed
    assert [(c.rule_id, c.nodes_before, c.nodes_now) for c in page.new] == [("link-name", 1, 4), ("region", 0, 1)]
    assert [(c.rule_id, c.delta) for c in page.fixed] == [("image-alt", -2), ("list", -1)]
    assert [c.rule_id for c in page.unchanged] == ["label"]
    assert result.regressions == [page]
    assert {(r["rule_id"], r["change"]) for r in result.rows()} == {
        ("link-name", "new"),
        ("region", "new"),
        ("image-alt", "fixed"),
        ("list", "fixed"),
        ("label", "unchanged"),
    }


def test_only_fixes_is_not_a_regression() -> None:
    result = compare([ok("/a")], [ok("/a", violation("image-alt"))])
    assert not result.regressed and [c.rule_id for c in result.fixed] == ["image-alt"] and result.new == []


def test_a_page_that_fails_now_could_not_be_scanned_and_is_neither_regression_nor_fixed() -> None:
    result = compare([failed("/a"), failed("/b")], [ok("/a", violation("label")), failed("/b")])
    a, b = result.pages
    assert (a.state, a.regression, a.new, a.fixed) == ("could not be scanned", False, (), ())
    assert b.state == "failed"
    assert result.could_not_scan == [a] and not result.regressed and result.fixed == []


def test_pages_without_a_comparable_previous_scan_are_not_diffed() -> None:
    previous = [failed("/recovered"), ok("/level", at=T0, level="A"), ok("/dropped", violation("label"))]
    current = [
        ok("/recovered", violation("image-alt")),
        ok("/level", violation("color-contrast")),
        ok("/first", violation("label")),
    ]
    result = compare(current, previous)
    states = {p.url: p.state for p in result.pages}
    assert states == {
        "/recovered": "recovered",
        "/level": "level changed",
        "/first": "first scan",
        "/dropped": "not scanned now",
    }
    assert result.new == [] and result.fixed == [] and not result.regressed and result.has_baseline


def test_no_previous_scan_means_a_first_scan_with_nothing_new() -> None:
    result = compare([ok("/a", violation("label"))], None)
    assert not result.has_baseline and result.pages[0].state == "first scan" and result.new == []


def test_the_latest_scan_of_a_repeated_url_counts() -> None:
    later = T0 + timedelta(minutes=5)
    result = compare([ok("/a", violation("label"), at=later), failed("/a")], [ok("/a")])
    assert result.pages[0].state == "compared" and [c.rule_id for c in result.new] == ["label"]


# --- summarise and trend -------------------------------------------------------------------------------------------


def test_summarise_gives_every_page_a_row() -> None:
    rows = summarise([ok("/clean"), ok("/bad", violation("label", 2, "critical"), violation("list")), failed("/x")])
    assert [(r["url"], r["status"], r["rule_id"], r["impact"], r["nodes"]) for r in rows] == [
        ("/clean", "ok", None, None, 0),
        ("/bad", "ok", "label", "critical", 2),
        ("/bad", "ok", "list", "serious", 1),
        ("/x", "failed", None, None, None),
    ]
    assert rows[-1]["error"].startswith("connection refused")


def test_trend_counts_pages_and_violations_by_impact_per_scan() -> None:
    t1, t2 = T0 + timedelta(days=1), T0 + timedelta(days=2)
    history = [
        (t2, [ok("/a", violation("label", 3, "critical"), violation("region", 1, "moderate")), failed("/b")]),
        (T0, [ok("/a", violation("label", 1, "critical")), ok("/b", violation("list", 2, "minor"))]),
        (t1, [ok("/a", violation("label", 1, "critical")), ok("/b")]),
    ]
    frame = trend(history)
    assert list(frame.columns) == TREND_COLUMNS
    assert list(frame["scanned_at"]) == [T0, t1, t2]  # oldest first
    assert frame[["pages_ok", "pages_failed", "violations", "elements"]].values.tolist() == [
        [2, 0, 2, 3],
        [2, 0, 1, 1],
        [1, 1, 2, 4],
    ]
    last = frame.iloc[-1]
    assert (last["critical"], last["serious"], last["moderate"], last["minor"]) == (1, 0, 1, 0)
    assert pd.isna(frame["new"].iloc[0]) and frame["fixed"].tolist()[1:] == [1, 0]
    assert frame["new"].tolist()[1:] == [0, 2]  # label got more nodes, region appeared
    assert trend([]).empty and list(trend([]).columns) == TREND_COLUMNS


# --- report --------------------------------------------------------------------------------------------------------


def test_markdown_has_headline_pages_new_violations_failures_and_trend() -> None:
    previous = [ok("/checkout", violation("label")), ok("/signup"), ok("/gone")]
    current = [
        ok("/checkout", violation("label"), violation("image-alt", 2, "critical", 'img[src$="a|b.png"]')),
        ok("/signup"),
        failed("/gone", "HTTP 500 Internal Server Error"),
    ]
    comparison = compare(current, previous)
    history = [(T0 - timedelta(days=1), previous), (T0, current)]
    frame = trend(history)
    chart = trend_chart(frame)
    assert chart is not None and chart.startswith("data:image/png;base64,")
    text = accessibility_markdown(current, comparison, frame, chart=chart)

    assert "2 violations (3 elements) on 1 of 2 pages scanned at WCAG level AA; 1 new since the last scan" in text
    assert "⚠ Regression on 1 page: /checkout" in text
    assert "| /checkout | ok | ⚠ 1 new | 1 | 1 | 0 | 0 | 3 |" in text
    assert "| /gone | **failed** | could not be scanned | — |" in text
    new_row = next(line for line in text.splitlines() if "[image-alt](" in line and "0 → 2" in line)
    assert "https://dequeuniversity.com/rules/axe/4.11/image-alt" in new_row
    assert '`img[src$="a\\|b.png"]`' in new_row  # the pipe is escaped for the table
    assert "| /gone | HTTP 500 Internal Server Error | — | was ok |" in text
    assert "## Accessibility trend" in text and "| scanned at | pages ok | failed | violations |" in text
    assert f"![accessibility violations over time]({chart})" in text


def test_markdown_for_a_first_scan_and_for_no_pages() -> None:
    lang = replace(violation("html-has-lang"), help="<html> element must have a lang attribute")
    current = [ok("/a", lang)]
    text = accessibility_markdown(current, compare(current, None), trend([(T0, current)]))
    assert "first scan, nothing to compare with yet" in text and "none is called new" in text
    assert "| &lt;html&gt; element must have a lang attribute |" in text  # not swallowed as a tag
    assert trend_chart(trend([(T0, current)])) is None
    empty = accessibility_markdown([], compare([], None), trend([]))
    assert "No pages were scanned" in empty and "No scans yet." in empty


# --- with Chromium -------------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_a_regression_and_a_fix_between_two_scans_are_detected(tmp_path: Path) -> None:
    for name in ("index.html", "checkout.html", "signup.html"):
        shutil.copy(PAGES_DIR / name, tmp_path / name)
    with serve_pages(tmp_path) as base:
        urls = [f"{base}/index.html", f"{base}/checkout.html", f"{base}/signup.html"]
        first = scan_pages(urls)

        # Someone adds an image without alt text to the clean page, labels the coupon field, and the signup page
        # disappears (404).
        index = tmp_path / "index.html"
        index.write_text(index.read_text().replace("</main>", '<img src="promo.png" width="10" height="10">\n</main>'))
        checkout = tmp_path / "checkout.html"
        checkout.write_text(checkout.read_text().replace('<input name="coupon"', '<input aria-label="Coupon"'))
        (tmp_path / "signup.html").unlink()
        second = scan_pages(urls)

    result = compare(second, first)
    pages = {p.url.rsplit("/", 1)[1]: p for p in result.pages}
    assert pages["index.html"].regression
    assert [(c.rule_id, c.nodes_before, c.nodes_now, c.targets) for c in pages["index.html"].new] == [
        ("image-alt", 0, 1, ('img[src$="promo.png"]',))
    ]
    assert [c.rule_id for c in pages["checkout.html"].fixed] == ["label"] and not pages["checkout.html"].regression
    assert pages["signup.html"].state == "could not be scanned" and not pages["signup.html"].regression
    assert [p.url for p in result.regressions] == [urls[0]]

    text = accessibility_markdown(second, result, trend([(first[0].scanned_at, first), (second[0].scanned_at, second)]))
    assert "1 new since the last scan, 1 fixed" in text and "HTTP 404" in text
