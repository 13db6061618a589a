"""A sample world of product experiments with known true effects, and a fast generator of large datasets.

``sample_experiments`` makes four experiments over one user population. Every experiment starts on
``SAMPLE_START``, enrols users during its first 21 days, ends 28 days after the start and uses a 14-day
pre-period for CUPED. Each user has a latent activity level (lognormal) and spend level that drive both
their behaviour in the 14 days before their first exposure and after it, so pre-period metrics predict
in-experiment metrics and CUPED visibly reduces variance. The true effects (``TRUE_EFFECTS``, relative):

- ``checkout-button`` (control / green, 50/50): ``conversion`` (binomial on ``purchase``) is exactly +8 % in
  green: each user's purchase probability within 7 days of exposure is multiplied by 1.08 (control ~23 %).
  ``revenue`` (mean of ``purchase`` values, a guardrail) is therefore also +8 %: how many purchases a
  converting user makes and what they spend do not depend on the arm.
- ``pricing-page`` (control / annual-first, 50/50): no effect at all (A/A-like) on ``subscription``
  (binomial on ``subscribe``) or ``pricing_views`` (mean of ``pricing_view``).
- ``onboarding`` (control / tour / checklist, equal thirds): ``clicks_per_session`` (ratio of ``click`` over
  ``session`` events) is 3.0 in control, +10 % (3.3) with the tour and unchanged with the checklist;
  ``sessions`` (mean of ``session``) is unchanged in every arm.
- ``search-ranking`` (control / new-ranker, expected 50/50): a sample ratio mismatch - assignment delivers
  53 % / 47 %. ``search_success`` (binomial on ``search_click``) has no true effect, but the split should
  make the analysis distrust the experiment.

Like real data, the sample has flaws the pipeline must handle (with ``dirty=True``): 0.5 % of the
checkout-button users were also exposed to the other variation (excluded as multiple exposures), users see
an experiment 1-3 times, 5 exposure rows name the variation ``Green`` (not in the spec), 3 exposure rows have
no user and 3 event rows have no timestamp (all quarantined). Everything is deterministic for a seed.

``large_dataset`` makes the benchmark's workload: millions of exposure rows over several experiments with a
proportionate events table, generated with whole-array numpy operations only.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np
import pandas as pd

from framework2.tasks.experiments.model import ExperimentSpec, MetricSpec

SAMPLE_START = datetime(2025, 3, 3, tzinfo=UTC)
RUN_DAYS = 28
ENROL_DAYS = 21
PRE_DAYS = 14

# (experiment, metric) -> true relative effect of each non-control variation.
TRUE_EFFECTS: dict[tuple[str, str], dict[str, float]] = {
    ("checkout-button", "conversion"): {"green": 0.08},
    ("checkout-button", "revenue"): {"green": 0.08},
    ("pricing-page", "subscription"): {"annual-first": 0.0},
    ("pricing-page", "pricing_views"): {"annual-first": 0.0},
    ("onboarding", "clicks_per_session"): {"tour": 0.10, "checklist": 0.0},
    ("onboarding", "sessions"): {"tour": 0.0, "checklist": 0.0},
    ("search-ranking", "search_success"): {"new-ranker": 0.0},
}
SRM_DELIVERED = (0.53, 0.47)

_DAY_NS = 86_400 * 10**9
_START_NS = int(pd.Timestamp(SAMPLE_START).value)


def sample_specs() -> list[ExperimentSpec]:
    """The four sample experiments as their teams would configure them."""
    common = {"start": SAMPLE_START, "end": SAMPLE_START + timedelta(days=RUN_DAYS), "pre_period_days": PRE_DAYS}
    return [
        ExperimentSpec(
            key="checkout-button",
            name="Green checkout button",
            variations=["control", "green"],
            expected_split=[0.5, 0.5],
            metrics=[
                MetricSpec(name="conversion", kind="binomial", event="purchase"),
                MetricSpec(name="revenue", kind="mean", event="purchase", guardrail=True, guardrail_tolerance=0.02),
            ],
            **common,
        ),
        ExperimentSpec(
            key="pricing-page",
            name="Annual plan first on the pricing page",
            variations=["control", "annual-first"],
            metrics=[
                MetricSpec(name="subscription", kind="binomial", event="subscribe"),
                MetricSpec(name="pricing_views", kind="mean", event="pricing_view"),
            ],
            **common,
        ),
        ExperimentSpec(
            key="onboarding",
            name="Onboarding tour or checklist",
            variations=["control", "tour", "checklist"],
            metrics=[
                MetricSpec(name="clicks_per_session", kind="ratio", event="click", denominator_event="session"),
                MetricSpec(name="sessions", kind="mean", event="session"),
            ],
            **common,
        ),
        ExperimentSpec(
            key="search-ranking",
            name="New search ranker",
            variations=["control", "new-ranker"],
            expected_split=[0.5, 0.5],
            metrics=[MetricSpec(name="search_success", kind="binomial", event="search_click")],
            **common,
        ),
    ]


class _Rows:
    """Collects exposure and event rows as integer/float arrays; turned into DataFrames once at the end."""

    def __init__(self) -> None:
        self.exposures: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []  # key, user, variation, t
        self.events: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []  # name, user, t, value

    def event(self, name: str, users: np.ndarray, times: np.ndarray, values: np.ndarray | None = None) -> None:
        self.events.append((name, users, times, np.ones(len(users)) if values is None else values))


def _spread(
    rng: np.random.Generator, users: np.ndarray, counts: np.ndarray, origin: np.ndarray, days: float
) -> tuple[np.ndarray, np.ndarray]:
    """``counts[i]`` rows for ``users[i]`` at uniform times in ``[origin[i], origin[i] + days)``."""
    counts = np.asarray(counts, dtype=np.int64)
    who = np.repeat(users, counts)
    at = np.repeat(origin, counts) + (rng.uniform(0, days, len(who)) * _DAY_NS).astype(np.int64)
    return who, at


def _enrol(
    rng: np.random.Generator,
    rows: _Rows,
    key: str,
    population: int,
    share: float,
    split: tuple[float, ...],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Enrol a random share of the users; return (users, variation index, first exposure ns)."""
    users = np.flatnonzero(rng.uniform(size=population) < share)
    arm = rng.choice(len(split), size=len(users), p=np.asarray(split) / sum(split))
    first = _START_NS + (rng.uniform(0, ENROL_DAYS, len(users)) * _DAY_NS).astype(np.int64)
    # Users come back and see the experiment again (same variation): 1-3 exposure rows each.
    repeats = 1 + rng.binomial(2, 0.4, len(users))
    who = np.repeat(np.arange(len(users)), repeats)
    later = np.where(np.concatenate([[True], who[1:] != who[:-1]]), 0, rng.uniform(0, 5, len(who)) * _DAY_NS).astype(
        np.int64
    )
    rows.exposures.append((key, users[who], arm[who], first[who] + later))
    return users, arm, first


