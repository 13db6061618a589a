"""PPMS prioritisation: a ranked backlog from WSJF or RICE scores, made dependency-aware.

Own score, per open task (``status != "done"``):

- WSJF (SAFe): ``cost_of_delay = business_value + time_criticality + risk_reduction`` and
  ``wsjf = cost_of_delay / job_size`` with ``job_size = max(estimate_days, min_job_size)``.
- RICE (Intercom): ``rice = reach * impact * confidence / effort`` with ``effort`` the same floored
  estimate in days. Confidence is a fraction; values above 1 are read as percentages (80 -> 0.8).

A missing (or negative) input takes the documented default from :class:`PrioritySettings` and is
listed in ``defaults_used``, so unscored work still ranks, just modestly, and the reader can see why.

Dependency-aware urgency (``inherited``): a task that (transitively) unblocks open work inherits

    inherited = max over open tasks d downstream of it of  own_score(d) * inheritance ** depth(d)

where ``depth`` is the number of dependency steps to ``d`` (1 = ``d`` waits on it directly). The total
is ``score = own_score + inherited``. The **max**, not a sum, keeps it bounded and explainable: it is at
most ``inheritance`` times the best own score in the backlog, so no blocker can outrank everything just
by blocking many small chores, and ``why`` can name the one task the boost comes from. How much a task
unblocks in all is shown separately (``unblocks``, ``unblocks_top``). Only open-to-open dependencies
count: a dependency on a done task is satisfied, and done work needs no unblocking.

Dependencies naming a task not in ``tasks`` are ignored (they neither block nor unblock) and returned
by :func:`unknown_dependencies` (also in ``attrs["unknown_dependencies"]`` of the result) so the caller
can quarantine them. A cycle among open tasks would deadlock the work and is a :class:`DataError`
naming its members.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from graphlib import TopologicalSorter
from typing import Literal

import pandas as pd
from pydantic import BaseModel, Field

from framework2.errors import DataError
from framework2.tasks.planning.records import DependencyRecord, TaskRecord
from framework2.tasks.planning.validate import find_cycle

WSJF_PARTS = ["business_value", "time_criticality", "risk_reduction", "cost_of_delay", "job_size", "wsjf"]
RICE_PARTS = ["reach", "impact", "confidence", "effort", "rice"]
TASK_COLUMNS = ["title", "project", "status", "type", "estimate_days", "required_skills", "labels", "assignee"]
SCORE_COLUMNS = [
    "own_score",
    "inherited",
    "inherited_from",
    "score",
    "rank",
    "unblocks",
    "unblocks_top",
    "ready",
    "waiting_on",
    "defaults_used",
    "why",
]
_TOP_UNBLOCKED = 3


class PrioritySettings(BaseModel):
    """How the backlog is scored; every field has a default so an empty form gives a sensible ranking."""

    method: Literal["wsjf", "rice"] = Field(
        "wsjf",
        description="WSJF (cost of delay / job size) or RICE (reach x impact x confidence / effort).",
    )
    default_business_value: float = Field(
        3.0,
        ge=0,
        description="WSJF business value (1-10 scale) for tasks without one: modest, so unscored work ranks "
        "below work someone rated, but is not buried.",
    )
    default_time_criticality: float = Field(
        1.0, ge=0, description="WSJF time criticality (1-10) when missing: not time-critical unless someone says so."
    )
    default_risk_reduction: float = Field(
        1.0, ge=0, description="WSJF risk reduction / opportunity enablement (1-10) when missing: little."
    )
    default_reach: float = Field(
        1.0,
        ge=0,
        description="RICE reach (people or events per period, in your own units) when missing; set it to a "
        "typical reach if your reaches are large numbers.",
    )
    default_impact: float = Field(
        1.0, ge=0, description="RICE impact (0.25 minimal, 0.5 low, 1 medium, 2 high, 3 massive) when missing."
    )
    default_confidence: float = Field(
        0.5, ge=0, le=1, description="RICE confidence (0-1) when missing: 0.5, 'low confidence'."
    )
    default_estimate_days: float = Field(
        3.0, gt=0, description="Estimate in days assumed for unestimated tasks (WSJF job size, RICE effort)."
    )
    min_job_size: float = Field(
        0.5,
        gt=0,
        description="Floor on job size / effort in days, so a tiny estimate cannot blow up the ratio.",
    )
    inheritance: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of a downstream task's own score a blocker inherits per dependency step "
        "(0 = ignore dependencies, 0.5 = half per step, 1 = full).",
    )


def _fmt(value: float) -> str:
    # Two decimals at most, trailing zeros dropped: 8 / 4.55 / 0.33.
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def unknown_dependencies(
    tasks: Sequence[TaskRecord], dependencies: Sequence[DependencyRecord]
) -> list[DependencyRecord]:
    """Dependencies where either end is not one of ``tasks`` (ignored by scoring; quarantine them)."""
    keys = {t.key for t in tasks}
    return [d for d in dependencies if d.task not in keys or d.depends_on not in keys]


def _inputs(open_tasks: list[TaskRecord], settings: PrioritySettings) -> tuple[pd.DataFrame, pd.Series]:
    """The method's raw inputs with defaults filled in, and which inputs were defaulted per task."""
    s = settings
    if s.method == "wsjf":
        defaults = {
            "business_value": s.default_business_value,
            "time_criticality": s.default_time_criticality,
            "risk_reduction": s.default_risk_reduction,
        }
    else:
        defaults = {"reach": s.default_reach, "impact": s.default_impact, "confidence": s.default_confidence}
    defaults["estimate_days"] = s.default_estimate_days
    index = pd.Index([t.key for t in open_tasks], name="task")
    raw = pd.DataFrame(
        {name: [getattr(t, name) for t in open_tasks] for name in defaults}, index=index, dtype=float
    ).astype(float)
    if s.method == "rice":
        # Sources differ: some give confidence as a percentage.
        conf = raw["confidence"]
        raw["confidence"] = conf.where(~(conf > 1), conf / 100).clip(upper=1.0)
    # A negative value is as unusable as a missing one (estimates of 0 mean "not estimated" in many trackers).
    missing = raw.isna() | (raw < 0)
    missing["estimate_days"] |= raw["estimate_days"] == 0
    filled = raw.mask(missing).fillna(defaults)
    used = pd.Series([[name for name in defaults if row[name]] for row in missing.to_dict("records")], index=index)
    return filled, used


