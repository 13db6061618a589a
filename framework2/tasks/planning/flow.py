"""PPMS flow model: when will *these* open items be done, learned from how the team's work actually flowed.

A tracker's open scope is not a plan that people execute one task after another. Work in progress is
already running side by side; backlog items wait (some for a day, some for a year) while newer, more urgent
work overtakes them; and the scope is done when its *last* item is. So per Monte Carlo trial:

- a task **in progress** finishes when its remaining time is up: its duration drawn from the duration model
  given how long it has already run (``DurationModel.sample_remaining``) — never zero, longer the longer it
  has run past what is usual;
- a task **not started** first waits, drawn from the wait model given how long it has already waited
  (``waits.WaitModel``), then takes a drawn duration; it also cannot start before the tasks it depends on are
  done (``simulate_schedule`` with per-trial start offsets, unlimited parallelism: the team's real
  concurrency is in the learned waits and durations, which are elapsed times);
- the scope cannot be done sooner than its number of items at the team's recent rate
  (``throughput.recent_rate``): a floor, per trial, for scopes larger than the history's queues;
- **items move together.** A slow month slows everything open; batch releases close many items on one day.
  Independent draws make the last of fifty items far too late (the maximum of independent draws sits in
  the tail of each), so the uniforms behind the draws share a Gaussian copula with exchangeable
  correlation ``dependence``. It is chosen from the project's own past (``estimate_dependence``): at past
  moments (every week over the last year: fortnightly moments would only ever see sprint ends), the scope
  open then is forecast from what was known then for
  each correlation on a grid (and each *pace*, a factor on waits and durations that corrects a history
  that runs systematically early or late), and the pair whose P50 and P85 held up best wins (pinball loss
  on log days; a scope not yet done only counts the part of its loss that is known), with a light pull
  towards correlation 0.3 and pace 1. Too few moments of its own: the organisation's are pooled in.

Why this and not the earlier plan-style schedule: durations measured from a tracker are elapsed times that
already include multitasking; queueing them behind "workers = people" counted that time twice and produced
P85 dates years out on real histories, while the throughput shortcut answers "when are any N items done"
and was late for *these* items in 91 % of real cases.

Random numbers are keyed: each task's normals come from a stream seeded by (seed, task key), so a task draws
the same in any scope it is forecast in (what-if comparisons such as a requirement change see the change,
not noise).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from scipy.special import ndtr, ndtri

from framework2.tasks.planning.durations import DurationModel, fit_duration_model, working_days_between
from framework2.tasks.planning.montecarlo import ScheduleSample, group_finish, simulate_schedule
from framework2.tasks.planning.records import DependencyRecord, TaskRecord
from framework2.tasks.planning.snapshots import scope_finish, snapshot_at, snapshot_moments
from framework2.tasks.planning.throughput import ThroughputRate, calendar_to_working, recent_rate, throughput_forecast
from framework2.tasks.planning.waits import WaitModel, fit_wait_model

DEPENDENCE_GRID = (0.0, 0.2, 0.4, 0.6, 0.8)
PRIOR_DEPENDENCE = 0.3
PRIOR_SPREAD = 0.25
PACE_GRID = (0.7, 0.85, 1.0, 1.2, 1.4)
PRIOR_PACE_SPREAD = 0.2  # of log(pace)
GRID = [(rho, pace) for rho in DEPENDENCE_GRID for pace in PACE_GRID]
LOSS_QUANTILES = (0.5, 0.85)
# Weight of the prior against the mean loss per moment (log-days pinball): one unit of squared prior distance
# costs as much as being 2 % late on every moment.
PRIOR_WEIGHT = 0.01
CALIBRATION_EVERY_DAYS = 7
CALIBRATION_WARMUP_DAYS = 42
CALIBRATION_LOOKBACK_DAYS = 365
CALIBRATION_TRIALS = 200
MIN_CALIBRATION_MOMENTS = 4
BLOCK_DRAWS = 250_000


def stable_seed(*parts: object) -> int:
    """A process-independent 63-bit seed from ``parts`` (Python's ``hash`` of a str differs per process)."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") >> 1


def keyed_uniforms(keys: Sequence[str], trials: int, seed: int) -> np.ndarray:
    """(n, trials) uniforms, each task's from its own stream keyed by (seed, key) — the plan model's draws."""
    out = np.empty((len(keys), trials))
    for i, key in enumerate(keys):
        out[i] = np.random.default_rng([seed, stable_seed(key), 2]).random(trials)
    return out


def keyed_normals(keys: Sequence[str], trials: int, seed: int, streams: int = 2) -> np.ndarray:
    """(streams, n, trials) standard normals, each task's from its own stream keyed by (seed, key).

    Single precision, by inverting uniforms through a table (``normal_ppf``): a 2,000-task scope needs 40
    million of them, and the exact generator took a quarter of the forecast's time.
    """
    out = np.empty((streams, len(keys), trials), dtype=np.float32)
    for i, key in enumerate(keys):
        rng = np.random.default_rng([seed, stable_seed(key)])
        out[:, i, :] = rng.random((streams, trials), dtype=np.float32)
    return normal_ppf(out)


def copula_uniforms(normals: np.ndarray, shared: np.ndarray, dependence: float) -> np.ndarray:
    """Uniforms (survival orientation) from independent ``normals`` mixed with one ``shared`` normal per trial."""
    mixed = normals * np.float32(math.sqrt(1.0 - dependence))
    mixed += (np.float32(math.sqrt(dependence)) * shared.astype(np.float32))[None, :]
    return normal_cdf(mixed)


_CDF_LIMIT = 9.0
_CDF_STEPS = 2**17
_CDF_TABLE = ndtr(np.linspace(-_CDF_LIMIT, _CDF_LIMIT, _CDF_STEPS + 1)).astype(np.float32)


_PPF_STEPS = 2**18
# Midpoints of equal-probability bins: the bin's normal value, never an infinite end.
_PPF_TABLE = ndtri((np.arange(_PPF_STEPS) + 0.5) / _PPF_STEPS).astype(np.float32)


def normal_ppf(u: np.ndarray) -> np.ndarray:
    """Standard normal quantiles of uniforms on [0, 1) by table (262,144 equal-probability bins: |z| up to
    4.8, within 1e-3 of exact in the body), in place of ``u``'s values, single precision."""
    index = (u * np.float32(_PPF_STEPS)).astype(np.int32)
    np.minimum(index, _PPF_STEPS - 1, out=index)
    return _PPF_TABLE[index]


def normal_cdf(z: np.ndarray) -> np.ndarray:
    """The standard normal CDF by table (nearest of 131,073 points on [-9, 9]: within 3e-5 of exact), in
    single precision: ``ndtr`` itself took a second for a 2,000-task scope's 40 million draws."""
    index = (np.asarray(z, dtype=np.float32) + np.float32(_CDF_LIMIT)) * np.float32(_CDF_STEPS / (2 * _CDF_LIMIT))
    index += np.float32(0.5)
    np.clip(index, 0, _CDF_STEPS, out=index)
    return _CDF_TABLE[index.astype(np.int32)]


def remaining_scope(
    project: str, tasks: Sequence[TaskRecord], dependencies: Sequence[DependencyRecord]
) -> tuple[list[TaskRecord], list[tuple[str, str]]]:
    """Not-done tasks of ``project`` plus the not-done tasks anywhere they (transitively) wait for,
    and the dependency edges among them (edges to done tasks are satisfied and dropped)."""
    by_key = {t.key: t for t in tasks}
    waits: dict[str, list[str]] = {}
    for dep in dependencies:
        waits.setdefault(dep.task, []).append(dep.depends_on)
    open_keys = [t.key for t in tasks if t.project == project and t.status != "done"]
    seen: dict[str, None] = {}
    stack = list(open_keys)
    while stack:
        key = stack.pop()
        if key in seen or key not in by_key or by_key[key].status == "done":
            continue
        seen[key] = None
        stack.extend(waits.get(key, []))
    scope = [by_key[k] for k in seen]
    edges = [(d.task, d.depends_on) for d in dependencies if d.task in seen and d.depends_on in seen]
    return scope, edges


def simulate_flow(
    scope: Sequence[TaskRecord],
    edges: Sequence[tuple[str, str]],
    durations: DurationModel,
    waits: WaitModel | None,
    *,
    now: datetime,
    trials: int,
    seed: int,
    dependence: float,
    stretch: float = 1.0,
) -> ScheduleSample:
    """Per trial, when each task of ``scope`` finishes (working days from the start of today); see the module
    docstring. ``stretch`` > 1 slows everything (people away)."""
    keys = [t.key for t in scope]
    shared = np.random.default_rng([seed, 0]).standard_normal(trials)
    elapsed = np.array(
        [
            working_days_between(t.started_at, now) if t.status == "in_progress" and t.started_at is not None else 0.0
            for t in scope
        ]
    )
    # Single precision until the schedule: each pass over 20 million float64s costs as much as the draws.
    work = np.empty((len(scope), trials), dtype=np.float32)
    offsets = np.zeros((len(scope), trials), dtype=np.float32)
    # A block of tasks at a time keeps every pass over the draws inside the CPU cache: on a 2,000-task scope
    # that is three times faster than whole-scope arrays (40 million draws each pass).
    step = max(1, BLOCK_DRAWS // trials)
    for lo in range(0, len(scope), step):
        block = slice(lo, min(lo + step, len(scope)))
        uniforms = copula_uniforms(keyed_normals(keys[block], trials, seed), shared, dependence)
        work[block] = durations.sample_remaining(scope[block], elapsed[block], trials, uniforms=uniforms[1]).T
        todo = [i for i in range(block.start, block.stop) if scope[i].status == "todo"]
        if todo and waits is not None:
            rows = [i - lo for i in todo]
            offsets[todo] = waits.sample_remaining([scope[i] for i in todo], now, uniforms[0][rows], dtype=np.float32)
    if stretch != 1.0:
        work *= np.float32(stretch)
        offsets *= np.float32(stretch)
    # Durations are working days from now; the offsets are too (waits are learned in working days).
    return simulate_schedule(keys, work.T, edges, start_offsets=offsets, overwrite=True)


def throughput_days(
    rate: ThroughputRate, items: int, trials: int, seed: int, today: datetime
) -> tuple[np.ndarray, np.ndarray]:
    """(calendar days, working days) to finish ``items`` at ``rate``, per trial."""
    calendar = throughput_forecast(rate.counts, items, trials, np.random.default_rng([seed, 1])).astype(float)
    return calendar, calendar_to_working(calendar, today.date())


def project_rate(project: str, tasks: Sequence[TaskRecord], now: datetime) -> ThroughputRate | str:
    """The throughput window for ``project`` from the tasks known at ``now``."""
    done = [(t.project, t.done_at.date()) for t in tasks if t.status == "done" and t.done_at is not None]
    return recent_rate([d for p, d in done if p == project], done, now.date())


def flow_finish(
    sample: ScheduleSample, own: Sequence[str], floor_working_days: np.ndarray | None
) -> tuple[np.ndarray, float]:
    """Per trial, when the project's own open tasks are all done, floored by the throughput answer; and the
    share of trials the floor decided."""
    finish = group_finish(sample, own)
    if floor_working_days is None:
        return finish, 0.0
    floored = np.maximum(finish, floor_working_days)
    return floored, float(np.mean(floor_working_days > finish))


@dataclass(frozen=True)
class Dependence:
    """How strongly a project's open items move together, the pace correction, and how both were decided."""

    value: float
    moments: int
    reason: str
    pace: float = 1.0


def _loss(draws: np.ndarray, outcome: float, censored: bool) -> float:
    """Pinball loss of the draws' P50 and P85 for ``outcome``, in log(1 + working days).

    Log scale, so a week late on a two-week scope weighs more than on a year-long one. A scope still open
    (``censored``: it takes longer than ``outcome``) can only show a date as too early: the loss counts the
    part of it that is known.
    """
    total = 0.0
    y = math.log1p(outcome)
    for q in LOSS_QUANTILES:
        f = math.log1p(float(np.quantile(draws, q)))
        if censored:
            total += (y - f) * q if f < y else 0.0
        else:
            total += (y - f) * q if y >= f else (f - y) * (1 - q)
    return total


MomentDraws = tuple[list[str], np.ndarray] | None


def moment_draws(
    project: str,
    tasks: Sequence[TaskRecord],
    dependencies: Sequence[DependencyRecord],
    at: datetime,
    *,
    min_history_items: int,
    trials: int = CALIBRATION_TRIALS,
) -> MomentDraws:
    """The project's scope open at ``at`` and its finish per trial for every correlation in the grid, from
    only what was known then; None when the flow model could not run then."""
    known, known_edges = snapshot_at(tasks, dependencies, at)
    own = [t.key for t in known if t.project == project and t.status != "done"]
    if not own:
        return None
    durations, waits = fit_flow_models(project, known, at, min_history_items=min_history_items)
    if durations.mode != "model":
        return None
    scope, edges = remaining_scope(project, known, known_edges)
    rate = project_rate(project, known, at)
    seed = stable_seed("dependence", project, at.isoformat())
    floor = None if isinstance(rate, str) else throughput_days(rate, len(own), trials, seed, at)[1]
    draws = np.empty((len(GRID), trials))
    for rho in DEPENDENCE_GRID:
        sample = simulate_flow(scope, edges, durations, waits, now=at, trials=trials, seed=seed, dependence=rho)
        # With unlimited parallelism a finish is a sum of waits and durations along a path, so a pace scales it
        # exactly: one schedule per correlation instead of one per (correlation, pace).
        finish = group_finish(sample, own).astype(float)
        for pace in PACE_GRID:
            scaled = finish * pace
            draws[GRID.index((rho, pace))] = scaled if floor is None else np.maximum(scaled, floor)
    return own, draws


def _replay(
    project: str,
    tasks: Sequence[TaskRecord],
    dependencies: Sequence[DependencyRecord],
    by_key: dict[str, TaskRecord],
    *,
    now: datetime,
    min_history_items: int,
    cache: dict[tuple[str, datetime], MomentDraws] | None,
) -> tuple[np.ndarray, int]:
    """Summed loss per grid point of how the project's past scopes finished, and how many moments counted."""
    mine = [t for t in tasks if t.project == project]
    moments = snapshot_moments(mine, now, CALIBRATION_EVERY_DAYS, CALIBRATION_WARMUP_DAYS, 7, CALIBRATION_LOOKBACK_DAYS)
    loglik = np.zeros(len(GRID))
    used = 0
    for at in moments:
        key = (project, at)
        if cache is not None and key in cache:
            entry = cache[key]
        else:
            entry = moment_draws(project, tasks, dependencies, at, min_history_items=min_history_items)
            if cache is not None:
                cache[key] = entry
        if entry is None:
            continue
        own, draws = entry
        ended = scope_finish([by_key[k] for k in own if k in by_key])
        censored = ended is None or ended > now
        outcome = working_days_between(at, now if censored else ended)
        loglik += [_loss(draws[g], outcome, censored) for g in range(len(GRID))]
        used += 1
    return loglik, used


def estimate_dependence(
    project: str,
    tasks: Sequence[TaskRecord],
    dependencies: Sequence[DependencyRecord],
    *,
    now: datetime,
    min_history_items: int = 30,
    cache: dict[tuple[str, datetime], MomentDraws] | None = None,
) -> Dependence:
    """Choose the copula correlation and pace under which the project's past scopes held up best.

    With fewer than ``MIN_CALIBRATION_MOMENTS`` past moments of its own, the other projects' moments are
    pooled in (the organisation's way of working), and the reason says so. ``tasks`` are as known at ``now``.
    ``cache`` (keyed by project and moment) lets a backtest reuse the draws of a moment across its later
    cut-offs: they depend only on what was known at that moment.
    """
    by_key = {t.key: t for t in tasks}
    common = {"now": now, "min_history_items": min_history_items, "cache": cache}
    loglik, used = _replay(project, tasks, dependencies, by_key, **common)
    own_moments, source = used, "this project"
    if used < MIN_CALIBRATION_MOMENTS:
        for other in sorted({t.project for t in tasks} - {project}):
            more, count = _replay(other, tasks, dependencies, by_key, **common)
            loglik, used = loglik + more, used + count
        source = f"the organisation ({own_moments} of this project's own)"
    if used < MIN_CALIBRATION_MOMENTS:
        return Dependence(
            PRIOR_DEPENDENCE,
            used,
            f"items move together with correlation {PRIOR_DEPENDENCE:g} (the prior: only {used} past moments could "
            f"be replayed, {MIN_CALIBRATION_MOMENTS} are needed to learn it)",
        )
    rho, pace = np.asarray(GRID).T
    penalty = ((rho - PRIOR_DEPENDENCE) / PRIOR_SPREAD) ** 2 + (np.log(pace) / PRIOR_PACE_SPREAD) ** 2
    best = int(np.argmin(loglik / used + PRIOR_WEIGHT * penalty))
    value, chosen = float(rho[best]), float(pace[best])
    correction = "" if chosen == 1.0 else f", with waits and durations x{chosen:g}"
    return Dependence(
        value,
        used,
        f"items move together with correlation {value:g}{correction}: the values under which the scopes open at "
        f"{used} past moments of {source} held up best (lowest pinball loss at P50 and P85)",
        pace=chosen,
    )


def fit_flow_models(
    project: str, known: Sequence[TaskRecord], now: datetime, *, min_history_items: int
) -> tuple[DurationModel, WaitModel | None]:
    """The duration model (project first, the organisation when the project has too little) and the wait
    model (likewise) from what is known at ``now``."""
    durations = fit_durations_at(project, known, now, min_history_items=min_history_items)
    waits = fit_wait_model([t for t in known if t.project == project], now) or fit_wait_model(known, now)
    return durations, waits


def fit_durations_at(
    project: str, known: Sequence[TaskRecord], now: datetime, *, min_history_items: int
) -> DurationModel:
    """The duration model for ``project`` from what is known at ``now``: its finished tasks (the organisation's
    when it has too few) and every task still running, as censored."""
    done = [t for t in known if t.status == "done"]
    return fit_duration_model(
        [t for t in done if t.project == project],
        organisation=done,
        min_items=min_history_items,
        in_progress=[t for t in known if t.status == "in_progress"],
        now=now,
    )
