"""PPMS timeline forecasts: Monte Carlo through the dependency graph, percentiles, dates and the horizon.

``simulate_schedule`` pushes all trials of per-task durations through the dependency graph at once: one
Python step per task in topological order, each a numpy operation over all trials. Without a capacity limit
that is the classic critical-path forward pass (start offsets may differ per trial: the flow model's waits);
with ``workers`` it is a list schedule (see ``simulate_schedule`` for the approximation). A backward pass
marks, per trial, the tasks on the critical path; ``criticality_index`` is the share of trials in which a
task was on it. Where the durations and waits come from is ``flow.py``; the throughput answer is
``throughput.py``.

Days and dates
--------------
A forecast is a number of days from the start of ``start``: a finish of 0 < d <= 1 ends on the first
(working) day, d in (1, 2] on the second, and so on; ``to_dates`` turns offsets into dates and
``to_days`` does the reverse for a target date, so "finish date <= target" and "finish days <=
to_days(target)" are the same event. Percentiles and ``probability_by`` use one empirical
distribution, so P(finish <= P85) >= 0.85 always holds.

Horizon
-------
No percentile more than ``MAX_HORIZON_DAYS`` (five years) after the start is shown as a date:
``build_forecast`` leaves that date empty, lists the percentile in ``beyond_horizon`` and says in
``horizon_note`` that the model cannot tell. Five years is past any plan a team keeps in a tracker; a
forecast that far out says the history cannot support a date, not when the work will be done.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import date, timedelta
from fractions import Fraction
from graphlib import CycleError, TopologicalSorter
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from framework2.errors import DataError

DEFAULT_QUANTILES = (50, 85, 95)
TOP_CRITICAL = 10
MAX_HORIZON_DAYS = 5 * 365
_WEEKMASK = "1111100"

Method = Literal["dependency-graph", "throughput"]
ForecastModel = Literal["flow", "plan", "throughput", "none"]
RngLike = np.random.Generator | int | None


@dataclass(frozen=True, eq=False)
class ScheduleSample:
    """Simulated schedules: per trial, when each task finishes and which tasks were critical.

    ``finish`` and ``critical`` are (trials, n) views of task-major arrays (column j is task j, stored
    contiguously), so reading one task across trials is cheap and reading one trial across tasks is not.
    """

    task_ids: tuple[str, ...]
    finish: np.ndarray
    project_finish: np.ndarray
    critical: np.ndarray
    workers: int | None
    # What a backward pass needs to recompute start times exactly (see critical_for).
    _preds: list[list[int]] = field(repr=False)
    _order: list[int] = field(repr=False)
    _offsets: np.ndarray = field(repr=False)
    _slot_prev: np.ndarray | None = field(repr=False)

    @property
    def trials(self) -> int:
        return self.finish.shape[0]

    def positions(self, tasks: Sequence[str]) -> list[int]:
        """Column of each task in ``finish`` (DataError naming unknown tasks)."""
        index = {t: i for i, t in enumerate(self.task_ids)}
        unknown = [t for t in tasks if t not in index]
        if unknown:
            raise DataError(f"unknown task(s) {unknown[:5]}", "pass keys of tasks that were simulated")
        return [index[t] for t in tasks]


class CriticalTask(BaseModel):
    """One task and how often it was on the critical path."""

    task: str = Field(..., description="Task key.")
    index: float = Field(..., ge=0, le=1, description="Share of trials in which the task was on the critical path.")


class ThroughputAnswer(BaseModel):
    """When *any* N items will be done at the team's recent rate (throughput Monte Carlo, calendar days)."""

    items: int = Field(..., ge=0, description="How many items: the open scope's size.")
    p50_date: date | None = None
    p85_date: date | None = None
    p95_date: date | None = None
    source: str = Field("", description="project, project (short window) or organisation average.")
    window: str = Field("", description="The completions resampled, in words.")


