"""PPOS project health: a 0-100 score per project and for the portfolio, made of named components.

Each component scores 0-100 (100 = nothing wrong) from one signal; the health is their weighted mean over
the components that apply to the project, and each component's **contribution** is the points it takes
off (its share of the weights x (100 - its score)), so the points lost add up to 100 - health and the
biggest one is the top reason. A component that does not apply (no target date, PLOS not watching the
project's apps, too little throughput history) is left out and the remaining weights are rescaled — said
in its explanation, never scored as perfect.

Components and their default weights (``DEFAULT_WEIGHTS``, configurable as ``[ppos] healthWeights``):

- **schedule** 0.35 — PPMS's odds of making the target date: score = 100 x P(on time). The forecast
  already carries estimate uncertainty and dependencies, so it is the single best signal and weighs most.
- **scope_change** 0.15 — when PCES tracks the project's requirements: what the requirement changes that
  entered the plan in the last 28 days (accepted by the policy or approved) did, from their stored impacts —
  the net effort they added as a share of the open work (in estimated days), and the P85 days they moved the
  forecast as a share of the days left to the target. The worse of the two scores, each 100 at <= 10 % and
  0 at >= 60 % (linear between): a tenth more work (or a tenth of the runway) a month is normal grooming,
  more than half means the plan is being rewritten. The reason names the requirements, largest first, and
  the changes still waiting for approval (not in the plan, so not scored). Cosmetic edits never reach it.
  Without PCES: the *net* growth of open work, (tasks created - tasks done in the last 28 days) / tasks
  open 28 days ago, on the same ramp. Net, because a team working in a steady flow adds as many tasks as it
  finishes; with fewer than ``MIN_BASELINE`` = 5 tasks open 28 days ago the project is a new plan and there
  is nothing to measure growth against (left out).
- **throughput_trend** 0.15 — tasks done per day over the last 14 days vs the 28 days before: 100 at a
  steady or rising rate, falling linearly to 0 at a halved rate (ratio 0.5). Needs 5 done tasks in the
  earlier window; fewer is noise.
- **blocked_ratio** 0.15 — share of open tasks waiting on open work: 100 at <= 10 %, 0 at >= 60 %.
- **release_failures** 0.10 — PLOS releases of the project's apps (``[ppos] projectApps``) in the last 30
  days that failed or were rolled back: 100 at none, 0 at half or more.
- **staffing_gaps** 0.10 — share of the project's ready tasks PPMS's last assignment run could not staff:
  100 x (1 - share).

The portfolio's health is the mean of its projects' weighted by their open tasks (a large project in
trouble is more of the portfolio in trouble); its components are averaged the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel, Field

from framework2.tasks.planning.records import DependencyRecord, TaskRecord

DEFAULT_WEIGHTS: dict[str, float] = {
    "schedule": 0.35,
    "scope_change": 0.15,
    "throughput_trend": 0.15,
    "blocked_ratio": 0.15,
    "release_failures": 0.10,
    "staffing_gaps": 0.10,
}
LABELS = {
    "schedule": "schedule",
    "scope_change": "scope change",
    "throughput_trend": "throughput trend",
    "blocked_ratio": "blocked work",
    "release_failures": "release failures",
    "staffing_gaps": "staffing gaps",
}
SCOPE_WINDOW_DAYS = 28
MIN_BASELINE = 5
RECENT_DAYS = 14
PRIOR_DAYS = 28
MIN_PRIOR_DONE = 5
RELEASE_WINDOW_DAYS = 30
FAILED_RELEASES = ("failed", "rolled_back")
IN_PLAN = ("accepted", "notified", "approved")
_NAMED_CHANGES = 3


class ScopeChange(BaseModel):
    """One requirement change PCES assessed for a project, and whether it is in the plan."""

    requirement: str
    version: int
    status: str = Field(..., description="accepted | notified | approved (in the plan) | pending_approval | rejected")
    effort_days: float = 0.0
    p85_shift_days: float | None = None

    @property
    def in_plan(self) -> bool:
        return self.status in IN_PLAN

    def describe(self) -> str:
        shift = f", P85 {self.p85_shift_days:+g} d" if self.p85_shift_days else ""
        return f"{self.requirement} v{self.version} {self.effort_days:+.1f} d{shift}"


class ProjectSignals(BaseModel):
    """What health is computed from, per project (gathered from PPMS, PCES and PLOS records)."""

    project: str
    name: str = ""
    open_tasks: int = Field(0, ge=0)
    target_date: date | None = None
    forecast_available: bool = False
    probability_on_time: float | None = Field(None, ge=0, le=1)
    p85: date | None = None
    scope_added: int = Field(0, ge=0, description="Tasks created in the scope window.")
    scope_done: int = Field(0, ge=0, description="Tasks done in the scope window.")
    open_at_window_start: int = Field(0, ge=0, description="Tasks open when the scope window began.")
    as_of: date = Field(default_factory=lambda: datetime.now(UTC).date(), description="The day the signals are for.")
    open_work_days: float = Field(0.0, ge=0, description="Estimated days of the open tasks (unestimated: median).")
    scope_changes: list[ScopeChange] | None = Field(
        None, description="Requirement changes PCES assessed in the scope window; None: PCES does not track it."
    )
    done_recent: int = Field(0, ge=0, description=f"Tasks done in the last {RECENT_DAYS} days.")
    done_prior: int = Field(0, ge=0, description=f"Tasks done in the {PRIOR_DAYS} days before that.")
    blocked_open: int = Field(0, ge=0)
    releases: int | None = Field(None, ge=0, description="PLOS releases of its apps in the window; None: no apps.")
    failed_releases: int | None = Field(None, ge=0)
    ready_tasks: int | None = Field(None, ge=0, description="Ready tasks in the last assignment run; None: none.")
    unstaffed_ready: int | None = Field(None, ge=0)


class Component(BaseModel):
    """One named part of a health score."""

    name: str
    label: str
    score: float | None = Field(None, ge=0, le=100, description="None: does not apply (left out, weights rescaled).")
    weight: float = Field(..., ge=0, description="Configured weight.")
    share: float = Field(0.0, ge=0, le=1, description="Weight after rescaling over the components that apply.")
    contribution: float = Field(0.0, ge=0, description="Points this component takes off the health.")
    measure: str = ""
    explanation: str = ""


class HealthScore(BaseModel):
    """A project's (or the portfolio's) health with its components; the top reason is the biggest loss."""

    project: str
    name: str = ""
    score: float = Field(..., ge=0, le=100)
    components: list[Component]
    open_tasks: int = 0

    @property
    def top(self) -> Component | None:
        """The component that takes most points off, if any takes any."""
        losing = [c for c in self.components if c.contribution > 0.05]
        return max(losing, key=lambda c: c.contribution) if losing else None

    def top_reason(self) -> str:
        """One line: the biggest loss and why, or that nothing takes points off."""
        top = self.top
        if top is None:
            return "nothing takes points off"
        return f"{top.label} (-{top.contribution:.0f}): {top.explanation}"


def _ramp_down(value: float, good: float, bad: float) -> float:
    """100 at or better than ``good``, 0 at or worse than ``bad``, linear between (works either direction)."""
    if good == bad:
        return 100.0 if value == good else 0.0
    position = (value - good) / (bad - good)
    return 100.0 * (1.0 - min(1.0, max(0.0, position)))


def resolve_weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    """The defaults, or ``weights`` with unnamed components at 0; ValueError names what is wrong."""
    if weights is None:
        return dict(DEFAULT_WEIGHTS)
    unknown = sorted(set(weights) - set(DEFAULT_WEIGHTS))
    if unknown:
        raise ValueError(f"unknown health component(s) {unknown}; known: {', '.join(DEFAULT_WEIGHTS)}")
    bad = {k: v for k, v in weights.items() if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0)}
    if bad:
        raise ValueError(f"health weights must be finite and >= 0, got {bad}")
    resolved = {name: float(weights.get(name, 0.0)) for name in DEFAULT_WEIGHTS}
    if not any(resolved.values()):
        raise ValueError("at least one health weight must be above 0")
    return resolved


def _scope_from_changes(s: ProjectSignals) -> tuple[float | None, str, str]:
    """The scope-change component from PCES's impacts (rule in the module docstring)."""
    changes = s.scope_changes or []
    adopted = sorted((c for c in changes if c.in_plan), key=lambda c: -abs(c.effort_days))
    pending = [c for c in changes if c.status == "pending_approval"]
    waiting = (
        f"; waiting for approval, not in the plan: {', '.join(c.describe() for c in pending[:_NAMED_CHANGES])}"
        if pending
        else ""
    )
    if not adopted:
        return (
            100.0,
            "no change in the plan",
            f"no requirement change entered the plan in {SCOPE_WINDOW_DAYS} days{waiting}",
        )
    effort = sum(c.effort_days for c in adopted)
    shift = sum(c.p85_shift_days or 0.0 for c in adopted)
    effort_share = max(0.0, effort) / max(s.open_work_days, 1.0)
    scores = [_ramp_down(effort_share, 0.10, 0.60)]
    against = f"{effort:+.1f} d is {effort_share:.0%} of the {s.open_work_days:.0f} d of open work"
    if s.target_date is not None and shift > 0:
        days_left = max(1.0, float((s.target_date - s.as_of).days))
        shift_share = shift / days_left
        scores.append(_ramp_down(shift_share, 0.10, 0.60))
        against += f"; P85 moved {shift:+g} d, {shift_share:.0%} of the {days_left:.0f} d left to the target"
    named = ", ".join(c.describe() for c in adopted[:_NAMED_CHANGES])
    more = f" and {len(adopted) - _NAMED_CHANGES} more" if len(adopted) > _NAMED_CHANGES else ""
    return (
        min(scores),
        f"{effort:+.1f} d" + (f", P85 {shift:+g} d" if shift else "") + " from requirements",
        f"{len(adopted)} requirement change{'s' if len(adopted) != 1 else ''} entered the plan in "
        f"{SCOPE_WINDOW_DAYS} days ({named}{more}): {against}{waiting}",
    )


