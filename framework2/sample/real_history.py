"""Real, public work-item histories as PPMS records: the ground truth the forecast is checked against.

The files live outside the project (``../shared/data/real-history/`` beside the checkout, or where
``FRAMEWORK2_REAL_HISTORY`` points) and are never copied into it; see their README for the sources.

- ``7digital2012.csv`` — 3,238 features and bugs of one team, 2009-2012, with the day each was prioritised,
  started and done; no estimates. The scope-forecast case: open work at a moment, when was it all done?
  Dates only, so a start counts from 09:00 and a finish at 17:00 UTC of its day.
- ``renzo-pomodoro-tasks.csv`` — one developer's 10 years of tasks with an estimate and the actual effort in
  pomodoros (25 minutes). The estimate-versus-actual case: how heavy is the tail of actual / estimate?
- ``story-points-time-spent.csv`` — agile issues of four projects with story points, hours spent and a
  sprint number. Points versus hours, sprint by sprint.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, Field

from framework2.errors import DataError
from framework2.tasks.planning.records import TaskRecord

ENV = "FRAMEWORK2_REAL_HISTORY"
SEVEN_DIGITAL = "7digital2012.csv"
RENZO = "renzo-pomodoro-tasks.csv"
STORY_POINTS = "story-points-time-spent.csv"
POMODORO_HOURS = 25 / 60


def data_dir() -> Path:
    """Where the real histories are: ``FRAMEWORK2_REAL_HISTORY``, else ``shared/data/real-history`` in the
    checkout's parent or any folder above it."""
    override = os.environ.get(ENV)
    if override:
        return Path(override)
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "shared" / "data" / "real-history"
        if candidate.is_dir():
            return candidate
    raise DataError(
        "the real task histories (shared/data/real-history) are not beside this checkout",
        f"clone the project next to the shared folder, or set {ENV} to the folder holding {SEVEN_DIGITAL}",
    )


def _rows(name: str) -> list[dict[str, str]]:
    path = data_dir() / name
    if not path.is_file():
        raise DataError(f"{path} is missing", f"set {ENV} to the folder holding the real histories")
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _day(text: str) -> date:
    return datetime.strptime(text, "%d/%m/%Y").date()


def seven_digital(*, with_backlog: bool = True, project: str = "7digital") -> list[TaskRecord]:
    """The 7digital items as done tasks. ``with_backlog=False`` drops the prioritised date (created = started),
    as a tracker that only records starts would: then a moment's open scope is the work in progress."""
    tasks = []
    for i, row in enumerate(_rows(SEVEN_DIGITAL)):
        started = datetime.combine(_day(row["Dev.Started"]), datetime.min.time(), UTC) + timedelta(hours=9)
        done = datetime.combine(_day(row["Done"]), datetime.min.time(), UTC) + timedelta(hours=17)
        prioritised = datetime.combine(_day(row["Prioritised"]), datetime.min.time(), UTC) + timedelta(hours=9)
        created = min(prioritised, started) if with_backlog else started
        kind = (row["Type"] or "task").strip().lower()
        size = (row["Size"] or "").strip()
        tasks.append(
            TaskRecord(
                key=f"{project}#{i + 1}",
                project=project,
                title=kind,
                status="done",
                type=kind,
                labels=[f"size:{size.lower()}"] if size and size != "NA" else [],
                created_at=created,
                started_at=started,
                done_at=done,
                updated_at=done,
            )
        )
    return tasks


@dataclass(frozen=True)
class EffortRecord:
    """One finished piece of work with its estimate and actual effort (hours), and when it happened."""

    group: str  # project, or the developer
    period: str  # the sprint or week it belongs to, sortable
    estimate_hours: float
    actual_hours: float
    tags: tuple[str, ...]


def renzo_tasks() -> list[EffortRecord]:
    """Renzo's finished tasks with both an estimate and an actual effort above zero, weekly periods."""
    out = []
    for row in _rows(RENZO):
        try:
            estimate, actual = float(row["estimate"]), float(row["actual"])
        except ValueError:
            continue  # NA: not estimated or not measured
        if row["DONE"] != "1" or estimate <= 0 or actual <= 0:
            continue
        year, week, _ = date.fromisoformat(row["date"]).isocalendar()
        tags = tuple(t.strip() for t in (row["X.words"] or "").split(",") if t.strip())
        out.append(
            EffortRecord("renzo", f"{year}-W{week:02d}", estimate * POMODORO_HOURS, actual * POMODORO_HOURS, tags)
        )
    return out


def story_point_issues() -> list[EffortRecord]:
    """Issues with story points above zero (and below 100: 999 is a placeholder), hours spent and a sprint."""
    out = []
    for row in _rows(STORY_POINTS):
        try:
            points, hours, sprint = float(row["Story.Points"]), float(row["Time.Spent"]), int(row["Sprint"])
        except ValueError:
            continue
        if not 0 < points < 100 or hours <= 0:
            continue
        out.append(EffortRecord(row["Project"], f"{sprint:04d}", points, hours, ()))
    return out