class Forecast(BaseModel):
    """Completion forecast for a project or milestone (``available`` False when there was too little data)."""

    method: Method = Field(..., description="dependency-graph (durations through the graph) or throughput.")
    model: ForecastModel = Field(
        "plan",
        description="flow (learned waits and durations), plan (estimates through the graph, people as workers), "
        "throughput (N items at the recent rate) or none.",
    )
    model_reason: str = Field("", description="Which model was used and why, in words.")
    available: bool = Field(True, description="False when the data could not support a forecast; reason says why.")
    trials: int = Field(0, ge=0, description="Monte Carlo trials behind the numbers.")
    start: date = Field(..., description="Day offsets count from the start of this date.")
    workdays: bool = Field(True, description="Whether day offsets are working days (Mon-Fri, minus holidays).")
    p50_days: float | None = Field(None, description="Median days to finish.")
    p85_days: float | None = Field(None, description="Days by which 85 % of trials finished.")
    p95_days: float | None = Field(None, description="Days by which 95 % of trials finished.")
    p50_date: date | None = None
    p85_date: date | None = None
    p95_date: date | None = None
    target_date: date | None = Field(None, description="The date asked about, if any.")
    probability_of_target: float | None = Field(
        None, ge=0, le=1, description="Share of trials finished on or before target_date."
    )
    target_note: str = Field("", description="Plain-language reading of the probability, e.g. when every trial missed.")
    criticality: list[CriticalTask] = Field(
        default_factory=list, description=f"Up to {TOP_CRITICAL} tasks most often on the critical path."
    )
    reason: str = Field("", description="Why this method, on what data; or why there is no forecast.")
    beyond_horizon: list[int] = Field(
        default_factory=list, description=f"Percentiles later than {MAX_HORIZON_DAYS} days out: no date is shown."
    )
    horizon_note: str = Field("", description="Why some percentiles have no date, in words.")
    dependence: float | None = Field(
        None, ge=0, le=1, description="How strongly open items move together (flow model's copula correlation)."
    )
    throughput: ThroughputAnswer | None = Field(
        None, description="The throughput answer for the same number of items, when there is a rate to use."
    )


# --------------------------------------------------------------------------------------------- graph


def _graph(task_ids: Sequence[str], dependencies: Sequence[tuple[str, str]]) -> tuple[list[list[int]], list[int]]:
    """Predecessor lists by position and a topological order; DataError on unknown keys or a cycle."""
    index = {t: i for i, t in enumerate(task_ids)}
    if len(index) != len(task_ids):
        dupes = sorted(t for t, k in Counter(task_ids).items() if k > 1)
        raise DataError(f"duplicate task keys {dupes[:5]}", "pass each task once")
    preds: list[list[int]] = [[] for _ in task_ids]
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for t in task_ids:
        sorter.add(t)
    unknown: list[str] = []
    edges: set[tuple[int, int]] = set()
    for task, dep in dependencies:
        if task not in index or dep not in index:
            unknown.extend(k for k in (task, dep) if k not in index)
            continue
        edge = (index[task], index[dep])
        if edge not in edges:  # a repeated edge changes nothing but costs a max per trial
            edges.add(edge)
            preds[edge[0]].append(edge[1])
            sorter.add(task, dep)
    if unknown:
        raise DataError(
            f"dependencies name {len(set(unknown))} task(s) that are not in the schedule, e.g. "
            f"{sorted(set(unknown))[:5]}",
            "drop dependencies on tasks that are done (they no longer block) or include the blocking task",
        )
    try:
        order = [index[t] for t in sorter.static_order()]
    except CycleError as exc:
        cycle = list(exc.args[1])  # [a, b, ..., a]: each blocks the next
        members = list(dict.fromkeys(cycle))
        raise DataError(
            f"the dependencies form a cycle of {len(members)} task(s): {' -> '.join(cycle)} (each blocks the next)",
            "remove one of these dependencies; a task cannot wait for itself",
        ) from None
    return preds, order


