"""PUXT accessibility scans: axe-core in Debian's Chromium against sample pages served on loopback.

The browser tests share scans per module (starting Chromium costs about a second); the rest runs without one.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from framework2.errors import ConfigError, DataError
from framework2.sample.pages import PAGES_DIR, SAMPLE_VIOLATIONS, SAMPLE_VIOLATIONS_LEVEL_A, serve_pages
from framework2.tasks.accessibility import scan as scan_module
from framework2.tasks.accessibility.scan import (
    MAX_TARGETS,
    PageScan,
    describe_load_error,
    find_axe,
    find_chromium,
    level_tags,
    page_scan_from_axe,
    scan_pages,
    violations_from_axe,
)
from tests.http_fixtures import Reply


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- without a browser ---------------------------------------------------------------------------------------------


def test_level_tags_match_the_installed_axe() -> None:
    # Every WCAG A/AA tag the installed axe uses must be asked for, and nothing it does not know.
    known = set(re.findall(r"\"(wcag2\d?a{1,2})\"", find_axe().read_text(encoding="utf-8")))
    assert set(level_tags("AA")) == known
    assert set(level_tags("A")) == {t for t in known if not t.endswith("aa")}
    assert set(level_tags("A")) < set(level_tags("AA"))


def test_unknown_level_and_bad_arguments_are_refused_before_any_browser_starts() -> None:
    with pytest.raises(DataError, match="unknown WCAG level"):
        level_tags("AAA")
    with pytest.raises(DataError, match="unknown WCAG level"):
        scan_pages(["http://127.0.0.1:1/"], level="AAA")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="timeout"):
        scan_pages(["http://127.0.0.1:1/"], timeout_s=0)
    with pytest.raises(DataError, match="list of URLs"):
        scan_pages("http://127.0.0.1:1/")  # type: ignore[arg-type]
    assert scan_pages([]) == []


def test_missing_axe_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FRAMEWORK2_AXE_PATH", str(tmp_path / "axe.min.js"))
    with pytest.raises(ConfigError, match="FRAMEWORK2_AXE_PATH") as err:
        find_axe()
    assert "scripts/ensure-chromium.sh" in err.value.hint
    with pytest.raises(ConfigError):  # before starting a browser
        scan_pages(["http://127.0.0.1:1/"])

    # Nothing configured and nothing unpacked in the environment.
    monkeypatch.delenv("FRAMEWORK2_AXE_PATH")
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    monkeypatch.setattr(scan_module, "_repo_root", lambda: tmp_path / "repo")
    with pytest.raises(ConfigError, match="axe-core not found") as err:
        find_axe()
    assert "scripts/ensure-chromium.sh" in err.value.hint

    # The override is honoured when it exists.
    copy = tmp_path / "my-axe.js"
    copy.write_text("/* axe */")
    monkeypatch.setenv("FRAMEWORK2_AXE_PATH", str(copy))
    assert find_axe() == copy


def test_chromium_override_must_be_executable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FRAMEWORK2_CHROMIUM", str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="FRAMEWORK2_CHROMIUM") as err:
        find_chromium()
    assert "ensure-chromium.sh" in err.value.hint
    monkeypatch.delenv("FRAMEWORK2_CHROMIUM")
    assert find_chromium() == Path("/usr/bin/chromium")


def test_axe_result_is_parsed_into_violations() -> None:
    nodes = [{"target": [f"li:nth-child({i})"]} for i in range(1, 8)]
    result = {
        "testEngine": {"name": "axe-core", "version": "4.11.0"},
        "violations": [
            {
                "id": "link-name",
                "impact": "serious",
                "description": "Ensure links have discernible text",
                "help": "Links must have discernible text",
                "helpUrl": "https://dequeuniversity.com/rules/axe/4.11/link-name",
                "tags": ["cat.name-role-value", "wcag2a", "wcag412", "section508"],
                "nodes": nodes,
            },
            {
                "id": "frame-title",
                "impact": None,
                "description": "",
                "help": "",
                "helpUrl": "",
                "tags": ["wcag2a"],
                # Inside an iframe axe gives the frame's selector, then the element's.
                "nodes": [{"target": [["iframe#pay", "button.go"]]}],
            },
        ],
        "passes": [{"id": "html-has-lang"}, {"id": "image-alt"}],
        "incomplete": [{"id": "color-contrast"}],
    }
    when = datetime(2025, 5, 1, tzinfo=UTC)
    scan = page_scan_from_axe("http://x/", result, level="AA", http_status=200, scanned_at=when)
    assert [v.rule_id for v in scan.violations] == ["frame-title", "link-name"]  # sorted by rule
    frame, link = scan.violations
    assert frame.impact == "unknown" and frame.targets == ("iframe#pay >>> button.go",)
    assert link.nodes == 7 and len(link.targets) == MAX_TARGETS and link.targets[0] == "li:nth-child(1)"
    assert link.wcag_tags == ("wcag2a", "wcag412")
    assert (scan.status, scan.axe_version, scan.passes, scan.incomplete) == ("ok", "4.11.0", 2, 1)
    assert scan.impact_counts() == {"critical": 0, "serious": 1, "moderate": 0, "minor": 0, "unknown": 1}
    assert violations_from_axe([]) == ()


def test_page_scan_round_trips_through_a_dict() -> None:
    scan = page_scan_from_axe(
        "http://x/",
        {"version": "4.11.0", "violations": [{"id": "label", "impact": "critical", "tags": [], "nodes": [{}]}]},
        level="A",
        http_status=200,
        scanned_at=datetime(2025, 5, 1, 12, tzinfo=UTC),
    )
    assert PageScan.from_dict(scan.to_dict()) == scan
    failed = PageScan("http://y/", "failed", "AA", datetime(2025, 5, 1, tzinfo=UTC), 404, "HTTP 404 Not Found")
    assert PageScan.from_dict(failed.to_dict()) == failed
    with pytest.raises(DataError, match="malformed"):
        PageScan.from_dict({"url": "http://x/"})
    with pytest.raises(DataError, match="status"):
        PageScan.from_dict(failed.to_dict() | {"status": "clean"})


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Page.goto: net::ERR_CONNECTION_REFUSED at http://127.0.0.1:9/\nCall log:", "connection refused"),
        ("Page.goto: net::ERR_NAME_NOT_RESOLVED at http://shop.invalid/", "DNS lookup failed"),
        ("Page.goto: net::ERR_CERT_AUTHORITY_INVALID at https://x/", "TLS certificate not accepted"),
        ("Page.goto: net::ERR_SOMETHING_NEW at http://x/", "network error (net::ERR_SOMETHING_NEW)"),
        ("Page.goto: Download is starting", "starts a download"),
        ("Protocol error: something odd\nmore", "Protocol error: something odd"),
    ],
)
def test_load_errors_are_described(message: str, expected: str) -> None:
    assert expected in describe_load_error(message)


# --- with Chromium -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_scans(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, PageScan]]:
    """The sample pages, a 404, a closed port and a JSON file, scanned once at AA, from inside a running event loop
    (as async code would call it): the scan must move itself off the loop's thread."""
    other = tmp_path_factory.mktemp("not-html")
    (other / "data.json").write_text('{"not": "html"}')
    with serve_pages() as base, serve_pages(other) as other_base:
        urls = {name: f"{base}/{name}" for name in SAMPLE_VIOLATIONS}
        urls |= {
            "404": f"{base}/missing.html",
            "closed": f"http://127.0.0.1:{closed_port()}/index.html",
            "json": f"{other_base}/data.json",
        }

        async def scan_in_loop() -> list[PageScan]:
            return scan_pages([*urls.values(), urls["index.html"]], "AA", timeout_s=15)

        scans = asyncio.run(scan_in_loop())
    assert [s.url for s in scans] == list(urls.values())  # in order, the repeated URL scanned once
    yield {name: scan for name, scan in zip(urls, scans, strict=True)}


