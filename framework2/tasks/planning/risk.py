"""PPMS project risk: five risk factors, each with its measured value, severity, weight and contribution.

``risk_factors`` measures, for one project's open work (tasks of the project with ``status != "done"``):

========================= ========================================================= ==================
factor (``name``)         measured value                                            severity 0 -> 1
========================= ========================================================= ==================
critical_path             share of the open tasks that are on the critical path in  20 % -> 60 %
                          at least 80 % of the forecast's trials
key_person                largest share of the remaining work held by one assignee  30 % -> 70 %
scope_growth              tasks created / tasks done in the last 28 days            x0.75 -> x1.5
estimate_uncertainty      (P95 - P50) / P50 of the forecast; and the share of open  spread 25 % -> 100 %;
                          tasks without an estimate (severity: the larger of both)  unestimated 10 % -> 50 %
external_dependencies     share of open tasks waiting on open tasks of other        0 % -> 25 %; at least
                          projects                                                  0.5 if one is critical
========================= ========================================================= ==================

Severity is a linear ramp between the two thresholds: 0 at or below the first, 1 at or above the second.

**critical_path.** Tasks on the critical path in >= 80 % of trials (``CRITICAL_INDEX``) are the ones with
no slack: any slip of theirs moves the finish date. The more of the open work that is near-certainly
critical, the less room the plan has (a single chain, or one person doing everything in sequence, puts
every task on it). Read from ``forecast.criticality``, which lists the top ``TOP_CRITICAL`` tasks: when all
of them pass the bar the count is a lower bound and the explanation says "at least". Without a
dependency-graph forecast (none available, or a throughput forecast) the factor is not measured
(``value`` None, severity 0) and the explanation says why.

**key_person.** Remaining work in estimated days per assignee: an open task's ``estimate_days`` (an
unestimated task counts the duration model's centre for unestimated work, ``model.unestimated_days``);
a task in progress keeps the part of its estimate not yet spent in working days since it started, and at
least a tenth of it, as the forecast does. Unassigned work counts in the total but belongs to nobody.
A share of 50 % (two people) is half-severe; one person holding everything is fully severe.

**scope_growth.** Project tasks created in the 28 days up to ``now`` (whatever their status now) divided by
project tasks done in the same window, with done counted as at least 1 (nothing created: 0). A backlog that
grows faster than it is worked off (ratio > 1) pushes the finish date out whatever the forecast says.

**estimate_uncertainty.** The forecast's relative spread (P95 - P50) / P50 (working days, or calendar days
for a throughput forecast) says how far the bad case is from the median; the share of unestimated open
tasks says how much of the plan rests on guesses. Severity is the larger of the two ramps; the explanation
also quotes the duration model's typical P90/P10 band per task (``model.band_ratio``, or the fallback band).
Without a forecast only the unestimated share is measured (``value`` None).

**external_dependencies.** Open tasks of the project that depend directly on a not-done task of another
project, listed with both tasks and the blocker's status. Dependencies on tasks not in ``tasks`` are
ignored (validation quarantines them). When a waiting task or its blocker is on the critical path in at
least half of the trials, the severity is at least 0.5: the finish date then hangs on another team.

Weights (``DEFAULT_WEIGHTS``, sum 1): key_person 0.25, critical_path 0.20, scope_growth 0.20,
estimate_uncertainty 0.20, external_dependencies 0.15. ``contribution = weight x severity`` and the
report's ``total = 100 x sum of contributions`` (0-100); ``level`` is low below 30, medium below 60, high
from 60 (``LEVELS``). Custom ``weights`` replace the defaults: factors not named weigh 0, and the given
weights are scaled to sum 1 (so ``{"key_person": 1, "scope_growth": 1}`` is 0.5 each).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field, computed_field

from framework2.tasks.planning.durations import FALLBACK_BAND, DurationModel, working_days_between
from framework2.tasks.planning.montecarlo import TOP_CRITICAL, Forecast
from framework2.tasks.planning.records import DependencyRecord, TaskRecord

FactorName = Literal["critical_path", "key_person", "scope_growth", "estimate_uncertainty", "external_dependencies"]
RiskLevel = Literal["low", "medium", "high"]

FACTOR_LABELS: dict[str, str] = {
    "critical_path": "critical-path concentration",
    "key_person": "key-person dependency",
    "scope_growth": "scope growth rate",
    "estimate_uncertainty": "estimate uncertainty",
    "external_dependencies": "blocked external dependencies",
}
DEFAULT_WEIGHTS: dict[str, float] = {
    "critical_path": 0.20,
    "key_person": 0.25,
    "scope_growth": 0.20,
    "estimate_uncertainty": 0.20,
    "external_dependencies": 0.15,
}
# (value at which severity starts to rise from 0, value at which it reaches 1)
SEVERITY_RAMPS: dict[str, tuple[float, float]] = {
    "critical_path": (0.20, 0.60),
    "key_person": (0.30, 0.70),
    "scope_growth": (0.75, 1.50),
    "estimate_spread": (0.25, 1.00),
    "unestimated_share": (0.10, 0.50),
    "external_dependencies": (0.0, 0.25),
}
CRITICAL_INDEX = 0.8  # "near-certainly critical"
EXTERNAL_CRITICAL_INDEX = 0.5  # a wait on the critical path this often makes the factor at least half-severe
EXTERNAL_CRITICAL_SEVERITY = 0.5
GROWTH_WINDOW_DAYS = 28
# Total score (0-100) below the first bound is low, below the second medium, otherwise high.
LEVELS = (30.0, 60.0)
_MAX_LISTED = 5


class RiskFactor(BaseModel):
    """One risk factor: what was measured, how severe it is, and how much it adds to the project's score."""

    name: FactorName = Field(..., description="Factor id, a key of DEFAULT_WEIGHTS.")
    label: str = Field(..., description="The factor in words, e.g. 'key-person dependency'.")
    value: float | None = Field(
        ..., description="The measured value (see measure); None when it could not be measured."
    )
    measure: str = Field(..., description="What value is, e.g. 'largest share of remaining work held by one person'.")
    severity: float = Field(..., ge=0, le=1, description="0 (no risk) to 1 (severe); see the module's ramps.")
    weight: float = Field(..., ge=0, le=1, description="Share of the total score this factor can take (weights sum 1).")
    contribution: float = Field(..., ge=0, le=1, description="weight x severity.")
    explanation: str = Field(..., description="One sentence naming the concrete tasks or people behind the value.")
    subjects: list[str] = Field(
        default_factory=list, description="The people or task keys the explanation names (for links and filters)."
    )

    @property
    def points(self) -> float:
        """The contribution on the 0-100 scale of the total."""
        return 100 * self.contribution


