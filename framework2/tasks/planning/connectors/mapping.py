"""Helpers the connectors share to turn tracker items into records: times, labels, types, estimates."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from framework2.tasks.planning.records import DependencyRecord, TaskRecord


class _Reject(Exception):
    """One item cannot be read; the message is the reason."""


def _parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time (Jira's ``+0000`` offsets and bare dates too) as aware UTC; None if unreadable."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value.strip():
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    # A time without an offset is read as UTC; guessing a local zone would be worse.
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 or 9999-12-31T23:59-01:00: no UTC time exists for it
        return None


def _item_time(item: dict[str, Any], name: str, *, required: bool) -> datetime | None:
    value = item.get(name)
    if value in (None, ""):
        if required:
            raise _Reject(f"{name} is missing")
        return None
    moment = _parse_time(value)
    if moment is None:
        raise _Reject(f"{name} {value!r} is not an ISO 8601 time")
    return moment


def _validation_reason(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}" for e in exc.errors())


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _newest(current: datetime | None, candidate: datetime | None) -> datetime | None:
    if candidate is None:
        return current
    return candidate if current is None or candidate > current else current


def _owned_edges(edges: Sequence[DependencyRecord], tasks: Sequence[TaskRecord]) -> list[DependencyRecord]:
    """Edges whose dependent task is in the batch, each once (see the module docstring for why).

    Self-dependencies are kept: the store's validation quarantines them with a reason someone can act on.
    """
    keys = {t.key for t in tasks}
    return [e for e in dict.fromkeys(edges) if e.task in keys]


_TYPE_WORDS = {
    "bug": "bug",
    "defect": "bug",
    "feature": "feature",
    "enhancement": "feature",
    "feature request": "feature",
    "new feature": "feature",
    "improvement": "feature",
    "story": "feature",
    "user story": "feature",
    "chore": "chore",
    "maintenance": "chore",
    "tech debt": "chore",
    "technical debt": "chore",
    "refactor": "chore",
    "refactoring": "chore",
    "documentation": "chore",
    "docs": "chore",
    "task": "task",
    "sub task": "task",
    "subtask": "task",
    "epic": "epic",
}
_IN_PROGRESS_WORDS = {"in progress", "wip", "doing", "started", "in development", "in review"}


def _words(text: str) -> str:
    """Lower case with '-', '_' and runs of spaces as one space: 'In-Progress' → 'in progress'."""
    return re.sub(r"[\s_-]+", " ", text.strip().lower())


def _without_prefix(label: str, prefixes: Sequence[str]) -> str:
    words = _words(label)
    for prefix in prefixes:
        match = re.match(rf"^{prefix}\s*:\s*", words)
        if match:
            return words[match.end() :]
    return words


def _task_type(name: str) -> str:
    words = _words(name)
    return _TYPE_WORDS.get(words, words or "task")


def _prefixed(labels: Sequence[str], prefix: str) -> list[tuple[str, str]]:
    """(label, value after the prefix) for labels starting with ``prefix`` (case-insensitive)."""
    if not prefix:
        return []
    return [(label, label[len(prefix) :].strip()) for label in labels if label.lower().startswith(prefix.lower())]


_AMOUNT = re.compile(
    r"^(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>d|days?|h|hrs?|hours?|w|wks?|weeks?|pts?|points?|sp)?\.?$", re.I
)


_LEADING_AMOUNT = re.compile(r"\d+(?:\.\d+)?\s*(?:d|days?|h|hrs?|hours?|w|wks?|weeks?|pts?|points?|sp)?\b", re.I)


def _days(text: str, *, points: bool, days_per_point: float, hours_per_day: float) -> float | None:
    """'3d', '6h', '1w', '5' (days, or points when ``points``) in ideal days; None if unreadable."""
    match = _AMOUNT.match(text.strip())
    if not match:
        return None
    number, unit = float(match["number"]), (match["unit"] or "").lower()
    if unit.startswith("h"):
        return number / hours_per_day
    if unit.startswith("w"):
        return number * 5
    if unit.startswith(("p", "s")) or (not unit and points):
        return number * days_per_point
    return number
