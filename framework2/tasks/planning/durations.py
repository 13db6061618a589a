"""PPMS duration model: how many working days will a task take from start to done, as a distribution?

Trained on finished tasks (and on the ones still running, as censored); forecasting draws from it. Everything
here is a plain function over ``TaskRecord`` lists the caller loads from its store.

Durations
---------
A finished task's duration is the **working time between ``started_at`` and ``done_at``, in days**: the
elapsed time with Saturdays and Sundays (UTC) left out, so a task started Friday 15:00 and done Monday 10:00
took 9 h + 10 h = 0.79 working days. This is elapsed time, not effort: it already holds the waiting, the
reviews and the other work people juggle, which is what a date depends on. Public holidays and time zones
other than UTC are ignored. Durations are floored at ``MIN_DURATION_DAYS`` = 0.25 day, which keeps
log(duration) finite for tasks closed minutes after they started. Naive times are read as UTC.

Usable history: tasks with status ``done`` and both times set. Tasks that finished before they started, or
whose estimate is negative or not a number, are **excluded with a reason** (``DurationModel.excluded``)
rather than raising: one bad row from a connector should not stop every forecast. (Tasks passed to
``sample`` with an invalid estimate do raise ``DataError`` naming them: that is a question about those tasks.)

Model
-----
With at least ``min_items`` usable tasks (default 30), log(working days) = centre(task) + residual:

- **centre**: ridge regression (StandardScaler + RidgeCV, alpha by efficient leave-one-out) on log(estimate)
  (floored at 0.25 day; unestimated tasks get the median and an ``unestimated`` indicator), type, the 10 most
  frequent labels, assignees with at least 5 finished tasks, and log(1 + title words). A shrunk linear model
  of log time: effects on durations are multiplicative, a few hundred tasks do not support more, and it
  extrapolates along log(estimate). Fitted on finished tasks, each weighted by recency (below).
- **residual**: the **out-of-fold** residuals (K-fold, K = min(5, n // 5); in-sample ones understate the
  spread) of the finished tasks, plus the tasks still running as *censored* residuals (log of the time they
  have run so far minus their centre), in a recency-weighted Kaplan-Meier distribution with a Pareto tail
  fitted above its top tenth and capped at twice the longest residual seen (``survival.CensoredDistribution``).
  One distribution per group where a group has ``MIN_GROUP_RESIDUALS`` = 20 finished tasks: estimated tasks
  by type (bugs are less predictable than chores), else all estimated tasks, and unestimated tasks.

Why this and not the earlier bootstrap: on a real company's history, bootstrapping log residuals without a
bound multiplied some draws by ~850x, and imputing running tasks from a normal tail made it 4x worse; P85
dates landed centuries out. The empirical distribution never draws beyond twice what the data show, and a
running task counts as "at least this long", nothing more.

**Recency.** Every task is weighted by 0.5 ** (age / 91 days) (``survival.HALF_LIFE_DAYS``), age counted
from its start: teams change speed, and last quarter's team is the one that will do the work.

**Running tasks.** ``sample_remaining`` draws a running task's duration *given* that it has lasted as long as
it has (the survival distribution above its elapsed time) and returns what is left. A task running longer
than anything in the history keeps a Pareto tail from where it is: its remaining time is never zero and
grows with how long it has run.

**Checking.** ``describe()`` reports the out-of-fold median absolute error in working days of the model's
median against the naive "duration = estimate" (unestimated tasks at the training folds' median duration).

Fallback
--------
With fewer than ``min_items`` usable tasks (of the project, and of ``organisation`` when that pool is given)
there is nothing trustworthy to learn, and the model says so. It then draws

- for estimated tasks: estimate x a log-normal multiplier with P10 x0.7 and P90 x2.0 (median x1.18, mean
  about x1.29): between McConnell's cone of uncertainty at "product definition" (x0.5-x2) and "requirements
  complete" (x0.67-x1.5), skewed towards overruns as single-task estimates are; its mean overrun of ~30 %
  matches the 30-40 % that Molokken & Jorgensen's review of estimation surveys (2003) reports;
- for unestimated tasks: the median duration of the usable history when it holds at least 5 tasks, else
  3 days, x a log-normal multiplier with P10 x1/3 and P90 x3.

A running task past its log-normal's bulk (3 standard deviations) gets a Pareto tail of index
``FALLBACK_TAIL_INDEX`` = 3 from its elapsed time: its median remaining is about a quarter of what it has
run, never "done today".

Pools
-----
The project's own history is used when it is large enough; otherwise, when ``organisation`` holds at least
``min_items`` usable tasks, the organisation's (the project's included), and ``pool`` and the reason say so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field
from scipy.special import ndtr, ndtri
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from framework2.errors import DataError
from framework2.tasks.planning.records import TaskRecord
from framework2.tasks.planning.survival import CAP_FACTOR, HALF_LIFE_DAYS, CensoredDistribution, recency_weights

MIN_DURATION_DAYS = 0.25
TOP_LABELS = 10
MIN_LABEL_TASKS = 3
MIN_TYPE_TASKS = 3
MIN_ASSIGNEE_TASKS = 5
MIN_GROUP_RESIDUALS = 20
MAX_FOLDS = 5
# min_items below this leaves too few tasks per fold to cross-validate anything.
MIN_TRAINABLE = 10
# The regression must beat one typical duration by this share of its error, out of fold, to be used.
FEATURE_GAIN = 0.03
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-2, 3, 11))
# Fallback multipliers on the estimate (P10, P90) and on the unestimated default (see module docstring).
FALLBACK_BAND = (0.7, 2.0)
UNESTIMATED_BAND = (1 / 3, 3.0)
DEFAULT_UNESTIMATED_DAYS = 3.0
MIN_FOR_HISTORY_MEDIAN = 5
FALLBACK_TAIL_INDEX = 3.0
_FALLBACK_TAIL_Z = 3.0
_Z90 = 1.2815515655446004  # 90th percentile of the standard normal
_DAY = timedelta(days=1)
_MAX_EXAMPLES = 3


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC; naive times are taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def working_days_between(started: datetime, done: datetime) -> float:
    """Elapsed days from ``started`` to ``done`` with Saturdays and Sundays (UTC) left out; 0 if not after."""
    start, end = _utc(started), _utc(done)
    if end <= start:
        return 0.0
    if start.date() == end.date():
        return (end - start) / _DAY if start.weekday() < 5 else 0.0
    first = (_midnight(start.date()) + _DAY - start) / _DAY if start.weekday() < 5 else 0.0
    last = (end - _midnight(end.date())) / _DAY if end.weekday() < 5 else 0.0
    middle = int(np.busday_count(start.date() + _DAY, end.date()))
    return first + middle + last


def task_duration_days(task: TaskRecord) -> float:
    """A finished task's duration: working days from start to done, at least ``MIN_DURATION_DAYS``."""
    if task.started_at is None or task.done_at is None:
        raise DataError(
            f"task {task.key} has no {'start' if task.started_at is None else 'finish'} time",
            "only tasks with both started_at and done_at have a duration",
        )
    return max(MIN_DURATION_DAYS, working_days_between(task.started_at, task.done_at))