def _dispatch_order(
    preds: list[list[int]], topo: list[int], mean: np.ndarray, offsets: np.ndarray, workers: int
) -> list[int]:
    """Start order of a greedy list schedule of the mean durations with ``workers`` workers.

    Whenever a worker is free it takes the released task with the longest mean path to the end (ties:
    topological position). The result is topological: a task starts only after its predecessors finish.
    """
    n = len(preds)
    pos = [0] * n
    for k, j in enumerate(topo):
        pos[j] = k
    succs: list[list[int]] = [[] for _ in range(n)]
    for j, ps in enumerate(preds):
        for p in ps:
            succs[p].append(j)
    mean_l = mean.tolist()
    off_l = offsets.tolist()
    tail = list(mean_l)
    for j in reversed(topo):
        if succs[j]:
            tail[j] = mean_l[j] + max(tail[s] for s in succs[j])
    waiting = [len(ps) for ps in preds]
    released = [(off_l[j], pos[j], j) for j in range(n) if not waiting[j]]
    heapq.heapify(released)
    available: list[tuple[float, int, int]] = []
    running: list[tuple[float, int, int]] = []
    order: list[int] = []
    now, free = 0.0, workers
    while len(order) < n:
        while released and released[0][0] <= now:
            _, p, j = heapq.heappop(released)
            heapq.heappush(available, (-tail[j], p, j))
        while free and available:
            _, p, j = heapq.heappop(available)
            order.append(j)
            heapq.heappush(running, (now + mean_l[j], p, j))
            free -= 1
        now = min(running[0][0] if running else math.inf, released[0][0] if released else math.inf)
        if now == math.inf:
            break  # everything dispatched
        while running and running[0][0] <= now:
            _, _, j = heapq.heappop(running)
            free += 1
            for s in succs[j]:
                waiting[s] -= 1
                if not waiting[s]:
                    heapq.heappush(released, (max(off_l[s], now), pos[s], s))
    return order


# ---------------------------------------------------------------------------------------- simulation


def _ready(finish_t: np.ndarray, preds: list[int], offset: float | np.ndarray) -> np.ndarray | None:
    """Per trial, the earliest start allowed by predecessors and the start offset (None: 0 everywhere).

    ``offset`` is one number or one per trial (a row of 2-D start offsets)."""
    per_trial = isinstance(offset, np.ndarray) and offset.ndim == 1
    if not preds:
        if per_trial:
            return offset.astype(finish_t.dtype, copy=True) if offset.any() else None
        return None if offset <= 0 else np.full(finish_t.shape[1], offset, dtype=finish_t.dtype)
    out = finish_t[preds[0]].copy()
    for p in preds[1:]:
        np.maximum(out, finish_t[p], out=out)
    if per_trial or offset > 0:
        np.maximum(out, offset, out=out)
    return out