class RiskReport(BaseModel):
    """A project's risk factors, their weighted total (0-100) and level."""

    project: str
    factors: list[RiskFactor] = Field(..., description="All five factors, in a fixed order.")
    total: float = Field(..., ge=0, le=100, description="100 x the sum of the factors' contributions.")
    level: RiskLevel = Field(..., description=f"low below {LEVELS[0]:g}, medium below {LEVELS[1]:g}, else high.")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def top(self) -> list[RiskFactor]:
        """The factors by contribution, largest first (ties by name)."""
        return sorted(self.factors, key=lambda f: (-f.contribution, f.name))

    def factor(self, name: str) -> RiskFactor:
        """The factor called ``name`` (KeyError naming the known factors otherwise)."""
        for factor in self.factors:
            if factor.name == name:
                return factor
        raise KeyError(f"no risk factor {name!r}; known: {', '.join(DEFAULT_WEIGHTS)}")

    def summary(self) -> str:
        """One line: total, level and the largest contributor with its explanation."""
        head = f"{self.project}: risk {self.total:.0f}/100 ({self.level})"
        lead = self.top[0] if self.factors else None
        if lead is None or lead.contribution <= 0:
            return f"{head}; no factor contributes"
        return f"{head}; main factor {lead.label} ({lead.points:.0f} points): {lead.explanation}"


# -------------------------------------------------------------------------------------------- helpers


def _ramp(value: float, low: float, high: float) -> float:
    """0 at or below ``low``, 1 at or above ``high``, linear between."""
    if value <= low:
        return 0.0
    if value >= high:
        return 1.0
    return (value - low) / (high - low)