@pytest.mark.integration
def test_sample_pages_violate_exactly_the_documented_rules(sample_scans: dict[str, PageScan]) -> None:
    for name, rules in SAMPLE_VIOLATIONS.items():
        scan = sample_scans[name]
        assert (scan.status, scan.error, scan.http_status) == ("ok", None, 200), name
        assert {v.rule_id for v in scan.violations} == rules, name
        assert scan.level == "AA" and scan.axe_version == "4.11.0" and scan.passes > 0


@pytest.mark.integration
def test_clean_page_is_ok_with_zero_violations(sample_scans: dict[str, PageScan]) -> None:
    index = sample_scans["index.html"]
    assert index.ok and index.violations == () and index.incomplete == 0


@pytest.mark.integration
def test_violations_carry_impact_help_and_selectors(sample_scans: dict[str, PageScan]) -> None:
    checkout = {v.rule_id: v for v in sample_scans["checkout.html"].violations}
    assert checkout["color-contrast"].impact == "serious" and "wcag2aa" in checkout["color-contrast"].wcag_tags
    assert checkout["image-alt"].impact == "critical" and checkout["image-alt"].targets == ("img",)
    assert checkout["label"].targets == ('input[name="coupon"]',)
    assert checkout["button-name"].help_url.startswith("https://dequeuniversity.com/rules/axe/4.11/button-name")
    links = next(v for v in sample_scans["signup.html"].violations if v.rule_id == "link-name")
    assert links.nodes == 2 and len(links.targets) == 2