def _add_working_days(start: datetime, days: float) -> datetime:
    """The moment ``days`` working days (weekends skipped) after ``start``."""
    moment, remaining = _utc(start), days
    while True:
        next_midnight = _midnight(moment.date()) + _DAY
        if moment.weekday() >= 5:
            moment = next_midnight
            continue
        today = (next_midnight - moment) / _DAY
        if remaining <= today:
            return moment + remaining * _DAY
        remaining -= today
        moment = next_midnight


def _age_days(moment: datetime, now: datetime) -> float:
    return max(0.0, (_utc(now) - _utc(moment)) / _DAY)


def _estimate_problem(task: TaskRecord) -> str | None:
    estimate = task.estimate_days
    if estimate is not None and not (np.isfinite(estimate) and estimate >= 0):
        return f"estimate_days is {estimate} (must be a number >= 0)"
    return None


class ExcludedTask(BaseModel):
    """A finished task left out of the training history, and why."""

    key: str
    reason: str


class DurationForecast(BaseModel):
    """One task's duration distribution in working days."""

    task: str = Field(..., description="Task key.")
    p10: float = Field(..., ge=0, description="10th percentile, working days.")
    p50: float = Field(..., ge=0, description="Median, working days.")
    p90: float = Field(..., ge=0, description="90th percentile, working days.")
    basis: Literal["model", "estimate band", "history median", "default"] = Field(
        ..., description="Learned model, estimate x fallback band, or the unestimated fallback's centre."
    )
    reason: str = Field(..., description="How the distribution was obtained, in words.")


@dataclass(frozen=True)
class _History:
    """Usable finished tasks and their durations, with what was left out."""

    tasks: list[TaskRecord]
    durations: np.ndarray
    excluded: list[ExcludedTask]
    skipped: int


