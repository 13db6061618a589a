"""The system dashboard: its data builders on a seeded store, the page from an empty store, the HTTP routes on a
real uvicorn server, and the page in Debian's Chromium (no console errors, the seeded numbers, axe-core AA).

The store is seeded with plain rows (and the sample release history), so every number the page must show is
known here; nothing runs a flow.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from framework2.config import get_settings
from framework2.sample.world import seed_release_history
from framework2.service import dashboard as dash
from framework2.service.dashboard import (
    AllocationSection,
    PersonLoad,
    allocation_status,
    allocation_svg,
    dashboard_data,
    experience_status,
    pricing_status,
    project_statuses,
    recent_runs_page,
    release_status,
    render_dashboard,
    router,
    sparkline_svg,
    system_statuses,
)
from framework2.store.engine import make_engine, open_store
from framework2.store.migrate import upgrade
from framework2.store.models import (
    AnalysisRun,
    MarketPosition,
    PmForecast,
    PmPerson,
    PmProject,
    PpAllocation,
    PpHealth,
    PriceRecommendation,
    Release,
    SystemHealth,
    UxA11yScan,
    UxExperiment,
    UxExperimentResult,
    UxPerfResult,
    utcnow,
)
from framework2.tasks.accessibility.scan import CHROMIUM_ARGS
from tests.conftest import free_port

UI = "http://127.0.0.1:4200"
CHROMIUM = "/usr/bin/chromium"


# --- a seeded store ---------------------------------------------------------------------------------------------


@dataclass
class World:
    """What was seeded, so tests can assert the page shows exactly it."""

    now: datetime
    ppis_runs: list[str]  # newest first
    ppis_flow_run: str
    pricing_run: str
    ppos_runs: list[str]  # older, newer
    monday: date


def _run(
    engine: Engine, system: str, started: datetime, seconds: float | None, status: str = "completed", **kw: Any
) -> str:
    run_id = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(
            insert(AnalysisRun),
            [
                {
                    "id": run_id,
                    "system": system,
                    "flow_run_id": kw.pop("flow_run_id", str(uuid.uuid4())),
                    "started_at": started,
                    "finished_at": started + timedelta(seconds=seconds) if seconds is not None else None,
                    "status": status,
                    "parameters": {},
                    "inputs": {},
                    "outcome": {},
                    "model_version": "",
                    "quarantined": 0,
                    **kw,
                }
            ],
        )
    return run_id


def _rows(engine: Engine, model: Any, rows: list[dict[str, Any]]) -> None:
    """Insert plain rows (one executemany: every row must carry the same keys)."""
    with engine.begin() as conn:
        conn.execute(insert(model), rows)


def seed_world(engine: Engine) -> World:
    """Every section's data as plain rows: runs and health of five systems (PCES never ran), two PPOS runs, PPMS
    forecasts, an allocation plan, a pricing run, PUXT results and the sample release history."""
    now = utcnow()
    # PPIS, hourly: the newest of 7 runs failed, 6 completed (each 2.5 s) -> 6 of 7 finished runs = 86 %.
    ppis_flow_run = str(uuid.uuid4())
    ppis_runs = [
        _run(engine, "ppis", now - timedelta(minutes=10), 4.0, "failed", error="feed sample-flaky-market: HTTP 503")
    ]
    ppis_runs += [_run(engine, "ppis", now - timedelta(hours=h), 2.5) for h in range(1, 6)]
    # The newest completed pricing run carries the recommendations; give it a known flow run id.
    pricing_run = _run(engine, "ppis", now - timedelta(minutes=50), 2.5, flow_run_id=ppis_flow_run)
    ppis_runs.insert(1, pricing_run)
    _run(engine, "ppms", now - timedelta(hours=3), 30.0)
    ppos_runs = [_run(engine, "ppos", now - timedelta(hours=h), 5.0) for h in (2, 1)]
    _run(engine, "puxt", now - timedelta(hours=5), 60.0)  # expected hourly; 5 h is beyond 3x: overdue
    _run(engine, "plos", now - timedelta(minutes=2), None, "running")

    _rows(
        engine,
        SystemHealth,
        [
            {
                "system": "ppis",
                "measured_at": now - timedelta(minutes=15 * (9 - i)),
                "score": score,
                "success_rate": 0.83,
                "freshness": 1.0,
                "quality": 0.9,
                "components": {"reasons": ["1 of the last 7 runs failed"]},
            }
            for i, score in enumerate([96.0, 97.5, 95.0, 94.0, 92.0, 91.5, 93.0, 94.5, 92.5, 93.9])
        ]
        + [
            {
                "system": "ppms",
                "measured_at": now - timedelta(minutes=5),
                "score": 88.5,
                "success_rate": 1.0,
                "freshness": 1.0,
                "quality": 0.7,
                "components": {"reasons": ["quality of the last good run 0.70"]},
            }
        ],
    )

    # PPMS / PPOS: two projects, their people, two health runs (trend), forecasts and an allocation.
    _rows(
        engine,
        PmProject,
        [
            {"key": "sample:shop", "name": "Web shop relaunch", "source": "sample", "updated_at": now},
            {"key": "sample:payments", "name": "Payments v2", "source": "sample", "updated_at": now},
        ],
    )
    # The plan starts next Monday, so every week counts in full (a plan's first week counts from its start).
    monday = (now + timedelta(days=7 - now.weekday())).date()
    _rows(
        engine,
        PmPerson,
        [
            {"handle": "ana", "name": "Ana", "skills": ["python"], "weekly_capacity_days": 4.0, "time_off": []},
            {"handle": "ben", "name": "Ben", "skills": ["frontend"], "weekly_capacity_days": 4.0, "time_off": []},
            {
                "handle": "chen",
                "name": "Chen",
                "skills": ["python"],
                "weekly_capacity_days": 5.0,
                # The whole second week off: no capacity there.
                "time_off": [[str(monday + timedelta(days=7)), str(monday + timedelta(days=11))]],
            },
        ],
    )
    older, newer = ppos_runs
    health = [
        (older, "sample:shop", 80.0, "throughput trend (-8)"),
        (older, "sample:payments", 70.0, "schedule (-20)"),
        (older, "portfolio", 76.0, "sample:payments"),
        (newer, "sample:shop", 72.5, "blocked work (-12): 6 of 30 open tasks wait on open work"),
        (newer, "sample:payments", 81.0, "staffing gaps (-11): 12 of 12 ready tasks could not be staffed"),
        (newer, "portfolio", 75.8, "sample:shop"),
    ]
    _rows(
        engine,
        PpHealth,
        [
            {"run_id": r, "project": p, "score": s, "top_reason": why, "components": [], "created_at": now}
            for r, p, s, why in health
        ],
    )
    ppms_run = _run(engine, "ppms", now - timedelta(hours=2, minutes=30), 20.0)
    _rows(
        engine,
        PmForecast,
        [
            {
                "run_id": ppms_run,
                "project": project,
                "milestone": milestone,
                "method": "model",
                "p50": now.date() + timedelta(days=p50),
                "p85": now.date() + timedelta(days=p50 + 30),
                "p95": now.date() + timedelta(days=p50 + 50),
                "target_date": now.date() + timedelta(days=77),
                "probability_on_time": odds,
                "remaining_tasks": 18,
                "reason": "",
                "details": {},
                "created_at": now - timedelta(hours=2),
            }
            for project, milestone, p50, odds in [
                ("sample:payments", None, 60, 0.37),
                ("sample:payments", "Go-live", 40, 0.9),  # a milestone: not the project's forecast
                ("sample:shop", None, 70, 0.75),
            ]
        ],
    )
    # Allocation of the newer PPOS run over three weeks; ben is over capacity in week 1 (a drawn-in-red bar).
    plan = [
        ("ana", "sample:shop", 0, 3.0),
        ("ana", "sample:payments", 0, 1.0),
        ("ana", "sample:shop", 1, 4.0),
        ("ana", "sample:shop", 2, 2.0),
        ("ben", "sample:shop", 0, 4.5),
        ("ben", "sample:shop", 1, 2.0),
        ("chen", "sample:payments", 0, 5.0),
        ("chen", "sample:payments", 2, 5.0),
    ]
    _rows(
        engine,
        PpAllocation,
        [
            {"run_id": newer, "person": p, "project": proj, "week": monday + timedelta(days=7 * w), "days": d}
            for p, proj, w, d in plan
        ],
    )

    # PPIS: 7 applied, 5 pending approval, 3 unchanged; positions of 15 SKUs.
    statuses = ["applied"] * 7 + ["pending_approval"] * 5 + ["unchanged"] * 3
    _rows(
        engine,
        PriceRecommendation,
        [
            {
                "run_id": pricing_run,
                "sku": f"SKU-{i:03d}",
                "current_price": 10.0 + i,
                "recommended_price": 10.99 + i,
                "change_pct": 0.05,
                "conflicts": "",
                "profit_delta": 0.0 if status == "unchanged" else float(i + 1),
                "profit_delta_low": 0.0 if status == "unchanged" else float(i),
                "profit_delta_high": 0.0 if status == "unchanged" else float(i + 2),
                "revenue_delta": 1.0,
                "status": status,
                "explanation": f"Optimum for SKU-{i:03d}",
                "created_at": now,
            }
            for i, status in enumerate(statuses)
        ],
    )
    positions = ["below_market"] * 6 + ["at_market"] * 5 + ["above_market"] * 3 + ["no_competitor_data"]
    _rows(
        engine,
        MarketPosition,
        [
            {
                "run_id": pricing_run,
                "sku": f"SKU-{i:03d}",
                "our_price": 10.0,
                "index_vs_avg": None if p == "no_competitor_data" else 100.0 + i,
                "position": p,
                "n_offers": 3,
            }
            for i, p in enumerate(positions)
        ],
    )

    # PUXT: two analyses of checkout-button (the newer decides), one of search-ranking; scans; findings.
    puxt_old = _run(engine, "puxt", now - timedelta(days=2), 30.0)
    puxt_new = _run(engine, "puxt", now - timedelta(hours=6), 30.0)
    _rows(
        engine,
        UxExperiment,
        [
            {"key": "checkout-button", "name": "Green checkout button", "spec": {}, "decision": "ship"},
            {"key": "search-ranking", "name": "New ranker", "spec": {}, "decision": "stop"},
        ],
    )
    _rows(
        engine,
        UxExperimentResult,
        [
            {
                "run_id": run,
                "experiment": key,
                "users": users,
                "srm_flagged": srm,
                "decision": decision,
                "reason": reason,
                "decisive": decision != "keep running",
                "guardrails_breached": [],
                "analysis": {"big": list(range(50))},
                "created_at": at,
            }
            for run, key, users, srm, decision, reason, at in [
                (puxt_old, "checkout-button", {"control": 100, "green": 90}, False, "keep running", "too early", now),
                (
                    puxt_new,
                    "checkout-button",
                    {"control": 24000, "green": 23831},
                    False,
                    "ship",
                    "ship 'green': 'conversion' +8.0%",
                    now + timedelta(seconds=1),
                ),
                (
                    puxt_new,
                    "search-ranking",
                    {"control": 15794, "new-ranker": 14239},
                    True,
                    "stop",
                    "sample ratio mismatch",
                    now,
                ),
            ]
        ],
    )
    _rows(
        engine,
        UxA11yScan,
        [
            {
                "run_id": run,
                "url": url,
                "level": "AA",
                "status": status,
                "violations": n,
                "by_impact": impact,
                "error": error,
                "scanned_at": now,
            }
            for run, url, status, n, impact, error in [
                (puxt_old, "http://127.0.0.1:9/checkout.html", "ok", 9, {"critical": 9}, None),
                (puxt_new, "http://127.0.0.1:9/checkout.html", "ok", 4, {"critical": 2, "serious": 2}, None),
                (puxt_new, "http://127.0.0.1:9/index.html", "ok", 0, {}, None),
                (puxt_new, "http://127.0.0.1:9/gone.html", "failed", 0, {}, "HTTP 404"),
            ]
        ],
    )
    _rows(
        engine,
        UxPerfResult,
        [
            {
                "run_id": run,
                "kind": kind,
                "target": target,
                "metric": metric,
                "release": release,
                "baseline": baseline,
                "verdict": verdict,
                "value": value,
                "details": {},
            }
            for run, kind, target, metric, release, baseline, verdict, value in [
                (puxt_old, "probe", "/old", "total", None, None, "ok", 5.0),
                (puxt_new, "probe", "/", "total", None, None, "ok", 12.0),
                (puxt_new, "probe", "/checkout", "total", None, None, "slow", 180.0),
                (puxt_new, "comparison", "/checkout", "LCP", "1.5", "1.4", "regression", 310.0),
            ]
        ],
    )

    # PLOS: the sample history (six apps, all older than today) and one release of "web" today that rolled back.
    seed_release_history(engine, n=60, seed=3)
    _rows(
        engine,
        Release,
        [
            {
                "id": str(uuid.uuid4()),
                "flow_run_id": str(uuid.uuid4()),
                "namespace": "shop",
                "app": "web",
                "image": "registry.example.com/web:1.4.2",
                "revision": "1.4.2",
                "to_colour": "green",
                "status": "rolled_back",
                "phase": "rolled_back",
                "started_at": now - timedelta(minutes=30),
                "finished_at": now - timedelta(minutes=20),
                "predicted_success": 0.97,
                "succeeded": False,
                "reason": "error rate 0.14 > 0.1 after promotion",
                "features": {},
                "evidence": {},
            }
        ],
    )
    return World(now, ppis_runs, ppis_flow_run, pricing_run, ppos_runs, monday)


@pytest.fixture
def world(store_url: str) -> tuple[Engine, World]:
    engine = open_store(get_settings())
    return engine, seed_world(engine)


# --- builders ---------------------------------------------------------------------------------------------------


def test_system_statuses_report_health_last_run_success_rate_and_freshness(world: tuple[Engine, World]) -> None:
    engine, w = world
    statuses = {s.code: s for s in system_statuses(engine, get_settings(), now=w.now, ui_base=UI)}
    assert list(statuses) == ["ppis", "ppms", "ppos", "pces", "puxt", "plos"]  # the registry's order

    ppis = statuses["ppis"]
    assert ppis.health == 93.9 and ppis.reasons == ["1 of the last 7 runs failed"]
    assert ppis.health_series[-1] == 93.9 and ppis.health_series[0] == 96.0 and len(ppis.health_series) == 10
    assert ppis.last_run is not None and ppis.last_run.status == "failed" and ppis.last_run.duration_seconds == 4.0
    assert ppis.last_run.id == w.ppis_runs[0]
    assert (ppis.succeeded, ppis.finished) == (6, 7) and ppis.success_rate == pytest.approx(6 / 7)
    assert ppis.median_duration_seconds == 2.5
    # The last good run finished 50 minutes ago against an hourly interval: fresh.
    assert ppis.freshness == 1.0 and ppis.freshness_label == "fresh"

    assert statuses["pces"].last_run is None and statuses["pces"].freshness_label == "never ran"
    assert statuses["pces"].health is None and statuses["pces"].success_rate is None
    # PUXT's last good run is 5 h old against an hourly interval (beyond 3x): overdue.
    assert statuses["puxt"].freshness == 0.0 and statuses["puxt"].freshness_label == "overdue"
    # PLOS has only a run in progress: no finished run, no rate.
    plos = statuses["plos"]
    assert plos.last_run is not None and plos.last_run.status == "running" and plos.success_rate is None
    assert plos.freshness_label == "no good run"
    assert plos.last_run.prefect_url == f"{UI}/runs/flow-run/{plos.last_run.flow_run_id}"


def test_success_rate_looks_only_at_the_last_window_runs(world: tuple[Engine, World]) -> None:
    engine, w = world
    settings = get_settings().model_copy(deep=True)
    settings.coordination.success_window = 2
    ppis = next(s for s in system_statuses(engine, settings, now=w.now) if s.code == "ppis")
    assert (ppis.succeeded, ppis.finished, ppis.window) == (1, 2, 2)


def test_project_statuses_pair_the_newest_health_and_its_trend_with_the_forecast(world: tuple[Engine, World]) -> None:
    engine, w = world
    section = project_statuses(engine, ui_base=UI)
    assert [p.project for p in section.projects] == ["sample:shop", "sample:payments"]  # worst health first
    shop, pay = section.projects
    assert (shop.health, shop.previous_health, shop.trend) == (72.5, 80.0, "↓ -8")
    assert shop.top_reason.startswith("blocked work") and shop.name == "Web shop relaunch"
    assert (pay.health, pay.trend, pay.probability_on_time) == (81.0, "↑ +11", 0.37)
    # The project-level forecast, not the milestone's.
    assert pay.p50 == w.now.date() + timedelta(days=60) and pay.p85 == w.now.date() + timedelta(days=90)
    assert section.portfolio is not None and section.portfolio.health == 75.8 and section.portfolio.trend == "→"
    assert section.health_run is not None and section.health_run.id == w.ppos_runs[1]


def test_a_project_the_newest_forecast_run_left_out_keeps_its_own_newest_forecast(world: tuple[Engine, World]) -> None:
    engine, w = world
    run = _run(engine, "ppms", w.now, 5.0)
    row = {"run_id": run, "project": "sample:shop", "method": "throughput", "probability_on_time": 0.5, "details": {}}
    _rows(engine, PmForecast, [row])
    by_key = {p.project: p for p in project_statuses(engine).projects}
    assert by_key["sample:shop"].probability_on_time == 0.5 and by_key["sample:shop"].forecast_method == "throughput"
    assert by_key["sample:payments"].probability_on_time == 0.37


def test_runs_read_in_one_batch_or_per_system_give_the_same_statuses(
    world: tuple[Engine, World], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, w = world
    batched = system_statuses(engine, get_settings(), now=w.now, ui_base=UI)
    monkeypatch.setattr(dash, "RECENT_SCAN", 2)  # every system but the newest two runs' is read on its own
    assert system_statuses(engine, get_settings(), now=w.now, ui_base=UI) == batched


def test_a_failed_ppos_run_does_not_set_the_project_health(world: tuple[Engine, World]) -> None:
    engine, w = world
    failed = _run(engine, "ppos", w.now, 1.0, "failed")
    _rows(engine, PpHealth, [{"run_id": failed, "project": "sample:shop", "score": 5.0, "components": []}])
    shop = project_statuses(engine).projects[0]
    assert shop.project == "sample:shop" and shop.health == 72.5


def test_release_status_shows_the_newest_release_per_app_and_the_outcomes(world: tuple[Engine, World]) -> None:
    engine, w = world
    section = release_status(engine, now=w.now)
    apps = [r.app for r in section.latest_per_app]
    assert apps == sorted(apps) and "web" in apps and len(apps) == len(set(apps))
    web = next(r for r in section.latest_per_app if r.app == "web")
    assert (web.status, web.revision, web.predicted_success) == ("rolled_back", "1.4.2", 0.97)
    assert section.recent[0].revision == "1.4.2" and len(section.recent) == dash.RECENT_RELEASES
    assert [r.started_at for r in section.recent] == sorted((r.started_at for r in section.recent), reverse=True)
    # All 61 releases started within the last 30 days (the sample history spans 14).
    assert section.total == 61 and section.outcomes["rolled_back"] >= 1
    assert sum(section.outcomes.values()) == 61


def test_experience_status_takes_each_experiments_and_pages_newest_result(world: tuple[Engine, World]) -> None:
    engine, _ = world
    section = experience_status(engine, ui_base=UI)
    by_key = {x.experiment: x for x in section.experiments}
    assert by_key["checkout-button"].decision == "ship" and by_key["checkout-button"].users == 47831
    assert by_key["checkout-button"].name == "Green checkout button"
    assert by_key["search-ranking"].srm_flagged and by_key["search-ranking"].decision == "stop"
    # Failed scans first, then the most violations; the older checkout scan (9) is superseded by the newer (4).
    assert [(p.url.rsplit("/", 1)[1], p.status, p.violations) for p in section.pages] == [
        ("gone.html", "failed", 0),
        ("checkout.html", "ok", 4),
        ("index.html", "ok", 0),
    ]
    # Findings of the newest run only, problems first.
    assert [(f.target, f.metric, f.verdict) for f in section.findings] == [
        ("/checkout", "total", "slow"),
        ("/checkout", "LCP", "regression"),
        ("/", "total", "ok"),
    ]
    assert section.findings[1].release == "1.5" and section.findings[1].baseline == "1.4"


def test_pricing_status_counts_statuses_and_adds_up_the_profit_band_as_the_run_does(
    world: tuple[Engine, World],
) -> None:
    import pandas as pd

    from framework2.flows.pricing import MOVING
    from framework2.tasks.pricing.report import projected_totals

    engine, w = world
    section = pricing_status(engine, ui_base=UI)
    assert section is not None and section.run.id == w.pricing_run
    assert section.run.prefect_url == f"{UI}/runs/flow-run/{w.ppis_flow_run}"
    assert section.by_status == {"applied": 7, "pending_approval": 5, "unchanged": 3} and section.total == 15
    # The same totals the PPIS run prints, computed by its own function from the same rows.
    with engine.connect() as conn:
        recs = pd.read_sql(
            PriceRecommendation.__table__.select().where(PriceRecommendation.__table__.c.run_id == w.pricing_run),
            conn,
        )
    totals = projected_totals(recs, recs["status"].isin(MOVING))
    assert section.profit == pytest.approx(totals.profit) and section.profit == pytest.approx(78.0)
    assert section.profit_low == pytest.approx(totals.profit_low)
    assert section.profit_high == pytest.approx(totals.profit_high)
    assert section.positions == {"below_market": 6, "at_market": 5, "above_market": 3, "no_competitor_data": 1}
    assert section.mean_index == pytest.approx(100 + sum(range(14)) / 14)
    assert [t.sku for t in section.top] == ["SKU-011", "SKU-010", "SKU-009", "SKU-008", "SKU-007"]


def test_the_dashboard_adds_up_the_same_statuses_as_the_pricing_flow() -> None:
    from framework2.flows.pricing import MOVING

    assert set(dash.MOVING) == set(MOVING)


def test_allocation_status_sets_days_per_person_week_against_capacity_after_time_off(
    world: tuple[Engine, World],
) -> None:
    engine, w = world
    section = allocation_status(engine, ui_base=UI)
    assert section is not None and section.weeks == [w.monday + timedelta(days=7 * k) for k in range(3)]
    people = {p.person: p for p in section.people}
    assert [p.person for p in section.people] == ["ana", "chen", "ben"]  # most days first
    assert people["ana"].allocated == [4.0, 4.0, 2.0] and people["ana"].capacity == [4.0, 4.0, 4.0]
    assert people["ana"].projects == ["sample:shop", "sample:payments"]
    assert people["chen"].capacity == [5.0, 0.0, 5.0]  # the second week off
    assert people["ben"].utilisation == pytest.approx(6.5 / 12)


def test_a_plans_first_week_counts_capacity_from_its_start_and_skips_time_off() -> None:
    monday = date(2030, 1, 7)
    assert dash._week_capacity(4.0, monday, monday + timedelta(days=2), []) == pytest.approx(2.4)  # Wed-Fri
    off = [["2030-01-08", "2030-01-09"], ["not a date", "x"]]
    assert dash._week_capacity(5.0, monday, monday, off) == pytest.approx(3.0)


def test_recent_runs_are_paginated_50_a_page_newest_first(store_url: str) -> None:
    engine = open_store(get_settings())
    start = utcnow() - timedelta(days=1)
    ids = [_run(engine, "ppis", start + timedelta(minutes=i), 1.0) for i in range(120)]
    first, last = recent_runs_page(engine, 1, ui_base=UI), recent_runs_page(engine, 3)
    assert (first.total, first.pages, len(first.runs), len(last.runs)) == (120, 3, 50, 20)
    assert [r.id for r in first.runs] == ids[::-1][:50] and [r.id for r in last.runs] == ids[::-1][100:]
    assert first.runs[0].prefect_url == f"{UI}/runs/flow-run/{first.runs[0].flow_run_id}"
    assert recent_runs_page(engine, 9).runs == []


# --- rendering --------------------------------------------------------------------------------------------------


class _Structure(HTMLParser):
    """Collects what the HTML checks need: tags in order, unclosed elements, and th without scope."""

    VOID = {"meta", "link", "br", "img", "input", "hr"}  # SVG's empty elements are written self-closed

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.th_without_scope = 0
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "th" and "scope" not in dict(attrs):
            self.th_without_scope += 1
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()


def check_html(page: str) -> _Structure:
    """Well nested, every th scoped, one h1, the HTML5 doctype and a language."""
    assert page.startswith('<!DOCTYPE html>\n<html lang="en">')
    parser = _Structure()
    parser.feed(page)
    assert parser.errors == [] and parser.stack == []
    assert parser.th_without_scope == 0 and parser.tags.count("h1") == 1 and "title" in parser.tags
    assert "script" not in parser.tags
    return parser


def test_an_empty_store_renders_every_section_with_a_hint(store_url: str) -> None:
    engine = open_store(get_settings())
    data = dashboard_data(engine, get_settings(), ui_base=UI)
    assert data.pricing is None and data.allocation is None and data.runs.total == 0
    page = render_dashboard(data, UI)
    check_html(page)
    for code in ("PPIS", "PPMS", "PPOS", "PCES", "PUXT", "PLOS"):
        assert f'<th scope="row">{code}<br>' in page
    assert page.count('class="empty"') == 7  # one hint per section
    assert "run <code>framework2 demo</code> or <code>framework2 run</code>" in page


def test_the_seeded_page_shows_the_numbers_with_links_into_the_prefect_ui(world: tuple[Engine, World]) -> None:
    engine, w = world
    page = render_dashboard(dashboard_data(engine, get_settings(), now=w.now, ui_base=UI), UI)
    check_html(page)
    assert 'class="empty"' not in page
    assert "93.9" in page and "86% <span class='muted'>(6 of 7)</span>" in page
    assert f'href="{UI}/runs/flow-run/{w.ppis_flow_run}"' in page
    assert "+78.00/day" in page and "<strong>15</strong>" in page and "47,831" in page
    assert "↓ -8" in page and "staffing gaps (-11)" in page and "error rate 0.14 &gt; 0.1" in page
    # Every chart is well-formed SVG with an accessible name.
    svgs = re.findall(r"<svg .*?</svg>", page, flags=re.S)
    assert len(svgs) >= 5
    for svg in svgs:
        root = ElementTree.fromstring(svg)
        assert root.get("role") == "img" and root.get("aria-label")


def test_text_from_the_store_is_escaped(store_url: str) -> None:
    engine = open_store(get_settings())
    evil = '<script>alert("x")</script>'
    run = _run(engine, "ppos", utcnow(), 1.0, error=evil)
    _rows(engine, PpHealth, [{"run_id": run, "project": evil, "score": 50.0, "top_reason": evil, "components": []}])
    page = render_dashboard(dashboard_data(engine, get_settings(), ui_base=UI), UI)
    assert "<script>" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    check_html(page)


def test_charts_scale_and_mark_overload() -> None:
    svg = sparkline_svg([90.0, 95.0, 100.0], label="a <b>", threshold=95)
    root = ElementTree.fromstring(svg)
    assert root.get("aria-label") == "a <b>"
    ys = [float(p.split(",")[1]) for p in root.find("{*}polyline").get("points").split()]  # type: ignore[union-attr]
    assert ys[0] > ys[1] > ys[2]  # higher score, higher on the chart
    assert sparkline_svg([], label="none") == ""
    run = dash.RunRow(id="r", system="ppos", status="completed", started_at=utcnow())
    section = AllocationSection(
        run=run,
        weeks=[date(2030, 1, 7)],
        people=[
            PersonLoad(person="a", allocated=[5.0], capacity=[4.0]),
            PersonLoad(person="b", allocated=[2.0], capacity=[4.0]),
        ],
    )
    fills = [r.get("fill") for r in ElementTree.fromstring(allocation_svg(section)).iter("rect")]
    assert dash.OVER in fills and dash.LINE in fills


# --- HTTP and the browser ---------------------------------------------------------------------------------------


@pytest.fixture
def serve() -> Iterator[Any]:
    """Start an app with the dashboard router on a free loopback port in a thread; returns its base URL."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: FastAPI) -> str:
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


