"""Forecast and backtest from a task history file: check PPMS on your own past before trusting it.

The file is the tasks CSV that ``[ppms] tasksCsv`` reads (``connectors.read_csv``: ``key``, ``project``,
``title``, ``status``, ``created_at``, ``started_at``, ``done_at``, ``estimate_days`` or ``estimate_hours``,
``depends_on``, ...). Nothing is stored: these are plain functions of the file, for the command line
(``framework2 ppms forecast|backtest``) and the programmatic API (``framework2.ppms.forecast_file`` /
``backtest_file``).

"Now" is the latest moment the file records (a creation, start, finish or update), unless ``as_of`` moves
it earlier — then the file is cut to what was known at the end of that day, exactly as the backtest cuts
the past. Rows that cannot be read are counted and their first reasons shown; they never stop the run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from pydantic import BaseModel, Field

from framework2.errors import DataError
from framework2.tasks.planning.backtest import BacktestCase, BacktestResult, backtest
from framework2.tasks.planning.connectors import read_csv
from framework2.tasks.planning.flow import fit_flow_models
from framework2.tasks.planning.forecast import forecast_project
from framework2.tasks.planning.montecarlo import Forecast
from framework2.tasks.planning.records import DependencyRecord, TaskRecord
from framework2.tasks.planning.scoring import Scores
from framework2.tasks.planning.snapshots import snapshot_at

MAX_FILE_BYTES = 256 * 2**20
MAX_REASONS = 5


@dataclass(frozen=True)
class History:
    """A history file as read: its tasks and dependencies, what could not be read, and its latest moment."""

    path: str
    tasks: list[TaskRecord]
    dependencies: list[DependencyRecord]
    rejected: list[dict]
    latest: datetime

    @property
    def projects(self) -> list[str]:
        return sorted({t.project for t in self.tasks})


def read_history(path: str | Path) -> History:
    """Read a tasks CSV; DataError (saying what to do) when it is missing, too large, or holds no task."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file} is not a file", "give the path of a tasks CSV (see the README's PPMS section)")
    size = file.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DataError(
            f"{file.name} is {size / 2**20:.0f} MB, more than the {MAX_FILE_BYTES / 2**20:.0f} MB a history may be",
            "split it by project or drop columns the forecast does not use",
        )
    batch = read_csv(file)
    if not batch.tasks:
        reasons = "; ".join(r["reason"] for r in batch.rejected[:MAX_REASONS]) or "it has no rows"
        raise DataError(f"{file.name} holds no readable task: {reasons}", "fix the rows named and try again")
    moments = [m for t in batch.tasks for m in (t.created_at, t.started_at, t.done_at, t.updated_at) if m is not None]
    return History(str(file), batch.tasks, batch.dependencies, batch.rejected, max(moments))


def _end_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC) - timedelta(microseconds=1)


def _pick_project(history: History, project: str | None) -> str:
    names = history.projects
    if project is None:
        if len(names) == 1:
            return names[0]
        raise DataError(
            f"{Path(history.path).name} holds {len(names)} projects: {', '.join(names[:10])}",
            "name one with --project",
        )
    if project not in names:
        raise DataError(
            f"project {project!r} is not in {Path(history.path).name} (it has {', '.join(names[:10])})",
            "use one of the project keys in the file's project column",
        )
    return project


class FileForecast(BaseModel):
    """A forecast made from a history file."""

    file: str
    project: str
    as_of: datetime = Field(..., description="The moment the forecast is made as of.")
    open_tasks: int
    forecast: Forecast
    milestones: dict[str, Forecast] = Field(default_factory=dict)
    durations: str = Field(..., description="The duration model's reason.")
    rejected_rows: int
    rejected_reasons: list[str] = Field(default_factory=list)


class FileBacktest(BaseModel):
    """A backtest of a history file: every case, PPMS's and the baseline's scores, the verdict."""

    file: str
    projects: list[str]
    now: datetime
    every_days: int
    verdict: str
    reason: str
    trusted: str | None
    scores: Scores | None
    baseline: Scores | None
    paired: Scores | None
    skipped: dict[str, int]
    cases: list[BacktestCase]
    rejected_rows: int
    rejected_reasons: list[str] = Field(default_factory=list)


def forecast_file(
    path: str | Path,
    *,
    project: str | None = None,
    as_of: date | None = None,
    trials: int = 10_000,
    seed: int = 0,
    min_history_items: int = 30,
) -> FileForecast:
    """Forecast ``project``'s open scope as the file stood at the end of ``as_of`` (default: its latest moment)."""
    history = read_history(path)
    name = _pick_project(history, project)
    now = history.latest if as_of is None else _end_of(as_of)
    if as_of is not None and now > history.latest:
        now = history.latest
    known, edges = snapshot_at(history.tasks, history.dependencies, now)
    durations, _ = fit_flow_models(name, known, now, min_history_items=min_history_items)
    overall, milestones, _ = forecast_project(
        name, known, edges, [], durations, now=now, trials=trials, rng=seed, min_history_items=min_history_items
    )
    return FileForecast(
        file=history.path,
        project=name,
        as_of=now,
        open_tasks=sum(1 for t in known if t.project == name and t.status != "done"),
        forecast=overall,
        milestones=milestones,
        durations=durations.describe(),
        rejected_rows=len(history.rejected),
        rejected_reasons=[r["reason"] for r in history.rejected[:MAX_REASONS]],
    )


def backtest_file(
    path: str | Path,
    *,
    project: str | None = None,
    every_days: int = 28,
    trials: int = 2_000,
    seed: int = 0,
    min_history_items: int = 30,
    on_progress: Callable[[int, int], None] | None = None,
) -> FileBacktest:
    """Replay the forecast every ``every_days`` days over the whole file (one project or all) and score it."""
    history = read_history(path)
    projects: Sequence[str] = [_pick_project(history, project)] if project is not None else history.projects
    span = (history.latest - min(t.created_at for t in history.tasks)).days + 1
    result: BacktestResult = backtest(
        history.tasks,
        history.dependencies,
        [],
        now=history.latest,
        projects=projects,
        every_days=every_days,
        lookback_days=span,
        trials=trials,
        seed=seed,
        min_history_items=min_history_items,
        on_progress=on_progress,
    )
    return FileBacktest(
        file=history.path,
        projects=list(projects),
        now=history.latest,
        every_days=every_days,
        verdict=result.verdict,
        reason=result.reason,
        trusted=result.trusted,
        scores=result.scores,
        baseline=result.baseline,
        paired=result.paired,
        skipped=result.skipped,
        cases=result.cases,
        rejected_rows=len(history.rejected),
        rejected_reasons=[r["reason"] for r in history.rejected[:MAX_REASONS]],
    )


def parse_every(text: str) -> int:
    """Days from '28d', '4w' or '28'; DataError for anything else."""
    value = text.strip().lower()
    factor = 7 if value.endswith("w") else 1
    number = value.rstrip("dw").strip()
    if not number.isdigit() or int(number) * factor < 1 or int(number) * factor > 3650:
        raise DataError(f"--every {text!r} is not a number of days", "write e.g. 28d, 4w or 14")
    return int(number) * factor
