"""PPMS duration model: how many working days will a task take, as a distribution rather than a point?

Trained on the project's own finished tasks; forecasting and scheduling draw durations from it. Everything
here is a plain function over ``TaskRecord`` lists the caller loads from its store.

Durations
---------
A finished task's duration is the **working time between ``started_at`` and ``done_at``, in days**: the
elapsed time with Saturdays and Sundays (UTC) left out, so a task started Friday 15:00 and done Monday 10:00
took 9 h + 10 h = 0.79 working days. Public holidays and time zones other than UTC are ignored (a few hours
either way at the weekend edges). Durations are floored at ``MIN_DURATION_DAYS`` = 0.25 day: nothing takes
less than a couple of hours once review and merge are counted, and the floor keeps log(duration) finite for
tasks closed minutes after they were started (or started and finished over a weekend). Naive times are read
as UTC, as the records promise.

Usable history: tasks with status ``done`` and both times set. Tasks without them are skipped (counted in
the reason). Tasks that finished before they started, or whose estimate is negative or not a number, are
**excluded with a reason** (``DurationModel.excluded``) rather than raising: one bad row from a connector
should not stop every forecast, and the reason names the tasks so they can be fixed at the source. (Tasks
passed to ``sample``/``forecast`` with an invalid estimate do raise ``DataError`` naming them: that is a
question about those very tasks.)

Model
-----
With at least ``min_items`` usable tasks (default 30) a model of **log(working days)** is learned from:

- log(estimate), estimates floored at 0.25 day; unestimated tasks get the training median log estimate and
  an ``unestimated`` indicator (so the model learns how unestimated work differs on average);
- type: one-hot for types with at least ``MIN_TYPE_TASKS`` = 3 tasks, the rest pooled into ``other``;
- labels: one-hot for the ``TOP_LABELS`` = 10 most frequent labels with at least ``MIN_LABEL_TASKS`` = 3
  tasks, plus ``label:other`` for carrying any rarer label (lower-cased, trimmed);
- assignee: one-hot for people with at least ``MIN_ASSIGNEE_TASKS`` = 5 finished tasks; everyone else and
  unassigned tasks share ``other``;
- size proxy: log(1 + words in the title).

The regressor is StandardScaler + RidgeCV (alpha picked by efficient leave-one-out over
``RIDGE_ALPHAS``), chosen over gradient boosting because: with tens to a few hundred tasks a shrunk linear
model overfits less; effects on task durations are multiplicative (a slower person, a bug's investigation
time scale the whole task), which is additive in log space; and it extrapolates along log(estimate) to
estimates larger than any in the history, where trees would predict a flat ceiling.

**Spread.** Durations are drawn as exp(predicted log duration + r), where r is bootstrapped from
**out-of-fold residuals** (K-fold, K = min(5, n // 5)): in-sample residuals would understate the spread.
Residuals are grouped because the spread differs by group: unestimated tasks form one group, estimated
tasks one group per type (bugs are less predictable than chores); a group needs ``MIN_GROUP_RESIDUALS`` =
20 residuals, otherwise the task draws from all estimated (resp. all) residuals. Grouping by type rather
than estimate bucket: in log space residuals are already relative, so size matters less than kind of work.
Draws are independent across tasks (no shared "slow month" effect), and never below 0.25 day.

**Checking.** The whole procedure is rerun in K-fold cross-validation; ``describe()`` reports the
out-of-fold median absolute error in working days of the model's median against the naive baseline
"duration = estimate" (unestimated tasks at the training folds' median duration), and how wide the P10-P90
band typically is.

Censoring
---------
Finished tasks alone are a biased sample: of the work started in the last weeks, only the quick part is
done, so a model of them learns durations that are too short and a band too narrow (the calibration
backtest showed P85 dates holding about 70 % of the time because of it). Tasks still in progress are
therefore passed as ``in_progress`` with ``now``: each took *at least* the working days it has run. They
enter by stochastic Buckley-James-style imputation: ``CENSORED_ROUNDS`` = 3 times, draw each running
task's log duration from its residual group above its elapsed time (a normal fitted to the group when no
residual is that large), refit on finished + imputed tasks and recompute the out-of-fold residuals. The
cross-validated errors in days are still measured on finished tasks only.

Fallback
--------
With fewer than ``min_items`` usable tasks (of the project, and of ``organisation`` when that pool is given)
there is nothing trustworthy to learn, and the model says so. It then draws

- for estimated tasks: estimate x a log-normal multiplier with P10 x0.7 and P90 x2.0 (median x1.18, mean
  about x1.29). This sits between McConnell's cone of uncertainty at "product definition" (x0.5-x2) and
  "requirements complete" (x0.67-x1.5), skewed towards overruns as single-task estimates are, and its mean
  overrun of ~30 % matches the average overruns of 30-40 % that Molokken & Jorgensen's review of estimation
  surveys (2003) reports;
- for unestimated tasks: the median duration of the usable history when it holds at least
  ``MIN_FOR_HISTORY_MEDIAN`` = 5 tasks, else ``DEFAULT_UNESTIMATED_DAYS`` = 3 days, x a log-normal
  multiplier with P10 x1/3 and P90 x3 (no estimate, so wider than the cone's early stages).

Pools
-----
The project's own history is used when it is large enough. Otherwise, when ``organisation`` is given and
holds at least ``min_items`` usable tasks, the model is trained on the organisation's tasks (the project's
included) and ``pool`` and the reason say so: other teams' durations beat a fixed band, but less so than
the project's own.
"""