def sample_experiments(
    n_users: int = 100_000, *, seed: int = 0, dirty: bool = True
) -> tuple[list[ExperimentSpec], pd.DataFrame, pd.DataFrame]:
    """The sample experiments, their exposures and their events (see the module docstring for the truth).

    Exposures have ``experiment, user, variation, timestamp``; events ``user, event, timestamp, value``.
    Users are ``u000001``-style ids; timestamps ``datetime64[ns, UTC]``; rows are in time order.
    """
    if n_users < 100:
        raise ValueError("n_users must be at least 100")
    rng = np.random.default_rng(seed)
    rows = _Rows()
    # Latent per-user traits shared by every experiment and by pre- and in-experiment behaviour.
    activity = np.minimum(rng.lognormal(0.0, 1.0, n_users) / np.exp(0.5), 8.0)
    spend = rng.lognormal(0.0, 0.5, n_users)
    clickiness = rng.lognormal(0.0, 0.3, n_users) / np.exp(0.045)

    # checkout-button: purchase probability per 7 days, 1.08 times higher in green.
    users, arm, first = _enrol(rng, rows, "checkout-button", n_users, 0.8, (0.5, 0.5))
    p_week = np.minimum(0.25 * activity[users], 0.9)
    for lift, origin, scale in ((np.where(arm == 1, 1.08, 1.0), first, 1.0), (1.0, first - PRE_DAYS * _DAY_NS, 2.0)):
        # The pre-period is two weeks long: twice the chance of a purchase, capped like the window.
        p = np.minimum(p_week * scale, 0.9) * lift
        buyer = rng.uniform(size=len(users)) < p
        count = np.where(buyer, 1 + rng.poisson(0.4 * activity[users]), 0)
        days = 7.0 if scale == 1.0 else float(PRE_DAYS)
        who, at = _spread(rng, users, count, origin, days)
        values = np.round(spend[who] * rng.lognormal(np.log(35.0), 0.4, len(who)), 2)
        rows.event("purchase", who, at, values)
    if dirty:
        # 0.5 % of the users also saw the other button (a caching bug): excluded as multiple exposures.
        twice = rng.uniform(size=len(users)) < 0.005
        rows.exposures.append(("checkout-button", users[twice], 1 - arm[twice], first[twice] + _DAY_NS))

    # pricing-page: no effect.
    users, arm, first = _enrol(rng, rows, "pricing-page", n_users, 0.5, (0.5, 0.5))
    for origin, days in ((first, float(RUN_DAYS - ENROL_DAYS)), (first - PRE_DAYS * _DAY_NS, float(PRE_DAYS))):
        views = rng.poisson(1.5 * activity[users] * days / 7)
        who, at = _spread(rng, users, views, origin, days)
        rows.event("pricing_view", who, at)
        subscriber = rng.uniform(size=len(users)) < np.minimum(0.05 * activity[users] * days / 7, 0.9)
        who, at = _spread(rng, users, subscriber.astype(np.int64), origin, days)
        rows.event("subscribe", who, at)

    # onboarding: sessions unchanged, clicks per session 3.0 (control), 3.3 (tour), 3.0 (checklist).
    users, arm, first = _enrol(rng, rows, "onboarding", n_users, 0.6, (1, 1, 1))
    for lift, origin in ((np.array([1.0, 1.1, 1.0])[arm], first), (1.0, first - PRE_DAYS * _DAY_NS)):
        sessions = rng.poisson(5.0 * activity[users])
        who, at = _spread(rng, users, sessions, origin, 7.0)
        rows.event("session", who, at)
        rate = np.repeat(3.0 * clickiness[users] * lift, sessions)
        clicks = rng.poisson(rate)
        rows.event("click", np.repeat(who, clicks), np.repeat(at, clicks) + rng.integers(0, 600 * 10**9, clicks.sum()))

    # search-ranking: expected 50/50, delivered 53/47; no effect on search success.
    users, arm, first = _enrol(rng, rows, "search-ranking", n_users, 0.5, SRM_DELIVERED)
    for origin in (first, first - PRE_DAYS * _DAY_NS):
        success = rng.uniform(size=len(users)) < np.minimum(0.3 * np.sqrt(activity[users]), 0.95)
        who, at = _spread(rng, users, success.astype(np.int64), origin, 7.0)
        rows.event("search_click", who, at)

    specs = sample_specs()
    labels = np.char.add("u", np.char.zfill(np.arange(n_users).astype(str), 6)).astype(object)
    exposures = _exposure_frame(rows, specs, labels)
    events = _event_frame(rows, labels)
    if dirty:
        exposures, events = _add_flaws(rng, exposures, events)
    return specs, exposures, events