def simulate_schedule(
    task_ids: Sequence[str],
    durations: np.ndarray,
    dependencies: Sequence[tuple[str, str]],
    *,
    start_offsets: np.ndarray | None = None,
    workers: int | None = None,
    overwrite: bool = False,
) -> ScheduleSample:
    """Finish day of every task in every trial, and the critical path of each trial.

    ``durations`` is (trials, n) working days, column j for ``task_ids[j]``; a Fortran-ordered array
    (what ``sample_durations`` returns) avoids one transposing copy. ``dependencies`` are
    ``(task, depends_on)`` pairs: ``task`` starts after ``depends_on`` finishes. ``start_offsets`` (n,)
    are days from now before which a task cannot start (0 for work already in progress); task-major (n, trials)
    gives each trial its own (the flow model's waits; unlimited parallelism only). Nothing starts before day 0.
    ``overwrite=True`` lets a caller hand over a task-major scratch array (``durations.T`` C-contiguous) that
    becomes the finish times instead of being copied.

    Capacity. ``workers=None`` is unlimited parallelism: finish = max(offset, predecessors' finish) +
    duration, the critical-path method. With ``workers=k`` the schedule is a list schedule with a fixed
    dispatch order, an approximation of a team that follows a plan: the order is the start order of a
    greedy schedule of the *mean* durations (a free worker takes the ready task with the longest mean
    path to the end). Each trial replays that order with its own durations: a task goes to the worker
    that became free latest but no later than the task is ready (best fit; if none is free by then,
    the earliest-free worker) and starts when both are ready. A worker never fills an idle gap with a
    task that comes later in the order, and the order does not adapt to a trial's durations, so the
    result is a slightly pessimistic upper bound of an ideal per-trial scheduler. Per-trial worker
    free times are a (k, trials) array, so each task is a few numpy operations over all trials.

    Critical path. A backward pass in reverse dispatch order: the task(s) whose finish equals the
    project finish are critical; a predecessor of a critical task is critical when its finish equals
    that task's start, i.e. it was the one holding it up. With workers, the task that previously
    held the worker is treated the same way (a resource link), so a chain of waits for a worker counts
    as critical too. Start times are recomputed with the same ``max`` operations as the forward pass,
    so the equality tests are exact, not within a tolerance.
    """
    n = len(task_ids)
    durations = np.asarray(durations)
    if durations.ndim != 2 or durations.shape[1] != n:
        raise DataError(
            f"durations must have shape (trials, {n}), got {durations.shape}", "one column per task, in task_ids order"
        )
    trials = durations.shape[0]
    if trials < 1:
        raise DataError("durations have no trials", "simulate at least one trial")
    if n and not (durations.min() >= 0 and durations.max() < np.inf):  # NaN fails both comparisons
        raise DataError("durations must be finite and >= 0", "check the estimates and the residual ratios")
    if start_offsets is None:
        offsets = np.zeros(n)
    else:
        offsets = np.asarray(start_offsets)
        if offsets.dtype not in (np.float32, np.float64):  # per-trial waits may come in single precision
            offsets = offsets.astype(float)
        if offsets.shape not in ((n,), (n, trials)) or not (np.isfinite(offsets).all() and (offsets >= 0).all()):
            raise DataError(
                f"start_offsets must be {n} (or {n} x {trials}) finite days >= 0", "use 0 for tasks that can start now"
            )
        if offsets.ndim == 2 and workers is not None:
            raise DataError("per-trial start offsets need unlimited parallelism", "pass workers=None")
    if workers is not None and workers < 1:
        raise DataError(f"workers must be at least 1, got {workers}", "use None for unlimited parallelism")
    preds, topo = _graph(task_ids, dependencies)
    if workers is not None and workers >= n:
        workers = None  # a worker per task: capacity cannot bind, skip the bookkeeping

    # Task-major copy of the durations, turned into finish times in place: row j is contiguous. Single-precision
    # draws (a big flow forecast's) stay single without capacity (the list schedule's bit tricks need doubles).
    precision = np.float32 if durations.dtype == np.float32 and workers is None else np.float64
    if overwrite and durations.dtype == precision and durations.T.flags.c_contiguous:
        # The caller's own task-major scratch array: reuse it (a fresh 100 MB array costs more than the pass).
        finish_t = durations.T
    else:
        finish_t = np.array(durations.T, dtype=precision, order="C")
    slot_prev: np.ndarray | None = None
    if workers is None:
        order = topo
        for j in order:
            ready = _ready(finish_t, preds[j], offsets[j])
            if ready is not None:
                finish_t[j] += ready
    else:
        order = _dispatch_order(preds, topo, finish_t.mean(axis=1), offsets, workers)
        slot_prev = _list_schedule(finish_t, preds, order, offsets, workers)

    if n:
        project_finish = finish_t.max(axis=0)
        seed = finish_t == project_finish
    else:
        project_finish = np.zeros(trials)
        seed = np.zeros((0, trials), dtype=bool)
    critical_t = _backward(finish_t, preds, order, offsets, slot_prev, workers, seed)
    return ScheduleSample(
        task_ids=tuple(task_ids),
        finish=finish_t.T,
        project_finish=project_finish,
        critical=critical_t.T,
        workers=workers,
        _preds=preds,
        _order=order,
        _offsets=offsets,
        _slot_prev=slot_prev,
    )


def _slot_bits(workers: int) -> int:
    return max(1, (workers - 1).bit_length())


def _truncate(times: np.ndarray, bits: int) -> np.ndarray:
    """``times`` with the low ``bits`` mantissa bits cleared: the free time a worker's key stores."""
    return (times.view(np.int64) & ~np.int64((1 << bits) - 1)).view(np.float64)