from __future__ import annotations

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

MIN_DURATION_DAYS = 0.25
TOP_LABELS = 10
MIN_LABEL_TASKS = 3
MIN_TYPE_TASKS = 3
MIN_ASSIGNEE_TASKS = 5
MIN_GROUP_RESIDUALS = 20
MAX_FOLDS = 5
CENSORED_ROUNDS = 3
# min_items below this leaves too few tasks per fold to cross-validate anything.
MIN_TRAINABLE = 10
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-2, 3, 11))
# Fallback multipliers on the estimate (P10, P90) and on the unestimated default (see module docstring).
FALLBACK_BAND = (0.7, 2.0)
UNESTIMATED_BAND = (1 / 3, 3.0)
DEFAULT_UNESTIMATED_DAYS = 3.0
MIN_FOR_HISTORY_MEDIAN = 5
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


def _fit_pipeline(tasks: Sequence[TaskRecord], durations: np.ndarray) -> tuple[_Vocabulary, Pipeline]:
    vocabulary = _Vocabulary.learn(tasks)
    pipeline = Pipeline([("scale", StandardScaler()), ("ridge", RidgeCV(alphas=RIDGE_ALPHAS))])
    pipeline.fit(vocabulary.design(tasks), np.log(durations))
    return vocabulary, pipeline


def _residual_groups(task: TaskRecord) -> tuple[str, ...]:
    """Residual groups to draw from, most specific first (the first with enough residuals is used)."""
    if task.estimate_days is None:
        return ("unestimated", "all")
    return (f"type:{task.type.lower()}", "estimated", "all")


def _group_residuals(tasks: Sequence[TaskRecord], residuals: np.ndarray) -> dict[str, np.ndarray]:
    members: dict[str, list[float]] = {}
    for task, residual in zip(tasks, residuals, strict=True):
        for group in _residual_groups(task):
            members.setdefault(group, []).append(float(residual))
    return {
        group: np.asarray(values)
        for group, values in members.items()
        if group == "all" or len(values) >= MIN_GROUP_RESIDUALS
    }


def _pick_group(task: TaskRecord, residuals: dict[str, np.ndarray]) -> str:
    return next(g for g in _residual_groups(task) if g in residuals)


def _log_band(p10: float, p90: float) -> tuple[float, float]:
    """(mu, sigma) of the log-normal multiplier with these 10th and 90th percentiles."""
    low, high = np.log(p10), np.log(p90)
    return float((low + high) / 2), float((high - low) / (2 * _Z90))


