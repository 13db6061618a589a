"""PUXT funnels: how many users get through an ordered list of steps, where they leave, how long each step takes,
and which segment does significantly worse than the rest.

**Input.** An events table with columns ``user``, ``event``, ``timestamp`` and optionally ``session`` and any
per-user attribute to split by (``segment``, ``device``, ``country``...). :func:`prepare_events` validates it
once; every analysis in this package accepts either the raw table or its :class:`PreparedEvents`.

- Missing required columns raise :class:`~framework2.errors.DataError` naming them.
- Rows with a missing/blank user, a missing/blank event or a missing/unparsable timestamp are returned in
  ``quarantined`` with a ``reason`` (all that apply, joined by "; "); they are never silently dropped.
- Timestamps: datetimes (naive ones are taken as UTC), ISO-8601 or other date strings, or numbers (Unix
  seconds). Everything is converted to UTC.
- Sessions: the ``session`` column when present (scoped to the user, so two users' "s1" are two sessions);
  otherwise, and for rows whose ``session`` is empty or blank, a user's session ends after ``session_gap``
  (default 30 minutes) without events — the usual web-analytics convention.
- A per-user attribute (segment) is the user's first non-empty value in time order, so a user who switches
  device mid-way is counted once, under the device they arrived with; users without one are "(unknown)".

**Funnel semantics** (``ordered=True``). Every occurrence of step 1 starts an attempt. From it, step 2 is the
user's earliest step-2 event after it, step 3 the earliest step-3 event after that, and so on, as long as the
event is within ``window`` of the attempt's step 1. Taking the earliest next event is optimal for a given start
(it leaves the most room for the rest). A user counts once, with the attempt that gets deepest; ties go to the
shortest attempt (so "time from previous step" is not inflated by an abandoned earlier visit), then the
earliest. Out-of-order events do not count; skipping a step ends the attempt at the step before it.

``ordered=False``: the steps may happen in any order; an attempt is a window of length ``window`` starting at
any funnel event of the user, and the user reaches step *k* when steps 1..*k* all occur in one window. Times
are then measured from the window's start instead of from the previous step (``time_basis``).

**Table.** Per step: ``users`` reaching it, ``step_conversion`` from the previous step (1 for step 1) with a
Wilson 95 % interval, ``overall_conversion`` from step 1, ``drop_off`` = users who reach the step but not the
next (0 for the last step) and ``drop_off_share`` = drop_off / users, and the median and p90 of the time from
the previous step in seconds. ``by_segment`` holds the same per segment.

**Segment tests.** For every step after the first and every segment, a pooled two-proportion z-test of the
segment's step conversion against all other users' (``segment_tests``); those with p < 0.01 and at least
``MIN_TEST_USERS`` users on both sides are ``flags`` (with the difference in percentage points), which
:mod:`~framework2.tasks.journeys.recommend` turns into recommendations when the segment is worse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import pandas as pd
from scipy import stats

from framework2.errors import DataError

REQUIRED_COLUMNS: tuple[str, ...] = ("user", "event", "timestamp")
DEFAULT_SESSION_GAP = timedelta(minutes=30)
UNKNOWN_SEGMENT = "(unknown)"
# Significance for a segment flag: strict, because every segment x step pair is a test.
FLAG_P_VALUE = 0.01
# Below this many users on either side the normal approximation of the z-test is not trustworthy.
MIN_TEST_USERS = 20
_Z95 = float(stats.norm.ppf(0.975))
_NS_PER_S = 1_000_000_000
_NS_MIN = np.datetime64("1677-09-22")
_NS_MAX = np.datetime64("2262-04-11")
_MAX_EPOCH_SECONDS = 9.2e9

TABLE_COLUMNS: tuple[str, ...] = (
    "step_index",
    "step",
    "users",
    "step_conversion",
    "ci_low",
    "ci_high",
    "overall_conversion",
    "drop_off",
    "drop_off_share",
    "median_seconds",
    "p90_seconds",
)


# --- validation and sessions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedEvents:
    """Valid events sorted by user then time, plus the rows that were set aside.

    ``events`` keeps every input column (``timestamp`` parsed to UTC, ``event`` as text) and adds ``_user``
    (0-based user code), ``_session`` (0-based session code, unique across users) and ``_event`` (event code).
    """

    events: pd.DataFrame
    quarantined: pd.DataFrame
    session_gap: timedelta

    @property
    def n_users(self) -> int:
        """Distinct valid users."""
        return int(self.events["_user"].max()) + 1 if len(self.events) else 0

    @property
    def n_sessions(self) -> int:
        """Distinct sessions."""
        return int(self.events["_session"].max()) + 1 if len(self.events) else 0

    @property
    def span_days(self) -> float:
        """Days between the first and the last valid event, at least 1 (so per-week rates stay finite)."""
        if self.events.empty:
            return 1.0
        ts = self.events["timestamp"]
        return max((ts.max() - ts.min()) / pd.Timedelta(days=1), 1.0)


def _parse_timestamps(values: pd.Series) -> pd.Series:
    """``values`` as UTC datetimes; NaT where missing, unreadable or outside nanosecond range (1677-2262)."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return _in_ns_range(values.dt.tz_convert("UTC").dt.tz_localize(None))
    if pd.api.types.is_datetime64_dtype(values):
        return _in_ns_range(values)
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        seconds = pd.to_numeric(values, errors="coerce").astype(float)
        # Out-of-range numbers would overflow the conversion instead of coercing: blank them first.
        seconds = seconds.where(seconds.abs() < _MAX_EPOCH_SECONDS)
        return pd.to_datetime(seconds, unit="s", utc=True, errors="coerce").astype("datetime64[ns, UTC]")
    # ISO-8601 is the fast path; only what it cannot read goes through the slow per-value parser.
    parsed = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    retry = parsed.isna() & values.notna()
    if retry.any():
        parsed = parsed.astype(object)
        parsed[retry] = pd.to_datetime(values[retry].astype(str), utc=True, errors="coerce", format="mixed")
        parsed = pd.to_datetime(parsed, utc=True)
    return parsed.astype("datetime64[ns, UTC]")