def _list_schedule(
    finish_t: np.ndarray, preds: list[list[int]], order: list[int], offsets: np.ndarray, workers: int
) -> np.ndarray:
    """Forward pass with ``workers`` slots (durations in ``finish_t`` become finish times in place).

    Each worker's state per trial is one int64 key: the bit pattern of its free time (for floats >= 0
    that pattern orders like the value) with the worker's number in the low mantissa bits. One
    min/max reduction over workers then yields both a time and its worker; ``argmin`` over a short
    axis is ~10x slower. The cost is that a worker is free at its last task's finish rounded down by
    a relative 2**-(52 - bits) (4e-15 for 8 workers) per hand-over; ``_backward`` applies the same
    rounding, so its equality tests stay exact.
    Returns, per task and trial, the task that held the worker before it (-1: the worker was fresh).
    """
    n, trials = finish_t.shape
    bits = _slot_bits(workers)
    low = np.int64((1 << bits) - 1)
    idx_dtype = np.int16 if n < np.iinfo(np.int16).max else np.int32
    keys = np.repeat(np.arange(workers, dtype=np.int64)[:, None], trials, axis=1)  # all free at 0.0
    owner = np.full((workers, trials), -1, dtype=idx_dtype)
    slot_prev = np.empty((n, trials), dtype=idx_dtype)
    keys_flat, owner_flat = keys.reshape(-1), owner.reshape(-1)
    col = np.arange(trials)
    zero = np.zeros(trials)
    for j in order:
        ready = _ready(finish_t, preds[j], offsets[j])
        if ready is None:
            ready = zero
        # Best fit: the worker free latest but by `ready`; if none is, the earliest-free one. When some
        # worker fits, the earliest-free one fits too and the fitting maximum wins; when none fits the
        # masked maximum is 0 and the minimum wins, so one np.maximum picks the right key.
        fits = keys <= (ready.view(np.int64) | low)
        chosen = np.maximum((keys * fits).max(axis=0), keys.min(axis=0))
        worker = chosen & low
        free = (chosen & ~low).view(np.float64)
        row = finish_t[j]
        row += np.maximum(ready, free)
        flat = worker * trials + col
        keys_flat[flat] = (row.view(np.int64) & ~low) | worker
        slot_prev[j] = owner_flat[flat]
        owner_flat[flat] = j
    return slot_prev


def _backward(
    finish_t: np.ndarray,
    preds: list[list[int]],
    order: list[int],
    offsets: np.ndarray,
    slot_prev: np.ndarray | None,
    workers: int | None,
    seed: np.ndarray,
) -> np.ndarray:
    """Critical flags (n, trials), grown in place from ``seed`` back through whatever held each critical task up."""
    critical = seed
    trials = finish_t.shape[1]
    col = np.arange(trials)
    finish_flat, critical_flat = finish_t.reshape(-1), critical.reshape(-1)
    bits = _slot_bits(workers) if workers is not None else 0
    for j in reversed(order):
        c = critical[j]
        if not c.any():
            continue
        start = _ready(finish_t, preds[j], offsets[j])
        if slot_prev is not None:
            prev = slot_prev[j]
            has_prev = prev >= 0
            # The same (rounded) free time the forward pass used; 0.0 for a fresh worker.
            free = _truncate(finish_flat[np.maximum(prev, 0) * trials + col], bits) * has_prev
            start = free if start is None else np.maximum(start, free)
            held = c & has_prev & (free == start)
            if held.any():
                critical_flat[prev[held].astype(np.intp) * trials + col[held]] = True
        if start is None:
            continue
        for p in preds[j]:
            critical[p] |= c & (finish_t[p] == start)
    return critical


def group_finish(sample: ScheduleSample, tasks: Sequence[str]) -> np.ndarray:
    """Per trial, when the last of ``tasks`` finishes (a milestone's or a project's finish)."""
    cols = sample.positions(tasks)
    if not cols:
        return np.zeros(sample.trials)
    if len(set(cols)) == len(sample.task_ids):
        return sample.project_finish.copy()  # every task: no (tasks x trials) copy
    return sample.finish.T[cols].max(axis=0)


def critical_for(sample: ScheduleSample, tasks: Sequence[str]) -> np.ndarray:
    """(trials, n) critical flags with respect to the finish of ``tasks`` (e.g. a milestone) instead of the project."""
    cols = sample.positions(tasks)
    finish_t = sample.finish.T
    seed = np.zeros(finish_t.shape, dtype=bool)
    if cols:
        seed[cols] = finish_t[cols] == finish_t[cols].max(axis=0)
    return _backward(finish_t, sample._preds, sample._order, sample._offsets, sample._slot_prev, sample.workers, seed).T


