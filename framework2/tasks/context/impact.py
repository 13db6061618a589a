"""PCES change impact: what a changed requirement touches, what it costs, how risky it is, and what to do about it.

Everything here is a plain function over records the caller loads (no Prefect, no store). The requirement side
is the small ``ChangedRequirement`` protocol; tasks, dependencies, people and the duration model are PPMS's.

Traceability
------------
``build_traceability`` makes a networkx DiGraph whose edges point from what asks for work to what ships it:
requirement → task, requirement → component (a direct link), task → component (e.g. from labels),
component → service (the services it ships in) → release (recent releases of that service). Node ids are
``(kind, name)`` tuples so a task and a component with the same name never collide; every node carries
``kind``, ``name`` and ``unknown``. A component that a requirement or a task names but nobody defined is kept
as a node with ``unknown=True`` and listed by ``Traceability.unknown``: a gap in the map should make the
impact look *less certain* (it raises the risk to medium), never crash or vanish. Release ids are taken to be
globally unique (LRDS uses UUIDs); ``in_flight`` names the releases rolling out right now.

What a change reaches is everything downstream of the requirement node, of every task it links before and
after the change, of the new tasks and of the components it names (``networkx.descendants``).

Effort
------
- **Added scope** is ``new_tasks`` (tasks the change creates). Linking a task that already exists adds no
  work: it is in the plan already.
- **Removed scope** is the tasks linked before but not after the change that are not done and that no other
  requirement still links (the trace says so; work another requirement needs does not go away). Done work
  is sunk and saves nothing; of a task in progress only the remaining time is saved, drawn given the days it
  has run (``DurationModel.sample_remaining``).
- **Rework** on done tasks still linked after the change: ``REWORK_SHARE_PER_CRITERION`` = 20 % of the
  task's duration per acceptance criterion added or removed, capped at 100 % (at worst the task is redone).
  Why 20 %: a story typically carries three to five acceptance criteria, so one criterion is about a fifth
  of the behaviour the task built, and changing it means touching that share of code, tests and review
  again. A body edited without criteria changing counts as ``CLARIFICATION_CRITERIA`` = half a criterion
  (10 %): the code usually stands, but tests and review are revisited. The task's duration is its recorded
  working time (started → done); without timestamps, a draw from the duration model. A removed requirement
  gets no rework: undoing shipped behaviour is new work the caller adds as ``new_tasks``, not a guess here.

The delta is *sampled*: per-task P50s do not add up to the P50 of the sum (durations are right-skewed, so
the sum of medians understates it), and per-task P10s/P90s add up to a band far wider than the sum's. So
each trial draws every added and removed task's duration from ``DurationModel.sample`` and adds the rework;
``effort_delta_days`` is the median of the per-trial deltas and ``effort_band`` their P10..P90.

Schedule
--------
The schedule is PPMS's: ``project_forecast`` — the forecast the ``ppms-forecast`` run publishes, with the
project's own duration model, PPMS's trials, seed and calibrated dependence — runs twice on the
requirement's project: on the scope without the change (the new tasks left out) and with it (new tasks in;
removed tasks marked done, so they stop needing work and stop blocking, while their assignee still counts as
a worker — dropping scope does not drop a person). So the "after" dates are the dates PPMS publishes once
the change is in the plan, and the shift is a difference of two PPMS forecasts. PPMS draws each task's
duration from a stream keyed by its key (``flow.keyed_normals``, ``flow.keyed_uniforms``), so a task has the
same draws in trial *i* before and after and the shift is the change, not Monte Carlo noise; a change that
alters no scope gives exactly zero shift. Shifts are calendar days between the P50 (P85) dates. A side with
no open work finishes today; the schedule is None, with the reason in the explanation, when the
requirement has no project, the project has no open work before or after the change, or a forecast cannot
be made.

Risk
----
High when any of: the P85 date moves more than ``HIGH_P85_SHIFT_DAYS`` = 7 calendar days (more than a week:
a sprint-level slip stakeholders notice); a touched service has a release in flight (the change lands on code
being rolled out: a re-cut or a rollback is on the table); more than ``HIGH_COMPONENTS`` = 5 components (at
that breadth several teams and their integration are involved). Medium when any of: P85 moves more than
``MEDIUM_P85_SHIFT_DAYS`` = 2 calendar days (one working day across a weekend already shows as 3, so this
means a real slip, while a day or two is within the wobble of a P85 date); at least ``MEDIUM_COMPONENTS`` = 3
components (crosses component boundaries, so integration work and a second owner); unknown references in
the reach (the map has gaps, so the real impact may be larger than shown). Low otherwise. Effort is left out
on purpose: the policy judges it directly, and counting it in the risk as well would count it twice.

Policy
------
``decide`` requires approval when any approval rule fires, auto-accepts only when every auto-accept bound
holds, and notifies otherwise; every rule checked is listed in the reasons. The ``ImpactPolicy`` docstring
justifies the default thresholds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import fields
from datetime import date, datetime
from typing import Literal

import networkx as nx
import numpy as np
from pydantic import BaseModel, Field

from framework2.sections import Section
from framework2.tasks.planning.durations import DurationModel, task_duration_days, working_days_between
from framework2.tasks.planning.flow import Dependence
from framework2.tasks.planning.forecast import project_forecast, remaining_scope
from framework2.tasks.planning.montecarlo import Forecast
from framework2.tasks.planning.records import DependencyRecord, PersonRecord, TaskRecord

REWORK_SHARE_PER_CRITERION = 0.20
OWN_TASK_PREFIX = "pces:"  # keys of the tasks PCES puts in the plan for added acceptance criteria
CLARIFICATION_CRITERIA = 0.5
HIGH_P85_SHIFT_DAYS = 7.0
MEDIUM_P85_SHIFT_DAYS = 2.0
HIGH_COMPONENTS = 5
MEDIUM_COMPONENTS = 3
_NAMES_IN_TEXT = 3  # name at most this many components in the explanation, then count them

Kind = Literal["requirement", "task", "component", "service", "release"]
Risk = Literal["low", "medium", "high"]
_RISK_ORDER = {"low": 0, "medium": 1, "high": 2}


# --- Boundary models -----------------------------------------------------------------------------------------


class ChangedRequirement(BaseModel):
    """A requirement as it is after a change, with what it linked before (the requirement side's protocol)."""

    id: str = Field(..., min_length=1)
    project: str | None = Field(None, description="PPMS project key whose plan the requirement belongs to.")
    owner: str | None = None
    tasks: list[str] = Field(default_factory=list, description="Linked PPMS task keys after the change.")
    components: list[str] = Field(default_factory=list, description="Linked components after the change.")
    tasks_before: list[str] = Field(default_factory=list, description="Linked tasks before (empty when new).")
    criteria_added: int = Field(0, ge=0)
    criteria_removed: int = Field(0, ge=0)
    body_lines_changed: int = Field(0, ge=0)
    kind: Literal["added", "changed", "removed"] = "changed"
    new_tasks: list[TaskRecord] = Field(
        default_factory=list, description="Tasks the change adds to the scope; their estimates may be None."
    )


class Component(Section):
    """A component of the product, who owns it, and the services (deployables) it ships in."""

    name: str = Field(..., min_length=1)
    owner: str | None = None
    services: list[str] = Field(default_factory=list)


class Reach(BaseModel):
    """Everything downstream of some traceability nodes, by kind, sorted."""

    tasks: list[str] = Field(default_factory=list)
    components: list[str] = Field(default_factory=list)
    services: list[str] = Field(default_factory=list)
    releases: list[str] = Field(default_factory=list)
    unknown: list[str] = Field(default_factory=list, description="Unknown references reached, as 'kind:name'.")
    in_flight: list[str] = Field(default_factory=list, description="Releases reached that are rolling out now.")
    owners: list[str] = Field(default_factory=list, description="Owners of the components reached.")


class ImpactReport(BaseModel):
    """What a changed requirement touches, costs and risks (see the module docstring for every rule)."""

    requirement: str
    tasks: list[str] = Field(default_factory=list, description="Tasks reached (before and after the change).")
    components: list[str] = Field(default_factory=list)
    services: list[str] = Field(default_factory=list)
    releases: list[str] = Field(default_factory=list)
    unknown: list[str] = Field(default_factory=list, description="Unknown references in the reach, 'kind:name'.")
    in_flight: list[str] = Field(default_factory=list, description="Releases in flight on the touched services.")
    added_tasks: list[str] = Field(default_factory=list)
    removed_tasks: list[str] = Field(default_factory=list, description="Open tasks that leave the scope.")
    rework_days: float = Field(0.0, description="Rework on done linked tasks, working days (in the delta).")
    effort_delta_days: float = Field(..., description="Median working days added minus removed, plus rework.")
    effort_band: tuple[float, float] = Field(..., description="P10..P90 of the sampled delta, working days.")
    schedule_before: dict[str, str | float | None] | None = None
    schedule_after: dict[str, str | float | None] | None = None
    p50_shift_days: float | None = Field(None, description="Calendar days, after - before.")
    p85_shift_days: float | None = Field(None, description="Calendar days, after - before.")
    schedule_note: str = Field("", description="Why there is no schedule impact, when there is none.")
    risk: Risk
    risk_reasons: list[str] = Field(default_factory=list)
    owners: list[str] = Field(default_factory=list)
    explanation: str


class ImpactPolicy(Section):
    """When a change is accepted on its own, announced, or held for approval.

    Defaults, and why:

    - auto-accept up to ``auto_accept_max_effort_days`` = 2 working days: within the normal estimation error
      of a single task (PPMS's fallback band puts a 2-day task's P90 at 4 days), which a team absorbs in a
      sprint without replanning;
    - auto-accept only when P85 moves at most ``auto_accept_max_p85_shift_days`` = 0 days: the date people
      plan on does not move, so nobody has to be told;
    - auto-accept only at risk ``auto_accept_max_risk`` = low: a medium risk (several components, gaps in
      the map, a visible slip) is worth a notification even when it is small;
    - approval from ``approval_min_effort_days`` = 10 working days: two person-weeks, a piece of scope one
      would otherwise plan into a sprint on purpose;
    - approval from ``approval_min_p85_shift_days`` = 5 calendar days: the 85 % date slipping most of a week
      reaches downstream commitments;
    - approval at risk ``approval_on_risk`` = high (``never`` turns the rule off);
    - approval when P85 moves past the target date because of this change (``approval_if_target_missed``).
    """

    # Finite, and an effort bound below 0 would auto-accept nothing or approve everything by accident; a
    # negative approval bound is allowed on purpose ("every change needs approval").
    auto_accept_max_effort_days: float = Field(2.0, ge=0, allow_inf_nan=False)
    auto_accept_max_p85_shift_days: float = Field(0.0, ge=0, allow_inf_nan=False)
    auto_accept_max_risk: Risk = "low"
    approval_min_effort_days: float = Field(10.0, allow_inf_nan=False)
    approval_min_p85_shift_days: float = Field(5.0, allow_inf_nan=False)
    approval_on_risk: Literal["high", "medium", "never"] = "high"
    approval_if_target_missed: bool = True


class Decision(BaseModel):
    """What should happen with a change, and every rule that led there."""

    action: Literal["auto_accept", "notify", "require_approval"]
    reasons: list[str]


# --- Traceability --------------------------------------------------------------------------------------------


def _node(kind: Kind, name: str) -> tuple[str, str]:
    return (kind, name)


class Traceability:
    """The requirement → task → component → service → release graph (see the module docstring)."""

    def __init__(self, graph: nx.DiGraph) -> None:
        self.graph = graph

    @property
    def unknown(self) -> list[str]:
        """Referenced but undefined nodes, as 'kind:name', sorted."""
        return sorted(f"{k}:{n}" for (k, n), data in self.graph.nodes(data=True) if data.get("unknown"))

    def requirements_linking(self, task: str) -> list[str]:
        """Requirements that link ``task`` directly, sorted."""
        node = _node("task", task)
        if node not in self.graph:
            return []
        return sorted(n for k, n in self.graph.predecessors(node) if k == "requirement")

    def reach(
        self, *, requirement: str | None = None, tasks: Sequence[str] = (), components: Sequence[str] = ()
    ) -> Reach:
        """Everything downstream of a requirement, tasks and components; names not in the graph count as reached
        (a task the map does not know yet is still touched)."""
        starts = [_node("task", t) for t in tasks] + [_node("component", c) for c in components]
        if requirement is not None:
            starts.append(_node("requirement", requirement))
        seen: set[tuple[str, str]] = set()
        for start in starts:
            seen.add(start)
            if start in self.graph:
                seen |= nx.descendants(self.graph, start)
        by_kind: dict[str, set[str]] = {}
        for kind, name in seen:
            by_kind.setdefault(kind, set()).add(name)
        data = self.graph.nodes
        unknown = sorted(f"{k}:{n}" for k, n in seen if (k, n) in self.graph and data[(k, n)].get("unknown"))
        in_flight = sorted(n for k, n in seen if k == "release" and data[(k, n)].get("in_flight"))
        owners = sorted(
            {data[(k, n)]["owner"] for k, n in seen if k == "component" and (k, n) in self.graph}
            - {None}  # components without an owner, and unknown ones
        )
        return Reach(
            tasks=sorted(by_kind.get("task", ())),
            components=sorted(by_kind.get("component", ())),
            services=sorted(by_kind.get("service", ())),
            releases=sorted(by_kind.get("release", ())),
            unknown=unknown,
            in_flight=in_flight,
            owners=owners,
        )


def build_traceability(
    requirements: Sequence[tuple[str, list[str], list[str]]],
    components: Sequence[Component],
    releases: Mapping[str, list[str]] | None = None,
    task_components: Mapping[str, list[str]] | None = None,
    *,
    in_flight: Collection[str] = (),
) -> Traceability:
    """The traceability graph from (requirement id, task keys, component names) triples, the components with
    their services, each service's recent release ids and each task's components. ``in_flight`` names the
    release ids rolling out now. Components nobody defined become ``unknown=True`` nodes, never errors."""
    graph = nx.DiGraph()

    def component(name: str) -> tuple[str, str]:
        node = _node("component", name)
        if node not in graph:  # referenced before (or without) a definition: unknown until defined
            graph.add_node(node, kind="component", name=name, unknown=True, owner=None)
        return node

    for comp in components:  # a repeated name: the last definition wins, as a store upsert would
        graph.add_node(_node("component", comp.name), kind="component", name=comp.name, unknown=False, owner=comp.owner)
        for service in comp.services:
            graph.add_node(_node("service", service), kind="service", name=service, unknown=False)
            graph.add_edge(_node("component", comp.name), _node("service", service))
    for service, ids in (releases or {}).items():
        graph.add_node(_node("service", service), kind="service", name=service, unknown=False)
        for rid in ids:
            node = _node("release", rid)
            graph.add_node(node, kind="release", name=rid, unknown=False, service=service, in_flight=rid in in_flight)
            graph.add_edge(_node("service", service), node)
    for requirement, task_keys, component_names in requirements:
        req = _node("requirement", requirement)
        graph.add_node(req, kind="requirement", name=requirement, unknown=False)
        for key in task_keys:
            graph.add_node(_node("task", key), kind="task", name=key, unknown=False)
            graph.add_edge(req, _node("task", key))
        for name in component_names:
            graph.add_edge(req, component(name))
    for key, names in (task_components or {}).items():
        graph.add_node(_node("task", key), kind="task", name=key, unknown=False)
        for name in names:
            graph.add_edge(_node("task", key), component(name))
    return Traceability(graph)


# --- Common random numbers -----------------------------------------------------------------------------------


def _stable_int(text: str) -> int:
    """A process-independent 64-bit integer for ``text`` (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class _CommonDraws(DurationModel):
    """A ``DurationModel`` that returns the same duration draws for a task whichever scope it is sampled in.

    Each task's draws come from its own stream, seeded by (seed, task key), drawn the first time the task is
    asked for and kept; ``sample`` returns those columns and ignores the generator it is given. So a task's
    draws depend on nothing but the seed and its key — not on which other tasks share the scope (one batch
    ``sample`` call would hand out the numbers by column position, and adding a task would reshuffle them).
    """

    @classmethod
    def wrap(cls, model: DurationModel, trials: int, seed: int) -> _CommonDraws:
        common = cls(**{f.name: getattr(model, f.name) for f in fields(DurationModel)})
        object.__setattr__(common, "_base", model)  # frozen dataclass: set the extras past __setattr__
        object.__setattr__(common, "_table", {})
        object.__setattr__(common, "_trials", trials)
        object.__setattr__(common, "_seed", seed)
        return common

    def sample(
        self, tasks: Sequence[TaskRecord], trials: int, rng: np.random.Generator | int | None = None
    ) -> np.ndarray:
        """The table's columns for ``tasks`` (a fresh array: callers scale and condition it in place)."""
        if trials != self._trials:
            return self._base.sample(tasks, trials, rng)
        out = np.empty((trials, len(tasks)))
        for i, task in enumerate(tasks):
            if task.key not in self._table:
                stream = np.random.default_rng([self._seed, _stable_int(task.key)])
                self._table[task.key] = self._base.sample([task], trials, stream)[:, 0]
            out[:, i] = self._table[task.key]
        return out


# --- Risk and decision ---------------------------------------------------------------------------------------


def assess_risk(
    *, p85_shift_days: float | None, components: int, in_flight: Sequence[str] = (), unknown: Sequence[str] = ()
) -> tuple[Risk, list[str]]:
    """The risk level of a change and every rule that fired (thresholds in the module docstring)."""
    high: list[str] = []
    medium: list[str] = []
    if p85_shift_days is not None and p85_shift_days > HIGH_P85_SHIFT_DAYS:
        high.append(f"P85 moves {p85_shift_days:+g} d > {HIGH_P85_SHIFT_DAYS:g} d")
    elif p85_shift_days is not None and p85_shift_days > MEDIUM_P85_SHIFT_DAYS:
        medium.append(f"P85 moves {p85_shift_days:+g} d > {MEDIUM_P85_SHIFT_DAYS:g} d")
    if in_flight:
        high.append(f"release in flight on a touched service: {', '.join(in_flight)}")
    if components > HIGH_COMPONENTS:
        high.append(f"{components} components > {HIGH_COMPONENTS}")
    elif components >= MEDIUM_COMPONENTS:
        medium.append(f"{components} components ≥ {MEDIUM_COMPONENTS}")
    if unknown:
        medium.append(f"unknown references, the impact may be larger: {', '.join(unknown)}")
    if high:
        return "high", high + medium
    if medium:
        return "medium", medium
    shift = "no schedule" if p85_shift_days is None else f"P85 moves {p85_shift_days:+g} d"
    return "low", [f"no risk rule fired ({shift}, {components} components, no release in flight)"]


def _p85(schedule: Mapping[str, str | float | None] | None) -> date | None:
    value = (schedule or {}).get("p85")
    return date.fromisoformat(value) if isinstance(value, str) else None


def decide(report: ImpactReport, policy: ImpactPolicy, *, target_date: date | None) -> Decision:
    """Require approval if any approval rule fires; else auto-accept when every auto-accept bound holds; else
    notify. Deterministic; every rule that decided is a reason."""
    effort, shift = report.effort_delta_days, report.p85_shift_days
    approval: list[str] = []
    if effort >= policy.approval_min_effort_days:
        approval.append(f"effort {effort:+.1f} d ≥ {policy.approval_min_effort_days:g} d")
    if shift is not None and shift >= policy.approval_min_p85_shift_days:
        approval.append(f"P85 shift {shift:+g} d ≥ {policy.approval_min_p85_shift_days:g} d")
    if policy.approval_on_risk != "never" and _RISK_ORDER[report.risk] >= _RISK_ORDER[policy.approval_on_risk]:
        approval.append(f"risk {report.risk} (approval required at {policy.approval_on_risk} or above)")
    before, after = _p85(report.schedule_before), _p85(report.schedule_after)
    # Only a move *past* the target counts: a plan already late before the change is not this change's doing.
    # Without a before-date (no forecast) a P85 past the target is taken to be the change's.
    if (
        policy.approval_if_target_missed
        and target_date is not None
        and after is not None
        and after > target_date
        and (before is None or before <= target_date)
    ):
        approval.append(f"P85 moves past the target {target_date.isoformat()}")
    if approval:
        return Decision(action="require_approval", reasons=approval)

    held: list[str] = []
    failed: list[str] = []
    bound = policy.auto_accept_max_effort_days
    (held if effort <= bound else failed).append(
        f"effort {effort:+.1f} d {'≤' if effort <= bound else '>'} {bound:g} d"
    )
    bound = policy.auto_accept_max_p85_shift_days
    if shift is None:
        failed.append(f"P85 shift unknown ({report.schedule_note or 'no schedule'})")
    else:
        (held if shift <= bound else failed).append(
            f"P85 shift {shift:+g} d {'≤' if shift <= bound else '>'} {bound:g} d"
        )
    ok = _RISK_ORDER[report.risk] <= _RISK_ORDER[policy.auto_accept_max_risk]
    (held if ok else failed).append(
        f"risk {report.risk} {'within' if ok else 'above'} the auto-accept level {policy.auto_accept_max_risk}"
    )
    if failed:
        return Decision(action="notify", reasons=failed)
    return Decision(action="auto_accept", reasons=held)


# --- Impact --------------------------------------------------------------------------------------------------


def rework_share(change: ChangedRequirement) -> float:
    """Share of a done linked task's duration redone for this change (module docstring, "Rework")."""
    if change.kind == "removed":
        return 0.0
    criteria = change.criteria_added + change.criteria_removed
    if criteria == 0 and change.body_lines_changed > 0:
        criteria = CLARIFICATION_CRITERIA
    return min(1.0, REWORK_SHARE_PER_CRITERION * criteria)


def _schedule(forecast: Forecast) -> dict[str, str | float | None]:
    return {
        "p50": forecast.p50_date.isoformat() if forecast.p50_date else None,
        "p85": forecast.p85_date.isoformat() if forecast.p85_date else None,
        "probability_on_time": forecast.probability_of_target,
    }


def _finished_today(today: date, target_date: date | None) -> dict[str, str | float | None]:
    """The schedule of a side with no open work: it is finished today."""
    on_time = None if target_date is None else float(today <= target_date)
    return {"p50": today.isoformat(), "p85": today.isoformat(), "probability_on_time": on_time}


def _shift(before: Mapping[str, str | float | None], after: Mapping[str, str | float | None], key: str) -> float:
    return float((date.fromisoformat(str(after[key])) - date.fromisoformat(str(before[key]))).days)


def _names(items: Sequence[str]) -> str:
    return f" ({', '.join(items)})" if 0 < len(items) <= _NAMES_IN_TEXT else ""


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def assess_impact(
    change: ChangedRequirement,
    trace: Traceability,
    tasks: Sequence[TaskRecord],
    dependencies: Sequence[DependencyRecord],
    people: Sequence[PersonRecord],
    model: DurationModel,
    *,
    now: datetime,
    target_date: date | None,
    trials: int = 2000,
    seed: int | None = None,
    min_history_items: int = 30,
    dependence: Dependence | None = None,
) -> ImpactReport:
    """The impact of ``change``: reach, effort delta with its band, schedule before/after as PPMS forecasts
    them, risk, owners and a short explanation (see the module docstring for every rule).

    ``model`` draws the effort; the schedule is ``project_forecast`` — PPMS's own model, seed (unless ``seed``
    is given), ``trials``, ``min_history_items`` and ``dependence`` — so pass PPMS's settings and calibration
    to get the dates PPMS publishes."""
    today = now.date()
    new_by_key = {t.key: t for t in change.new_tasks}
    # ``tasks`` is the store's state; the new tasks may or may not be in it yet. The change's own copies win.
    current = [t for t in tasks if t.key not in new_by_key]
    by_key = {t.key: t for t in current} | new_by_key

    after_links = set(change.tasks) | set(new_by_key)
    removed = sorted(
        key
        for key in set(change.tasks_before) - after_links
        if key in by_key
        and by_key[key].status != "done"
        and not set(trace.requirements_linking(key)) - {change.id}  # still needed by another requirement
    )
    added = sorted(k for k, t in new_by_key.items() if t.status != "done")
    reworked = sorted(k for k in change.tasks if k in by_key and by_key[k].status == "done" and k not in new_by_key)
    share = rework_share(change)

    before_tasks = list(current)
    # Only tasks PCES made leave the plan with the change; a tracker's task stays in PPMS's plan (and so in the
    # schedule) until someone closes it there, whatever the requirement now links.
    leaving = {k for k in removed if k.startswith(OWN_TASK_PREFIX)}
    staying = [k for k in removed if k not in leaving]
    after_tasks = list(new_by_key.values()) + [
        t.model_copy(update={"status": "done"}) if t.key in leaving else t for t in current
    ]
    before_scope: list[TaskRecord] = []
    after_scope: list[TaskRecord] = []
    if change.project is not None:
        before_scope, _ = remaining_scope(change.project, before_tasks, dependencies)
        after_scope, _ = remaining_scope(change.project, after_tasks, dependencies)
    effort_seed = 0 if seed is None else seed
    common = _CommonDraws.wrap(model, trials, effort_seed)

    # Effort: per-trial delta, so the band is a quantile of the sum, not a sum of quantiles.
    rng = np.random.default_rng([effort_seed, _stable_int(change.id)])
    delta = np.zeros(trials)
    for key in added:
        delta += common.sample([by_key[key]], trials)[:, 0]
    for key in removed:
        task = by_key[key]
        if task.status == "in_progress" and task.started_at is not None:
            spent = np.array([working_days_between(task.started_at, now)])
            draws = model.sample_remaining([task], spent, trials, rng)[:, 0]
        else:
            draws = common.sample([task], trials)[:, 0]
        delta -= draws
    rework = np.zeros(trials)
    if share > 0:
        for key in reworked:
            task = by_key[key]
            if task.started_at is not None and task.done_at is not None:
                rework += share * task_duration_days(task)
            else:
                rework += share * common.sample([task], trials)[:, 0]
    delta += rework
    p10, p50, p90 = (float(v) for v in np.quantile(delta, [0.1, 0.5, 0.9]))
    rework_days = float(np.median(rework))

    # Schedule: the same draws on both sides, so the shift is the change.
    schedule_before = schedule_after = None
    p50_shift = p85_shift = None
    note = ""
    if change.project is None:
        note = "the requirement has no project, so there is no plan to forecast"
    elif not before_scope and not after_scope:
        note = f"{change.project} has no open work before or after the change"
    else:
        sides = []
        replayed: dict = {}  # both sides replay the same past: learn how items move together once
        for side_tasks, scope in ((before_tasks, before_scope), (after_tasks, after_scope)):
            if not scope:
                sides.append(_finished_today(today, target_date))
                continue
            forecast, _, _, _ = project_forecast(
                change.project,
                target_date,
                side_tasks,
                dependencies,
                people,
                now=now,
                trials=trials,
                min_history_items=min_history_items,
                dependence=dependence,
                seed=seed,
                dependence_cache=replayed,
            )
            if not forecast.available or forecast.p85_date is None:
                note = f"no forecast for {change.project}: {forecast.horizon_note or forecast.reason}"
                break
            sides.append(_schedule(forecast))
        if not note:
            schedule_before, schedule_after = sides
            p50_shift = _shift(schedule_before, schedule_after, "p50")
            p85_shift = _shift(schedule_before, schedule_after, "p85")

    # A link to a task PPMS does not know is a gap in the map: reported (and a medium risk), never counted as
    # work the change touches.
    unknown_tasks = sorted(k for k in set(change.tasks) | set(change.tasks_before) if k not in by_key)
    reach = trace.reach(
        requirement=change.id,
        tasks=sorted((set(change.tasks) | set(change.tasks_before) | set(new_by_key)) - set(unknown_tasks)),
        components=change.components,
    )
    reach = reach.model_copy(
        update={
            "tasks": [k for k in reach.tasks if k not in unknown_tasks],
            "unknown": sorted({*reach.unknown, *(f"task:{k}" for k in unknown_tasks)}),
        }
    )
    risk, risk_reasons = assess_risk(
        p85_shift_days=p85_shift, components=len(reach.components), in_flight=reach.in_flight, unknown=reach.unknown
    )
    assignees = {by_key[k].assignee for k in reach.tasks if k in by_key}
    owners = sorted(({change.owner} | assignees | set(reach.owners)) - {None, ""})

    sentences = [
        f"{change.id} ({change.kind}) touches {_plural(len(reach.tasks), 'task')}, "
        f"{_plural(len(reach.components), 'component')}{_names(reach.components)}, "
        f"{_plural(len(reach.services), 'service')} and {_plural(len(reach.releases), 'recent release')}.",
        f"Effort {p50:+.1f} working days (P10-P90 {p10:+.1f} to {p90:+.1f}): {_plural(len(added), 'task')} added, "
        f"{len(removed)} removed, {rework_days:.1f} d rework on {_plural(len(reworked) if share else 0, 'done task')}.",
    ]
    if unknown_tasks:
        sentences.append(
            f"It links {_plural(len(unknown_tasks), 'task')} PPMS does not know ({', '.join(unknown_tasks)}): "
            "not counted; check the keys."
        )
    if staying:
        sentences.append(
            f"{_plural(len(staying), 'unlinked task')}{_names(staying)} stay in the plan until closed in the "
            "tracker; the schedule still counts them."
        )
    if schedule_before is not None and schedule_after is not None:
        text = f"P85 {schedule_before['p85']} → {schedule_after['p85']} ({p85_shift:+g} calendar days)"
        odds_before, odds_after = schedule_before["probability_on_time"], schedule_after["probability_on_time"]
        if target_date is not None and isinstance(odds_before, float) and isinstance(odds_after, float):
            text += f", odds of the target {target_date.isoformat()} {odds_before:.0%} → {odds_after:.0%}"
        sentences.append(text + ".")
    else:
        sentences.append(f"No schedule impact: {note}.")
    sentences.append(f"Risk {risk}: {'; '.join(risk_reasons)}.")

    def rounded(x: float) -> float:
        return round(x, 2) + 0.0  # + 0.0: no "-0.0" in reports

    return ImpactReport(
        requirement=change.id,
        tasks=reach.tasks,
        components=reach.components,
        services=reach.services,
        releases=reach.releases,
        unknown=reach.unknown,
        in_flight=reach.in_flight,
        added_tasks=added,
        removed_tasks=removed,
        rework_days=rounded(rework_days),
        effort_delta_days=rounded(p50),
        effort_band=(rounded(p10), rounded(p90)),
        schedule_before=schedule_before,
        schedule_after=schedule_after,
        p50_shift_days=p50_shift,
        p85_shift_days=p85_shift,
        schedule_note=note,
        risk=risk,
        risk_reasons=risk_reasons,
        owners=owners,
        explanation=" ".join(sentences),
    )


__all__ = [
    "ChangedRequirement",
    "Component",
    "Decision",
    "ImpactPolicy",
    "ImpactReport",
    "Reach",
    "Traceability",
    "assess_impact",
    "assess_risk",
    "build_traceability",
    "decide",
    "rework_share",
]