def score_backlog(
    tasks: Sequence[TaskRecord],
    dependencies: Sequence[DependencyRecord],
    settings: PrioritySettings | None = None,
) -> pd.DataFrame:
    """The ranked backlog of open tasks (indexed by task key, best first) with each score's parts and ``why``.

    Columns: the task's own fields (``title``, ``estimate_days``, ``required_skills``, ...), the method's
    parts (WSJF: business_value, time_criticality, risk_reduction, cost_of_delay, job_size, wsjf; RICE:
    reach, impact, confidence, effort, rice), ``own_score``, ``inherited`` and ``inherited_from`` (the
    downstream task it comes from), ``score``, ``rank`` (1 = do first), ``unblocks`` (open tasks waiting
    on it, transitively) with ``unblocks_top`` (the highest own scores among them), ``ready`` (all its
    known dependencies done) with ``waiting_on``, ``defaults_used`` and ``why``.
    """
    settings = settings or PrioritySettings()
    dupes = sorted(key for key, n in Counter(t.key for t in tasks).items() if n > 1)
    if dupes:
        raise DataError(f"task key(s) appear more than once: {', '.join(dupes[:5])}", "each task needs a unique key")
    by_key = {t.key: t for t in tasks}
    open_tasks = sorted((t for t in tasks if t.status != "done"), key=lambda t: t.key)
    open_keys = {t.key for t in open_tasks}

    waiting_on: dict[str, set[str]] = {k: set() for k in open_keys}
    dependents: dict[str, set[str]] = {k: set() for k in open_keys}
    for dep in dependencies:
        if dep.task in open_keys and dep.depends_on in open_keys:
            waiting_on[dep.task].add(dep.depends_on)
            dependents[dep.depends_on].add(dep.task)
    # Sorted so the same data always reports the same cycle.
    cycle = find_cycle((task, on) for task in sorted(waiting_on) for on in sorted(waiting_on[task]))
    if cycle is not None:
        raise DataError(
            f"dependency cycle among open tasks: {' → '.join(cycle)}",
            "none of them can ever start; remove one of these dependencies",
        )

    filled, defaults_used = _inputs(open_tasks, settings)
    size = filled["estimate_days"].clip(lower=settings.min_job_size)
    if settings.method == "wsjf":
        cost_of_delay = filled["business_value"] + filled["time_criticality"] + filled["risk_reduction"]
        parts = filled[["business_value", "time_criticality", "risk_reduction"]].assign(
            cost_of_delay=cost_of_delay, job_size=size, wsjf=cost_of_delay / size
        )
        own = parts["wsjf"]
    else:
        rice = filled["reach"] * filled["impact"] * filled["confidence"] / size
        parts = filled[["reach", "impact", "confidence"]].assign(effort=size, rice=rice)
        own = parts["rice"]
    own_of = own.to_dict()

    inherit = _inherit(open_keys, dependents, own_of, settings.inheritance)
    out = pd.DataFrame(
        {name: [_task_value(by_key[k], name) for k in parts.index] for name in TASK_COLUMNS}, index=parts.index
    )
    out = out.join(parts)
    out["own_score"] = own
    out["inherited"] = [inherit[k][0] for k in out.index]
    out["inherited_from"] = [inherit[k][1] for k in out.index]
    out["score"] = out["own_score"] + out["inherited"]
    out["unblocks"] = [inherit[k][3] for k in out.index]
    out["unblocks_top"] = [inherit[k][4] for k in out.index]
    out["ready"] = [not waiting_on[k] for k in out.index]
    out["waiting_on"] = [sorted(waiting_on[k]) for k in out.index]
    out["defaults_used"] = defaults_used
    # Best first; equal scores go to the task with more value of its own, then by key for stable output.
    out = out.assign(_neg_score=-out["score"].round(9), _neg_own=-out["own_score"].round(9))
    out = out.sort_values(["_neg_score", "_neg_own", "task"]).drop(columns=["_neg_score", "_neg_own"])
    out["rank"] = range(1, len(out) + 1)
    out["why"] = [
        _why(row, settings, own_of, inherit[key][2]) for key, row in zip(out.index, out.to_dict("records"), strict=True)
    ]
    out = out[TASK_COLUMNS + (WSJF_PARTS if settings.method == "wsjf" else RICE_PARTS) + SCORE_COLUMNS]
    out.attrs["unknown_dependencies"] = unknown_dependencies(tasks, dependencies)
    return out