def _components(s: ProjectSignals) -> dict[str, tuple[float | None, str, str]]:
    """(score, measure, explanation) per component."""
    out: dict[str, tuple[float | None, str, str]] = {}
    if s.target_date is None:
        out["schedule"] = (None, "no target date", "the project has no target date, so there is no schedule to miss")
    elif not s.forecast_available or s.probability_on_time is None:
        out["schedule"] = (None, "no forecast", "PPMS has no forecast for it (see the ppms-forecast artifact)")
    else:
        p = s.probability_on_time
        out["schedule"] = (
            100.0 * p,
            f"{p:.0%} on time",
            f"PPMS gives {p:.0%} odds of the target {s.target_date}" + (f" (P85 {s.p85})" if s.p85 else ""),
        )

    if s.scope_changes is not None:
        out["scope_change"] = _scope_from_changes(s)
    elif s.open_at_window_start < MIN_BASELINE:
        out["scope_change"] = (
            None,
            "new plan",
            f"only {s.open_at_window_start} tasks were open {SCOPE_WINDOW_DAYS} days ago: a new plan, nothing to "
            "measure growth against",
        )
    else:
        growth = (s.scope_added - s.scope_done) / s.open_at_window_start
        out["scope_change"] = (
            _ramp_down(growth, 0.10, 0.60),
            f"{growth:+.0%} open work in {SCOPE_WINDOW_DAYS} d",
            f"{s.scope_added} tasks added and {s.scope_done} done in {SCOPE_WINDOW_DAYS} days against "
            f"{s.open_at_window_start} open before (PCES not running: tasks stand in for requirement changes)",
        )

    if s.done_prior < MIN_PRIOR_DONE:
        out["throughput_trend"] = (
            None,
            f"{s.done_prior} done before",
            f"only {s.done_prior} tasks done in the {PRIOR_DAYS} days before the last {RECENT_DAYS} "
            f"({MIN_PRIOR_DONE} needed to call a trend)",
        )
    else:
        recent, prior = s.done_recent / RECENT_DAYS, s.done_prior / PRIOR_DAYS
        ratio = recent / prior
        out["throughput_trend"] = (
            _ramp_down(ratio, 1.0, 0.5),
            f"x{ratio:.2f}",
            f"{recent:.2f} tasks/day over the last {RECENT_DAYS} days vs {prior:.2f} before",
        )

    if s.open_tasks == 0:
        out["blocked_ratio"] = (None, "no open tasks", "nothing open, so nothing blocked")
    else:
        share = s.blocked_open / s.open_tasks
        out["blocked_ratio"] = (
            _ramp_down(share, 0.10, 0.60),
            f"{share:.0%} blocked",
            f"{s.blocked_open} of {s.open_tasks} open tasks wait on open work",
        )

    if s.releases is None:
        out["release_failures"] = (
            None,
            "no apps",
            "no apps of this project are watched by PLOS ([ppos] projectApps)",
        )
    elif s.releases == 0:
        out["release_failures"] = (100.0, "no releases", f"no releases in the last {RELEASE_WINDOW_DAYS} days")
    else:
        failed = s.failed_releases or 0
        share = failed / s.releases
        out["release_failures"] = (
            _ramp_down(share, 0.0, 0.5),
            f"{failed} of {s.releases} failed",
            f"{failed} of {s.releases} releases in {RELEASE_WINDOW_DAYS} days failed or were rolled back",
        )

    if not s.ready_tasks:
        out["staffing_gaps"] = (None, "no ready tasks", "no ready task was up for assignment")
    else:
        unstaffed = s.unstaffed_ready or 0
        share = unstaffed / s.ready_tasks
        out["staffing_gaps"] = (
            100.0 * (1.0 - share),
            f"{unstaffed} of {s.ready_tasks} unstaffed",
            f"{unstaffed} of {s.ready_tasks} ready tasks could not be staffed (see ppms-assignments)",
        )
    return out


