"""Task and people CSV files → records, every cell checked and every bad row quarantined with its reason."""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from framework2.errors import DataError
from framework2.tasks.planning.connectors.fetch import Fetcher, Page, SourceError
from framework2.tasks.planning.connectors.github import github_dependencies, read_github
from framework2.tasks.planning.connectors.jira import JIRA_FIELDS, jira_dependencies, jira_jql, read_jira
from framework2.tasks.planning.connectors.mapping import (
    _newest,
    _owned_edges,
    _parse_time,
    _task_type,
    _utc,
    _validation_reason,
    _words,
)
from framework2.tasks.planning.records import Batch, DependencyRecord, PersonRecord, ProjectRecord, TaskRecord

TASK_COLUMNS = (
    "key",
    "project",
    "title",
    "status",
    "type",
    "labels",
    "estimate_days",
    "estimate_hours",
    "assignee",
    "required_skills",
    "created_at",
    "started_at",
    "done_at",
    "updated_at",
    "milestone",
    "depends_on",
    "business_value",
    "time_criticality",
    "risk_reduction",
    "reach",
    "impact",
    "confidence",
)
PEOPLE_COLUMNS = ("handle", "name", "skills", "weekly_capacity_days", "time_off")
# An estimate in hours becomes ideal days at this many hours of focused work a day.
HOURS_PER_DAY = 8.0
# No single task is estimated at more than ten years of work; a larger number is a unit or typing mistake.
MAX_ESTIMATE_DAYS = 3650.0
EARLIEST_DATE = datetime(1970, 1, 1, tzinfo=UTC)
FUTURE_YEARS = 5
MAX_CELL_CHARS = 2**20
_SCORE_COLUMNS = ("business_value", "time_criticality", "risk_reduction", "reach", "impact", "confidence")
_CSV_STATUS = {
    "todo": "todo",
    "to do": "todo",
    "open": "todo",
    "new": "todo",
    "backlog": "todo",
    "planned": "todo",
    "in progress": "in_progress",
    "doing": "in_progress",
    "started": "in_progress",
    "wip": "in_progress",
    "done": "done",
    "closed": "done",
    "resolved": "done",
    "complete": "done",
    "completed": "done",
}


def _csv_text(path_or_text: str | Path) -> tuple[str, str]:
    """(text, name for messages). A ``str`` holding a line break is CSV text; any other is a file path."""
    if isinstance(path_or_text, str) and "\n" in path_or_text:
        return path_or_text.lstrip("\ufeff"), "CSV text"
    path = Path(path_or_text)
    try:
        return path.read_text(encoding="utf-8-sig"), path.name
    except FileNotFoundError:
        raise DataError(f"CSV file {path} does not exist", hint="check the path in framework2.toml") from None
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path.name} is not UTF-8 text (bad byte at position {exc.start})",
            hint="save the file as CSV UTF-8 from the spreadsheet",
        ) from None
    except OSError as exc:
        raise DataError(
            f"CSV file {path} cannot be read: {exc.strerror}", hint="check the path and its permissions"
        ) from None


def _csv_rows(
    text: str, name: str, required: Sequence[str], known: Sequence[str]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row with normalised column names) for each non-blank row; DataError on a bad header."""
    # Long cells (a pasted description) are fine up to a bound; past it, an unclosed quote is the usual cause.
    csv.field_size_limit(max(csv.field_size_limit(), MAX_CELL_CHARS))
    reader = csv.DictReader(io.StringIO(text), restkey="__extra__")
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise DataError(f"{name} is not readable CSV: {exc}", hint="export the sheet as CSV") from None
    if not header:
        raise DataError(f"{name} is empty", hint=f"the first row must name the columns: {', '.join(known)}")
    columns = [re.sub(r"\s+", "_", (h or "").strip().lower()) for h in header]
    twice = sorted({c for c in columns if c and columns.count(c) > 1})
    if twice:
        raise DataError(
            f"{name}: column(s) {', '.join(twice)} appear more than once in the header",
            hint="keep one of each; the file does not say which one is meant",
        )
    missing = [c for c in required if c not in columns]
    if missing:
        raise DataError(
            f"{name}: required column(s) {', '.join(missing)} missing; columns found: "
            f"{', '.join(c or '(blank)' for c in columns)}",
            hint=f"name the columns in the first row; known columns: {', '.join(known)}",
        )
    reader.fieldnames = columns
    try:
        for row in reader:
            cells = [v for k, v in row.items() if k != "__extra__"]
            if not row.get("__extra__") and all(not (v or "").strip() for v in cells):
                continue
            yield reader.line_num, row
    except csv.Error as exc:
        hint = "fix the quoting"
        if "field larger than field limit" in str(exc):
            hint = f"a cell runs past {MAX_CELL_CHARS:,} characters, which usually means a quote that is never closed"
        raise DataError(f"{name} line {reader.line_num} is not readable CSV: {exc}", hint=hint) from None


def _cell(row: dict[str, Any], column: str) -> str:
    value = row.get(column)
    return value.strip() if isinstance(value, str) else ""


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(";") if part.strip()]


class _RowProblems:
    """Collects every problem of a row, so one pass tells the user all that needs fixing."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def time(self, row: dict[str, Any], column: str) -> datetime | None:
        value = _cell(row, column)
        if not value:
            return None
        moment = _parse_time(value)
        if moment is None:
            self.reasons.append(f"{column} {value!r} is not a date (write e.g. 2026-03-01 or 2026-03-01T09:00Z)")
            return None
        latest = datetime.now(UTC) + timedelta(days=366 * FUTURE_YEARS)
        if not EARLIEST_DATE <= moment <= latest:
            # 9999-12-31 and 0001-01-01 are "no date" placeholders; 2204 is a typo. Either would move "now" or
            # the first moment of a history by centuries.
            self.reasons.append(
                f"{column} {value!r} is not a plausible date (between {EARLIEST_DATE.year} and {latest.year})"
            )
            return None
        return moment

    def number(self, row: dict[str, Any], column: str, *, upper: float | None = None) -> float | None:
        value = _cell(row, column)
        if not value:
            return None
        try:
            number = float(value)
        except ValueError:
            self.reasons.append(f"{column} {value!r} is not a number")
            return None
        if not math.isfinite(number) or number < 0:
            self.reasons.append(
                f"{column} {value!r} is negative" if number < 0 else f"{column} {value!r} is not finite"
            )
            return None
        if upper is not None and number > upper:
            self.reasons.append(f"{column} {value!r} is more than {upper:g}")
            return None
        return number

    def order(self, earlier: tuple[str, datetime | None], later: tuple[str, datetime | None]) -> None:
        (first_name, first), (second_name, second) = earlier, later
        if first and second and second < first:
            self.reasons.append(f"{second_name} {second:%Y-%m-%d %H:%M} is before {first_name} {first:%Y-%m-%d %H:%M}")