def _usable(done: Iterable[TaskRecord]) -> _History:
    tasks: list[TaskRecord] = []
    durations: list[float] = []
    excluded: list[ExcludedTask] = []
    skipped = 0
    for task in done:
        if task.status != "done" or task.started_at is None or task.done_at is None:
            skipped += 1
            continue
        started, finished = _utc(task.started_at), _utc(task.done_at)
        if finished < started:
            why = f"finished ({finished:%Y-%m-%d %H:%M}) before it started ({started:%Y-%m-%d %H:%M})"
            excluded.append(ExcludedTask(key=task.key, reason=why))
            continue
        problem = _estimate_problem(task)
        if problem:
            excluded.append(ExcludedTask(key=task.key, reason=problem))
            continue
        tasks.append(task)
        durations.append(task_duration_days(task))
    return _History(tasks, np.asarray(durations, dtype=float), excluded, skipped)


def _check_targets(tasks: Sequence[TaskRecord]) -> None:
    bad = [f"{t.key} ({p})" for t in tasks if (p := _estimate_problem(t))]
    if bad:
        raise DataError(
            f"{len(bad)} task(s) have an invalid estimate: {'; '.join(bad[:_MAX_EXAMPLES])}",
            "fix estimate_days at the source, or set it to None for unestimated tasks",
        )


def _labels(task: TaskRecord) -> set[str]:
    return {label.strip().lower() for label in task.labels if label.strip()}


def _frequent(counts: dict[str, int], minimum: int, top: int | None = None) -> tuple[str, ...]:
    """Names with at least ``minimum`` occurrences, most frequent first (ties by name), at most ``top``."""
    ranked = sorted((name for name, c in counts.items() if c >= minimum), key=lambda name: (-counts[name], name))
    return tuple(ranked[:top] if top is not None else ranked)


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


@dataclass(frozen=True)
class _Vocabulary:
    """The categories and fill value learned from one training set; turns tasks into a design matrix."""

    types: tuple[str, ...]
    labels: tuple[str, ...]
    assignees: tuple[str, ...]
    log_estimate_fill: float

    @classmethod
    def learn(cls, tasks: Sequence[TaskRecord]) -> _Vocabulary:
        estimates = [np.log(max(t.estimate_days, MIN_DURATION_DAYS)) for t in tasks if t.estimate_days is not None]
        return cls(
            types=_frequent(_count(t.type.lower() for t in tasks), MIN_TYPE_TASKS),
            labels=_frequent(_count(label for t in tasks for label in _labels(t)), MIN_LABEL_TASKS, TOP_LABELS),
            assignees=_frequent(_count(t.assignee for t in tasks if t.assignee), MIN_ASSIGNEE_TASKS),
            log_estimate_fill=float(np.median(estimates)) if estimates else 0.0,
        )

    def names(self) -> list[str]:
        return [
            "log_estimate",
            "unestimated",
            *(f"type:{t}" for t in (*self.types, "other")),
            *(f"label:{label}" for label in (*self.labels, "other")),
            *(f"assignee:{a}" for a in (*self.assignees, "other")),
            "log_title_words",
        ]

    def design(self, tasks: Sequence[TaskRecord]) -> np.ndarray:
        types = {t: i for i, t in enumerate(self.types)}
        labels = {label: i for i, label in enumerate(self.labels)}
        people = {a: i for i, a in enumerate(self.assignees)}
        n_types, n_labels, n_people = len(types) + 1, len(labels) + 1, len(people) + 1
        x = np.zeros((len(tasks), 3 + n_types + n_labels + n_people))
        for row, task in enumerate(tasks):
            if task.estimate_days is None:
                x[row, 0:2] = self.log_estimate_fill, 1.0
            else:
                x[row, 0] = np.log(max(task.estimate_days, MIN_DURATION_DAYS))
            column = 2
            x[row, column + types.get(task.type.lower(), n_types - 1)] = 1.0
            column += n_types
            for label in _labels(task):
                x[row, column + labels.get(label, n_labels - 1)] = 1.0
            column += n_labels
            x[row, column + people.get(task.assignee or "", n_people - 1)] = 1.0
            x[row, -1] = np.log1p(len(task.title.split()))
        return x


def _fit_pipeline(
    tasks: Sequence[TaskRecord], durations: np.ndarray, weights: np.ndarray | None = None
) -> tuple[_Vocabulary, Pipeline]:
    vocabulary = _Vocabulary.learn(tasks)
    pipeline = Pipeline([("scale", StandardScaler()), ("ridge", RidgeCV(alphas=RIDGE_ALPHAS))])
    pipeline.fit(vocabulary.design(tasks), np.log(durations), ridge__sample_weight=weights)
    return vocabulary, pipeline