def score_health(signals: ProjectSignals, weights: Mapping[str, float] | None = None) -> HealthScore:
    """The project's health from its signals: weighted mean of the components that apply."""
    w = resolve_weights(weights)
    parts = _components(signals)
    applying = {n: w[n] for n, (score, _, _) in parts.items() if score is not None and w[n] > 0}
    total_weight = sum(applying.values())
    components = []
    for name, (score, measure, explanation) in parts.items():
        share = applying.get(name, 0.0) / total_weight if total_weight else 0.0
        if score is not None and w[name] == 0:
            explanation += " (weight 0: not counted)"
        components.append(
            Component(
                name=name,
                label=LABELS[name],
                score=score,
                weight=w[name],
                share=share,
                contribution=share * (100.0 - score) if score is not None else 0.0,
                measure=measure,
                explanation=explanation,
            )
        )
    health = 100.0 - sum(c.contribution for c in components) if total_weight else 100.0
    return HealthScore(
        project=signals.project,
        name=signals.name or signals.project,
        score=max(0.0, min(100.0, health)),
        components=components,
        open_tasks=signals.open_tasks,
    )


def portfolio_health(scores: Sequence[HealthScore], *, key: str = "portfolio") -> HealthScore:
    """The portfolio's health: projects' scores and component losses averaged, weighted by open tasks
    (every project at least 1, so a finished project still counts a little)."""
    if not scores:
        return HealthScore(project=key, name="Portfolio", score=100.0, components=[], open_tasks=0)
    weighted = [(max(1, s.open_tasks), s, {c.name: c for c in s.components}) for s in scores]
    total = sum(w for w, _, _ in weighted)
    components = []
    for name in DEFAULT_WEIGHTS:
        scored = [(parts[name].score, s, parts[name]) for _, s, parts in weighted if parts[name].score is not None]
        worst = min(scored, key=lambda item: item[0], default=None)
        components.append(
            Component(
                name=name,
                label=LABELS[name],
                weight=DEFAULT_WEIGHTS[name],
                contribution=sum(w * parts[name].contribution for w, _, parts in weighted) / total,
                measure="portfolio",
                explanation=f"worst in {worst[1].name}: {worst[2].explanation}" if worst else "applies to no project",
            )
        )
    return HealthScore(
        project=key,
        name="Portfolio",
        score=sum(w * s.score for w, s, _ in weighted) / total,
        components=components,
        open_tasks=sum(s.open_tasks for s in scores),
    )


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def task_signals(
    project: str, tasks: Sequence[TaskRecord], dependencies: Sequence[DependencyRecord], *, now: datetime
) -> dict[str, float]:
    """The task-derived signals of one project: open (tasks and estimated days; an unestimated task counts as
    the project's median estimate), added, done recently and before, blocked."""
    now = _utc(now)
    own = [t for t in tasks if t.project == project]
    status = {t.key: t.status for t in tasks}
    open_keys = {t.key for t in own if t.status != "done"}
    blocked = {d.task for d in dependencies if d.task in open_keys and status.get(d.depends_on, "done") != "done"}
    recent_from = now - timedelta(days=RECENT_DAYS)
    prior_from = recent_from - timedelta(days=PRIOR_DAYS)
    done_at = [_utc(t.done_at) for t in own if t.status == "done" and t.done_at is not None]
    window = now - timedelta(days=SCOPE_WINDOW_DAYS)
    estimates = sorted(t.estimate_days for t in own if t.estimate_days)
    typical = estimates[len(estimates) // 2] if estimates else 1.0
    open_work = sum(t.estimate_days or typical for t in own if t.key in open_keys)
    return {
        "open_tasks": len(open_keys),
        "open_work_days": float(open_work),
        "scope_added": sum(1 for t in own if _utc(t.created_at) > window),
        "scope_done": sum(1 for d in done_at if window < d <= now),
        "open_at_window_start": sum(
            1 for t in own if _utc(t.created_at) <= window and not (t.done_at is not None and _utc(t.done_at) <= window)
        ),
        "done_recent": sum(1 for d in done_at if recent_from < d <= now),
        "done_prior": sum(1 for d in done_at if prior_from < d <= recent_from),
        "blocked_open": len(blocked),
    }
