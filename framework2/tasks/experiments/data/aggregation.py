"""Per experiment, arm and metric: the sufficient statistics the analysis needs (and what was missing)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

import numpy as np
import pandas as pd

from framework2.errors import DataError
from framework2.tasks.experiments.data.columns import _NS_MAX, _NS_MIN, _NS_PER_DAY, RECENT_DAYS, _user_codes, _utc_ns
from framework2.tasks.experiments.data.tables import _require_columns
from framework2.tasks.experiments.data.validation import _Events, _prepare_events, _prepare_exposures, _quarantine_frame
from framework2.tasks.experiments.model import ArmStats, ExperimentSpec, MetricSpec


class MissingValues(NamedTuple):
    """How many rows with an empty value a metric read (window and covariate window), and what it did."""

    rows: int
    policy: str  # the metric's ``missing``: "zero", "exclude" or "quarantine"


@dataclass(frozen=True)
class ExperimentData:
    """What ``aggregate`` made of one experiment's rows: the statistics plus the counts behind them.

    ``stats[metric][variation]`` is what ``analyse`` takes. ``users`` counts the analysed users per variation
    (single-variation users with an exposure inside the window). ``exposure_rows`` counts every row of this
    experiment in the exposures table; of those ``outside_window`` were ignored and ``quarantined_exposures``
    quarantined (that count also includes rows naming no experiment). ``events_attributed`` counts event rows
    that fell into some metric's window (each row once, valued or not), ``pre_period_events`` those in a
    covariate window. ``quarantined_events`` counts the bad rows of the shared events table plus this
    experiment's missing-value quarantine.

    ``missing_values[metric]`` is ``MissingValues(rows, policy)`` (a named tuple, so ``rows, policy = ...``
    works) for each mean or ratio metric that read at least one row with a missing value: ``rows`` counts the
    rows of its event(s) (numerator and denominator) in its window or covariate window whose value was empty,
    ``policy`` is the metric's ``missing`` (``"zero"``, ``"exclude"`` or ``"quarantine"``) that said what
    became of them. Metrics that met no missing value (and binomial metrics, which ignore values) are absent.

    ``recent_users_per_day`` is the rate of new analysed users (first exposure) over the last ``RECENT_DAYS``
    days before the window's end (the experiment's end, ``as_of`` or the latest exposure), or over its whole
    span when shorter: what turns "users still needed" into days. None without users.
    """

    key: str
    stats: dict[str, dict[str, ArmStats]]
    exposure_rows: int
    users: dict[str, int]
    multiple_exposures: int
    outside_window: int
    quarantined_exposures: int
    quarantined_events: int
    events_attributed: int
    pre_period_events: int
    quarantined: pd.DataFrame = field(repr=False)
    missing_values: dict[str, MissingValues] = field(default_factory=dict)
    recent_users_per_day: float | None = None

    @property
    def quarantined_rows(self) -> int:
        """All quarantined rows that concern this experiment (exposures and the shared events)."""
        return self.quarantined_exposures + self.quarantined_events


# ----------------------------------------------------------------------------------------------- aggregation


def aggregate(
    spec: ExperimentSpec, exposures: pd.DataFrame, events: pd.DataFrame, *, as_of: datetime | None = None
) -> ExperimentData:
    """Sufficient statistics of one experiment (rows of other experiments in ``exposures`` are ignored)."""
    return aggregate_many([spec], exposures, events, as_of=as_of)[spec.key]


def aggregate_many(
    specs: Iterable[ExperimentSpec],
    exposures: pd.DataFrame,
    events: pd.DataFrame,
    *,
    as_of: datetime | None = None,
) -> dict[str, ExperimentData]:
    """Sufficient statistics of several experiments in one pass over both tables, keyed by experiment key."""
    specs = list(specs)
    keys = [s.key for s in specs]
    if len(set(keys)) != len(keys):
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        raise DataError(f"experiment key(s) {', '.join(dupes)} given twice", "pass each experiment once")
    _require_columns(exposures.columns, "exposures", "exposures")
    _require_columns(events.columns, "events", "events")
    if not specs:
        return {}
    x_user, e_user, n_users = _user_codes(exposures["user"], events["user"])
    xp = _prepare_exposures(specs, exposures, x_user)
    del x_user
    ev = _prepare_events(events, e_user, {name for s in specs for m in s.metrics for name in _metric_events(m)})
    del e_user
    as_of_ns = _utc_ns(as_of, _NS_MAX)

    results: dict[str, ExperimentData] = {}
    for i, spec in enumerate(specs):
        start = _utc_ns(spec.start, _NS_MIN)
        cutoff = min(_utc_ns(spec.end, _NS_MAX), as_of_ns)
        # A mask and its positions per experiment: a few cheap passes, and the gathers then run in row order
        # (sorting ten million rows by experiment first costs more than that).
        mine = xp.ok & (xp.exp == i)
        valid = int(np.count_nonzero(mine))
        if start != _NS_MIN:
            mine &= xp.ts >= start
        if cutoff != _NS_MAX:
            mine &= xp.ts < cutoff
        rows = np.flatnonzero(mine)
        del mine
        outside = valid - len(rows)
        arms = _Arms(xp.user[rows], xp.var[rows], xp.ts[rows], n_users)
        windows = _EventWindows(ev, arms, cutoff, spec.pre_period_days * _NS_PER_DAY)
        k = len(spec.variations)
        users = np.bincount(arms.arm, minlength=k)
        stats = {m.name: _metric_stats(m, spec, arms.arm, windows, users) for m in spec.metrics}
        missing_values, held = _missing_values(spec, windows, events)
        pieces = [q for q in (xp.quarantine[i], xp.unattributed, ev.quarantine, held) if len(q)]
        results[spec.key] = ExperimentData(
            key=spec.key,
            stats=stats,
            exposure_rows=int(xp.rows[i]),
            users={v: int(users[j]) for j, v in enumerate(spec.variations)},
            multiple_exposures=arms.multiple,
            outside_window=outside,
            quarantined_exposures=len(xp.quarantine[i]) + len(xp.unattributed),
            quarantined_events=len(ev.quarantine) + len(held),
            events_attributed=windows.attributed,
            pre_period_events=windows.pre_attributed,
            quarantined=pd.concat(pieces, ignore_index=True) if pieces else xp.quarantine[i],
            missing_values=missing_values,
            recent_users_per_day=_recent_rate(arms.first, cutoff),
        )
    return results


def _recent_rate(first: np.ndarray, cutoff: int) -> float | None:
    """New users per day over the last ``RECENT_DAYS`` before ``cutoff`` (or the latest first exposure)."""
    if not len(first):
        return None
    end = cutoff if cutoff != _NS_MAX else int(first.max()) + 1
    span = min(RECENT_DAYS * _NS_PER_DAY, end - int(first.min()))
    if span <= 0:
        return None
    return float(np.count_nonzero(first >= end - span)) / (span / _NS_PER_DAY)


def _missing_values(
    spec: ExperimentSpec, windows: _EventWindows, events: pd.DataFrame
) -> tuple[dict[str, MissingValues], pd.DataFrame]:
    """Rows with a missing value per mean/ratio metric, and the rows its quarantine metrics quarantine.

    A row is quarantined once per experiment, its reason naming every quarantine metric that reads its event
    (all metrics of an experiment share its windows, so they read the same rows of an event).
    """
    counts: dict[str, MissingValues] = {}
    holders: dict[str, list[str]] = {}  # event name -> quarantine metrics reading it
    for metric in spec.metrics:
        if metric.kind == "binomial":
            continue  # values play no part
        names = list(dict.fromkeys(_metric_events(metric)))
        rows = sum(len(windows.get(name).missing_rows) for name in names)
        if rows:
            counts[metric.name] = MissingValues(rows, metric.missing)
            if metric.missing == "quarantine":
                for name in names:
                    holders.setdefault(name, []).append(metric.name)
    positions, reasons = [np.empty(0, dtype=np.int64)], [np.empty(0, dtype=object)]
    for name, metrics in holders.items():
        rows_at = windows.get(name).missing_rows
        which = (
            f"metric {metrics[0]!r} measures"
            if len(metrics) == 1
            else f"metrics {', '.join(map(repr, metrics))} measure"
        )
        positions.append(rows_at)
        reasons.append(np.full(len(rows_at), f"no value for {name!r}, which {which} (missing = quarantine)", object))
    at = np.concatenate(positions)
    order = np.argsort(at, kind="stable")
    return counts, _quarantine_frame("events", events, at[order], np.concatenate(reasons)[order])


def _metric_events(metric: MetricSpec) -> list[str]:
    return [metric.event] + ([metric.denominator_event] if metric.denominator_event else [])


class _Arms:
    """The analysed users of one experiment: local codes 0..m-1, their arm and first exposure time."""

    def __init__(self, user: np.ndarray, var: np.ndarray, ts: np.ndarray, n_users: int) -> None:
        first = np.full(n_users, _NS_MAX, dtype=np.int64)
        np.minimum.at(first, user, ts)
        low = np.full(n_users, np.iinfo(np.int16).max, dtype=np.int16)
        high = np.full(n_users, -1, dtype=np.int16)
        var16 = var.astype(np.int16)
        np.minimum.at(low, user, var16)
        np.maximum.at(high, user, var16)
        exposed = np.flatnonzero(high >= 0)
        single = low[exposed] == high[exposed]
        members = exposed[single]
        self.multiple = int(len(exposed) - len(members))
        self.arm = high[members].astype(np.int64)
        self.first = first[members]
        # Global code -> local code (or -1): one gather turns an event's user into "analysed here, as whom".
        self.local = np.full(n_users, -1, dtype=np.int64)
        self.local[members] = np.arange(len(members))
        self.m = len(members)


@dataclass
class _Window:
    """One event name's per-user counts and value sums (local user codes) in the metric and covariate windows.

    ``count``/``pre_count`` count every row, ``valued``/``pre_valued`` only rows with a value (the same
    arrays when no row of the name misses its value); missing values add 0 to the sums. ``missing_rows``
    holds the table positions of the rows with a missing value in either window.
    """

    count: np.ndarray
    valued: np.ndarray
    total: np.ndarray
    pre_count: np.ndarray
    pre_valued: np.ndarray
    pre_total: np.ndarray
    missing_rows: np.ndarray


class _EventWindows:
    """Per analysed user: event counts and value sums in the metric and covariate windows, per event name."""

    def __init__(self, ev: _Events, arms: _Arms, cutoff: int, pre_ns: int) -> None:
        self.ev, self.arms, self.cutoff, self.pre_ns = ev, arms, cutoff, pre_ns
        self.cache: dict[str, _Window] = {}
        self.attributed = 0
        self.pre_attributed = 0

    def get(self, name: str) -> _Window:
        """The name's ``_Window`` (computed once per experiment)."""
        if name not in self.cache:
            lo, hi = self.ev.bounds.get(name, (0, 0))
            local = self.arms.local[self.ev.user[lo:hi]]
            mine = local >= 0
            local, ts, value = local[mine], self.ev.ts[lo:hi][mine], self.ev.value[lo:hi][mine]
            first = self.arms.first[local]
            after = (ts >= first) & (ts < self.cutoff)
            count, total = self._sums(local, value, after)
            self.attributed += int(after.sum())
            if self.pre_ns > 0:
                before = (ts < first) & (ts >= first - self.pre_ns)
                pre_count, pre_total = self._sums(local, value, before)
                self.pre_attributed += int(before.sum())
            else:
                before = None
                pre_count = pre_total = np.zeros(self.arms.m)
            valued, pre_valued, missing_rows = count, pre_count, np.empty(0, dtype=np.int64)
            if self.ev.missing is not None and self.ev.pos is not None and name in self.ev.missing_names:
                missing = self.ev.missing[lo:hi][mine]
                valued = count - np.bincount(local[after & missing], minlength=self.arms.m)
                read = after
                if before is not None:
                    pre_valued = pre_count - np.bincount(local[before & missing], minlength=self.arms.m)
                    read = after | before
                missing_rows = self.ev.pos[lo:hi][mine][read & missing]
            self.cache[name] = _Window(count, valued, total, pre_count, pre_valued, pre_total, missing_rows)
        return self.cache[name]

    def _sums(self, local: np.ndarray, value: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        picked = local[mask]
        count = np.bincount(picked, minlength=self.arms.m)
        total = np.bincount(picked, weights=value[mask], minlength=self.arms.m)
        return count, total


def _metric_stats(
    metric: MetricSpec, spec: ExperimentSpec, arm: np.ndarray, windows: _EventWindows, users: np.ndarray
) -> dict[str, ArmStats]:
    w = windows.get(metric.event)
    den: np.ndarray | None = None
    # Rows a metric counts as events: all for "zero" (a missing value is 0), valued ones for "exclude" and
    # "quarantine" (the row is ignored). The sums are the same either way: a missing value adds 0.
    zero = metric.missing == "zero"
    has_pre = w.pre_count if zero else w.pre_valued
    if metric.kind == "binomial":
        value, cov = (w.count > 0).astype(np.float64), (w.pre_count > 0).astype(np.float64)
        analysed = None
        has_pre = w.pre_count
    elif metric.kind == "mean":
        value, cov = w.total, w.pre_total
        analysed = w.valued > 0 if metric.missing == "exclude" else None
    else:
        d = windows.get(metric.denominator_event or "")
        value, cov, den = w.total, w.pre_total, d.total
        analysed = den != 0
        has_pre = has_pre + (d.pre_count if zero else d.pre_valued)
    # Whether CUPED has anything to work with is decided per metric across all arms, never per arm.
    has_cov = spec.pre_period_days > 0 and bool(np.any(has_pre > 0))

    k = len(spec.variations)
    a, y = (arm, value) if analysed is None else (arm[analysed], value[analysed])

    def per_arm(weights: np.ndarray | None) -> np.ndarray:
        return np.bincount(a, weights=weights, minlength=k)

    n = users if analysed is None else per_arm(None)
    sums = {"total": per_arm(y), "total_sq": per_arm(y * y)}
    if den is not None:
        d = den[analysed]
        sums |= {"den_total": per_arm(d), "den_total_sq": per_arm(d * d), "num_den": per_arm(y * d)}
    if has_cov:
        x = cov if analysed is None else cov[analysed]
        sums |= {"cov_total": per_arm(x), "cov_total_sq": per_arm(x * x), "cov_value": per_arm(x * y)}
    return {
        variation: ArmStats(
            variation=variation,
            users=int(users[j]),
            n=int(n[j]),
            has_covariate=has_cov,
            **{name: float(s[j]) for name, s in sums.items()},
        )
        for j, variation in enumerate(spec.variations)
    }