def _residual_groups(task: TaskRecord) -> tuple[str, ...]:
    """Residual groups to draw from, most specific first (the first with enough residuals is used)."""
    if task.estimate_days is None:
        return ("unestimated", "all")
    return (f"type:{task.type.lower()}", "estimated", "all")


def _pick_group(task: TaskRecord, groups: dict[str, CensoredDistribution]) -> str:
    return next(g for g in _residual_groups(task) if g in groups)


def _log_band(p10: float, p90: float) -> tuple[float, float]:
    """(mu, sigma) of the log-normal multiplier with these 10th and 90th percentiles."""
    low, high = np.log(p10), np.log(p90)
    return float((low + high) / 2), float((high - low) / (2 * _Z90))


def _folds(n: int) -> int:
    return max(2, min(MAX_FOLDS, n // 5))


class _ConstantCentre:
    """The centre when the task's features do not predict its duration out of fold: one weighted mean."""

    def __init__(self, log_durations: np.ndarray, weights: np.ndarray) -> None:
        self.value = float(np.average(log_durations, weights=weights))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.full(len(x), self.value)


@dataclass(frozen=True)
class _CrossCheck:
    residuals: np.ndarray  # out-of-fold residuals of log duration (of the centre chosen)
    model_mae: float  # working days, model median vs actual
    baseline_mae: float  # working days, estimate (or fold median) vs actual
    constant_mae: float  # working days, the fold's median duration for every task
    constant_residuals: np.ndarray  # out-of-fold residuals of the constant centre

    @property
    def features_help(self) -> bool:
        """Whether the regression beats one typical duration for every task by at least ``FEATURE_GAIN``."""
        return self.model_mae < (1.0 - FEATURE_GAIN) * self.constant_mae


def _cross_check(
    tasks: Sequence[TaskRecord], durations: np.ndarray, weights: np.ndarray, random_state: int
) -> _CrossCheck:
    """Out-of-fold residuals of every task, and the model's and the naive baseline's errors in days."""
    log_durations = np.log(durations)
    oof_log = np.empty(len(tasks))
    oof_constant = np.empty(len(tasks))
    oof_median = np.empty(len(tasks))
    constant = np.empty(len(tasks))
    baseline = np.empty(len(tasks))
    folds = KFold(n_splits=_folds(len(tasks)), shuffle=True, random_state=random_state)
    for train, test in folds.split(np.arange(len(tasks))):
        train_tasks = [tasks[i] for i in train]
        test_tasks = [tasks[i] for i in test]
        vocabulary, pipeline = _fit_pipeline(train_tasks, durations[train], weights[train])
        shift = float(np.median(log_durations[train] - pipeline.predict(vocabulary.design(train_tasks))))
        oof_log[test] = pipeline.predict(vocabulary.design(test_tasks))
        oof_median[test] = np.maximum(MIN_DURATION_DAYS, np.exp(oof_log[test] + shift))
        fold_median = float(np.median(durations[train]))
        baseline[test] = [fold_median if t.estimate_days is None else t.estimate_days for t in test_tasks]
        constant[test] = fold_median
        oof_constant[test] = _ConstantCentre(log_durations[train], weights[train]).value
    return _CrossCheck(
        residuals=log_durations - oof_log,
        model_mae=float(np.median(np.abs(oof_median - durations))),
        baseline_mae=float(np.median(np.abs(baseline - durations))),
        constant_mae=float(np.median(np.abs(constant - durations))),
        constant_residuals=log_durations - oof_constant,
    )


def _examples(excluded: Sequence[ExcludedTask]) -> str:
    shown = "; ".join(f"{e.key} {e.reason}" for e in excluded[:_MAX_EXAMPLES])
    more = f"; and {len(excluded) - _MAX_EXAMPLES} more" if len(excluded) > _MAX_EXAMPLES else ""
    return f"{shown}{more}"


def _left_out(history: _History) -> str:
    parts = []
    if history.excluded:
        parts.append(f"{len(history.excluded)} excluded as bad data: {_examples(history.excluded)}")
    if history.skipped:
        parts.append(f"{history.skipped} without status done and both start and finish times skipped")
    return f" ({'; '.join(parts)})" if parts else ""


def lognormal_above(mu: np.ndarray, sigma: np.ndarray, floors: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Log values of a normal(mu, sigma) given they exceed ``floors``, by inverse survival (u near 0 = long).

    Beyond ``_FALLBACK_TAIL_Z`` standard deviations the excess over the floor is exponential at rate
    ``FALLBACK_TAIL_INDEX`` (a Pareto tail in days), so a task far past its expected length keeps a remaining
    time that grows with how long it has run instead of collapsing onto its elapsed time.
    """
    mu, sigma = np.asarray(mu, dtype=float), np.asarray(sigma, dtype=float)
    u = np.clip(np.asarray(uniforms, dtype=float), 1e-300, 1.0)
    z0 = np.broadcast_to((np.asarray(floors, dtype=float) - mu) / sigma, u.shape)
    mu, sigma = np.broadcast_to(mu, u.shape), np.broadcast_to(sigma, u.shape)
    out = np.empty(u.shape)
    far = z0 > _FALLBACK_TAIL_Z
    near = ~far
    if near.any():
        level = u[near] * ndtr(-z0[near])
        out[near] = mu[near] - sigma[near] * ndtri(np.maximum(level, 1e-300))
    if far.any():
        out[far] = mu[far] + sigma[far] * z0[far] - np.log(u[far]) / FALLBACK_TAIL_INDEX
    return out


@dataclass(frozen=True)
class DurationModel:
    """Working-day duration distributions for tasks, learned or fallback (see module docstring).

    Use ``sample`` / ``sample_remaining`` for Monte Carlo forecasts, ``forecast`` for per-task percentiles,
    ``describe`` for the reason in words.
    """

    mode: Literal["model", "fallback"]
    pool: Literal["project", "organisation"]
    training_size: int
    project_usable: int
    min_items: int
    excluded: list[ExcludedTask]
    skipped: int
    reason: str
    censored: int = 0
    cv_mae_days: float | None = None
    baseline_mae_days: float | None = None
    band_width_days: float | None = None
    band_ratio: float | None = None
    unestimated_days: float = DEFAULT_UNESTIMATED_DAYS
    unestimated_source: Literal["history median", "default"] = "default"
    vocabulary: _Vocabulary | None = None
    pipeline: Pipeline | None = None
    residuals: dict[str, CensoredDistribution] = field(default_factory=dict)
    # log of the longest duration the history shows (finished or still running): no fresh draw goes past twice it.
    longest_log: float | None = None

    def describe(self) -> str:
        """The model's reason: training size, cross-validated error vs the naive baseline, band width."""
        return self.reason

    def _centres(self, tasks: Sequence[TaskRecord]) -> np.ndarray:
        """Predicted centre of log duration per task (model mode)."""
        assert self.vocabulary is not None and self.pipeline is not None
        return self.pipeline.predict(self.vocabulary.design(tasks))

    def _fallback_log(
        self, task: TaskRecord
    ) -> tuple[float, float, Literal["estimate band", "history median", "default"]]:
        """(mu, sigma, basis) of log duration in fallback mode."""
        if task.estimate_days is not None:
            mu, sigma = _log_band(*FALLBACK_BAND)
            return float(np.log(max(task.estimate_days, MIN_DURATION_DAYS))) + mu, sigma, "estimate band"
        mu, sigma = _log_band(*UNESTIMATED_BAND)
        return float(np.log(self.unestimated_days)) + mu, sigma, self.unestimated_source

    def _draw_log(self, tasks: Sequence[TaskRecord], floors: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
        """(n, trials) log durations given log duration > floor (-inf: unconditional), task-major, in the
        uniforms' precision."""
        out = np.empty(uniforms.shape, dtype=uniforms.dtype if uniforms.dtype == np.float32 else float)
        if self.mode == "model":
            centres = self._centres(tasks)
            groups = [_pick_group(task, self.residuals) for task in tasks]
            for group in sorted(set(groups)):
                rows = np.array([j for j, g in enumerate(groups) if g == group])
                distribution = self.residuals[group]
                draws = distribution.sample_above((floors[rows] - centres[rows])[:, None], uniforms[rows])
                draws += centres[rows, None].astype(out.dtype)
                out[rows] = draws
            if self.longest_log is not None:
                # The residual tail is capped relative to each task's centre; a task with a large centre would
                # still be drawn past anything the team has ever taken. Cap in days too, unless already past.
                cap = self.longest_log + math.log(CAP_FACTOR)
                # A running task may always take CAP_FACTOR times what it has run (never squeezed to nothing).
                limit = np.maximum(cap, floors + math.log(CAP_FACTOR))[:, None]
                np.minimum(out, limit.astype(out.dtype), out=out)
        else:
            mu, sigma = np.array([self._fallback_log(task)[:2] for task in tasks]).T
            out[:] = lognormal_above(mu[:, None], sigma[:, None], floors[:, None], uniforms)
        return out

    def sample(
        self,
        tasks: Sequence[TaskRecord],
        trials: int,
        rng: np.random.Generator | int | None = None,
        *,
        uniforms: np.ndarray | None = None,
    ) -> np.ndarray:
        """Working-day durations, shape ``(trials, len(tasks))``.

        Independent per task and trial unless ``uniforms`` (task-major ``(n, trials)``, survival orientation:
        near 0 = long) say otherwise. ``rng`` is a numpy Generator or a seed; the same seed gives the same draws.
        """
        return self.sample_remaining(tasks, np.zeros(len(tasks)), trials, rng, uniforms=uniforms)

    def sample_remaining(
        self,
        tasks: Sequence[TaskRecord],
        elapsed: np.ndarray,
        trials: int,
        rng: np.random.Generator | int | None = None,
        *,
        uniforms: np.ndarray | None = None,
    ) -> np.ndarray:
        """Working days left, shape ``(trials, len(tasks))``, of tasks that have run ``elapsed`` working days.

        Each task's duration is drawn given that it is longer than what it has run; the result is what is left
        (always > 0 for a running task, growing with ``elapsed`` once that is past what the history knows).
        ``elapsed`` 0 means not started: the whole duration, at least ``MIN_DURATION_DAYS``.
        """
        if trials < 1:
            raise ValueError(f"trials must be at least 1, got {trials}")
        _check_targets(tasks)
        elapsed = np.asarray(elapsed, dtype=float)
        if elapsed.shape != (len(tasks),) or not (np.isfinite(elapsed).all() and (elapsed >= 0).all()):
            raise DataError(f"elapsed must be {len(tasks)} finite working days >= 0", "0 for tasks not started")
        if not tasks:
            return np.empty((trials, 0))
        if uniforms is None:
            uniforms = np.random.default_rng(rng).uniform(size=(len(tasks), trials))
        elif uniforms.shape != (len(tasks), trials):
            raise ValueError(f"uniforms must have shape {(len(tasks), trials)}, got {uniforms.shape}")
        running = elapsed > MIN_DURATION_DAYS
        floors = np.where(running, np.log(np.maximum(elapsed, MIN_DURATION_DAYS)), -np.inf)
        left = np.exp(self._draw_log(tasks, floors, uniforms))
        left -= np.where(running, elapsed, 0.0).astype(left.dtype)[:, None]
        # Not started: at least the floor; running: a draw equal to the floor still leaves a sliver of work.
        np.maximum(left, np.where(running, 1e-3, MIN_DURATION_DAYS).astype(left.dtype)[:, None], out=left)
        return left.T

    def forecast(self, tasks: Sequence[TaskRecord]) -> list[DurationForecast]:
        """P10, median and P90 of each task's duration (exact quantiles of the sampling distribution)."""
        _check_targets(tasks)
        if not tasks:
            return []
        results = []
        if self.mode == "model":
            centres = self._centres(tasks)
            spreads: dict[str, np.ndarray] = {}
            for task, centre in zip(tasks, centres, strict=True):
                group = _pick_group(task, self.residuals)
                spread = self.residuals[group]
                if group not in spreads:
                    spreads[group] = np.array([spread.quantile(p) for p in (0.1, 0.5, 0.9)])
                q = np.maximum(MIN_DURATION_DAYS, np.exp(centre + spreads[group]))
                if self.longest_log is not None:
                    q = np.minimum(q, CAP_FACTOR * np.exp(self.longest_log))
                why = (
                    f"{self.training_size} tasks of the {self.pool}; spread from {spread.events} out-of-fold "
                    f"residuals and {spread.censored} running tasks ({group})"
                )
                results.append(DurationForecast(task=task.key, p10=q[0], p50=q[1], p90=q[2], basis="model", reason=why))
            return results
        low, high = FALLBACK_BAND
        for task in tasks:
            mu, sigma, basis = self._fallback_log(task)
            q = np.maximum(MIN_DURATION_DAYS, np.exp(mu + sigma * np.array([-_Z90, 0.0, _Z90])))
            if basis == "estimate band":
                why = f"too little history: estimate {task.estimate_days:g} d x{low:g}-x{high:g} (P10-P90)"
            else:
                centre = "history median" if basis == "history median" else "default"
                why = (
                    f"too little history and unestimated: {centre} {self.unestimated_days:.2g} d "
                    f"x{UNESTIMATED_BAND[0]:.2g}-x{UNESTIMATED_BAND[1]:g} (P10-P90)"
                )
            results.append(DurationForecast(task=task.key, p10=q[0], p50=q[1], p90=q[2], basis=basis, reason=why))
        return results


def _fallback(project: _History, organisation: _History | None, min_items: int) -> DurationModel:
    history = project
    if organisation is not None and len(organisation.tasks) > len(project.tasks):
        history = organisation
    if len(history.durations) >= MIN_FOR_HISTORY_MEDIAN:
        centre, source = float(np.median(history.durations)), "history median"
        unestimated = f"the history's median duration {centre:.2g} working days"
    else:
        centre, source = DEFAULT_UNESTIMATED_DAYS, "default"
        unestimated = (
            f"{DEFAULT_UNESTIMATED_DAYS:g} working days (fewer than {MIN_FOR_HISTORY_MEDIAN} finished tasks "
            "to take a median from)"
        )
    counts = f"only {len(project.tasks)} tasks with start and finish times{_left_out(project)}"
    if organisation is not None:
        counts += f" and {len(organisation.tasks)} in the organisation{_left_out(organisation)}"
    low, high = FALLBACK_BAND
    reason = (
        f"{counts}; {min_items} are needed to learn durations — using estimates x{low:g}-x{high:g} "
        f"(P10-P90 of a log-normal multiplier, median x{np.sqrt(low * high):.2f}; the range of McConnell's "
        "cone of uncertainty, skewed to overruns as published estimation-error surveys find); unestimated "
        f"tasks: {unestimated} x{UNESTIMATED_BAND[0]:.2g}-x{UNESTIMATED_BAND[1]:g}"
    )
    return DurationModel(
        mode="fallback",
        pool="organisation" if history is organisation else "project",
        training_size=len(history.tasks),
        project_usable=len(project.tasks),
        min_items=min_items,
        excluded=history.excluded,
        skipped=history.skipped,
        reason=reason,
        unestimated_days=centre,
        unestimated_source=source,
    )


def _running(tasks: Iterable[TaskRecord], now: datetime, exclude: set[str]) -> tuple[list[TaskRecord], np.ndarray]:
    """Tasks in progress at ``now`` (valid estimate, started), with the working days they have run so far."""
    running, elapsed = [], []
    for task in tasks:
        if task.key in exclude or task.status != "in_progress" or task.started_at is None:
            continue
        if _estimate_problem(task) or _utc(task.started_at) > _utc(now):
            continue
        running.append(task)
        elapsed.append(max(MIN_DURATION_DAYS, working_days_between(task.started_at, now)))
    return running, np.asarray(elapsed, dtype=float)


def _residual_distributions(
    tasks: Sequence[TaskRecord], residuals: np.ndarray, observed: np.ndarray, weights: np.ndarray
) -> dict[str, CensoredDistribution]:
    members: dict[str, list[int]] = {}
    for i, task in enumerate(tasks):
        for group in _residual_groups(task):
            members.setdefault(group, []).append(i)
    out = {}
    for group, rows in members.items():
        index = np.asarray(rows)
        if group == "all" or observed[index].sum() >= MIN_GROUP_RESIDUALS:
            out[group] = CensoredDistribution.fit(residuals[index], observed[index], weights[index])
    return out


def fit_duration_model(
    done: Sequence[TaskRecord],
    *,
    min_items: int = 30,
    random_state: int = 0,
    organisation: Sequence[TaskRecord] | None = None,
    in_progress: Sequence[TaskRecord] = (),
    now: datetime | None = None,
    half_life_days: float = HALF_LIFE_DAYS,
) -> DurationModel:
    """Learn working-day duration distributions from finished tasks (see module docstring).

    ``done`` is the project's finished tasks; ``organisation`` optionally every project's, used when the
    project has fewer than ``min_items`` usable tasks. With too little history in both, the returned model
    is in fallback mode and its reason says so with the counts. Bad rows are excluded, not raised.
    ``in_progress`` tasks (of the same pool; with ``now``) enter as censored: they took at least as long as
    they have run so far. ``now`` (default: the latest finish in the history) also anchors the recency weights.
    """
    if min_items < MIN_TRAINABLE:
        raise ValueError(f"min_items must be at least {MIN_TRAINABLE} to cross-validate, got {min_items}")
    project = _usable(done)
    pool: Literal["project", "organisation"] = "project"
    history = project
    organisation_history: _History | None = None
    if len(project.tasks) < min_items and organisation is not None:
        # The project's own records win over the organisation's copies of the same keys.
        own = {t.key for t in done}
        organisation_history = _usable([*done, *(t for t in organisation if t.key not in own)])
        if len(organisation_history.tasks) >= min_items:
            history, pool = organisation_history, "organisation"
    if len(history.tasks) < min_items:
        return _fallback(project, organisation_history, min_items)

    tasks, durations = history.tasks, history.durations
    anchor = now if now is not None else max(_utc(t.done_at) for t in tasks if t.done_at is not None)
    running, elapsed = _running(in_progress, now, {t.key for t in tasks}) if now is not None else ([], np.empty(0))
    if pool == "project":
        running_pool = {t.project for t in done}
        keep = [i for i, t in enumerate(running) if t.project in running_pool]
        running, elapsed = [running[i] for i in keep], elapsed[keep]
    weights = recency_weights(np.array([_age_days(t.started_at, anchor) for t in tasks]), half_life_days)
    running_weights = recency_weights(np.array([_age_days(t.started_at, anchor) for t in running]), half_life_days)
    # A few dozen features: BLAS threads only add overhead (and spin-wait on busy workers).
    with threadpool_limits(limits=1):
        vocabulary, pipeline = _fit_pipeline(tasks, durations, weights)
        check = _cross_check(tasks, durations, weights, random_state)
        oof = check.residuals
        if not check.features_help:
            # Features that do not predict out of fold only spread the tasks apart (and the slowest-looking
            # one decides a scope's date): one typical duration for all is the honest centre.
            pipeline, oof = _ConstantCentre(np.log(durations), weights), check.constant_residuals  # type: ignore[assignment]
        running_residuals = np.log(elapsed) - pipeline.predict(vocabulary.design(running)) if running else np.empty(0)
    everyone = [*tasks, *running]
    observed = np.r_[np.ones(len(tasks), dtype=bool), np.zeros(len(running), dtype=bool)]
    residuals = _residual_distributions(
        everyone, np.r_[oof, running_residuals], observed, np.r_[weights, running_weights]
    )
    model = DurationModel(
        mode="model",
        pool=pool,
        training_size=len(tasks),
        project_usable=len(project.tasks),
        min_items=min_items,
        excluded=history.excluded,
        skipped=history.skipped,
        reason="",
        censored=len(running),
        cv_mae_days=check.model_mae,
        baseline_mae_days=check.baseline_mae,
        unestimated_days=float(np.median(durations)),
        unestimated_source="history median",
        vocabulary=vocabulary,
        pipeline=pipeline,
        residuals=residuals,
        longest_log=float(np.log(max(durations.max(), elapsed.max() if len(elapsed) else 0.0))),
    )
    bands = np.array([[f.p10, f.p90] for f in model.forecast(tasks)])
    width, ratio = float(np.median(bands[:, 1] - bands[:, 0])), float(np.median(bands[:, 1] / bands[:, 0]))

    source = f"{len(tasks)} done tasks of the {pool}"
    if running:
        source += f" and {len(running)} still in progress (counted as lasting at least as long as they have run)"
    if pool == "organisation":
        source += f" (the project alone has only {len(project.tasks)}; {min_items} are needed)"
    errors = (
        f"cross-validated median absolute error {check.model_mae:.2f} working days vs {check.baseline_mae:.2f} "
        "for the naive 'duration = estimate' baseline (unestimated tasks at the median duration)"
    )
    if not check.features_help:
        errors = (
            f"the typical duration's median absolute error is {check.constant_mae:.2f} working days (cross-validated)"
        )
    elif check.model_mae >= check.baseline_mae:
        errors = f"the model does NOT beat the naive baseline ({errors}): treat its medians as no better than estimates"
    tail = residuals["all"]
    groups = ", ".join(f"{g} {d.events}+{d.censored}" for g, d in sorted(residuals.items()))
    centre = (
        "ridge regression of log working days on log estimate, type, labels, assignee and title length"
        if check.features_help
        else (
            f"one typical duration for every task (the task's estimate, type, labels and assignee did not predict "
            f"its duration out of fold: {check.model_mae:.2f} vs {check.constant_mae:.2f} working days)"
        )
    )
    reason = (
        f"learned from {source}{_left_out(history)}: {centre}, recency-weighted (half-life {half_life_days:g} days); "
        f"{errors}; "
        f"the P10-P90 band is typically {width:.2f} working days wide (P90 = x{ratio:.2f} P10), from censored "
        f"empirical residuals ({groups}) with a Pareto tail of index {tail.index:.2g} capped at x2 the longest seen"
    )
    return DurationModel(
        **{
            **model.__dict__,
            "reason": reason,
            "band_width_days": width,
            "band_ratio": ratio,
        }
    )
