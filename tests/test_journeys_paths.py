"""PUXT session paths: collapsed, truncated paths with counts and conversion; next-step transition tables."""

from __future__ import annotations

import pandas as pd
import pytest

from framework2.errors import DataError
from framework2.tasks.journeys.funnels import prepare_events
from framework2.tasks.journeys.paths import EXIT, paths

T0 = pd.Timestamp("2025-01-01", tz="UTC")


def _sessions(spec: list[tuple[str, list[str]]]) -> pd.DataFrame:
    """One session per (user, events) item, a minute between events, sessions a day apart."""
    rows = []
    for day, (user, events) in enumerate(spec):
        rows += [
            {"user": user, "event": e, "timestamp": T0 + pd.Timedelta(days=day, minutes=i)}
            for i, e in enumerate(events)
        ]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=2).reset_index(drop=True)


SPEC = [
    ("u1", ["a", "b", "b", "c"]),  # → a → b → c, converts
    ("u2", ["a", "b", "c"]),  # → a → b → c, converts
    ("u1", ["a", "b"]),  # → a → b, a second session of u1
    ("u3", ["a", "d", "a", "d", "a", "d", "a", "e"]),  # loops; 8 steps, truncated to 6
]


def test_top_paths_counts_share_and_conversion() -> None:
    result = paths(_sessions(SPEC), goal="c", k=6)
    assert result.sessions == 4 and result.conversions == 2 and result.distinct_paths == 3
    assert result.conversion_rate == pytest.approx(0.5)
    top = result.top.set_index("path")
    assert top.index.tolist() == ["a → b → c", "a → b", "a → d → a → d → a → d"]
    assert top["sessions"].tolist() == [2, 1, 1]
    assert top["share"].tolist() == pytest.approx([0.5, 0.25, 0.25])
    assert top["conversions"].tolist() == [2, 0, 0]
    assert top["conversion_rate"].tolist() == pytest.approx([1.0, 0.0, 0.0])
    assert top["loops"].tolist() == [False, False, True]
    assert top["continued"].tolist() == [0, 0, 1]
    assert top.loc["a → b → c", "steps"] == ("a", "b", "c")


def test_truncation_depth_and_top_limit() -> None:
    result = paths(_sessions(SPEC), goal="c", k=2, top=1)
    # With two steps a → b covers three sessions.
    assert result.top[["path", "sessions", "conversions"]].values.tolist() == [["a → b", 3, 2]]
    assert result.distinct_paths == 2


def test_goal_counts_after_the_shown_steps() -> None:
    spec = [("u", ["a", "b", "a", "b", "x"])]
    result = paths(_sessions(spec), goal="x", k=2)
    assert result.top["conversions"].tolist() == [1]


def test_next_steps_and_sankey_transitions() -> None:
    result = paths(_sessions(SPEC), goal="c", k=6)
    nxt = {(r.source, r.target): r.count for r in result.next_steps.itertuples()}
    assert nxt == {
        ("a", "b"): 3,
        ("a", "d"): 3,
        ("a", "e"): 1,
        ("d", "a"): 3,
        ("b", "c"): 2,
        ("b", EXIT): 1,
        ("c", EXIT): 2,
        ("e", EXIT): 1,
    }
    share = result.next_steps.set_index(["source", "target"])["share"]
    assert share[("a", "b")] == pytest.approx(3 / 7)
    sankey = {(r.step, r.source, r.target): r.sessions for r in result.transitions.itertuples()}
    assert sankey[(1, "a", "b")] == 3 and sankey[(1, "a", "d")] == 1
    assert sankey[(2, "b", "c")] == 2 and sankey[(2, "b", EXIT)] == 1
    assert sankey[(3, "c", EXIT)] == 2
    assert sankey[(6, "d", "a")] == 1  # moves out of the last shown position are kept
    assert max(step for step, _, _ in sankey) == 6


def test_given_session_column_is_used() -> None:
    events = _sessions([("u", ["a", "b", "c", "d"])])
    events["session"] = events["event"].map({"a": "s1", "b": "s2", "c": "s1", "d": "s2"})
    result = paths(events, goal="d")
    # Interleaved in time, yet each session keeps its own order: a → c and b → d.
    assert sorted(result.top["path"]) == ["a → c", "b → d"]
    assert result.top.set_index("path")["conversions"].to_dict() == {"a → c": 0, "b → d": 1}


def test_without_goal_and_unknown_goal() -> None:
    events = _sessions(SPEC)
    plain = paths(events)
    assert plain.top["conversion_rate"].isna().all()
    unknown = paths(prepare_events(events), goal="nope")
    assert unknown.conversions == 0
    assert any("never occurs" in n for n in unknown.notes)


def test_bad_arguments() -> None:
    with pytest.raises(DataError):
        paths(_sessions(SPEC), k=0)
    with pytest.raises(DataError):
        paths(_sessions(SPEC), top=0)


def test_empty_events() -> None:
    result = paths(pd.DataFrame({"user": [], "event": [], "timestamp": []}), goal="c")
    assert result.sessions == 0 and result.top.empty and result.next_steps.empty