@pytest.mark.integration
def test_unreachable_and_error_pages_are_failed_with_a_reason_not_clean(sample_scans: dict[str, PageScan]) -> None:
    missing, closed, json_page = sample_scans["404"], sample_scans["closed"], sample_scans["json"]
    assert (missing.status, missing.http_status) == ("failed", 404)
    assert missing.error is not None and missing.error.startswith("HTTP 404")
    assert (closed.status, closed.http_status) == ("failed", None)
    assert closed.error is not None and "connection refused" in closed.error
    assert json_page.status == "failed" and json_page.error == "not HTML (content type application/json)"
    for scan in (missing, closed, json_page):
        assert scan.violations == () and scan.axe_version is None


@pytest.mark.integration
def test_level_a_leaves_out_aa_only_rules() -> None:
    with serve_pages() as base:
        scans = scan_pages([f"{base}/checkout.html", f"{base}/signup.html"], level="A", timeout_s=15)
    for scan in scans:
        name = scan.url.rsplit("/", 1)[1]
        assert scan.ok and scan.level == "A"
        assert {v.rule_id for v in scan.violations} == SAMPLE_VIOLATIONS_LEVEL_A[name], name
    assert "color-contrast" in SAMPLE_VIOLATIONS["checkout.html"] - SAMPLE_VIOLATIONS_LEVEL_A["checkout.html"]


@pytest.mark.integration
def test_slow_hung_and_broken_pages_fail_without_stopping_the_others(http_server, tmp_path: Path) -> None:
    html = {"Content-Type": "text/html"}
    http_server.route("/slow", Reply(200, "<html></html>", html, delay=5))
    # Loads, then its script never yields: nothing can run in the page any more.
    busy = "<script>addEventListener('load', () => setTimeout(() => { for (;;) {} }, 0));</script>"
    http_server.route("/hung", Reply(200, f"<!DOCTYPE html><html lang='en'><title>t</title>{busy}</html>", html))
    http_server.route("/boom", Reply(500, "oops"))
    shutil.copy(PAGES_DIR / "index.html", tmp_path / "index.html")
    with serve_pages(tmp_path) as base:
        slow, hung, boom, index = scan_pages(
            [http_server.url_for(p) for p in ("/slow", "/hung", "/boom")] + [f"{base}/index.html"], timeout_s=1
        )
    assert slow.status == "failed" and slow.error == "timed out after 1 s waiting for the page to load"
    assert (hung.status, hung.http_status) == ("failed", 200) and hung.error is not None
    assert hung.error.startswith("axe did not finish within 1 s")
    assert (boom.status, boom.http_status) == ("failed", 500) and boom.error is not None
    assert boom.error.startswith("HTTP 500")
    assert index.ok and index.violations == ()