def criticality_index(sample: ScheduleSample, *, within: Sequence[str] | None = None) -> dict[str, float]:
    """Share of trials in which each task was on the critical path (of ``within``'s finish if given)."""
    everything = within is None or len(set(within)) == len(sample.task_ids)
    critical = sample.critical if everything else critical_for(sample, within)  # type: ignore[arg-type]
    share = critical.T.mean(axis=1)  # task-major: contiguous rows
    return dict(zip(sample.task_ids, share.tolist(), strict=True))


# ------------------------------------------------------------------------------------- distributions


def _sorted_finite(finish_days: np.ndarray) -> np.ndarray:
    x = np.asarray(finish_days, dtype=float).ravel()
    if x.size == 0 or not np.isfinite(x).all():
        raise DataError("finish days must be a non-empty array of finite numbers", "simulate at least one trial")
    return np.sort(x)


def percentiles(finish_days: np.ndarray, qs: Sequence[int] = DEFAULT_QUANTILES) -> dict[int, float]:
    """Empirical percentiles: for q, the smallest trial value with at least q % of trials at or below it.

    This is the inverted empirical CDF (no interpolation), the same distribution ``probability_by``
    counts on, so ``probability_by(x, percentiles(x)[q]) >= q / 100`` exactly, not just approximately.
    """
    x = _sorted_finite(finish_days)
    out: dict[int, float] = {}
    for q in qs:
        if not 0 < q <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {q}")
        # Exact rational arithmetic: 0.85 * 20 in floats could round below 17 and pick one trial too early.
        k = max(1, math.ceil(Fraction(q) * len(x) / 100))
        out[q] = float(x[k - 1])
    return out


def probability_by(finish_days: np.ndarray, target_day: float) -> float:
    """Share of trials finished on or before ``target_day`` (0.0 when every trial misses it)."""
    x = _sorted_finite(finish_days)
    return float(np.searchsorted(x, target_day, side="right") / len(x))


# ------------------------------------------------------------------------------------------ calendar


def _holidays(holidays: AbstractSet[date]) -> list[np.datetime64]:
    return [np.datetime64(d, "D") for d in sorted(holidays)]


def to_dates(days: float, start: date, *, workdays: bool = True, holidays: AbstractSet[date] = frozenset()) -> date:
    """The date on which ``days`` of work starting at the beginning of ``start`` ends.

    0 < days <= 1 ends on the first working day on or after ``start``, (1, 2] on the second, and so on;
    days <= 0 is ``start`` itself. Working days are Mon-Fri minus ``holidays``; with ``workdays=False``
    every calendar day counts (holidays are ignored: throughput histories already contain them as zero
    days).
    """
    if not math.isfinite(days) or days > 100 * 366:
        raise ValueError(f"days must be finite and within a century, got {days}")
    # No rounding tolerance: to_days must be its exact inverse, or a P85 date could hold < 85 % of trials.
    k = math.ceil(days)
    if k <= 0:
        return start
    if not workdays:
        return start + timedelta(days=k - 1)
    day = np.busday_offset(
        np.datetime64(start, "D"), k - 1, roll="forward", weekmask=_WEEKMASK, holidays=_holidays(holidays)
    )
    return day.item()


def to_days(day: date, start: date, *, workdays: bool = True, holidays: AbstractSet[date] = frozenset()) -> int:
    """(Working) days from the start of ``start`` through the end of ``day``.

    The inverse of ``to_dates`` for targets: ``to_dates(d) <= day`` exactly when ``d <= to_days(day)``.
    """
    if day < start:
        return 0
    if not workdays:
        return (day - start).days + 1
    return int(
        np.busday_count(
            np.datetime64(start, "D"),
            np.datetime64(day + timedelta(days=1), "D"),
            weekmask=_WEEKMASK,
            holidays=_holidays(holidays),
        )
    )


# ------------------------------------------------------------------------------------------- results


