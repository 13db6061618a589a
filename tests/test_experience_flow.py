"""PUXT flows on a real Prefect server over the sample world: what each part stores, publishes and emits, and
how bad input and re-runs are handled."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prefect.artifacts import Artifact
from sqlalchemy import func, select

from framework2.config import get_settings
from framework2.errors import DataError
from framework2.flows import experience
from framework2.flows.experience import (
    ExperienceInputs,
    accessibility,
    experiments,
    performance,
    user_experience,
)
from framework2.sample.experience import SAMPLE_APP_DELAYS_MS, experience_inputs, write_experience_files
from framework2.sample.pages import PAGES_DIR, SAMPLE_VIOLATIONS, serve_pages
from framework2.sample.performance import serve_slow_app
from framework2.store.engine import open_store, session_scope
from framework2.store.models import (
    AnalysisRun,
    QuarantinedRow,
    UxA11yScan,
    UxExperimentResult,
    UxJourneyReport,
    UxPerfResult,
    UxRumMeasurement,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def emitted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict]]:
    """The events PUXT emits, recorded (they also go to the server; automations are tested elsewhere)."""
    seen: list[tuple[str, dict]] = []
    real = experience.emit

    def record(system: str, event: str, payload: dict | None = None) -> None:
        seen.append((event, payload or {}))
        real(system, event, payload)

    monkeypatch.setattr(experience, "emit", record)
    return seen


@pytest.fixture
def world(tmp_path: Path, store_url: str, prefect_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    """The sample files, the sample pages and the sample app, served on loopback; probes kept short."""
    monkeypatch.setenv("FRAMEWORK2_PUXT__PROBE_SAMPLES", "12")
    get_settings.cache_clear()
    files = write_experience_files(tmp_path)
    with serve_pages() as pages, serve_slow_app(SAMPLE_APP_DELAYS_MS) as app:
        yield experience_inputs(files, pages, app)
    get_settings.cache_clear()


def stored(model):  # type: ignore[no-untyped-def]
    with session_scope(open_store()) as session:
        return list(session.scalars(select(model)).all())


def test_system_run_analyses_all_four_parts_of_the_sample_world(world: dict, emitted: list) -> None:
    result = user_experience(ExperienceInputs(**world))

    assert result.system == "puxt" and result.quality == 1.0
    decisions = {r.experiment: r for r in stored(UxExperimentResult)}
    assert decisions["checkout-button"].decision == "ship"  # a real +8 % conversion lift
    assert decisions["search-ranking"].srm_flagged and decisions["search-ranking"].decision == "stop"
    assert "sample ratio" in decisions["search-ranking"].reason.lower()
    # No effect, and the sample experiments ended in 2025: "ended, no detectable effect", with the effect size the
    # sample could have detected, not "keep running".
    assert decisions["pricing-page"].decision == "stop"
    assert decisions["pricing-page"].reason.startswith("ended 2025-03-31: no detectable effect on")
    assert "smallest effect detectable with 80% power" in decisions["pricing-page"].reason
    # The dirty rows of the sample (unknown variation 'Green', no user, no timestamp) are kept with reasons.
    reasons = {q.reason for q in stored(QuarantinedRow) if q.system == "puxt"}
    assert any("Green" in r for r in reasons) and "missing user" in reasons and "missing timestamp" in reasons

    [journey] = stored(UxJourneyReport)
    top = journey.recommendations[0]
    assert top["step"] == "payment" and top["segment"] == "mobile"

    scans = {s.url.rsplit("/", 1)[1]: s for s in stored(UxA11yScan)}
    assert {page: s.violations for page, s in scans.items()} == {p: len(r) for p, r in SAMPLE_VIOLATIONS.items()}
    assert all(s.status == "ok" for s in scans.values())

    findings = stored(UxPerfResult)
    slow = {f.target.rsplit("/", 1)[1] or "/": f.verdict for f in findings if f.kind == "probe"}
    assert slow == {"/": "ok", "product": "ok", "checkout": "slow"}  # 160 ms > the 100 ms alert
    regressions = {(f.target, f.metric) for f in findings if f.verdict == "regression"}
    assert regressions == {("/checkout", "LCP")}

    events = [e for e, _ in emitted]
    decisive = {p["experiment"]: p["winner"] for e, p in emitted if e == "experiment.decisive"}
    assert decisive == {"checkout-button": "green", "onboarding": "tour"}  # the two planted lifts
    assert [p["experiment"] for e, p in emitted if e == "experiment.srm_detected"] == ["search-ranking"]
    [exceeded] = [p for e, p in emitted if e == "response_time.exceeded"]
    assert exceeded["app"] == "web" and exceeded["namespace"] == "shop" and exceeded["p95_ms"] > 100
    [regressed] = [p for e, p in emitted if e == "performance.regressed"]
    assert regressed["release"] == "v1.5.0" and regressed["baseline"] == "v1.4.0"
    assert "accessibility.regressed" not in events  # a first scan has nothing to regress from

    import framework2

    todo = framework2.puxt.get_optimizations(limit=50)
    assert {"ship checkout-button", "ship onboarding", "stop search-ranking"} <= {t["title"] for t in todo}
    assert [t["segment"] for t in todo if t["kind"] == "journey"][0] == "mobile"
    checkout = Artifact.get("puxt-experiment-checkout-button")
    assert "ship" in checkout.data and "data:image/png;base64," in checkout.data
    assert "data:image/png;base64," in Artifact.get("puxt-journey-checkout").data
    assert "signup.html" in Artifact.get("puxt-accessibility").data
    assert "/checkout" in Artifact.get("puxt-performance").data


def test_a_decision_is_announced_once_and_measurements_are_ingested_once(world: dict, emitted: list) -> None:
    experiments(Path(world["experiments_file"]), world["exposures"], world["events"])
    performance([], world["rum_sources"])
    measurements = len(stored(UxRumMeasurement))
    emitted.clear()

    experiments(Path(world["experiments_file"]), world["exposures"], world["events"])
    second = performance([], world["rum_sources"])

    # Still "ship", still a mismatch: nothing new to say.
    assert [e for e, _ in emitted if e in ("experiment.decisive", "experiment.srm_detected")] == []
    assert len(stored(UxRumMeasurement)) == measurements > 0
    assert second["rum"]["files_already_ingested"] == 1 and second["rum"]["measurements_added"] == 0
    runs = [r for r in stored(UxExperimentResult) if r.experiment == "checkout-button"]
    assert len(runs) == 2  # each run's analysis is kept: the decision's history, charted from the second run on
    assert Artifact.get("puxt-experiment-checkout-button").data.count("data:image/png;base64,") == 2


def test_new_violations_since_the_last_scan_are_a_regression_and_a_broken_page_is_not_clean(
    tmp_path: Path, store_url: str, prefect_server: str, emitted: list
) -> None:
    site = tmp_path / "site"
    shutil.copytree(PAGES_DIR, site)
    with serve_pages(site) as base:
        urls = [f"{base}/index.html", f"{base}/signup.html"]
        accessibility(urls, "AA")
        # A release removes an image's alt text on the home page and breaks the signup page.
        index = site / "index.html"
        index.write_text(index.read_text().replace("<main>", '<main><img src="logo.png">', 1))
        (site / "signup.html").unlink()
        outcome = accessibility(urls, "AA")

    [(_, payload)] = [(e, p) for e, p in emitted if e == "accessibility.regressed"]
    assert payload["pages"] == [urls[0]]
    assert [(v["url"], v["rule"]) for v in payload["new_violations"]] == [(urls[0], "image-alt")]
    assert outcome["failed"] == [{"url": urls[1], "error": "HTTP 404 File not found"}]
    latest = {s.url: s for s in stored(UxA11yScan)}  # ids grow: the second scan of each page wins
    assert latest[urls[1]].status == "failed" and latest[urls[1]].violations == 0


def test_a_bad_experiments_file_fails_that_part_only_and_keeps_stored_results(world: dict, tmp_path: Path) -> None:
    experiments(Path(world["experiments_file"]), world["exposures"], world["events"])
    before = len(stored(UxExperimentResult))
    broken = tmp_path / "broken.yaml"
    spec = yaml.safe_load(Path(world["experiments_file"]).read_text())
    spec["experiments"][1]["metrics"][0]["kind"] = "median"
    broken.write_text(yaml.safe_dump(spec))

    with pytest.raises(DataError, match="experiment pricing-page is invalid: metrics.0.kind"):
        experiments(broken, world["exposures"], world["events"])
    inputs = {**world, "experiments_file": str(broken), "accessibility_urls": [], "performance_targets": []}
    result = user_experience(ExperienceInputs(**inputs))

    assert len(stored(UxExperimentResult)) == before  # nothing half-written, nothing lost
    assert "experiments: failed: " in result.summary and "journeys: checkout" in result.summary
    assert result.quality == pytest.approx(2 / 3)  # experiments failed; journeys and performance ran
    failed = [r for r in stored(AnalysisRun) if r.status == "failed"]
    assert len(failed) == 2 and all("pricing-page" in (r.error or "") for r in failed)


def test_nothing_configured_says_what_to_set(store_url: str, prefect_server: str) -> None:
    result = user_experience()

    assert "nothing configured" in result.summary
    with session_scope(open_store()) as session:
        skipped = session.scalar(select(func.count()).select_from(AnalysisRun).where(AnalysisRun.status == "skipped"))
    assert skipped == 4  # every part ran and found nothing to do


def test_exposures_and_events_in_postgresql_tables_give_the_same_decisions_as_the_files(
    tmp_path: Path, store_url: str, prefect_server: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd
    from sqlalchemy import create_engine

    files = write_experience_files(tmp_path, n_users=4000)
    from_files = experiments(files.experiments_file, str(files.exposures), str(files.events))
    warehouse = create_engine(postgres_url)
    pd.read_parquet(files.exposures).to_sql("exposures", warehouse, index=False, chunksize=20_000)
    pd.read_parquet(files.events).to_sql("events", warehouse, index=False, chunksize=20_000)
    warehouse.dispose()
    monkeypatch.setenv("FRAMEWORK2_PUXT__EXPERIMENTS_DATABASE", postgres_url)
    get_settings.cache_clear()

    from_tables = experiments(files.experiments_file, "table:exposures", "table:events")

    assert from_tables["experiments"] == from_files["experiments"]
    with pytest.raises(DataError, match="nope"):
        experiments(files.experiments_file, "table:nope", "table:events")
    get_settings.cache_clear()
