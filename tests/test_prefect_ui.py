"""The Prefect UI after `framework2 init`: the real Prefect server's UI, in Debian's headless Chromium, lists every
deployment of prefect.yaml, and the PSO deployment's page shows its schedule, trigger and description.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.test_cli import framework2
from tests.test_dashboard import CHROMIUM, CHROMIUM_ARGS

if TYPE_CHECKING:
    from playwright.sync_api import Page

PREFECT_YAML = Path(__file__).resolve().parents[1] / "prefect.yaml"
DEPLOYMENTS: list[dict[str, Any]] = yaml.safe_load(PREFECT_YAML.read_text())["deployments"]
NAMES = [deployment["name"] for deployment in DEPLOYMENTS]
# Without the flag headless Chromium may capture a frame the SPA has not painted yet (a blank screenshot).
UI_ARGS = [*CHROMIUM_ARGS, "--run-all-compositor-stages-before-draw"]
TIMEOUT_MS = 60_000  # the Vue SPA fetches its bundle, then its data: generous for a slow CI machine


def names_on_every_page(page: Page, total: int, tmp_path: Path) -> list[str]:
    """Walk the deployments table page by page (the UI shows 10 rows a page), screenshotting each page."""
    from playwright.sync_api import expect

    rows = page.locator("a.deployment-list__name")
    pager = page.locator(".p-pager__page")  # "Page <current> of <last>"
    limit = int(page.locator(".p-pager__limit-select").inner_text())
    last = int(pager.nth(1).inner_text())
    assert last == -(-total // limit), f"{last} pages of {limit} rows for {total} deployments"
    names: list[str] = []
    for number in range(1, last + 1):
        expect(pager.first).to_have_text(str(number), timeout=TIMEOUT_MS)
        if names:  # the rows of the previous page are replaced, not appended
            expect(rows.first).not_to_have_text(names[-limit], timeout=TIMEOUT_MS)
        count = min(limit, total - len(names))
        expect(rows).to_have_count(count, timeout=TIMEOUT_MS)
        # Each row's flow link is fetched after the rows: wait for it, or the screenshot catches half a table.
        flows = page.locator(".deployment-list__deployment .flow-popover__link-name")
        expect(flows).to_have_count(count, timeout=TIMEOUT_MS)
        names += rows.all_inner_texts()
        page.screenshot(path=str(tmp_path / ("deployments.png" if number == 1 else f"deployments-{number}.png")))
        if number < last:
            page.locator(".p-pager__buttons button").nth(2).click()  # |< < [Page n of m] > >|
    return names


@pytest.mark.integration
def test_prefect_ui_lists_every_deployment_after_init(prefect_server: str, store_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    init = framework2("init")
    assert init.returncode == 0, init.stdout + init.stderr
    ui = prefect_server.removesuffix("/api")

    console_errors: list[str] = []
    page_errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=UI_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.on(
                "console",
                lambda m: console_errors.append(f"{m.text} ({m.location.get('url')})") if m.type == "error" else None,
            )
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))

            page.goto(f"{ui}/deployments")
            results = page.locator(".results-count")  # "24 Deployments"
            expect(results).to_have_text(re.compile(r"^[1-9]\d* Deployments?$"), timeout=TIMEOUT_MS)
            total = int(results.inner_text().split()[0])
            # The session's server is shared: only prefect.yaml deploys today, but other tests may add more.
            assert total >= len(NAMES), results.inner_text()
            shown = names_on_every_page(page, total, tmp_path)
            assert len(shown) == len(set(shown)) == total, shown
            assert set(NAMES) - set(shown) == set(), f"not in the UI: {set(NAMES) - set(shown)}"

            # One deployment's page, reached as a user would: search, then follow the link. Back to page 1 first:
            # the UI keeps the current page while searching, so a search from page 3 lists nothing.
            page.locator(".p-pager__buttons button").first.click()
            expect(page.locator(".p-pager__page").first).to_have_text("1", timeout=TIMEOUT_MS)
            page.get_by_placeholder("Search deployments...").fill("pso-orchestrator")
            expect(page.locator("a.deployment-list__name")).to_have_text(["pso-orchestrator"], timeout=TIMEOUT_MS)
            page.locator("a.deployment-list__name").click()
            page.wait_for_url(f"{ui}/deployments/deployment/**", timeout=TIMEOUT_MS)
            expect(page.get_by_text("Every 15 minutes every day")).to_be_visible(timeout=TIMEOUT_MS)
            expect(page.get_by_text("pso-orchestrator__automation_1")).to_be_visible(timeout=TIMEOUT_MS)  # trigger
            # The tabs are <li class="p-tab"> inside a role=tablist, without role=tab of their own.
            page.get_by_role("tablist").get_by_text("Description", exact=True).click()
            expect(page.get_by_text("PSO master flow: every 15 minutes")).to_be_visible(timeout=TIMEOUT_MS)
            page.screenshot(path=str(tmp_path / "pso-orchestrator.png"))
        finally:
            browser.close()

    # The Prefect UI is clean in practice: no uncaught exceptions, so any page error is asserted. Its console
    # only logs a 404 for /favicon.ico (the server does not serve one), which is Prefect's, not ours: console
    # errors are recorded and shown when something else fails, not asserted.
    assert page_errors == [], f"page errors: {page_errors}; console errors: {console_errors}"
    shots = sorted(tmp_path.glob("*.png"))
    assert {"deployments.png", "pso-orchestrator.png"} <= {shot.name for shot in shots}, shots
    for shot in shots:
        assert shot.stat().st_size > 50_000, f"{shot.name}: {shot.stat().st_size} bytes"
