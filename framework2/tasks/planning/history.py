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
from framework2.tasks.planning.backtest import BacktestCase, BacktestResult, backtest, summarise_backtest
from framework2.tasks.planning.connectors import read_csv
from framework2.tasks.planning.flow import fit_flow_models
from framework2.tasks.planning.forecast import forecast_project
from framework2.tasks.planning.montecarlo import Forecast
from framework2.tasks.planning.records import DependencyRecord, TaskRecord
from framework2.tasks.planning.scoring import Scores
from framework2.tasks.planning.snapshots import snapshot_at
from framework2.tasks.planning.validate import validate_batch

MAX_FILE_BYTES = 256 * 2**20
MAX_REASONS = 5
# "Now" resting on one date this far after every other date in the file gets a warning (a mistyped year).
LONE_LATEST_DAYS = 180
MAX_EVERY_DAYS = 3650
# Cut-offs older than this say little about today's team and cost a forecast each.
MAX_BACKTEST_YEARS = 10
MIN_TRIALS, MAX_TRIALS = 100, 100_000


def _as_date(as_of: date | str | None) -> date | None:
    """A date from a date or an ISO string (the API takes either); DataError otherwise."""
    if as_of is None or (isinstance(as_of, date) and not isinstance(as_of, datetime)):
        return as_of
    if isinstance(as_of, datetime):
        return as_of.date()
    try:
        return date.fromisoformat(str(as_of).strip())
    except ValueError:
        raise DataError(f"as-of {as_of!r} is not a date", "write it as YYYY-MM-DD") from None


def _check_trials(trials: int) -> None:
    if isinstance(trials, bool) or not isinstance(trials, int) or not MIN_TRIALS <= trials <= MAX_TRIALS:
        raise DataError(f"trials {trials!r} is not a whole number from {MIN_TRIALS} to {MAX_TRIALS:,}", "e.g. 2000")


@dataclass(frozen=True)
class History:
    """A history file as read: its tasks and dependencies, what could not be read, and its latest moment."""

    path: str
    tasks: list[TaskRecord]
    dependencies: list[DependencyRecord]
    rejected: list[dict]
    latest: datetime
    earliest: datetime
    warning: str = ""

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
    # Every row must carry a date of its own ("now" is the file's latest moment, never the clock), and cycles
    # and dependencies on unknown tasks are set aside with their reason exactly as the sync does.
    batch = validate_batch(read_csv(file, require_dates=True), set())
    if not batch.tasks:
        reasons = "; ".join(r["reason"] for r in batch.rejected[:MAX_REASONS]) or "it has no rows"
        raise DataError(f"{file.name} holds no readable task: {reasons}", "fix the rows named and try again")
    moments = [m for t in batch.tasks for m in (t.created_at, t.started_at, t.done_at, t.updated_at) if m is not None]
    latest = max(moments)
    return History(
        str(file), batch.tasks, batch.dependencies, batch.rejected, latest, min(moments), _lone_latest(moments, latest)
    )


def _lone_latest(moments: list[datetime], latest: datetime) -> str:
    """A warning when "now" rests on one date far after every other: one mistyped year moves every forecast."""
    before = [m for m in moments if m.date() < latest.date()]
    if not before:
        return ""
    previous = max(before)
    gap = (latest - previous).days
    if gap <= LONE_LATEST_DAYS:
        return ""
    return (
        f"the file's latest date, {latest:%Y-%m-%d}, is {gap} days after the one before it ({previous:%Y-%m-%d}) "
        f"and sets 'now': if it is a typo, fix that row, or give --as-of"
    )


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
    note: str = Field("", description="How the as-of day was read, when not as given.")
    rejected_rows: int
    rejected_reasons: list[str] = Field(default_factory=list)


class ProjectBacktest(BaseModel):
    """One project's share of a file backtest: its scores, the baseline's on its cases, and its own verdict."""

    project: str
    cases: int
    verdict: str
    reason: str
    trusted: str | None
    scores: Scores | None
    baseline: Scores | None


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
    by_project: list[ProjectBacktest] = Field(
        default_factory=list, description="Each project's scores and verdict when the file has several."
    )
    rejected_rows: int
    rejected_reasons: list[str] = Field(default_factory=list)
    note: str = Field("", description="A warning about the file's dates (a lone far-future date sets 'now').")


def _by_project(result: BacktestResult) -> list[ProjectBacktest]:
    """A team that holds up can hide one that does not in the pooled scores: judge each project on its own."""
    out = []
    for name in sorted({c.project for c in result.cases}):
        part = summarise_backtest([c for c in result.cases if c.project == name], now=result.now)
        out.append(
            ProjectBacktest(
                project=name,
                cases=len(part.cases),
                verdict=part.verdict,
                reason=part.reason,
                trusted=part.trusted,
                scores=part.scores,
                baseline=part.baseline,
            )
        )
    return out


def forecast_file(
    path: str | Path,
    *,
    project: str | None = None,
    as_of: date | str | None = None,
    trials: int = 10_000,
    seed: int = 0,
    min_history_items: int = 30,
) -> FileForecast:
    """Forecast ``project``'s open scope as the file stood at the end of ``as_of`` (default: its latest moment)."""
    day = _as_date(as_of)
    _check_trials(trials)
    history = read_history(path)
    name = _pick_project(history, project)
    now, note = history.latest, history.warning
    if day is not None:
        if day < history.earliest.date():
            raise DataError(
                f"--as-of {day} is before the file's first recorded moment ({history.earliest:%Y-%m-%d})",
                "pick a day the file covers",
            )
        if day >= history.latest.date():
            note = f"as of the file's last recorded moment ({history.latest:%Y-%m-%d %H:%M} UTC), not {day}"
            note += f"; {history.warning}" if history.warning else ""
        else:
            now = _end_of(day)
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
        note=note,
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
    """Replay the forecast every ``every_days`` days over the file (one project or all; at most its last
    ``MAX_BACKTEST_YEARS`` years) and score it."""
    if isinstance(every_days, bool) or not isinstance(every_days, int) or not 1 <= every_days <= MAX_EVERY_DAYS:
        raise DataError(
            f"every_days {every_days!r} is not a whole number of days from 1 to {MAX_EVERY_DAYS}", "e.g. 28"
        )
    _check_trials(trials)
    history = read_history(path)
    projects: Sequence[str] = [_pick_project(history, project)] if project is not None else history.projects
    span = min((history.latest - history.earliest).days + 1, 366 * MAX_BACKTEST_YEARS)
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
        by_project=_by_project(result) if len(projects) > 1 else [],
        note=history.warning,
        rejected_rows=len(history.rejected),
        rejected_reasons=[r["reason"] for r in history.rejected[:MAX_REASONS]],
    )


def parse_every(text: str) -> int:
    """Days from '28d', '4w' or '28'; DataError for anything else."""
    value = text.strip().lower()
    factor = 7 if value.endswith("w") else 1
    number = value.rstrip("dw").strip()
    if not number.isdigit() or not 1 <= int(number) * factor <= MAX_EVERY_DAYS:
        raise DataError(
            f"--every {text!r} is not a number of days from 1 to {MAX_EVERY_DAYS}", "write e.g. 28d, 4w or 14"
        )
    return int(number) * factor
