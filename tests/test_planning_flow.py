"""PPMS end to end on a real Prefect server over the sample projects: ranked, assigned, forecast."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prefect.artifacts import Artifact
from sqlalchemy import select

from framework2.flows.planning import project_management
from framework2.sample.world import seed_projects
from framework2.store.engine import open_store, session_scope
from framework2.store.models import PmAssignment, PmBacklogEntry, PmForecast, PmTask, QuarantinedRow

pytestmark = pytest.mark.integration


def test_project_management_ranks_assigns_and_forecasts_the_sample_projects(
    prefect_server: str, store_url: str
) -> None:
    engine = open_store()
    seed_projects(engine)

    result = project_management()

    assert result.system == "ppms" and "assigned" in result.summary
    with session_scope(engine) as session:
        reasons = [r.reason for r in session.scalars(select(QuarantinedRow).where(QuarantinedRow.system == "ppms"))]
        ranked = session.scalars(select(PmBacklogEntry).order_by(PmBacklogEntry.rank)).all()
        assigned = session.scalars(select(PmAssignment).where(PmAssignment.person.is_not(None))).all()
        forecasts = session.scalars(select(PmForecast).where(PmForecast.milestone.is_(None))).all()
    assert any("dependency cycle" in r and "→" in r for r in reasons)
    assert any("LEGACY-404, which is not a known task" in r for r in reasons)
    assert any("before it started" in r for r in reasons)
    assert ranked[0].rank == 1 and ranked[0].why
    assert assigned and all(a.why for a in assigned)
    assert {f.project for f in forecasts} == {"sample:shop", "sample:payments"}
    for f in forecasts:
        assert f.p50 <= f.p85 <= f.p95 and f.method == "dependency-graph"
        assert 0 <= f.probability_on_time <= 1
    report = Artifact.get("ppms-forecast")
    assert report is not None and "P85" in report.data and "data:image/png;base64," in report.data
    assert "key-person dependency" in report.data and "Risk " in report.data
    assert Artifact.get("ppms-backlog") is not None and Artifact.get("ppms-assignments") is not None
    assert "How far to trust these dates" in report.data and "held up better" in report.data
    assert "**Model — flow.**" in report.data and "The throughput answer" in report.data
    calibration = Artifact.get("ppms-calibration")
    assert calibration is not None and "| P85 |" in calibration.data and "data:image/png;base64," in calibration.data
    assert "| throughput baseline (12 weeks) |" in calibration.data and "pinball P85" in calibration.data
    assert "Track record of published forecasts" in calibration.data

    import framework2

    latest = framework2.ppms.get_forecasts()
    assert {f["project"] for f in latest if f["milestone"] is None} == {"sample:shop", "sample:payments"}
    assert len({f["run_id"] for f in latest}) == 1
    backlog = framework2.ppms.get_backlog(limit=5)
    assert [b["rank"] for b in backlog] == [1, 2, 3, 4, 5]
    trust = framework2.ppms.get_calibration()
    assert trust["verdict"] in {"consistent", "too early", "too late", "too wide", "too narrow"}
    assert trust["cases"] >= 10 and set(trust["dependence"]) == {"sample:shop", "sample:payments"}
    assert [c["quantile"] for c in trust["coverage"]] == [50, 85, 95]


def test_forecast_emits_slipped_once_when_p85_moves_past_the_target(
    prefect_server: str, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import framework2.flows.planning as planning
    from framework2.store.models import PmProject

    engine = open_store()
    seed_projects(engine)
    with session_scope(engine) as session:  # the payments team promised next week: out of reach
        project = session.get(PmProject, "sample:payments")
        project.target_date = datetime.now(UTC).date() + timedelta(days=7)
    emitted: list[tuple[str, dict]] = []
    real_emit = planning.emit
    monkeypatch.setattr(planning, "emit", lambda s, e, p: (emitted.append((e, p)), real_emit(s, e, p)))

    planning.forecast()
    planning.forecast()  # still late: no second alert

    assert [e for e, _ in emitted] == ["forecast.slipped", "forecast.updated", "forecast.updated"]
    assert "sample:payments" in emitted[1][1]["projects"]  # every run says it published (PPOS re-scores on it)
    payload = emitted[0][1]
    assert payload["project"] == "sample:payments" and payload["p85"] > payload["target"]
    assert payload["probability_on_time"] < 0.15


def test_a_triggered_reforecast_of_unchanged_work_is_left_out(prefect_server: str, store_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A burst of requirement changes queues several re-forecasts; once the first has forecast the new work the
    others find the same work and end without a second forecast, event or health run."""
    import framework2.flows.planning as planning

    engine = open_store()
    seed_projects(engine)
    emitted: list[str] = []
    monkeypatch.setattr(planning, "emit", lambda _s, event, _p: emitted.append(event))

    def stored() -> int:
        with session_scope(engine) as session:
            return len(session.scalars(select(PmForecast).where(PmForecast.project == "sample:shop")).all())

    first = planning.forecast(projects=["sample:shop"], only_if_changed=True)
    count = stored()
    again = planning.forecast(projects=["sample:shop"], only_if_changed=True)

    assert len(first) == 1 and again == [] and stored() == count and emitted.count("forecast.updated") == 1
    with session_scope(engine) as session:  # new work: forecast again
        now = datetime.now(UTC)
        session.add(
            PmTask(
                key="sample:shop#new",
                project="sample:shop",
                status="todo",
                estimate_days=3,
                created_at=now,
                updated_at=now,
            )
        )
    assert len(planning.forecast(projects=["sample:shop"], only_if_changed=True)) == 1 and stored() > count
    assert len(planning.forecast(projects=["sample:shop"])) == 1  # asked for plainly: always forecast