def write_tasks_csv(tasks: list[TaskRecord], path: Path | str) -> Path:
    """Write ``tasks`` as the tasks CSV ``framework2 ppms forecast|backtest`` and ``[ppms] tasksCsv`` read."""
    path = Path(path)
    columns = ["key", "project", "title", "status", "type", "labels", "estimate_days", "assignee"]
    columns += ["created_at", "started_at", "done_at", "updated_at"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for t in tasks:
            writer.writerow(
                [
                    t.key,
                    t.project,
                    t.title,
                    t.status,
                    t.type,
                    ";".join(t.labels),
                    "" if t.estimate_days is None else f"{t.estimate_days:g}",
                    t.assignee or "",
                    *(m.isoformat() if m is not None else "" for m in (t.created_at, t.started_at, t.done_at)),
                    t.updated_at.isoformat(),
                ]
            )
    return path


# --- Estimate versus actual, rolling origin ------------------------------------------------------------------


class EffortCheck(BaseModel):
    """How the duration model's per-task P50/P85 held on real estimate-vs-actual data, against the baseline."""

    dataset: str
    tasks: int = Field(..., description="Tasks forecast (each only from earlier periods).")
    coverage: dict[int, float] = Field(..., description="Share of tasks whose actual was at or below the model's Pq.")
    pinball: dict[int, float] = Field(..., description="The model's mean pinball loss at P50/P85 (hours).")
    baseline_coverage: dict[int, float] = Field(
        ..., description="The same for 'actual = estimate x the window's median actual/estimate'."
    )
    baseline_pinball: dict[int, float]
    median_ratio: float = Field(..., description="Median of the model's P50 / actual.")
    p99_ratio: float = Field(..., description="99th percentile of P85 / actual: no absurd multipliers.")


def _as_tasks(records: list[EffortRecord], start: datetime, scale: float) -> list[TaskRecord]:
    """Effort records as done tasks whose working-day duration is the actual effort times ``scale``."""
    tasks = []
    for i, r in enumerate(records):
        began = start + timedelta(days=i // 20)  # only the order and the recency weights read these times
        kind = r.tags[0].lstrip("@") if r.tags else "task"
        tasks.append(
            TaskRecord(
                key=f"{r.group}#{i}",
                project=r.group,
                status="done",
                type=kind,
                labels=[t.lstrip("@") for t in r.tags[1:]],
                estimate_days=r.estimate_hours * scale,
                created_at=began,
                started_at=began,
                done_at=_after_working_days(began, r.actual_hours * scale),
                updated_at=began,
            )
        )
    return tasks


def _after_working_days(start: datetime, days: float) -> datetime:
    from framework2.tasks.planning.durations import _add_working_days

    return _add_working_days(start, days)


def effort_check(
    records: list[EffortRecord],
    *,
    dataset: str,
    scale: float,
    window: int = 1000,
    step: int = 250,
    trials: int = 1000,
    seed: int = 0,
) -> EffortCheck:
    """Rolling origin: each block of ``step`` tasks (in period order) is forecast by a duration model trained
    on the ``window`` tasks before it, and scored against the actual effort and against the baseline teams use:
    the estimate times the window's median actual / estimate (for story points: hours per point).

    ``scale`` turns hours into model days: the model floors durations at a quarter day, so effort measured in
    minutes is scaled up to keep its shape (the model is scale-free above the floor).
    """
    import numpy as np

    from framework2.tasks.planning.durations import fit_duration_model
    from framework2.tasks.planning.scoring import pinball_loss

    ordered = sorted(records, key=lambda r: r.period)
    tasks = _as_tasks(ordered, datetime(2000, 1, 3, tzinfo=UTC), scale)
    quantiles = {50: [], 85: []}
    actual, estimate = [], []
    rng = np.random.default_rng(seed)
    for lo in range(window, len(tasks), step):
        train, test = tasks[lo - window : lo], tasks[lo : lo + step]
        model = fit_duration_model(train, now=test[0].started_at)
        draws = model.sample(test, trials, rng)
        for q in quantiles:
            quantiles[q].extend(np.quantile(draws, q / 100, axis=0) / scale)
        actual.extend(r.actual_hours for r in ordered[lo : lo + step])
        # The practitioners' correction: the estimate times the typical actual / estimate of the window.
        typical = float(np.median([r.actual_hours / r.estimate_hours for r in ordered[lo - window : lo]]))
        estimate.extend(r.estimate_hours * typical for r in ordered[lo : lo + step])
    y, est = np.array(actual), np.array(estimate)
    coverage, pinball, base_cov, base_pin = {}, {}, {}, {}
    for q, values in quantiles.items():
        f = np.array(values)
        coverage[q] = float((y <= f).mean())
        pinball[q] = float(np.mean([pinball_loss(a, b, q / 100) for a, b in zip(y, f, strict=True)]))
        base_cov[q] = float((y <= est).mean())
        base_pin[q] = float(np.mean([pinball_loss(a, b, q / 100) for a, b in zip(y, est, strict=True)]))
    return EffortCheck(
        dataset=dataset,
        tasks=len(y),
        coverage=coverage,
        pinball=pinball,
        baseline_coverage=base_cov,
        baseline_pinball=base_pin,
        median_ratio=float(np.median(np.array(quantiles[50]) / y)),
        p99_ratio=float(np.quantile(np.array(quantiles[85]) / y, 0.99)),
    )