def _exposure_frame(rows: _Rows, specs: list[ExperimentSpec], labels: np.ndarray) -> pd.DataFrame:
    variations = {s.key: s.variations for s in specs}
    frame = pd.DataFrame(
        {
            "experiment": np.concatenate([np.full(len(u), k, dtype=object) for k, u, _, _ in rows.exposures]),
            "user": labels[np.concatenate([u for _, u, _, _ in rows.exposures])],
            "variation": np.concatenate([np.asarray(variations[k], dtype=object)[a] for k, _, a, _ in rows.exposures]),
            "timestamp": pd.DatetimeIndex(np.concatenate([t for _, _, _, t in rows.exposures]).view("M8[ns]")),
        }
    )
    frame["timestamp"] = frame["timestamp"].dt.tz_localize("UTC")
    return frame.sort_values("timestamp", kind="stable", ignore_index=True)


def _event_frame(rows: _Rows, labels: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "user": labels[np.concatenate([u for _, u, _, _ in rows.events])],
            "event": np.concatenate([np.full(len(u), n, dtype=object) for n, u, _, _ in rows.events]),
            "timestamp": pd.DatetimeIndex(np.concatenate([t for _, _, t, _ in rows.events]).view("M8[ns]")),
            "value": np.concatenate([v for _, _, _, v in rows.events]).astype(np.float64),
        }
    )
    frame["timestamp"] = frame["timestamp"].dt.tz_localize("UTC")
    return frame.sort_values("timestamp", kind="stable", ignore_index=True)