def test_the_service_serves_the_page_the_runs_and_the_data(store_url: str, serve: Any) -> None:
    engine = open_store(get_settings())
    for i in range(60):
        _run(engine, "ppms", utcnow() - timedelta(minutes=i), 1.0, flow_run_id=f"00000000-0000-0000-0000-{i:012d}")
    app = FastAPI()
    app.include_router(router)
    base = serve(app)  # the router's own dependencies: the store configured through the environment, as a user would
    with httpx.Client(base_url=base, timeout=10) as client:
        page = client.get("/framework-set-2/dashboard")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        check_html(page.text)
        assert re.search(r'href="http://[^"]+/runs/flow-run/00000000-0000-0000-0000-000000000000"', page.text)
        assert "Page 1 of 2" in page.text and 'href="/framework-set-2/dashboard?page=2#runs"' in page.text
        second = client.get("/framework-set-2/dashboard", params={"page": 2})
        assert "Runs 51–60 of 60" in second.text and "Newer runs" in second.text
        runs = client.get("/framework-set-2/dashboard/runs", params={"page": 2}).json()
        assert (runs["page"], runs["total"], runs["pages"], len(runs["runs"])) == (2, 60, 2, 10)
        assert runs["runs"][0]["prefect_url"].endswith("/runs/flow-run/00000000-0000-0000-0000-000000000050")
        assert client.get("/framework-set-2/dashboard/runs", params={"page": 0}).status_code == 422
        # a page number past any store is a clear 422, not an OverflowError in the database driver
        for path in ("", "/runs", "/data"):
            huge = client.get(f"/framework-set-2/dashboard{path}", params={"page": 9223372036854775807})
            assert huge.status_code == 422, huge.text
            assert "less than or equal to 1000000" in huge.text
        # the HTML page runs nothing and loads nothing: a strict policy, no framing, no sniffing
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert "script-src" not in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
        data = client.get("/framework-set-2/dashboard/data").json()
        assert [s["code"] for s in data["systems"]] == ["ppis", "ppms", "ppos", "pces", "puxt", "plos"]
        assert data["pricing"] is None and data["runs"]["total"] == 60