def _reject_row(batch: Batch, name: str, line: int, ident: str, reasons: list[str], row: dict[str, Any]) -> None:
    payload = {k: v for k, v in row.items() if k != "__extra__"}
    batch.rejected.append(
        {
            "source": ident or f"{name} line {line}",
            "reason": f"{name} line {line}: " + "; ".join(reasons),
            "payload": {**payload, "line": line},
        }
    )


# Text columns of a task row and the most the store keeps of each (pm_task's column sizes; titles are free text).
_CSV_TEXT_LIMITS = {"key": 200, "project": 200, "assignee": 200, "milestone": 200, "type": 32, "title": 10_000}
_CSV_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


def read_csv(
    path_or_text: str | Path,
    *,
    project_default: str | None = None,
    now: datetime | None = None,
    require_dates: bool = False,
) -> Batch:
    """Tasks from a CSV (columns in ``TASK_COLUMNS``; ``key`` and ``title`` required, ``project`` unless
    ``project_default``). Bad rows go to ``rejected`` with reasons naming the column and value. An estimate may
    be given in ``estimate_hours`` instead of ``estimate_days`` (``HOURS_PER_DAY`` hours a day).

    Blank times: created_at falls back to the earliest of started_at/done_at/updated_at, then ``now``;
    updated_at to the latest of the others. A blank status is read from the dates: done with a done_at,
    in progress with a started_at, else to do. ``require_dates`` rejects a row with no date at all (a history
    file, where "now" is its latest moment, must not date a row by the clock). Dates outside 1970 to five years
    ahead, and estimates above ten years of work, are rejected as mistakes.
    """
    text, name = _csv_text(path_or_text)
    required = ["key", "title"] + ([] if project_default else ["project"])
    now = _utc(now) or datetime.now(UTC)
    batch = Batch()
    seen: dict[str, int] = {}
    projects: dict[str, ProjectRecord] = {}
    edges: list[DependencyRecord] = []
    for line, row in _csv_rows(text, name, required, TASK_COLUMNS):
        problems = _RowProblems()
        key = _cell(row, "key")
        if row.get("__extra__"):
            problems.reasons.append(f"{len(row['__extra__'])} more cell(s) than the header has columns")
        short = sum(1 for k, v in row.items() if k != "__extra__" and v is None)
        if short:
            # Which cells are missing is unknown (a dropped comma shifts every later one): refuse, do not guess.
            problems.reasons.append(f"{short} fewer cell(s) than the header has columns")
        if not key:
            problems.reasons.append("key is empty")
        elif key in seen:
            problems.reasons.append(f"key {key!r} repeats line {seen[key]}")
        project = _cell(row, "project") or (project_default or "")
        if not project:
            problems.reasons.append("project is empty")
        for column, limit in _CSV_TEXT_LIMITS.items():
            # What the store cannot hold (NUL on PostgreSQL, a key past its column) would fail the whole write.
            text = project if column == "project" else _cell(row, column)
            if len(text) > limit:
                problems.reasons.append(f"{column} is {len(text):,} characters long; at most {limit} are stored")
            elif bad := _CSV_CONTROL.search(text):
                problems.reasons.append(f"{column} holds the control character U+{ord(bad.group()):04X}")
        status_text = _cell(row, "status")
        status = _CSV_STATUS.get(_words(status_text)) if status_text else None
        if status_text and status is None:
            problems.reasons.append(f"status {status_text!r} is not one of todo, in_progress, done")
        estimate = problems.number(row, "estimate_days", upper=MAX_ESTIMATE_DAYS)
        hours = problems.number(row, "estimate_hours", upper=MAX_ESTIMATE_DAYS * HOURS_PER_DAY)
        if hours is not None:
            if estimate is not None:
                problems.reasons.append("both estimate_days and estimate_hours are set (give one)")
            else:
                estimate = hours / HOURS_PER_DAY
        scores = {column: problems.number(row, column) for column in _SCORE_COLUMNS}
        created, started = problems.time(row, "created_at"), problems.time(row, "started_at")
        done, updated = problems.time(row, "done_at"), problems.time(row, "updated_at")
        problems.order(("created_at", created), ("started_at", started))
        problems.order(("started_at", started), ("done_at", done))
        problems.order(("created_at", created), ("done_at", done))
        if not status_text:
            # No status column (an export of dates only): the dates say where the task is.
            status = "done" if done else "in_progress" if started else "todo"
        elif status in ("todo", "in_progress") and done:
            problems.reasons.append(f"status {status_text!r} but done_at is set (a finished task's status is done)")
        if require_dates and not (created or started or done or updated):
            problems.reasons.append(
                "no date at all (created_at, started_at, done_at or updated_at): a history needs one"
            )
        known_times = [t for t in (started, done, updated) if t]
        created = created or (min(known_times) if known_times else now)
        updated = updated or max([created, *known_times])
        if not problems.reasons:
            try:
                task = TaskRecord(
                    key=key,
                    project=project,
                    title=_cell(row, "title"),
                    status=status,
                    type=_task_type(_cell(row, "type")),
                    labels=_split(_cell(row, "labels")),
                    estimate_days=estimate,
                    assignee=_cell(row, "assignee") or None,
                    required_skills=[s.lower() for s in _split(_cell(row, "required_skills"))],
                    created_at=created,
                    started_at=started,
                    done_at=done,
                    updated_at=updated,
                    milestone=_cell(row, "milestone") or None,
                    **scores,
                )
            except ValidationError as exc:
                problems.reasons.append(_validation_reason(exc))
        if problems.reasons:
            _reject_row(batch, name, line, key, problems.reasons, row)
            continue
        seen[key] = line
        batch.tasks.append(task)
        batch.cursor = _newest(batch.cursor, task.updated_at)
        projects.setdefault(project, ProjectRecord(key=project, name=project, source="csv"))
        edges.extend(DependencyRecord(task=key, depends_on=other) for other in _split(_cell(row, "depends_on")))
    batch.projects = list(projects.values())
    batch.dependencies = _owned_edges(edges, batch.tasks)
    return batch


