"""PUXT session paths: the most common journeys through a session and where people go next.

A session's **path** is its sequence of events in time order with consecutive repeats collapsed (three
``product_view`` in a row are one step: reloads and pagination say nothing about the journey), truncated to the
first ``k`` steps (default 6). Sessions are grouped by that path; per path: ``sessions``, ``share`` of all
sessions, ``conversions`` (sessions in which the ``goal`` event happens anywhere, also after step ``k``),
``conversion_rate``, ``continued`` (sessions that went on past step ``k``) and ``loops`` (an event comes back
after something else happened in between, e.g. product_view → search → product_view).

Two transition tables:

- ``transitions`` (Sankey-like, from each of the first ``k`` positions): per source position ``step``
  (1-based), ``source`` → ``target``, ``sessions`` and ``share`` of the sessions at that source and position;
  ``target`` is ``EXIT`` when the session ends there.
- ``next_steps`` (over whole collapsed sessions): ``source`` → ``target`` counts with ``share`` of the source's
  outgoing moves ("after add_to_cart, 30 % leave").

Everything is array work on event codes (no per-session Python), so a million events take about a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import pandas as pd

from framework2.errors import DataError
from framework2.tasks.journeys.funnels import DEFAULT_SESSION_GAP, PreparedEvents, as_prepared

EXIT = "(exit)"
ARROW = " → "


@dataclass(frozen=True)
class SessionSequences:
    """Collapsed sessions as flat arrays, ordered by session then time.

    ``codes`` are event codes into ``names``; ``session`` the session code of each element; ``starts`` the index
    of each session's first element and ``lengths`` its collapsed length; ``converted`` per session.
    """

    codes: np.ndarray
    session: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    names: np.ndarray
    converted: np.ndarray
    goal_code: int | None

    @property
    def rank(self) -> np.ndarray:
        """0-based position of each element in its session."""
        return np.arange(len(self.codes)) - np.repeat(self.starts, self.lengths)


def session_sequences(prepared: PreparedEvents, goal: str | None = None) -> SessionSequences:
    """Each session's events in time order, consecutive duplicates collapsed, and whether it reached ``goal``."""
    frame = prepared.events
    n_sessions = prepared.n_sessions
    sess = frame["_session"].to_numpy()
    codes = frame["_event"].to_numpy()
    # Rows are sorted by user then time; a given session column may interleave a user's sessions in time.
    if len(sess) > 1 and np.any(np.diff(sess) < 0):
        order = np.argsort(sess, kind="stable")
        sess, codes = sess[order], codes[order]
    n_codes = int(codes.max()) + 1 if len(codes) else 0
    names = np.empty(n_codes, dtype=object)
    if len(codes):
        first = np.unique(frame["_event"].to_numpy(), return_index=True)[1]
        names[:] = frame["event"].to_numpy(dtype=object)[first]
    goal_code = None
    if goal is not None:
        hits = np.flatnonzero(names == goal)
        goal_code = int(hits[0]) if len(hits) else None
    converted = np.zeros(n_sessions, dtype=bool)
    if goal_code is not None:
        converted[sess[codes == goal_code]] = True

    keep = np.ones(len(codes), dtype=bool)
    keep[1:] = (codes[1:] != codes[:-1]) | (sess[1:] != sess[:-1])
    codes, sess = codes[keep], sess[keep]
    new = np.ones(len(sess), dtype=bool)
    new[1:] = sess[1:] != sess[:-1]
    starts = np.flatnonzero(new)
    lengths = np.diff(np.append(starts, len(sess)))
    return SessionSequences(codes, sess, starts, lengths, names, converted, goal_code)


@dataclass(frozen=True)
class PathsResult:
    """Top session paths and transition tables; see the module docstring for the columns."""

    top: pd.DataFrame
    transitions: pd.DataFrame
    next_steps: pd.DataFrame
    sessions: int
    conversions: int
    distinct_paths: int
    goal: str | None
    k: int
    span_days: float
    quarantined: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def conversion_rate(self) -> float:
        """Share of sessions reaching the goal (NaN without sessions or goal)."""
        if self.goal is None or self.sessions == 0:
            return float("nan")
        return self.conversions / self.sessions