@pytest.fixture
def seeded_url(tmp_path: Path, serve: Any) -> Iterator[str]:
    """The dashboard of a seeded store, served on loopback (the store passed in, as an app may do)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'seeded.db'}")
    upgrade(engine)
    seed_world(engine)
    app = FastAPI()
    app.include_router(router)
    app.dependency_overrides[dash.store_engine] = lambda: engine
    app.dependency_overrides[dash.prefect_ui_base] = lambda: UI
    yield serve(app) + "/framework-set-2/dashboard"
    engine.dispose()


@pytest.mark.integration
def test_the_page_in_chromium_shows_every_system_and_the_seeded_numbers_without_console_errors(
    seeded_url: str, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
            response = page.goto(seeded_url, wait_until="load")
            assert response is not None and response.status == 200
            assert page.title() == "Framework Set 2 — system dashboard"
            health = page.locator("section[aria-labelledby=health] tbody tr")
            assert health.count() == 6
            text = page.locator("main").inner_text()
            for code in ("PPIS", "PPMS", "PPOS", "PCES", "PUXT", "PLOS"):
                assert code in text
            ppis_row = health.filter(has_text="PPIS").inner_text()
            assert "93.9" in ppis_row and "86%" in ppis_row
            pricing = page.locator("section[aria-labelledby=pricing]").inner_text()
            assert "recommendations\n15" in pricing and "awaiting approval\n5" in pricing and "+78.00/day" in pricing
            assert page.locator("section[aria-labelledby=resources] svg rect").count() > 0
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        finally:
            browser.close()
    assert problems == []
    shot = tmp_path / "dashboard.png"
    assert shot.exists() and shot.stat().st_size > 50_000


@pytest.mark.integration
def test_the_page_passes_axe_core_at_wcag_aa_seeded_and_empty(seeded_url: str, serve: Any, tmp_path: Path) -> None:
    from framework2.tasks.accessibility.scan import scan_pages

    empty = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    upgrade(empty)
    app = FastAPI()
    app.include_router(router)
    app.dependency_overrides[dash.store_engine] = lambda: empty
    app.dependency_overrides[dash.prefect_ui_base] = lambda: UI
    empty_url = serve(app) + "/framework-set-2/dashboard"
    scans = scan_pages([seeded_url, empty_url], "AA")
    for scan in scans:
        assert scan.status == "ok", scan.error
        assert [(v.rule_id, v.targets) for v in scan.violations] == [], scan.url
    empty.dispose()