def _time_off(value: str, problems: _RowProblems) -> list[tuple[date, date]]:
    spans = []
    for part in _split(value):
        first_text, _, last_text = part.partition("..")
        try:
            first = date.fromisoformat(first_text.strip())
            last = date.fromisoformat(last_text.strip()) if last_text.strip() else first
        except ValueError:
            problems.reasons.append(f"time_off {part!r} is not a day or range like 2026-12-24..2027-01-02")
            continue
        if last < first:
            problems.reasons.append(f"time_off {part!r} ends before it starts")
            continue
        spans.append((first, last))
    return spans


def read_people_csv(path_or_text: str | Path) -> Batch:
    """People from a CSV (``handle`` required; name, skills "a;b", weekly_capacity_days, time_off
    "2026-12-24..2027-01-02;2027-02-03"). Bad rows go to ``rejected`` with reasons naming the column and value.
    """
    text, name = _csv_text(path_or_text)
    batch = Batch()
    seen: dict[str, int] = {}
    for line, row in _csv_rows(text, name, ["handle"], PEOPLE_COLUMNS):
        problems = _RowProblems()
        handle = _cell(row, "handle")
        if not handle:
            problems.reasons.append("handle is empty")
        elif handle in seen:
            problems.reasons.append(f"handle {handle!r} repeats line {seen[handle]}")
        capacity = problems.number(row, "weekly_capacity_days", upper=7)
        time_off = _time_off(_cell(row, "time_off"), problems)
        if not problems.reasons:
            try:
                person = PersonRecord(
                    handle=handle,
                    name=_cell(row, "name"),
                    skills=[s.lower() for s in _split(_cell(row, "skills"))],
                    time_off=time_off,
                    **({"weekly_capacity_days": capacity} if capacity is not None else {}),
                )
            except ValidationError as exc:
                problems.reasons.append(_validation_reason(exc))
        if problems.reasons:
            _reject_row(batch, name, line, handle, problems.reasons, row)
            continue
        seen[handle] = line
        batch.people.append(person)
    return batch


__all__ = [
    "JIRA_FIELDS",
    "PEOPLE_COLUMNS",
    "TASK_COLUMNS",
    "Fetcher",
    "Page",
    "SourceError",
    "github_dependencies",
    "jira_dependencies",
    "jira_jql",
    "read_csv",
    "read_github",
    "read_jira",
    "read_people_csv",
]