def _folds(n: int) -> int:
    return max(2, min(MAX_FOLDS, n // 5))


@dataclass(frozen=True)
class _CrossCheck:
    residuals: np.ndarray  # out-of-fold residuals of log duration
    model_mae: float  # working days, model median vs actual
    baseline_mae: float  # working days, estimate (or fold median) vs actual


def _cross_check(
    tasks: Sequence[TaskRecord], durations: np.ndarray, random_state: int, observed: np.ndarray | None = None
) -> _CrossCheck:
    """Out-of-fold residuals of every task; the errors in days only over ``observed`` (not imputed) ones."""
    observed = np.ones(len(tasks), dtype=bool) if observed is None else observed
    log_durations = np.log(durations)
    oof_log = np.empty(len(tasks))
    oof_median = np.empty(len(tasks))
    baseline = np.empty(len(tasks))
    folds = KFold(n_splits=_folds(len(tasks)), shuffle=True, random_state=random_state)
    for train, test in folds.split(np.arange(len(tasks))):
        train_tasks = [tasks[i] for i in train]
        test_tasks = [tasks[i] for i in test]
        vocabulary, pipeline = _fit_pipeline(train_tasks, durations[train])
        shift = float(np.median(log_durations[train] - pipeline.predict(vocabulary.design(train_tasks))))
        oof_log[test] = pipeline.predict(vocabulary.design(test_tasks))
        oof_median[test] = np.maximum(MIN_DURATION_DAYS, np.exp(oof_log[test] + shift))
        fold_median = float(np.median(durations[train]))
        baseline[test] = [fold_median if t.estimate_days is None else t.estimate_days for t in test_tasks]
    return _CrossCheck(
        residuals=log_durations - oof_log,
        model_mae=float(np.median(np.abs(oof_median - durations)[observed])),
        baseline_mae=float(np.median(np.abs(baseline - durations)[observed])),
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


@dataclass(frozen=True)
class DurationModel:
    """Working-day duration distributions for tasks, learned or fallback (see module docstring).

    Use ``sample`` for Monte Carlo forecasts, ``forecast`` for per-task percentiles, ``describe`` for the
    reason in words.
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
    residuals: dict[str, np.ndarray] = field(default_factory=dict)

    def describe(self) -> str:
        """The model's reason: training size, cross-validated error vs the naive baseline, band width."""
        return self.reason

    def _centres(self, tasks: Sequence[TaskRecord]) -> np.ndarray:
        """Predicted mean log duration per task (model mode)."""
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

    def sample(
        self, tasks: Sequence[TaskRecord], trials: int, rng: np.random.Generator | int | None = None
    ) -> np.ndarray:
        """Working-day durations, shape ``(trials, len(tasks))``, drawn independently per task and trial.

        ``rng`` is a numpy Generator or a seed; the same seed gives the same draws.
        """
        if trials < 1:
            raise ValueError(f"trials must be at least 1, got {trials}")
        _check_targets(tasks)
        generator = np.random.default_rng(rng)
        out = np.empty((trials, len(tasks)))
        if not tasks:
            return out
        if self.mode == "model":
            centres = self._centres(tasks)
            groups = [_pick_group(task, self.residuals) for task in tasks]
            for group in sorted(set(groups)):
                columns = np.array([j for j, g in enumerate(groups) if g == group])
                pool = self.residuals[group]
                picks = generator.integers(0, len(pool), size=(trials, len(columns)))
                out[:, columns] = np.exp(centres[columns] + pool[picks])
        else:
            mu, sigma = np.array([self._fallback_log(task)[:2] for task in tasks]).T
            out[:] = np.exp(mu + sigma * generator.standard_normal((trials, len(tasks))))
        return np.maximum(out, MIN_DURATION_DAYS)

    def forecast(self, tasks: Sequence[TaskRecord]) -> list[DurationForecast]:
        """P10, median and P90 of each task's duration (exact quantiles of the sampling distribution)."""
        _check_targets(tasks)
        if not tasks:
            return []
        results = []
        if self.mode == "model":
            centres = self._centres(tasks)
            for task, centre in zip(tasks, centres, strict=True):
                group = _pick_group(task, self.residuals)
                q = np.maximum(MIN_DURATION_DAYS, np.exp(centre + np.quantile(self.residuals[group], [0.1, 0.5, 0.9])))
                why = (
                    f"ridge model of log duration on {self.training_size} done tasks of the {self.pool}; "
                    f"spread from {len(self.residuals[group])} out-of-fold residuals ({group})"
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


def normal_above(values: np.ndarray, floor: float, rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` draws from a normal fitted to ``values``, conditioned on exceeding ``floor`` (inverse CDF)."""
    mu, sigma = float(values.mean()), max(float(values.std()), 1e-3)
    low = min(float(ndtr((floor - mu) / sigma)), 1 - 1e-9)
    return mu + sigma * ndtri(rng.uniform(low, 1.0, size=size))


def _impute_beyond(
    centres: np.ndarray, floors: np.ndarray, pools: list[np.ndarray], rng: np.random.Generator
) -> np.ndarray:
    """Log durations for censored tasks: a draw from each task's residual pool above what it has already run.

    When no residual in the pool is that large, a normal fitted to the pool is truncated at the floor and
    sampled by inverse CDF, so a task running far past everything seen keeps a tail beyond its elapsed time.
    """
    out = np.empty(len(centres))
    for i, (centre, floor, pool) in enumerate(zip(centres, floors, pools, strict=True)):
        needed = floor - centre
        beyond = pool[pool > needed]
        if len(beyond):
            out[i] = centre + float(rng.choice(beyond))
            continue
        out[i] = centre + float(normal_above(pool, needed, rng, 1)[0])
    return out


def fit_duration_model(
    done: Sequence[TaskRecord],
    *,
    min_items: int = 30,
    random_state: int = 0,
    organisation: Sequence[TaskRecord] | None = None,
    in_progress: Sequence[TaskRecord] = (),
    now: datetime | None = None,
) -> DurationModel:
    """Learn working-day duration distributions from finished tasks (see module docstring).

    ``done`` is the project's finished tasks; ``organisation`` optionally every project's, used when the
    project has fewer than ``min_items`` usable tasks. With too little history in both, the returned model
    is in fallback mode and its reason says so with the counts. Bad rows are excluded, not raised.
    ``in_progress`` tasks (of the same pool; with ``now``) enter as censored: they took at least as long as
    they have run so far (see "Censoring" in the module docstring).
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
    running, elapsed = _running(in_progress, now, {t.key for t in tasks}) if now is not None else ([], np.empty(0))
    if pool == "project":
        running_pool = {t.project for t in done}
        keep = [i for i, t in enumerate(running) if t.project in running_pool]
        running, elapsed = [running[i] for i in keep], elapsed[keep]
    # A few dozen features: BLAS threads only add overhead (and spin-wait on busy workers).
    with threadpool_limits(limits=1):
        vocabulary, pipeline = _fit_pipeline(tasks, durations)
        check = _cross_check(tasks, durations, random_state)
        if running:
            # Finished tasks alone are biased short: of the work started lately, only the quick part is done.
            # Stochastic Buckley-James-style imputation: draw each running task's duration beyond what it has
            # run from the current fit, refit on everything, repeat.
            rng = np.random.default_rng(random_state)
            observed = np.r_[np.ones(len(tasks), dtype=bool), np.zeros(len(running), dtype=bool)]
            for _ in range(CENSORED_ROUNDS):
                residuals = _group_residuals(tasks, check.residuals[: len(tasks)])
                pools = [residuals[_pick_group(t, residuals)] for t in running]
                imputed = _impute_beyond(pipeline.predict(vocabulary.design(running)), np.log(elapsed), pools, rng)
                both = [*history.tasks, *running]
                durations = np.r_[history.durations, np.exp(imputed)]
                vocabulary, pipeline = _fit_pipeline(both, durations)
                check = _cross_check(both, durations, random_state, observed)
            tasks = both
        centres = pipeline.predict(vocabulary.design(tasks))
    residuals = _group_residuals(tasks, check.residuals)
    p10 = np.empty(len(tasks))
    p90 = np.empty(len(tasks))
    for i, task in enumerate(tasks):
        q10, q90 = np.quantile(residuals[_pick_group(task, residuals)], [0.1, 0.9])
        p10[i], p90[i] = np.maximum(MIN_DURATION_DAYS, np.exp(centres[i] + np.array([q10, q90])))
    width, ratio = float(np.median(p90 - p10)), float(np.median(p90 / p10))

    source = f"{len(history.tasks)} done tasks of the {pool}"
    if running:
        source += f" and {len(running)} still in progress (counted as lasting at least as long as they have run)"
    if pool == "organisation":
        source += f" (the project alone has only {len(project.tasks)}; {min_items} are needed)"
    errors = (
        f"cross-validated median absolute error {check.model_mae:.2f} working days vs {check.baseline_mae:.2f} "
        "for the naive 'duration = estimate' baseline (unestimated tasks at the median duration)"
    )
    if check.model_mae >= check.baseline_mae:
        errors = f"the model does NOT beat the naive baseline ({errors}): treat its medians as no better than estimates"
    groups = ", ".join(f"{g} {len(r)}" for g, r in sorted(residuals.items()))
    reason = (
        f"learned from {source}{_left_out(history)}: ridge regression of log working days on log estimate, "
        f"type, labels, assignee and title length; {errors}; the P10-P90 band is typically {width:.2f} working "
        f"days wide (P90 = x{ratio:.2f} P10), bootstrapped from out-of-fold residuals ({groups})"
    )
    return DurationModel(
        mode="model",
        pool=pool,
        training_size=len(tasks),
        project_usable=len(project.tasks),
        min_items=min_items,
        excluded=history.excluded,
        skipped=history.skipped,
        reason=reason,
        censored=len(running),
        cv_mae_days=check.model_mae,
        baseline_mae_days=check.baseline_mae,
        band_width_days=width,
        band_ratio=ratio,
        unestimated_days=float(np.median(durations)),
        unestimated_source="history median",
        vocabulary=vocabulary,
        pipeline=pipeline,
        residuals=residuals,
    )


# --- Synthetic history ---------------------------------------------------------------------------------------

SYNTHETIC_PROJECT = "synthetic:shop"
SYNTHETIC_ESTIMATES = (0.5, 1.0, 2.0, 3.0, 5.0, 8.0)
_ESTIMATE_P = (0.15, 0.25, 0.25, 0.15, 0.12, 0.08)
_UNESTIMATED_SHARE = 0.15
# type: (share, median duration / estimate, log-normal sigma)
_TYPES = {
    "feature": (0.40, 1.30, 0.35),
    "bug": (0.30, 1.10, 0.65),
    "task": (0.20, 1.00, 0.30),
    "chore": (0.10, 0.80, 0.30),
}
# assignee: (share of tasks, duration multiplier); None = unassigned. "fay" rarely gets work (< 5 tasks).
_PEOPLE: dict[str | None, tuple[float, float]] = {
    "ana": (0.25, 0.75),
    "ben": (0.20, 0.90),
    "chen": (0.20, 1.00),
    "dara": (0.15, 1.15),
    "eli": (0.13, 1.35),
    "fay": (0.02, 1.00),
    None: (0.05, 1.00),
}
# label: (probability a task carries it, duration multiplier)
_LABEL_EFFECTS = {
    "backend": (0.40, 1.00),
    "frontend": (0.35, 1.00),
    "db": (0.15, 1.30),
    "infra": (0.10, 1.15),
    "docs": (0.10, 0.70),
    "urgent": (0.10, 0.85),
}
_RARE_LABELS = 40
_RARE_LABEL_P = 0.10
_WORDS = (
    "add",
    "fix",
    "update",
    "remove",
    "checkout",
    "search",
    "cart",
    "api",
    "page",
    "export",
    "report",
    "cache",
    "login",
    "payment",
    "email",
    "filter",
    "sort",
    "retry",
    "timeout",
    "admin",
    "invoice",
    "webhook",
    "migration",
    "index",
    "coupon",
)
TASKS_PER_WORKING_DAY = 3


def synthetic_median_days(task: TaskRecord) -> float | None:
    """The generating model's median duration of an estimated synthetic task; None when unestimated.

    An unestimated synthetic task's hidden size is not on its record, so its true median is not known here.
    """
    if task.estimate_days is None:
        return None
    factor = _TYPES[task.type][1] * _PEOPLE[task.assignee][1]
    for label in task.labels:
        factor *= _LABEL_EFFECTS.get(label, (0.0, 1.0))[1]
    return max(MIN_DURATION_DAYS, task.estimate_days * factor)


def synthetic_task_history(n: int, *, seed: int = 0, start: datetime | None = None) -> list[TaskRecord]:
    """``n`` plausible finished tasks of ``SYNTHETIC_PROJECT``, for tests and demos.

    Generating model, per task: a size drawn from ``SYNTHETIC_ESTIMATES`` (probabilities 15/25/25/15/12/8 %),
    shown as the estimate except for 15 % of tasks, which are unestimated. Type feature/bug/task/chore with
    40/30/20/10 %; assignee ana/ben/chen/dara/eli/fay/unassigned with 25/20/20/15/13/2/5 %, who take x0.75,
    x0.9, x1, x1.15, x1.35, x1, x1 as long. Labels independently: backend 40 %, frontend 35 % (no effect),
    db 15 % (x1.3), infra 10 % (x1.15), docs 10 % (x0.7), urgent 10 % (x0.85), and with 10 % one of 40 rare
    ``area-k`` labels (no effect). The duration in working days is

        max(0.25, size x type factor x person multiplier x label multipliers x LogNormal(0, sigma_type))

    with type factors feature x1.3, bug x1.1, task x1, chore x0.8 and sigma 0.35, 0.65, 0.3, 0.3 (bugs are
    noisiest). The title has 2 + Poisson(1 + 1.5 log2(1 + size)) words, a weak size signal. Three tasks start
    per working day from ``start`` (default 2024-01-01, a Monday, UTC) at a uniform time 09:00-17:00 and
    finish that many working days later (weekends skipped). ``synthetic_median_days`` gives the true median.
    """
    if n < 0:
        raise ValueError(f"n must not be negative, got {n}")
    rng = np.random.default_rng(seed)
    first = _utc(start) if start is not None else datetime(2024, 1, 1, tzinfo=UTC)
    types = list(_TYPES)
    people = list(_PEOPLE)
    sizes = rng.choice(SYNTHETIC_ESTIMATES, size=n, p=_ESTIMATE_P)
    estimated = rng.uniform(size=n) >= _UNESTIMATED_SHARE
    kinds = rng.choice(len(types), size=n, p=[v[0] for v in _TYPES.values()])
    who = rng.choice(len(people), size=n, p=[v[0] for v in _PEOPLE.values()])
    label_draws = rng.uniform(size=(n, len(_LABEL_EFFECTS)))
    rare = np.where(rng.uniform(size=n) < _RARE_LABEL_P, rng.integers(0, _RARE_LABELS, size=n), -1)
    noise = rng.standard_normal(n)
    words = 2 + rng.poisson(1 + 1.5 * np.log2(1 + sizes))
    start_hours = rng.uniform(9, 17, size=n)
    created_lag = rng.uniform(0, 20, size=n)

    tasks = []
    for i in range(n):
        kind, assignee = types[kinds[i]], people[who[i]]
        labels = [name for j, name in enumerate(_LABEL_EFFECTS) if label_draws[i, j] < _LABEL_EFFECTS[name][0]]
        if rare[i] >= 0:
            labels.append(f"area-{rare[i]}")
        factor = _TYPES[kind][1] * _PEOPLE[assignee][1]
        for label in labels:
            factor *= _LABEL_EFFECTS.get(label, (0.0, 1.0))[1]
        duration = max(MIN_DURATION_DAYS, float(sizes[i] * factor * np.exp(_TYPES[kind][2] * noise[i])))
        day = np.busday_offset(first.date(), i // TASKS_PER_WORKING_DAY, roll="forward").astype(date)
        started = _midnight(day) + timedelta(hours=float(start_hours[i]))
        done = _add_working_days(started, duration)
        title = " ".join(rng.choice(_WORDS, size=int(words[i]))).capitalize()
        tasks.append(
            TaskRecord(
                key=f"{SYNTHETIC_PROJECT}#{i + 1}",
                project=SYNTHETIC_PROJECT,
                title=title,
                status="done",
                type=kind,
                labels=labels,
                estimate_days=float(sizes[i]) if estimated[i] else None,
                assignee=assignee,
                created_at=started - timedelta(days=float(created_lag[i])),
                started_at=started,
                done_at=done,
                updated_at=done,
            )
        )
    return tasks