def _add_flaws(
    rng: np.random.Generator, exposures: pd.DataFrame, events: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The bad rows real pipelines deliver: a mistyped variation, rows without a user or a timestamp."""
    exposures = exposures.copy()
    checkout = np.flatnonzero((exposures["experiment"] == "checkout-button").to_numpy())
    typo = rng.choice(checkout, 5, replace=False)
    exposures.loc[typo, "variation"] = "Green"
    rest = np.setdiff1d(np.arange(len(exposures)), typo)
    exposures.loc[rng.choice(rest, 3, replace=False), "user"] = None
    events = events.copy()
    events.loc[rng.choice(len(events), 3, replace=False), "timestamp"] = pd.NaT
    return exposures, events


# ------------------------------------------------------------------------------------------- large datasets


UserIds = Literal["text", "int", "category"]


def large_specs(n_experiments: int = 5) -> list[ExperimentSpec]:
    """Benchmark experiments: 2 or 3 arms, a binomial, a mean and a ratio metric each, 14-day pre-period."""
    return [
        ExperimentSpec(
            key=f"exp{e}",
            variations=["control", "b", "c"][: 2 + (e % 2)],
            metrics=[
                MetricSpec(name="conversion", kind="binomial", event="purchase"),
                MetricSpec(name="revenue", kind="mean", event="purchase"),
                MetricSpec(name="clicks_per_session", kind="ratio", event="click", denominator_event="session"),
            ],
            start=SAMPLE_START,
            end=SAMPLE_START + timedelta(days=RUN_DAYS),
            pre_period_days=PRE_DAYS,
        )
        for e in range(n_experiments)
    ]


def large_dataset(
    n_exposures: int = 10_000_000,
    n_experiments: int = 5,
    *,
    n_events: int | None = None,
    seed: int = 0,
    user_ids: UserIds = "text",
) -> tuple[list[ExperimentSpec], pd.DataFrame, pd.DataFrame]:
    """A large random workload for benchmarks: ``n_exposures`` rows over ``n_experiments`` experiments.

    The population has ``n_exposures // 4`` users; each exposure row picks an experiment and a user at
    random, so a user sees an experiment ~1.4 times on average (in the variation their id hashes to; 0.1 % of
    rows show the other variation, making multiple exposures). ``n_events`` (default ``n_exposures // 2``)
    events are spread over the population: 10 % ``purchase`` (lognormal value), 40 % ``session``, 40 %
    ``click``, 10 % ``page_view`` (used by no metric), at random times from 14 days before the start to the
    end. ``user_ids`` picks the id column type: ``"text"`` (``u0000001`` Python strings), ``"int"`` (int64)
    or ``"category"`` (every text column a pandas categorical, the user ids of both tables sharing one
    dtype: what ``load_tables`` returns). Experiment, variation and event names are Python strings unless
    ``"category"``; timestamps are ``datetime64[ns, UTC]``.
    """
    rng = np.random.default_rng(seed)
    specs = large_specs(n_experiments)
    n_events = n_exposures // 2 if n_events is None else n_events
    population = max(n_exposures // 4, 1)
    exp = rng.integers(0, n_experiments, n_exposures)
    user = rng.integers(0, population, n_exposures)
    arms = np.array([len(s.variations) for s in specs])
    # A fixed hash of (user, experiment) picks the variation, so repeated exposures agree.
    mixed = (user.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + exp.astype(np.uint64)) >> np.uint64(40)
    var = (mixed % arms[exp].astype(np.uint64)).astype(np.int64)
    flip = rng.uniform(size=n_exposures) < 0.001
    var[flip] = (var[flip] + 1) % arms[exp[flip]]
    span = RUN_DAYS * _DAY_NS
    exposure_ts = _START_NS + rng.integers(0, span, n_exposures)
    names = np.array(["control", "b", "c"], dtype=object)
    ids = _large_ids(population, user_ids)
    keys = np.array([s.key for s in specs], dtype=object)
    exposures = pd.DataFrame(
        {
            "experiment": _names(keys, exp, user_ids),
            "user": ids(user),
            "variation": _names(names, var, user_ids),
            "timestamp": _utc(exposure_ts),
        }
    )
    kinds = np.array(["purchase", "session", "click", "page_view"], dtype=object)
    kind = rng.choice(4, size=n_events, p=[0.1, 0.4, 0.4, 0.1])
    value = np.where(kind == 0, np.round(rng.lognormal(np.log(30.0), 0.6, n_events), 2), 1.0)
    event_ts = _START_NS - PRE_DAYS * _DAY_NS + rng.integers(0, span + PRE_DAYS * _DAY_NS, n_events)
    events = pd.DataFrame(
        {
            "user": ids(rng.integers(0, population, n_events)),
            "event": _names(kinds, kind, user_ids),
            "timestamp": _utc(event_ts),
            "value": value,
        }
    )
    return specs, exposures, events


def large_exposures(n_rows: int, n_experiments: int = 5, seed: int = 0) -> tuple[list[ExperimentSpec], pd.DataFrame]:
    """Only the specs and exposures of ``large_dataset`` (with text user ids)."""
    specs, exposures, _ = large_dataset(n_rows, n_experiments, n_events=0, seed=seed)
    return specs, exposures


def _utc(ns: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(ns.view("M8[ns]")).tz_localize("UTC")


def _names(labels: np.ndarray, codes: np.ndarray, kind: UserIds) -> np.ndarray | pd.Categorical:
    return pd.Categorical.from_codes(codes, categories=labels) if kind == "category" else labels[codes]


def _large_ids(population: int, kind: UserIds) -> Callable[[np.ndarray], np.ndarray | pd.Categorical]:
    """Turns user numbers into the id column of the requested type (categoricals share one dtype)."""
    if kind == "int":
        return lambda codes: codes.astype(np.int64)
    # Text for each distinct id once, then gathered: formatting ten million strings one by one is slow.
    labels = np.char.add("u", np.char.zfill(np.arange(population).astype(str), 7)).astype(object)
    if kind == "category":
        # One dtype for both tables, as ``load_tables`` gives them.
        dtype = pd.CategoricalDtype(pd.Index(labels))
        return lambda codes: pd.Categorical.from_codes(codes, dtype=dtype)
    return lambda codes: labels[codes]
