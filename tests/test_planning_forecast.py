"""PPMS project forecast: time off ahead pushes the dates out and is named; time off after the work
changes nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from framework2.tasks.planning.durations import fit_duration_model
from framework2.tasks.planning.forecast import availability, forecast_project
from framework2.tasks.planning.records import PersonRecord, TaskRecord

NOW = datetime(2024, 6, 3, 0, tzinfo=UTC)  # a Monday
MODEL = fit_duration_model([])  # fallback: estimates x0.7-x2
TEAM = ["ana", "ben", "chen", "dara"]


def _tasks() -> list[TaskRecord]:
    done = [  # who works on the project: four people
        TaskRecord(
            key=f"shop#d{i}",
            project="shop",
            status="done",
            estimate_days=1,
            assignee=person,
            created_at=NOW - timedelta(days=30),
            started_at=NOW - timedelta(days=20),
            done_at=NOW - timedelta(days=19),
            updated_at=NOW - timedelta(days=19),
        )
        for i, person in enumerate(TEAM)
    ]
    todo = [
        TaskRecord(key=f"shop#{i}", project="shop", estimate_days=2, created_at=NOW, updated_at=NOW) for i in range(20)
    ]
    return done + todo


def _people(off: dict[str, tuple[date, date]]) -> list[PersonRecord]:
    return [PersonRecord(handle=h, time_off=[off[h]] if h in off else []) for h in TEAM]


def test_time_off_in_the_window_pushes_the_forecast_out_and_names_who_is_away() -> None:
    tasks = _tasks()
    fortnight = (NOW.date(), NOW.date() + timedelta(days=13))

    plain, _, _ = forecast_project("shop", tasks, [], _people({}), MODEL, now=NOW, trials=2000)
    away, _, _ = forecast_project(
        "shop", tasks, [], _people({"ana": fortnight, "ben": fortnight}), MODEL, now=NOW, trials=2000
    )

    assert away.p50_days > plain.p50_days * 1.2
    assert "time off" not in plain.reason
    assert "time off in the next" in away.reason and "ana 10 d" in away.reason and "ben 10 d" in away.reason


def test_time_off_after_the_work_changes_nothing() -> None:
    tasks = _tasks()
    later = (NOW.date() + timedelta(days=200), NOW.date() + timedelta(days=210))

    plain, _, _ = forecast_project("shop", tasks, [], _people({}), MODEL, now=NOW, trials=2000, rng=1)
    away, _, _ = forecast_project("shop", tasks, [], _people({"ana": later}), MODEL, now=NOW, trials=2000, rng=1)

    assert away.p85_days == plain.p85_days and away.reason == plain.reason


def test_availability_counts_working_days_only_and_unknown_people_as_present() -> None:
    tasks = _tasks() + [
        TaskRecord(key="shop#x", project="shop", assignee="eve", created_at=NOW, updated_at=NOW, status="in_progress")
    ]
    week = (NOW.date() - timedelta(days=2), NOW.date() + timedelta(days=8))  # Sat .. next Tue: 7 working days
    share, why = availability("shop", tasks, _people({"chen": week}), NOW.date(), 10)

    assert share == 1 - 7 / (5 * 10)  # five people (eve has no record: present), 10 working days
    assert "chen 7 d" in why
    assert availability("shop", tasks, _people({}), NOW.date(), 10) == (1.0, "")
