"""PPOS store: the slip classifier learns from what PPOS saw of projects that have since finished — one row
per project and week, labelled with how late the project really finished."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from framework2.store.engine import open_store, session_scope
from framework2.store.models import PpRisk
from framework2.store.planning import store_batch
from framework2.store.portfolio import slip_history
from framework2.store.runs import start_run
from framework2.tasks.planning.records import Batch, ProjectRecord, TaskRecord
from framework2.tasks.portfolio.slip_risk import FEATURES, synthetic_slip_history, train_slip_model

MONDAY = datetime(2025, 1, 6, 9, tzinfo=UTC)


def _project(key: str, target: date, finished: datetime | None) -> Batch:
    end = finished or MONDAY
    done = TaskRecord(
        key=f"{key}#1",
        project=key,
        status="done",
        created_at=end - timedelta(days=30),
        started_at=end - timedelta(days=10),
        done_at=end,
        updated_at=end,
    )
    still_open = TaskRecord(key=f"{key}#2", project=key, status="todo", created_at=MONDAY, updated_at=MONDAY)
    tasks = [done] if finished else [done, still_open]
    return Batch(projects=[ProjectRecord(key=key, name=key, source="csv", target_date=target)], tasks=tasks)


def test_history_rows_are_finished_projects_once_a_week_with_how_late_they_were(store_url: str) -> None:
    engine = open_store()
    store_batch(engine, _project("late", date(2025, 3, 1), datetime(2025, 3, 21, tzinfo=UTC)), "csv")
    store_batch(engine, _project("early", date(2025, 3, 1), datetime(2025, 2, 25, tzinfo=UTC)), "csv")
    store_batch(engine, _project("open", date(2025, 3, 1), None), "csv")
    features = {f: 0.5 for f in FEATURES}
    runs = {hours: start_run(engine, "ppos") for hours in (0, 1, 24, 24 * 7)}  # three the first week, one the next
    with session_scope(engine) as session:
        for project in ("late", "early", "open"):
            for hours, run in runs.items():
                session.add(
                    PpRisk(
                        run_id=run,
                        project=project,
                        probability=0.5,
                        basis="heuristic",
                        features={**features, "blocked_ratio": hours / 1000},
                        created_at=MONDAY + timedelta(hours=hours),
                    )
                )

    history = slip_history(engine, FEATURES)

    assert sorted(history["slipped_days"].tolist()) == [-4, -4, 20, 20]  # the open project is not history yet
    assert sorted(history["blocked_ratio"].tolist()) == [0.0, 0.0, 0.168, 0.168]  # each week's first row
    assert list(history.columns) == [*FEATURES, "slipped_days"]


def test_enough_finished_history_trains_the_calibrated_model(store_url: str) -> None:
    engine = open_store()
    examples = synthetic_slip_history(120, seed=4)
    run = start_run(engine, "ppos")
    for i, row in examples.iterrows():
        key = f"old{i}"
        target = date(2024, 6, 1)
        finished = datetime.combine(target, datetime.min.time(), UTC) + timedelta(days=int(row["slipped_days"]))
        store_batch(engine, _project(key, target, finished), "csv")
        with session_scope(engine) as session:
            session.add(
                PpRisk(
                    run_id=run,
                    project=key,
                    probability=0.5,
                    basis="heuristic",
                    features={f: float(row[f]) for f in FEATURES},
                    created_at=MONDAY,
                )
            )

    model = train_slip_model(slip_history(engine, FEATURES), slip_days=10)

    assert model.mode == "model", model.reason
    assert model.mode == "model" and model.training_size == 120
    assert model.brier is not None and model.base_rate_brier is not None and model.brier < model.base_rate_brier
    from framework2.tasks.portfolio.report import risk_markdown

    section = risk_markdown(model, [], {}, target_accuracy=95)
    assert "Calibration accuracy 100 x (1 - expected calibration error) = " in section
    assert "`[ppos] predictionAccuracy`" in section and "No project has open work." in section


def test_a_failed_run_does_not_set_the_baseline_for_the_next(store_url: str) -> None:
    from framework2.store.portfolio import health_series, previous_health, save_health
    from framework2.store.runs import finish_run
    from framework2.tasks.portfolio.health import HealthScore

    engine = open_store()
    good, bad = start_run(engine, "ppos"), start_run(engine, "ppos")
    save_health(engine, good, [HealthScore(project="shop", score=80.0, components=[])], MONDAY)
    finish_run(engine, good, status="completed")
    save_health(engine, bad, [HealthScore(project="shop", score=20.0, components=[])], MONDAY + timedelta(hours=1))
    finish_run(engine, bad, status="failed", error="died half way")

    assert previous_health(engine) == {"shop": 80.0}
    assert [score for _, score in health_series(engine, "shop")] == [80.0]
