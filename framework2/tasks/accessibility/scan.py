"""PUXT accessibility scans: load each page in Debian's Chromium through Playwright, inject axe-core, and keep
what axe found at WCAG level A or AA.

A page that cannot be scanned (connection refused, DNS failure, timeout, HTTP 4xx/5xx, not HTML, axe failing on
the page) comes back with status ``"failed"`` and the reason, never as a page with zero violations, and never
stops the other pages. Only problems with the scanner itself (no axe-core, no Chromium, bad arguments) raise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import sys
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from framework2.errors import ConfigError, DataError

Level = Literal["A", "AA"]
ScanStatus = Literal["ok", "failed"]

AXE_ENV = "FRAMEWORK2_AXE_PATH"
CHROMIUM_ENV = "FRAMEWORK2_CHROMIUM"
# Where scripts/ensure-chromium.sh unpacks axe-core, relative to the virtual environment.
AXE_IN_VENV = Path("axe-core/node_modules/axe-core/axe.min.js")
DEFAULT_CHROMIUM = Path("/usr/bin/chromium")
ENSURE_HINT = "run scripts/ensure-chromium.sh"
# No sandbox: workers often run as root in containers, where Chromium's sandbox cannot start. The rest keeps the
# browser from contacting Google services (updates, sync, field trials): a scan must not depend on them.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)

# axe-core 4.11 tags its WCAG rules by version and level: wcag2a, wcag2aa, wcag21a, wcag21aa, wcag22aa (and
# *aaa). It has no "wcag22a" rule, so there is no such tag to ask for; tests check this list against the installed
# axe so an upgrade that adds a tag is noticed.
LEVEL_TAGS: dict[str, tuple[str, ...]] = {
    "A": ("wcag2a", "wcag21a"),
    "AA": ("wcag2a", "wcag21a", "wcag2aa", "wcag21aa", "wcag22aa"),
}
IMPACTS = ("critical", "serious", "moderate", "minor")
# Enough example selectors to find the elements; a rule can match hundreds of nodes on a real page.
MAX_TARGETS = 5
SCHEMES = ("http", "https", "file")


@dataclass(frozen=True)
class Violation:
    """One axe rule violated on a page: how bad, what it means, and how many elements (with a few selectors)."""

    rule_id: str
    impact: str  # critical | serious | moderate | minor ("unknown" if axe gave none)
    description: str
    help: str
    help_url: str
    wcag_tags: tuple[str, ...]
    nodes: int
    targets: tuple[str, ...] = ()


@dataclass(frozen=True)
class PageScan:
    """The result of scanning one URL; ``status == "failed"`` means it could not be scanned (see ``error``)."""

    url: str
    status: ScanStatus
    level: Level
    scanned_at: datetime
    http_status: int | None = None
    error: str | None = None
    axe_version: str | None = None
    violations: tuple[Violation, ...] = field(default_factory=tuple)
    passes: int = 0
    incomplete: int = 0

    @property
    def ok(self) -> bool:
        """Whether the page was scanned (its violations are meaningful)."""
        return self.status == "ok"

    @property
    def element_count(self) -> int:
        """Elements (axe "nodes") failing any rule."""
        return sum(v.nodes for v in self.violations)

    def impact_counts(self) -> dict[str, int]:
        """Violated rules per impact, every impact present (0 when none)."""
        counts = dict.fromkeys(IMPACTS, 0)
        for v in self.violations:
            counts[v.impact] = counts.get(v.impact, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``scanned_at`` as ISO 8601), the inverse of ``from_dict``."""
        data = asdict(self)
        data["scanned_at"] = self.scanned_at.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PageScan:
        """Rebuild a scan stored with ``to_dict``."""
        try:
            scanned_at = data["scanned_at"]
            if isinstance(scanned_at, str):
                scanned_at = datetime.fromisoformat(scanned_at)
            violations = tuple(
                Violation(
                    rule_id=v["rule_id"],
                    impact=v["impact"],
                    description=v.get("description", ""),
                    help=v.get("help", ""),
                    help_url=v.get("help_url", ""),
                    wcag_tags=tuple(v.get("wcag_tags", ())),
                    nodes=int(v["nodes"]),
                    targets=tuple(v.get("targets", ())),
                )
                for v in data.get("violations", ())
            )
            scan = cls(
                url=data["url"],
                status=data["status"],
                level=data["level"],
                scanned_at=scanned_at,
                http_status=data.get("http_status"),
                error=data.get("error"),
                axe_version=data.get("axe_version"),
                violations=violations,
                passes=int(data.get("passes", 0)),
                incomplete=int(data.get("incomplete", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"stored accessibility scan is malformed: {exc!r}", "store PageScan.to_dict()") from exc
        if scan.status not in get_args(ScanStatus) or scan.level not in LEVEL_TAGS:
            raise DataError(
                f"stored accessibility scan of {scan.url} has status {scan.status!r}, level {scan.level!r}",
                "status is ok or failed, level A or AA",
            )
        return scan


def level_tags(level: str) -> list[str]:
    """The axe rule tags that make up WCAG 2.x conformance ``level`` ("A" or "AA", cumulative)."""
    try:
        return list(LEVEL_TAGS[level])
    except KeyError:
        raise DataError(f"unknown WCAG level {level!r}", "use 'A' or 'AA'") from None


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def find_axe() -> Path:
    """axe.min.js: ``$FRAMEWORK2_AXE_PATH`` if set, else under the virtual environment (or the repo's .venv)."""
    override = os.environ.get(AXE_ENV)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise ConfigError(f"{AXE_ENV} is {override}, which is not a file", f"fix or unset it, or {ENSURE_HINT}")
        return path
    candidates = [Path(sys.prefix) / AXE_IN_VENV, _repo_root() / ".venv" / AXE_IN_VENV]
    for path in candidates:
        if path.is_file():
            return path
    looked = ", ".join(str(p) for p in dict.fromkeys(candidates))
    raise ConfigError(f"axe-core not found (looked in {looked})", f"{ENSURE_HINT}, or set {AXE_ENV}")


def find_chromium() -> Path:
    """The Chromium binary: ``$FRAMEWORK2_CHROMIUM`` if set, else Debian's /usr/bin/chromium (or on PATH)."""
    override = os.environ.get(CHROMIUM_ENV)
    if override:
        path = Path(override).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ConfigError(
                f"{CHROMIUM_ENV} is {override}, which is not an executable", f"fix or unset it, or {ENSURE_HINT}"
            )
        return path
    if DEFAULT_CHROMIUM.is_file() and os.access(DEFAULT_CHROMIUM, os.X_OK):
        return DEFAULT_CHROMIUM
    found = shutil.which("chromium")
    if found:
        return Path(found)
    raise ConfigError(f"Chromium not found at {DEFAULT_CHROMIUM} or on PATH", f"{ENSURE_HINT}, or set {CHROMIUM_ENV}")


def _target_text(target: Any) -> str:
    # Inside iframes or shadow roots axe gives a list of selectors, outermost first.
    if isinstance(target, list | tuple):
        return " >>> ".join(_target_text(t) for t in target)
    return str(target)


def violations_from_axe(violations: Iterable[Mapping[str, Any]]) -> tuple[Violation, ...]:
    """``axe.run(...).violations`` as Violations, ordered by rule id (axe's order is not guaranteed)."""
    parsed = []
    for v in violations:
        nodes = v.get("nodes") or []
        parsed.append(
            Violation(
                rule_id=str(v["id"]),
                impact=str(v.get("impact") or "unknown"),
                description=str(v.get("description", "")),
                help=str(v.get("help", "")),
                help_url=str(v.get("helpUrl", "")),
                wcag_tags=tuple(t for t in v.get("tags", ()) if t.startswith("wcag")),
                nodes=len(nodes),
                targets=tuple(_target_text(n.get("target", "")) for n in nodes[:MAX_TARGETS]),
            )
        )
    return tuple(sorted(parsed, key=lambda v: v.rule_id))


def page_scan_from_axe(
    url: str,
    result: Mapping[str, Any],
    *,
    level: Level,
    http_status: int | None,
    scanned_at: datetime,
) -> PageScan:
    """A successful PageScan from an axe result (``violations``/``passes``/``incomplete`` lists, ``version``)."""
    version = result.get("version") or (result.get("testEngine") or {}).get("version")
    return PageScan(
        url=url,
        status="ok",
        level=level,
        scanned_at=scanned_at,
        http_status=http_status,
        axe_version=version,
        violations=violations_from_axe(result.get("violations", ())),
        passes=len(result.get("passes", ())),
        incomplete=len(result.get("incomplete", ())),
    )


# Chromium's network error codes, as Playwright reports them ("net::ERR_…"), in words an operator understands.
_NET_ERRORS = {
    "ERR_CONNECTION_REFUSED": "connection refused",
    "ERR_NAME_NOT_RESOLVED": "DNS lookup failed: host name not resolved",
    "ERR_NAME_RESOLUTION_FAILED": "DNS lookup failed",
    "ERR_CONNECTION_TIMED_OUT": "connection timed out",
    "ERR_TIMED_OUT": "timed out",
    "ERR_CONNECTION_RESET": "connection reset by the server",
    "ERR_CONNECTION_CLOSED": "connection closed by the server",
    "ERR_EMPTY_RESPONSE": "the server closed the connection without answering",
    "ERR_ADDRESS_UNREACHABLE": "address unreachable",
    "ERR_ADDRESS_INVALID": "invalid address",
    "ERR_INTERNET_DISCONNECTED": "no network",
    "ERR_FILE_NOT_FOUND": "file not found",
    "ERR_INVALID_URL": "invalid URL",
    "ERR_TOO_MANY_REDIRECTS": "too many redirects",
    "ERR_ABORTED": "navigation aborted (no page to show, e.g. an empty response or a download)",
    "ERR_SSL_PROTOCOL_ERROR": "TLS handshake failed",
}
_NET_ERROR_RE = re.compile(r"net::(ERR_[A-Z0-9_]+)")


def describe_load_error(message: str) -> str:
    """Why a page did not load, from a Playwright navigation error message."""
    if "Download is starting" in message:
        return "the URL starts a download, not a page"
    match = _NET_ERROR_RE.search(message)
    if match:
        code = match.group(1)
        if code.startswith("ERR_CERT_"):
            return f"TLS certificate not accepted (net::{code})"
        return f"{_NET_ERRORS.get(code, 'network error')} (net::{code})"
    first = message.strip().splitlines()[0] if message.strip() else "unknown error"
    return first[:300]


def _failed(url: str, level: Level, reason: str, http_status: int | None = None) -> PageScan:
    return PageScan(
        url=url, status="failed", level=level, scanned_at=datetime.now(UTC), http_status=http_status, error=reason
    )


# Polled in the page by wait_for_function. The first call starts axe (already in the page, see _scan_one) and
# records the outcome on window; later calls return it once there. Polling, rather than awaiting axe in one
# evaluate, is what bounds the wait: Playwright enforces wait_for_function's timeout outside the page, so a page
# whose script never yields fails after the timeout instead of hanging the whole scan (evaluate has no timeout).
# Passes and incomplete results are only counted, so only their ids cross back to Python.
_RUN_AXE = """
(tags) => {
  const key = '__framework2_axe';
  if (!window[key]) {
    if (!['text/html', 'application/xhtml+xml'].includes(document.contentType)) {
      window[key] = {state: 'not-html', contentType: document.contentType};
    } else if (typeof axe === 'undefined' || typeof axe.run !== 'function') {
      window[key] = {state: 'error', message: 'axe-core is not loaded in the page'};
    } else {
      window[key] = {state: 'running'};
      axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']}).then(
        (r) => {
          window[key] = {
            state: 'done',
            result: {
              version: axe.version,
              violations: r.violations,
              passes: r.passes.map((p) => ({id: p.id})),
              incomplete: r.incomplete.map((p) => ({id: p.id})),
            },
          };
        },
        (e) => { window[key] = {state: 'error', message: String(e && e.message || e)}; },
      );
    }
  }
  return window[key].state === 'running' ? false : window[key];
}
"""


def _first_line(message: str, default: str) -> str:
    text = message.strip()
    return text.splitlines()[0][:300] if text else default


def _scan_one(browser: Any, url: str, level: Level, axe_path: Path, timeout_s: float) -> PageScan:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    scheme = urlsplit(url).scheme.lower()
    if scheme not in SCHEMES:
        return _failed(url, level, f"not a web address (scheme {scheme or 'missing'}; use http, https or file)")
    timeout_ms = timeout_s * 1000
    # A fresh context per page: no cookies, storage or cache carried from one page's scan into the next.
    # bypass_csp: a strict Content-Security-Policy would otherwise block axe.
    context = browser.new_context(bypass_csp=True)
    context.set_default_timeout(timeout_ms)
    # axe goes in as an init script, in every frame before the page's own scripts: no call into a possibly busy
    # page is needed to load it, page scripts (an AMD loader, say) cannot stop it registering window.axe, and axe
    # in the main page can test the contents of iframes, where it runs too.
    context.add_init_script(path=str(axe_path))
    try:
        page = context.new_page()
        try:
            response = page.goto(url, wait_until="load", timeout=timeout_ms)
        except PlaywrightTimeoutError:
            return _failed(url, level, f"timed out after {timeout_s:g} s waiting for the page to load")
        except PlaywrightError as exc:
            return _failed(url, level, describe_load_error(exc.message))
        http_status = response.status if response is not None else None
        if response is not None and response.status >= 400:
            reason = f"HTTP {response.status} {response.status_text}".rstrip()
            return _failed(url, level, reason, http_status)
        try:
            handle = page.wait_for_function(_RUN_AXE, arg=level_tags(level), polling=50, timeout=timeout_ms)
            outcome = handle.json_value()
        except PlaywrightTimeoutError:
            reason = f"axe did not finish within {timeout_s:g} s (the page may be busy or hung)"
            return _failed(url, level, reason, http_status)
        except PlaywrightError as exc:
            reason = f"axe could not run on the page: {_first_line(exc.message, type(exc).__name__)}"
            return _failed(url, level, reason, http_status)
        if outcome["state"] == "not-html":
            return _failed(url, level, f"not HTML (content type {outcome['contentType']})", http_status)
        if outcome["state"] != "done":
            reason = f"axe could not run on the page: {_first_line(outcome.get('message', ''), 'unknown error')}"
            return _failed(url, level, reason, http_status)
        return page_scan_from_axe(
            url, outcome["result"], level=level, http_status=http_status, scanned_at=datetime.now(UTC)
        )
    finally:
        # If the browser went away, closing fails; the next page relaunches it.
        with contextlib.suppress(PlaywrightError):
            context.close()


def _launch(playwright: Any, chromium: Path) -> Any:
    from playwright.sync_api import Error as PlaywrightError

    try:
        return playwright.chromium.launch(executable_path=str(chromium), headless=True, args=list(CHROMIUM_ARGS))
    except PlaywrightError as exc:
        raise ConfigError(
            f"could not start Chromium at {chromium}: {_first_line(exc.message, 'unknown error')}", ENSURE_HINT
        ) from exc


def _scan_all(urls: Sequence[str], level: Level, timeout_s: float, axe_path: Path, chromium: Path) -> list[PageScan]:
    from playwright.sync_api import sync_playwright

    scans: list[PageScan] = []
    with sync_playwright() as playwright:
        # One browser for every page: starting Chromium costs about a second.
        browser = _launch(playwright, chromium)
        try:
            for url in urls:
                if not browser.is_connected():
                    # A page crashed the browser: start another one so the remaining pages are still scanned.
                    try:
                        browser = _launch(playwright, chromium)
                    except ConfigError as exc:
                        scans.append(_failed(url, level, f"browser could not be restarted: {exc.message}"))
                        continue
                try:
                    scans.append(_scan_one(browser, url, level, axe_path, timeout_s))
                except Exception as exc:  # one page must never stop the others
                    scans.append(_failed(url, level, f"scan failed: {type(exc).__name__}: {exc}"[:300]))
        finally:
            if browser.is_connected():
                browser.close()
    return scans


def _running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def scan_pages(urls: Sequence[str], level: Level = "AA", *, timeout_s: float = 30.0) -> list[PageScan]:
    """Scan each URL with axe-core at WCAG ``level`` in one headless Chromium; one PageScan per distinct URL,
    in order. Pages that cannot be scanned are returned with status "failed" and the reason.

    ``timeout_s`` bounds loading each page (until its load event) and, separately, axe's run on it. Safe to call
    from async code: with an event loop running on this thread the scan runs on a worker thread.
    Raises ConfigError when axe-core or Chromium is missing, DataError for an unknown level or a bad timeout.
    """
    level_tags(level)  # validates before any browser starts
    if not timeout_s > 0:
        raise DataError(f"scan timeout must be positive, got {timeout_s!r}", "pass timeout_s in seconds, e.g. 30")
    if isinstance(urls, str):
        raise DataError("scan_pages takes a list of URLs, got one string", "wrap it in a list")
    distinct = list(dict.fromkeys(u.strip() for u in urls))
    axe_path, chromium = find_axe(), find_chromium()
    if not distinct:
        return []
    if not _running_loop():
        return _scan_all(distinct, level, timeout_s, axe_path, chromium)
    # Playwright's sync API refuses to run on a thread with a running event loop (e.g. called from async code):
    # do the scan on a worker thread, which has none, and wait for it.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="axe-scan") as pool:
        return pool.submit(_scan_all, distinct, level, timeout_s, axe_path, chromium).result()