def _pct(share: float) -> str:
    return f"{100 * share:.0f} %"


def _days(days: float) -> str:
    return f"{round(days, 1):g}"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _listing(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f" and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def resolve_weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    """The weights to use, scaled to sum 1: the defaults, or ``weights`` with unnamed factors at 0.

    ValueError for an unknown factor name, a negative or non-finite weight, or weights that are all zero.
    """
    if weights is None:
        return dict(DEFAULT_WEIGHTS)
    unknown = sorted(set(weights) - set(DEFAULT_WEIGHTS))
    if unknown:
        raise ValueError(f"unknown risk factor(s) {unknown} in weights; known: {', '.join(DEFAULT_WEIGHTS)}")
    bad = {k: v for k, v in weights.items() if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0)}
    if bad:
        raise ValueError(f"risk weights must be finite numbers >= 0, got {bad}")
    total = float(sum(weights.values()))
    if total <= 0:
        raise ValueError("risk weights are all zero: give at least one factor a positive weight")
    return {name: float(weights.get(name, 0.0)) / total for name in DEFAULT_WEIGHTS}


def _remaining_days(task: TaskRecord, model: DurationModel, now: datetime) -> float:
    """Estimated days of work left on an open task (see key_person in the module docstring)."""
    estimate = task.estimate_days if task.estimate_days is not None else model.unestimated_days
    if task.status == "in_progress" and task.started_at is not None:
        spent = working_days_between(task.started_at, now)
        return max(estimate - spent, 0.1 * estimate)
    return estimate


def _near_critical(forecast: Forecast, open_keys: set[str]) -> list[tuple[str, float]]:
    return [(c.task, c.index) for c in forecast.criticality if c.task in open_keys and c.index >= CRITICAL_INDEX]


# -------------------------------------------------------------------------------------------- factors
# Each returns (value, measure, severity, explanation, subjects).

_Measured = tuple[float | None, str, float, str, list[str]]


def _critical_path(open_tasks: list[TaskRecord], forecast: Forecast) -> _Measured:
    measure = f"share of open tasks on the critical path in >= {_pct(CRITICAL_INDEX)} of trials"
    if not open_tasks:
        return 0.0, measure, 0.0, "no open tasks, so nothing is on the critical path", []
    if not forecast.available or forecast.method != "dependency-graph":
        why = (forecast.reason or "no forecast") if not forecast.available else "a throughput forecast has no paths"
        return None, measure, 0.0, f"not measured: no dependency-graph forecast ({why})", []
    near = _near_critical(forecast, {t.key for t in open_tasks})
    share = len(near) / len(open_tasks)
    severity = _ramp(share, *SEVERITY_RAMPS["critical_path"])
    bound = "at least " if len(forecast.criticality) >= TOP_CRITICAL and len(near) == len(forecast.criticality) else ""
    if not near:
        top = forecast.criticality[0] if forecast.criticality else None
        most = f"; the most critical, {top.task}, is on it in {_pct(top.index)}" if top else ""
        text = f"no open task is on the critical path in {_pct(CRITICAL_INDEX)} of trials or more{most}"
        return share, measure, severity, text, []
    named = [f"{key} ({_pct(index)})" for key, index in near]
    text = (
        f"{bound}{len(near)} of {len(open_tasks)} open tasks ({bound}{_pct(share)}) are on the critical path in "
        f"{_pct(CRITICAL_INDEX)} of trials or more, so any slip of theirs moves the finish: {_listing(named)}"
    )
    return share, measure, severity, text, [key for key, _ in near]


def _key_person(open_tasks: list[TaskRecord], forecast: Forecast, model: DurationModel, now: datetime) -> _Measured:
    measure = "largest share of the remaining estimated work assigned to one person"
    if not open_tasks:
        return 0.0, measure, 0.0, "no open tasks, so no remaining work depends on anyone", []
    work: dict[str, float] = {}
    total = unassigned = 0.0
    for task in open_tasks:
        days = _remaining_days(task, model, now)
        total += days
        if task.assignee:
            work[task.assignee] = work.get(task.assignee, 0.0) + days
        else:
            unassigned += days
    if not work or total <= 0:
        return 0.0, measure, 0.0, f"none of the {_days(total)} days of remaining work is assigned to anyone yet", []
    person, days = min(work.items(), key=lambda kv: (-kv[1], kv[0]))
    share = days / total
    severity = _ramp(share, *SEVERITY_RAMPS["key_person"])
    text = f"{_pct(share)} of the remaining work is assigned to {person} ({_days(days)} of {_days(total)} days)"
    near = _near_critical(forecast, {t.key for t in open_tasks}) if forecast.available else []
    if near:
        theirs = {t.key for t in open_tasks if t.assignee == person}
        held = sum(1 for key, _ in near if key in theirs)
        if held:
            text += f", including {held} of the {_plural(len(near), 'near-certainly critical task')}"
    others = len(work) - 1
    rest = []
    if others:
        rest.append(
            f"{others} other {'person holds' if others == 1 else 'people hold'} {_days(total - days - unassigned)} days"
        )
    if unassigned > 0:
        rest.append(f"{_days(unassigned)} days are unassigned")
    if rest:
        text += f"; {' and '.join(rest)}"
    return share, measure, severity, text, [person]


def _scope_growth(project: str, tasks: Sequence[TaskRecord], now: datetime) -> _Measured:
    measure = f"tasks created / tasks done in the last {GROWTH_WINDOW_DAYS} days (done counted as at least 1)"
    end = _utc(now)
    start = end - timedelta(days=GROWTH_WINDOW_DAYS)
    own = [t for t in tasks if t.project == project]
    created = [t for t in own if start < _utc(t.created_at) <= end]
    done = [t for t in own if t.done_at is not None and start < _utc(t.done_at) <= end]
    ratio = len(created) / max(len(done), 1)
    severity = _ramp(ratio, *SEVERITY_RAMPS["scope_growth"])
    window = f"in the last {GROWTH_WINDOW_DAYS} days"
    counts = f"{_plural(len(created), 'task')} {'was' if len(created) == 1 else 'were'} created and {len(done)} done"
    if not created:
        verdict = "so the scope did not grow"
    elif len(created) > len(done):
        verdict = f"so the backlog grew by {len(created) - len(done)}: scope grows faster than work is completed"
    elif len(created) == len(done):
        verdict = "so the backlog did not shrink"
    else:
        verdict = f"so the backlog shrank by {len(done) - len(created)}"
    newest = sorted(created, key=lambda t: (_utc(t.created_at), t.key), reverse=True)
    return ratio, measure, severity, f"{counts} {window}, {verdict}", [t.key for t in newest[:_MAX_LISTED]]


def _estimate_uncertainty(open_tasks: list[TaskRecord], forecast: Forecast, model: DurationModel) -> _Measured:
    measure = "(P95 - P50) / P50 of the forecast"
    unestimated = [t.key for t in open_tasks if t.estimate_days is None]
    share = len(unestimated) / len(open_tasks) if open_tasks else 0.0
    missing = _ramp(share, *SEVERITY_RAMPS["unestimated_share"])
    if model.band_ratio is not None:
        band = f"the duration model's typical P90/P10 band per task is x{model.band_ratio:.2f}"
    else:
        band = f"the duration model uses the fallback band x{FALLBACK_BAND[0]:g}-x{FALLBACK_BAND[1]:g} of estimates"
    verb = "has" if len(unestimated) == 1 else "have"
    guesses = f"{len(unestimated)} of {len(open_tasks)} open tasks ({_pct(share)}) {verb} no estimate"
    if unestimated:
        guesses += f" ({_listing(unestimated)})"
    usable = forecast.available and forecast.p50_days is not None and forecast.p95_days is not None
    if not usable:
        text = f"the forecast's spread is not measured ({forecast.reason or 'no forecast'}); {guesses}; {band}"
        return None, measure, missing, text, unestimated
    p50, p95 = float(forecast.p50_days), float(forecast.p95_days)  # type: ignore[arg-type]
    spread = (p95 - p50) / p50 if p50 > 0 else 0.0
    severity = max(_ramp(spread, *SEVERITY_RAMPS["estimate_spread"]), missing)
    unit = "working days" if forecast.workdays else "days"
    text = f"P95 is {_days(p95)} {unit} against a P50 of {_days(p50)} (+{_pct(spread)}); {guesses}; {band}"
    return spread, measure, severity, text, unestimated


def _external(
    project: str,
    open_tasks: list[TaskRecord],
    tasks: Sequence[TaskRecord],
    deps: Sequence[DependencyRecord],
    forecast: Forecast,
) -> _Measured:
    measure = "share of open tasks waiting on open tasks of other projects"
    if not open_tasks:
        return 0.0, measure, 0.0, "no open tasks, so nothing waits on other projects", []
    by_key = {t.key: t for t in tasks}
    own = {t.key for t in open_tasks}
    waits: dict[str, list[TaskRecord]] = {}
    for dep in dict.fromkeys(deps):
        blocker = by_key.get(dep.depends_on)
        if dep.task in own and blocker is not None and blocker.project != project and blocker.status != "done":
            waits.setdefault(dep.task, []).append(blocker)
    if not waits:
        return 0.0, measure, 0.0, "no open task waits on a task in another project", []
    share = len(waits) / len(open_tasks)
    severity = _ramp(share, *SEVERITY_RAMPS["external_dependencies"])
    index = {c.task: c.index for c in forecast.criticality} if forecast.available else {}
    critical = [
        k
        for k, bs in waits.items()
        if max([index.get(k, 0.0), *(index.get(b.key, 0.0) for b in bs)]) >= EXTERNAL_CRITICAL_INDEX
    ]
    if critical:
        severity = max(severity, EXTERNAL_CRITICAL_SEVERITY)
    order = sorted(waits, key=lambda k: (k not in critical, k))
    pairs = [
        f"{k} waits on {b.key} ({b.status.replace('_', ' ')})"
        for k in order
        for b in sorted(waits[k], key=lambda b: b.key)
    ]
    count = len(waits)
    text = (
        f"{count} open task{' waits' if count == 1 else 's wait'} on tasks in other projects "
        f"({_pct(share)} of {len(open_tasks)}): {_listing(pairs)}"
    )
    if critical:
        text += f"; on the critical path in >= {_pct(EXTERNAL_CRITICAL_INDEX)} of trials: {_listing(critical)}"
    subjects = [key for k in order for key in (k, *(b.key for b in waits[k]))]
    return share, measure, severity, text, list(dict.fromkeys(subjects))


# ----------------------------------------------------------------------------------------------- main


def risk_factors(
    project: str,
    tasks: Sequence[TaskRecord],
    dependencies: Sequence[DependencyRecord],
    forecast: Forecast,
    model: DurationModel,
    *,
    now: datetime,
    weights: Mapping[str, float] | None = None,
) -> RiskReport:
    """The project's five risk factors and their weighted total (see the module docstring for the mappings).

    ``tasks`` and ``dependencies`` may span projects (other projects' tasks are needed to see external
    waits); ``forecast`` is the project's (e.g. from ``forecast_project``), ``model`` the duration model
    behind it. ``weights`` replace ``DEFAULT_WEIGHTS`` (ValueError when invalid, see ``resolve_weights``).
    """
    resolved = resolve_weights(weights)
    open_tasks = [t for t in tasks if t.project == project and t.status != "done"]
    measured: dict[str, _Measured] = {
        "critical_path": _critical_path(open_tasks, forecast),
        "key_person": _key_person(open_tasks, forecast, model, now),
        "scope_growth": _scope_growth(project, tasks, now),
        "estimate_uncertainty": _estimate_uncertainty(open_tasks, forecast, model),
        "external_dependencies": _external(project, open_tasks, tasks, dependencies, forecast),
    }
    factors = []
    for name, (value, measure, severity, explanation, subjects) in measured.items():
        weight = resolved[name]
        factors.append(
            RiskFactor(
                name=name,  # type: ignore[arg-type]
                label=FACTOR_LABELS[name],
                value=value,
                measure=measure,
                severity=severity,
                weight=weight,
                contribution=min(1.0, weight * severity),
                explanation=explanation,
                subjects=subjects,
            )
        )
    total = min(100.0, 100 * sum(f.contribution for f in factors))
    level: RiskLevel = "low" if total < LEVELS[0] else "medium" if total < LEVELS[1] else "high"
    return RiskReport(project=project, factors=factors, total=total, level=level)
