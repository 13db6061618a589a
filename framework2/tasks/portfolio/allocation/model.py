"""The allocation's vocabulary: its columns, the result type, and the week horizon it plans over."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import pandas as pd

GENERAL = "general"
DEFAULT_DAYS = 3.0
DEMAND_COLUMNS = ["project", "skill", "week", "days", "priority"]
PLAN_COLUMNS = ["person", "project", "week", "days", "skills"]
COVERAGE_COLUMNS = ["project", "skill", "week", "priority", "demand", "covered", "short"]
SHORTAGE_COLUMNS = ["skill", "week", "short_days", "projects"]
PEOPLE_COLUMNS = ["person", "week", "capacity", "allocated", "utilisation", "projects"]
_STATUS = {0: "optimal", 1: "time_limit", 2: "infeasible", 3: "unbounded"}
_TOL = 1e-6  # days: anything smaller is solver noise
_DIGITS = 6


@dataclass
class Allocation:
    """Who works on which project each week, what that covers, what stays short, and everyone's load."""

    plan: pd.DataFrame  # person, project, week, days (> 0), skills (list of the skills covered)
    coverage: pd.DataFrame  # project, skill, week, priority, demand, covered, short
    shortages: pd.DataFrame  # skill, week, short_days, projects (most short first); only short > 0, biggest first
    people: pd.DataFrame  # person, week, capacity, allocated, utilisation, projects (count)
    objective: float  # sum of priority x covered days
    status: str  # optimal | time_limit
    explanation: list[str] = field(default_factory=list)
    optimality_gap: float = 0.0  # proven: the best possible objective is at most this fraction higher


# --------------------------------------------------------------------------------------------------- horizon


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def horizon_weeks(start: date, weeks: int) -> list[date]:
    """The Mondays naming the ``weeks`` weeks of the horizon; the first is the week of ``start``."""
    first = _monday(start)
    return [first + timedelta(weeks=k) for k in range(weeks)]


def _working_days(start: date, weeks: int) -> list[list[date]]:
    """Per week, its working days (Mon-Fri) on or after ``start``."""
    return [
        [d for d in (monday + timedelta(days=i) for i in range(5)) if d >= start]
        for monday in horizon_weeks(start, weeks)
    ]


def _check_weeks(weeks: int) -> None:
    if not isinstance(weeks, int) or weeks < 1:
        raise ValueError(f"weeks must be a whole number >= 1, got {weeks!r}")


def _fmt(value: float) -> str:
    text = f"{value:.1f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _skill(name: object) -> str:
    text = str(name).strip().casefold()
    return text or GENERAL


def _skills_of(names: Sequence[str]) -> list[str]:
    """Required skills, normalised and de-duplicated in order; none means general work."""
    cleaned = list(dict.fromkeys(_skill(s) for s in names if str(s).strip()))
    return cleaned or [GENERAL]