def _target_note(
    x: np.ndarray,
    target: date,
    p: float,
    start: date,
    workdays: bool,
    holidays: AbstractSet[date],
    horizon_days: int = MAX_HORIZON_DAYS,
) -> str:
    on = target.isoformat()
    if p == 0.0:
        earliest = _within(float(x.min()), start, horizon_days, {"workdays": workdays, "holidays": holidays})
        when = f"on {earliest.isoformat()}" if earliest else f"more than {horizon_days // 365} years out"
        return f"no trial finished by the target date {on}; the earliest trial finished {when}"
    if p == 1.0:
        return f"every trial finished by the target date {on}"
    return f"{p:.0%} of trials finished by the target date {on}"


def _horizon_end(start: date, horizon_days: int) -> date:
    return start + timedelta(days=horizon_days)


def _within(days: float, start: date, horizon_days: int, cal: dict) -> date | None:
    """The date of ``days`` if it is no later than the horizon, else None (no date shown)."""
    # Cheap guard before any calendar arithmetic: a working day is at least one calendar day.
    if days > horizon_days:
        return None
    when = to_dates(days, start, **cal)
    return when if when <= _horizon_end(start, horizon_days) else None


def build_forecast(
    finish_days: np.ndarray,
    *,
    method: Method,
    start: date,
    target_date: date | None = None,
    criticality: dict[str, float] | None = None,
    workdays: bool = True,
    holidays: AbstractSet[date] = frozenset(),
    reason: str = "",
    horizon_days: int = MAX_HORIZON_DAYS,
    **extra: object,
) -> Forecast:
    """Summarise per-trial finish days (a project's, a milestone's) as P50/P85/P95, dates and target odds.

    Day offsets from ``simulate_schedule`` are working days (``workdays=True``); pass ``workdays=False``
    for a throughput forecast made from calendar-day counts. A percentile later than ``horizon_days``
    calendar days after ``start`` gets no date (see the module docstring). ``extra`` fills the other
    ``Forecast`` fields (model, model_reason, dependence, throughput).
    """
    x = _sorted_finite(finish_days)
    qs = percentiles(x, DEFAULT_QUANTILES)
    cal = {"workdays": workdays, "holidays": holidays}
    probability, note = None, ""
    if target_date is not None:
        probability = probability_by(x, to_days(target_date, start, **cal))
        note = _target_note(x, target_date, probability, start, workdays, holidays, horizon_days)
    dates = {q: _within(qs[q], start, horizon_days, cal) for q in DEFAULT_QUANTILES}
    beyond = [q for q in DEFAULT_QUANTILES if dates[q] is None]
    horizon_note = ""
    if beyond:
        shown = ", ".join(f"P{q}" for q in beyond)
        horizon_note = (
            f"{shown} fall{'s' if len(beyond) == 1 else ''} more than {horizon_days // 365} years out "
            f"(after {_horizon_end(start, horizon_days).isoformat()}): the history cannot support a date that far, "
            "so none is shown. Read it as 'not within the horizon' — look at the longest-running open items and "
            "the model's reason"
        )
    top = sorted((criticality or {}).items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_CRITICAL]
    return Forecast(
        method=method,
        trials=len(x),
        start=start,
        workdays=workdays,
        # Past the horizon the number of days is as meaningless as a date would be.
        p50_days=qs[50] if dates[50] is not None else None,
        p85_days=qs[85] if dates[85] is not None else None,
        p95_days=qs[95] if dates[95] is not None else None,
        p50_date=dates[50],
        p85_date=dates[85],
        p95_date=dates[95],
        target_date=target_date,
        probability_of_target=probability,
        target_note=note,
        criticality=[CriticalTask(task=t, index=v) for t, v in top if v > 0],
        reason=reason,
        beyond_horizon=beyond,
        horizon_note=horizon_note,
        **extra,  # type: ignore[arg-type]
    )


def unavailable_forecast(method: Method, start: date, reason: str, *, target_date: date | None = None) -> Forecast:
    """A forecast that says why there is none (e.g. too little history) instead of showing made-up numbers."""
    return Forecast(method=method, model="none", available=False, start=start, target_date=target_date, reason=reason)