def _task_value(task: TaskRecord, name: str) -> object:
    value = getattr(task, name)
    return list(value) if isinstance(value, list) else value


def _inherit(
    open_keys: set[str], dependents: dict[str, set[str]], own: dict[str, float], factor: float
) -> dict[str, tuple[float, str | None, int, int, list[str]]]:
    """Per task: (inherited, from key, depth, open tasks it unblocks, top unblocked keys), in one DAG pass.

    Dependents are visited before the tasks they wait on, so each task combines its direct dependents'
    results: max over paths of own * factor**depth decomposes edge by edge because factor <= 1.
    """
    index = {k: i for i, k in enumerate(sorted(open_keys))}
    result: dict[str, tuple[float, str | None, int, int, list[str]]] = {}
    below: dict[str, int] = {}  # bitmask of open tasks downstream: counts without double-counting diamonds
    order = TopologicalSorter({k: sorted(dependents[k]) for k in sorted(open_keys)}).static_order()
    for key in order:
        best: tuple[float, int, str] | None = None  # (value, depth, source)
        mask = 0
        top: set[str] = set()
        for child in sorted(dependents[key]):
            mask |= below[child] | (1 << index[child])
            top.add(child)
            top.update(result[child][4])
            candidates = [(own[child], child, 1)]
            _, src, depth, _, _ = result[child]
            if src is not None:
                candidates.append((own[src], src, depth + 1))
            for src_own, src_key, d in candidates:
                value = src_own * factor**d
                # Higher value first; on a tie the nearer (then alphabetically first) task reads better.
                if value > 0 and (best is None or (value, -d) > (best[0], -best[1])):
                    best = (value, d, src_key)
        below[key] = mask
        top_keys = sorted(top, key=lambda k: (-own[k], k))[:_TOP_UNBLOCKED]
        if best is None:
            result[key] = (0.0, None, 0, mask.bit_count(), top_keys)
        else:
            result[key] = (best[0], best[2], best[1], mask.bit_count(), top_keys)
    return result


_PART_NAMES = {
    "business_value": "business value",
    "time_criticality": "time criticality",
    "risk_reduction": "risk reduction",
    "reach": "reach",
    "impact": "impact",
    "confidence": "confidence",
}


def _why(row: dict, settings: PrioritySettings, own: dict[str, float], depth: int) -> str:
    """One sentence: the own score's formula, the inherited boost and where from, defaults, what it waits on."""
    if settings.method == "wsjf":
        text = f"WSJF {_fmt(row['wsjf'])} = cost of delay {_fmt(row['cost_of_delay'])} / size {_fmt(row['job_size'])}"
    else:
        text = (
            f"RICE {_fmt(row['rice'])} = reach {_fmt(row['reach'])} × impact {_fmt(row['impact'])}"
            f" × confidence {row['confidence']:.0%} / effort {_fmt(row['effort'])}"
        )
    if row["defaults_used"]:
        assumed = [
            f"estimate {_fmt(settings.default_estimate_days)} days"
            if name == "estimate_days"
            else f"{_PART_NAMES[name]} {_fmt(row[name])}"
            for name in row["defaults_used"]
        ]
        text += f" (assumed {', '.join(assumed)})"
    source = row["inherited_from"]
    if source is not None and row["inherited"] > 0:
        away = f", {depth} steps away" if depth > 1 else ""
        text += f"; +{_fmt(row['inherited'])} because it unblocks {source} (score {_fmt(own[source])}{away})"
    if row["waiting_on"]:
        text += f"; not ready: waiting on {', '.join(row['waiting_on'])}"
    return text + "."