def _path_table(seqs: SessionSequences, k: int) -> tuple[pd.DataFrame, int]:
    """Every distinct truncated path with its counts, most frequent first (ties by path text)."""
    n_sessions = len(seqs.starts)
    columns = ["path", "steps", "length", "sessions", "share", "conversions", "conversion_rate", "continued", "loops"]
    if n_sessions == 0:
        return pd.DataFrame(columns=columns), 0
    rank = seqs.rank
    shown = rank < k
    matrix = np.full((n_sessions, k), -1, dtype=np.int64)
    # Session codes are contiguous from 0, so they index the matrix rows directly.
    row_of_session = np.full(int(seqs.session.max()) + 1, -1, dtype=np.int64)
    row_of_session[seqs.session[seqs.starts]] = np.arange(n_sessions)
    matrix[row_of_session[seqs.session[shown]], rank[shown]] = seqs.codes[shown]
    converted = seqs.converted[seqs.session[seqs.starts]]
    continued = seqs.lengths > k
    unique, inverse, counts = np.unique(matrix, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    conversions = np.bincount(inverse, weights=converted, minlength=len(unique)).astype(np.int64)
    went_on = np.bincount(inverse, weights=continued, minlength=len(unique)).astype(np.int64)
    steps = [tuple(str(seqs.names[c]) for c in row if c >= 0) for row in unique]
    table = pd.DataFrame(
        {
            "path": [ARROW.join(s) for s in steps],
            "steps": steps,
            "length": [len(s) for s in steps],
            "sessions": counts.astype(np.int64),
            "share": counts / n_sessions,
            "conversions": conversions,
            "conversion_rate": conversions / counts,
            "continued": went_on,
            "loops": [len(set(s)) < len(s) for s in steps],
        },
        columns=columns,
    )
    table = table.sort_values(["sessions", "path"], ascending=[False, True], kind="stable").reset_index(drop=True)
    return table, len(unique)


def _transitions(seqs: SessionSequences, k: int) -> pd.DataFrame:
    """Per source position (the first ``k``), source → target (or EXIT) session counts."""
    columns = ["step", "source", "target", "sessions", "share"]
    if len(seqs.codes) == 0:
        return pd.DataFrame(columns=columns)
    rank = seqs.rank
    is_last = np.zeros(len(seqs.codes), dtype=bool)
    is_last[seqs.starts + seqs.lengths - 1] = True
    exit_code = len(seqs.names)
    nxt = np.append(seqs.codes[1:], exit_code)
    target = np.where(is_last, exit_code, nxt)
    rows = rank < k
    width = exit_code + 1
    key = (rank[rows] * width + seqs.codes[rows]) * width + target[rows]
    uniq, counts = np.unique(key, return_counts=True)
    names = np.append(seqs.names, EXIT)
    table = pd.DataFrame(
        {
            "step": uniq // (width * width) + 1,
            "source": names[(uniq // width) % width],
            "target": names[uniq % width],
            "sessions": counts.astype(np.int64),
        }
    )
    table["share"] = table["sessions"] / table.groupby(["step", "source"])["sessions"].transform("sum")
    return table.sort_values(["step", "sessions", "source", "target"], ascending=[True, False, True, True]).reset_index(
        drop=True
    )[columns]


def _next_steps(seqs: SessionSequences) -> pd.DataFrame:
    """source → target (or EXIT) counts over whole collapsed sessions, with the share of the source's moves."""
    columns = ["source", "target", "count", "share"]
    if len(seqs.codes) == 0:
        return pd.DataFrame(columns=columns)
    is_last = np.zeros(len(seqs.codes), dtype=bool)
    is_last[seqs.starts + seqs.lengths - 1] = True
    exit_code = len(seqs.names)
    target = np.where(is_last, exit_code, np.append(seqs.codes[1:], exit_code))
    width = exit_code + 1
    uniq, counts = np.unique(seqs.codes * width + target, return_counts=True)
    names = np.append(seqs.names, EXIT)
    table = pd.DataFrame(
        {"source": names[uniq // width], "target": names[uniq % width], "count": counts.astype(np.int64)}
    )
    table["share"] = table["count"] / table.groupby("source")["count"].transform("sum")
    return table.sort_values(["count", "source", "target"], ascending=[False, True, True]).reset_index(drop=True)[
        columns
    ]


def paths(
    events: pd.DataFrame | PreparedEvents,
    *,
    goal: str | None = None,
    k: int = 6,
    top: int = 20,
    session_gap: timedelta = DEFAULT_SESSION_GAP,
) -> PathsResult:
    """The ``top`` most common session paths (first ``k`` collapsed steps) with share and conversion to ``goal``,
    plus next-step transition tables. ``session_gap`` applies only when ``events`` is a raw table."""
    if not isinstance(k, int) or k < 1:
        raise DataError(f"k (steps per path) must be a positive integer, got {k!r}", "the default is 6")
    if not isinstance(top, int) or top < 1:
        raise DataError(f"top must be a positive integer, got {top!r}", "e.g. 20")
    prepared = as_prepared(events, session_gap)
    seqs = session_sequences(prepared, goal)
    table, distinct = _path_table(seqs, k)
    notes = []
    if goal is not None and seqs.goal_code is None:
        notes.append(f"goal event {goal!r} never occurs: every conversion rate is 0")
    if not prepared.quarantined.empty:
        notes.append(f"{len(prepared.quarantined)} row(s) quarantined (see `quarantined`)")
    if goal is None:
        table["conversions"] = 0
        table["conversion_rate"] = np.nan
    return PathsResult(
        top=table.head(top).reset_index(drop=True),
        transitions=_transitions(seqs, k),
        next_steps=_next_steps(seqs),
        sessions=len(seqs.starts),
        conversions=int(seqs.converted.sum()),
        distinct_paths=distinct,
        goal=goal,
        k=k,
        span_days=prepared.span_days,
        quarantined=prepared.quarantined,
        notes=notes,
    )