def _in_ns_range(naive_utc: pd.Series) -> pd.Series:
    """Naive UTC datetimes of any unit as ``datetime64[ns, UTC]``, NaT where nanoseconds cannot hold them."""
    arr = naive_utc.to_numpy()
    outside = (arr < _NS_MIN) | (arr > _NS_MAX)
    if outside.any():
        arr = arr.copy()
        arr[outside] = np.datetime64("NaT")
    return pd.Series(arr.astype("datetime64[ns]"), index=naive_utc.index).dt.tz_localize("UTC")


def timestamps_ns(values: pd.Series) -> np.ndarray:
    """UTC datetimes as int64 nanoseconds since the epoch (NaT as the int64 minimum)."""
    return np.asarray(values.astype("datetime64[ns, UTC]").array.asi8, dtype=np.int64)


def _blank_codes(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Factorize ``values``; code -1 for missing or blank text (checked on the distinct values only, for speed)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    blank = np.array([isinstance(u, str) and not u.strip() for u in uniques], dtype=bool)
    if blank.any():
        codes = np.where(np.isin(codes, np.flatnonzero(blank)), -1, codes)
    return codes, uniques


def prepare_events(events: pd.DataFrame, *, session_gap: timedelta = DEFAULT_SESSION_GAP) -> PreparedEvents:
    """Validate an events table, quarantine bad rows with reasons, sort by user and time and assign sessions."""
    if not isinstance(events, pd.DataFrame):
        raise DataError(f"events must be a pandas DataFrame, got {type(events).__name__}", "load the events first")
    missing = [c for c in REQUIRED_COLUMNS if c not in events.columns]
    if missing:
        raise DataError(
            f"events table is missing column(s): {', '.join(missing)}",
            f"it needs {', '.join(REQUIRED_COLUMNS)} (optionally segment and session); has {list(events.columns)}",
        )
    if session_gap <= timedelta(0):
        raise DataError(f"session_gap must be positive, got {session_gap}", "use e.g. timedelta(minutes=30)")

    user_codes, _ = _blank_codes(events["user"])
    event_codes, _ = _blank_codes(events["event"])
    ts = _parse_timestamps(events["timestamp"])
    bad_ts = ts.isna().to_numpy()

    reasons = np.full(len(events), "", dtype=object)

    def add(mask: np.ndarray, text: str | np.ndarray) -> None:
        # Every problem of a row is listed, so one look at the quarantine tells the whole story.
        text_arr = np.broadcast_to(np.asarray(text, dtype=object), reasons.shape)
        sep = np.where(reasons[mask] == "", "", "; ")
        reasons[mask] = reasons[mask] + sep + text_arr[mask]

    add(user_codes < 0, "user is missing")
    add(event_codes < 0, "event is missing")
    raw_ts = events["timestamp"]
    ts_missing = raw_ts.isna().to_numpy()
    add(bad_ts & ts_missing, "timestamp is missing")
    unreadable = bad_ts & ~ts_missing
    if unreadable.any():
        shown = np.full(len(events), "", dtype=object)
        shown[unreadable] = [f"timestamp {str(v)[:40]!r} is not a readable date" for v in raw_ts[unreadable]]
        add(unreadable, shown)

    bad = reasons != ""
    quarantined = events.iloc[np.flatnonzero(bad)].copy()
    quarantined["reason"] = reasons[bad]

    valid_idx = np.flatnonzero(~bad)
    # Users re-coded over valid rows only, in order of first appearance (no sort of arbitrary user types).
    user, _ = pd.factorize(events["user"].to_numpy(dtype=object)[valid_idx])
    ts_ns = timestamps_ns(ts)
    order = np.lexsort((valid_idx, ts_ns[valid_idx], user))
    take = valid_idx[order]
    clean = events.iloc[take].copy()
    clean["timestamp"] = ts.iloc[take].array
    user = user[order]
    t_ns = ts_ns[take]
    ev_codes, ev_uniques = pd.factorize(clean["event"])
    if len(clean):
        clean["event"] = np.asarray(ev_uniques.astype(str), dtype=object)[ev_codes]
    clean["_user"] = user.astype(np.int64)
    clean["_event"] = ev_codes.astype(np.int64)
    clean["_session"] = _sessions(clean, user, t_ns, session_gap)
    clean = clean.reset_index(drop=True)
    return PreparedEvents(events=clean, quarantined=quarantined, session_gap=session_gap)


def _sessions(clean: pd.DataFrame, user: np.ndarray, t_ns: np.ndarray, gap: timedelta) -> np.ndarray:
    """Session code per row (rows sorted by user, time): the given ``session`` scoped to the user, else gap split."""
    n = len(user)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    new = np.ones(n, dtype=bool)
    new[1:] = (user[1:] != user[:-1]) | (np.diff(t_ns) > gap / timedelta(microseconds=1) * 1000)
    gap_id = np.cumsum(new) - 1
    if "session" not in clean.columns:
        return gap_id.astype(np.int64)
    given, _ = _blank_codes(clean["session"])
    has = given >= 0
    # Given sessions and gap-split ones must never share a code: the gap ids go negative.
    key = np.where(has, given, -1 - gap_id)
    codes = pd.DataFrame({"u": user, "k": key}).groupby(["u", "k"], sort=False).ngroup()
    return codes.to_numpy(dtype=np.int64)


def as_prepared(events: pd.DataFrame | PreparedEvents, session_gap: timedelta = DEFAULT_SESSION_GAP) -> PreparedEvents:
    """``events`` validated (a no-op for already prepared events)."""
    if isinstance(events, PreparedEvents):
        return events
    return prepare_events(events, session_gap=session_gap)


def user_attribute(prepared: PreparedEvents, column: str) -> np.ndarray:
    """Per user code, the first non-empty value of ``column`` in time order as text, else ``UNKNOWN_SEGMENT``."""
    if column not in prepared.events.columns or column.startswith("_"):
        raise DataError(
            f"cannot split by {column!r}: the events have no such column",
            f"use one of {[c for c in prepared.events.columns if not c.startswith('_')]}",
        )
    out = np.full(prepared.n_users, UNKNOWN_SEGMENT, dtype=object)
    codes, uniques = _blank_codes(prepared.events[column])
    present = codes >= 0
    users = prepared.events["_user"].to_numpy()[present]
    # Rows are in time order within a user, so the first row of each user is the earliest value.
    first_users, first_rows = np.unique(users, return_index=True)
    labels = np.asarray([str(u) for u in uniques], dtype=object)
    out[first_users] = labels[codes[present][first_rows]]
    return out


# --- statistics --------------------------------------------------------------------------------------------


def wilson_interval(
    successes: np.ndarray | float, trials: np.ndarray | float, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion; NaN where there are no trials."""
    x = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / n
        denom = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denom
        half = z / denom * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
        low = np.where(n > 0, np.clip(centre - half, 0, 1), np.nan)
        high = np.where(n > 0, np.clip(centre + half, 0, 1), np.nan)
    return low, high


def two_proportion_test(x1: float, n1: float, x2: float, n2: float) -> tuple[float, float]:
    """Pooled two-proportion z-test of x1/n1 against x2/n2: (z, two-sided p); (nan, nan) when undefined."""
    if n1 <= 0 or n2 <= 0:
        return math.nan, math.nan
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return math.nan, math.nan
    z = (x1 / n1 - x2 / n2) / se
    return z, float(2 * stats.norm.sf(abs(z)))


# --- funnel ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunnelResult:
    """A funnel and its segment split. Tables have the columns in ``TABLE_COLUMNS`` (``by_segment`` adds
    ``segment`` first); times are seconds from the previous step (from the window start when unordered)."""

    steps: list[str]
    window: timedelta
    ordered: bool
    segment_by: str | None
    table: pd.DataFrame
    by_segment: pd.DataFrame
    segment_tests: pd.DataFrame
    per_user: pd.DataFrame
    users_total: int
    span_days: float
    quarantined: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def time_basis(self) -> str:
        """What the time columns measure from."""
        return "previous step" if self.ordered else "window start"

    @property
    def flags(self) -> pd.DataFrame:
        """Segment tests significant at ``FLAG_P_VALUE``, largest absolute difference first."""
        if self.segment_tests.empty:
            return self.segment_tests
        flagged = self.segment_tests[self.segment_tests["significant"]]
        return flagged.sort_values(["difference", "segment", "step_index"], key=_abs_if_numeric).reset_index(drop=True)

    @property
    def entered(self) -> int:
        """Users who reached step 1."""
        return int(self.table["users"].iloc[0]) if len(self.table) else 0

    @property
    def converted(self) -> int:
        """Users who reached the last step."""
        return int(self.table["users"].iloc[-1]) if len(self.table) else 0


def _abs_if_numeric(col: pd.Series) -> pd.Series:
    return -col.abs() if col.name == "difference" else col


def _validate_funnel_args(steps: list[str], window: timedelta, ordered: bool) -> list[str]:
    if isinstance(steps, str) or not steps:
        raise DataError("a funnel needs a non-empty list of steps", "e.g. ['landing', 'product_view', 'purchase']")
    steps = [str(s) for s in steps]
    if any(not s.strip() for s in steps):
        raise DataError(f"funnel steps must be non-blank event names, got {steps}", "remove the blank step")
    if not isinstance(window, timedelta) or window <= timedelta(0):
        raise DataError(f"the funnel window must be a positive timedelta, got {window!r}", "e.g. timedelta(days=1)")
    if not ordered and len(set(steps)) != len(steps):
        raise DataError(f"an unordered funnel cannot list a step twice: {steps}", "use ordered=True for repeated steps")
    return steps


def _best_attempts(
    user: np.ndarray, t_ns: np.ndarray, event: np.ndarray, steps: list[str], window_ns: int, ordered: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per user with an attempt: (user code, depth, step times in ns (NaN-free where reached), start time).

    All array work: one ``searchsorted`` per step over the positions of that step's events. Rows are sorted by
    user then time, so the first step-j position after a given position either belongs to the same user or to a
    later one (then the user has none).
    """
    n_steps = len(steps)
    positions = [np.flatnonzero(event == s) for s in steps]
    # Ordered attempts start at step 1; unordered windows may start at any funnel event.
    anchors = positions[0] if ordered else np.flatnonzero(np.isin(event, steps))
    au = user[anchors]
    start = t_ns[anchors]
    times = np.full((len(anchors), n_steps), np.iinfo(np.int64).min, dtype=np.int64)
    depth = np.zeros(len(anchors), dtype=np.int64)
    alive = np.ones(len(anchors), dtype=bool)
    current = anchors.copy()
    for j in range(n_steps):
        pos_j = positions[j]
        if ordered and j == 0:
            times[:, 0] = start
            depth[:] = 1
            continue
        if len(pos_j) == 0:
            alive[:] = False
            break
        # Ordered: strictly after the previous step's event. Unordered: at or after the window's first event.
        idx = np.searchsorted(pos_j, current if ordered else anchors, side="right" if ordered else "left")
        ok = alive & (idx < len(pos_j))
        cand = pos_j[np.minimum(idx, len(pos_j) - 1)]
        ok &= (user[cand] == au) & (t_ns[cand] - start <= window_ns)
        times[ok, j] = t_ns[cand[ok]]
        depth[ok] += 1
        if ordered:
            current = np.where(ok, cand, current)
        alive &= ok
    last = times[np.arange(len(anchors)), np.maximum(depth - 1, 0)]
    span = np.zeros(len(anchors), dtype=np.int64)
    span[depth > 0] = last[depth > 0] - start[depth > 0]
    order = np.lexsort((anchors, span, -depth, au))
    first = np.ones(len(order), dtype=bool)
    first[1:] = au[order][1:] != au[order][:-1]
    best = order[first]
    return au[best], depth[best], times[best], start[best]


def _step_table(steps: list[str], depth: np.ndarray, seconds: np.ndarray) -> pd.DataFrame:
    """The funnel table from each user's depth and per-step seconds (NaN where not reached)."""
    n = len(steps)
    users = np.array([(depth >= k + 1).sum() for k in range(n)], dtype=np.int64)
    previous = np.concatenate([[users[0] if n else 0], users[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        step_conv = np.where(previous > 0, users / previous, np.nan)
        overall = np.where(users[0] > 0, users / users[0], np.nan) if n else np.array([])
    low, high = wilson_interval(users, previous)
    if n:
        # Step 1 is the funnel's base, not a conversion: it has no interval.
        low[0] = high[0] = np.nan
    next_users = np.concatenate([users[1:], users[-1:]])
    drop = users - next_users
    with np.errstate(divide="ignore", invalid="ignore"):
        drop_share = np.where(users > 0, drop / users, np.nan)
    med = np.full(n, np.nan)
    p90 = np.full(n, np.nan)
    for k in range(n):
        col = seconds[:, k]
        col = col[~np.isnan(col)]
        if len(col):
            med[k] = float(np.median(col))
            p90[k] = float(np.quantile(col, 0.9))
    return pd.DataFrame(
        {
            "step_index": np.arange(1, n + 1),
            "step": steps,
            "users": users,
            "step_conversion": step_conv,
            "ci_low": low,
            "ci_high": high,
            "overall_conversion": overall,
            "drop_off": drop,
            "drop_off_share": drop_share,
            "median_seconds": med,
            "p90_seconds": p90,
        },
        columns=list(TABLE_COLUMNS),
    )


def _segment_tests(by_segment: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Each segment's step conversion against everyone else's, per step after the first."""
    rows = []
    totals = table.set_index("step_index")["users"]
    for seg, part in by_segment.groupby("segment", sort=True):
        users = part.set_index("step_index")["users"]
        for k in range(2, len(table) + 1):
            x1, n1 = int(users[k]), int(users[k - 1])
            x2, n2 = int(totals[k]) - x1, int(totals[k - 1]) - n1
            if n1 == 0 or n2 == 0:
                continue
            z, p = two_proportion_test(x1, n1, x2, n2)
            rate, rest = x1 / n1, x2 / n2
            rows.append(
                {
                    "segment": seg,
                    "step_index": k,
                    "from_step": table["step"].iloc[k - 2],
                    "to_step": table["step"].iloc[k - 1],
                    "users": n1,
                    "converted": x1,
                    "rate": rate,
                    "rest_users": n2,
                    "rest_converted": x2,
                    "rest_rate": rest,
                    "difference": rate - rest,
                    "relative_difference": (rate - rest) / rest if rest > 0 else math.nan,
                    "z": z,
                    "p_value": p,
                    "significant": bool(not math.isnan(p) and p < FLAG_P_VALUE and min(n1, n2) >= MIN_TEST_USERS),
                }
            )
    columns = [
        "segment",
        "step_index",
        "from_step",
        "to_step",
        "users",
        "converted",
        "rate",
        "rest_users",
        "rest_converted",
        "rest_rate",
        "difference",
        "relative_difference",
        "z",
        "p_value",
        "significant",
    ]
    return pd.DataFrame(rows, columns=columns)


def funnel(
    events: pd.DataFrame | PreparedEvents,
    steps: list[str],
    *,
    window: timedelta,
    segment_by: str | None = None,
    ordered: bool = True,
) -> FunnelResult:
    """Users reaching each step (within ``window`` of step 1), conversions with Wilson intervals, drop-off,
    time per step, the same per segment and significant segment differences. See the module docstring."""
    steps = _validate_funnel_args(steps, window, ordered)
    prepared = as_prepared(events)
    if segment_by is not None:
        segment_of_user = user_attribute(prepared, segment_by)
    frame = prepared.events
    user = frame["_user"].to_numpy()
    t_ns = timestamps_ns(frame["timestamp"])
    event = frame["event"].to_numpy(dtype=object)
    window_ns = int(window / timedelta(microseconds=1)) * 1000

    notes = []
    present = set(pd.unique(event)) if len(event) else set()
    absent = [s for s in dict.fromkeys(steps) if s not in present]
    if absent:
        notes.append(f"step(s) never seen in the events: {', '.join(absent)}")
    if not prepared.quarantined.empty:
        notes.append(f"{len(prepared.quarantined)} row(s) quarantined (see `quarantined`)")

    au, depth, times, start = _best_attempts(user, t_ns, event, steps, window_ns, ordered)
    reached = depth >= 1
    au, depth, times, start = au[reached], depth[reached], times[reached], start[reached]
    seconds = np.full(times.shape, np.nan)
    for k in range(len(steps)):
        here = depth >= k + 1
        if ordered:
            if k > 0:
                seconds[here, k] = (times[here, k] - times[here, k - 1]) / _NS_PER_S
        else:
            seconds[here, k] = (times[here, k] - start[here]) / _NS_PER_S
    table = _step_table(steps, depth, seconds)

    first_user_row = np.unique(user, return_index=True)[1] if len(user) else np.zeros(0, dtype=np.int64)
    original_user = frame["user"].to_numpy(dtype=object)[first_user_row]
    per_user = pd.DataFrame(
        {
            "user": original_user[au] if len(au) else pd.Series(dtype=object),
            "depth": depth,
            "converted": depth == len(steps),
            "started_at": pd.to_datetime(start, utc=True),
        }
    )
    by_segment = pd.DataFrame(columns=["segment", *TABLE_COLUMNS])
    tests = _segment_tests(by_segment, table)
    if segment_by is not None:
        seg = segment_of_user[au] if len(au) else np.zeros(0, dtype=object)
        per_user.insert(1, "segment", seg)
        parts = []
        for label in sorted(set(seg)):
            mine = seg == label
            part = _step_table(steps, depth[mine], seconds[mine])
            part.insert(0, "segment", label)
            parts.append(part)
        if parts:
            by_segment = pd.concat(parts, ignore_index=True)
            tests = _segment_tests(by_segment, table)
    return FunnelResult(
        steps=steps,
        window=window,
        ordered=ordered,
        segment_by=segment_by,
        table=table,
        by_segment=by_segment,
        segment_tests=tests,
        per_user=per_user,
        users_total=prepared.n_users,
        span_days=prepared.span_days,
        quarantined=prepared.quarantined,
        notes=notes,
    )
