"""PUXT funnels: validation and quarantine, sessions, hand-computed funnel counts, Wilson intervals, segment tests."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

from framework2.errors import DataError
from framework2.tasks.journeys.funnels import (
    funnel,
    prepare_events,
    two_proportion_test,
    wilson_interval,
)

T0 = pd.Timestamp("2025-01-01", tz="UTC")


def _events(spec: dict[str, list[tuple[str, float]]], segments: dict[str, str] | None = None) -> pd.DataFrame:
    """Rows from {user: [(event, minutes after T0), ...]}, shuffled so nothing relies on input order."""
    rows = [
        {"user": user, "event": event, "timestamp": T0 + pd.Timedelta(minutes=minutes)}
        for user, items in spec.items()
        for event, minutes in items
    ]
    frame = pd.DataFrame(rows)
    if segments is not None:
        frame["segment"] = frame["user"].map(segments)
    return frame.sample(frac=1.0, random_state=1).reset_index(drop=True)


# Hand-computed funnel A → B → C, window 1 hour:
#   u1 A0 B10 C20            depth 3, B-A 600 s, C-B 600 s
#   u2 B0 A5 C10             out of order: from A5 there is no later B → depth 1
#   u3 A0 C10                skips B → depth 1
#   u4 A0 B30 C90            C is 90 min after A, outside the window → depth 2, B-A 1800 s
#   u5 A0 B70 | A100 B110 C120  the first attempt expires; the second is complete → depth 3, 600 s, 600 s
#   u6 B0 C5                 never does A → not in the funnel
#   u7 A0 B5 C35             depth 3, 300 s, 1800 s; segment d first, later rows say m
SPEC = {
    "u1": [("A", 0), ("B", 10), ("C", 20)],
    "u2": [("B", 0), ("A", 5), ("C", 10)],
    "u3": [("A", 0), ("C", 10)],
    "u4": [("A", 0), ("B", 30), ("C", 90)],
    "u5": [("A", 0), ("B", 70), ("A", 100), ("B", 110), ("C", 120)],
    "u6": [("B", 0), ("C", 5)],
    "u7": [("A", 0), ("B", 5), ("C", 35)],
}
SEGMENTS = {"u1": "m", "u2": "m", "u3": "d", "u4": "d", "u5": "d", "u6": "m", "u7": "d"}


@pytest.fixture()
def hand_events() -> pd.DataFrame:
    frame = _events(SPEC, SEGMENTS)
    # u7 switches device later on: the first value (d) must win.
    late = (frame["user"] == "u7") & (frame["event"] == "C")
    frame.loc[late, "segment"] = "m"
    return frame


def test_funnel_counts_by_hand(hand_events: pd.DataFrame) -> None:
    result = funnel(hand_events, ["A", "B", "C"], window=timedelta(hours=1), segment_by="segment")
    t = result.table
    assert t["users"].tolist() == [6, 4, 3]
    assert t["step_conversion"].tolist() == pytest.approx([1.0, 4 / 6, 3 / 4])
    assert t["overall_conversion"].tolist() == pytest.approx([1.0, 4 / 6, 3 / 6])
    assert t["drop_off"].tolist() == [2, 1, 0]
    assert t["drop_off_share"].tolist() == pytest.approx([2 / 6, 1 / 4, 0.0])
    # B-A: 600, 1800, 600, 300 s; C-B: 600, 600, 1800 s (numpy's linear p90).
    assert t["median_seconds"].iloc[1] == pytest.approx(600)
    assert t["p90_seconds"].iloc[1] == pytest.approx(1440)
    assert t["median_seconds"].iloc[2] == pytest.approx(600)
    assert t["p90_seconds"].iloc[2] == pytest.approx(1560)
    assert np.isnan(t["median_seconds"].iloc[0])
    assert result.users_total == 7
    assert result.entered == 6 and result.converted == 3
    depth = dict(zip(result.per_user["user"], result.per_user["depth"], strict=True))
    assert depth == {"u1": 3, "u2": 1, "u3": 1, "u4": 2, "u5": 3, "u7": 3}


def test_funnel_segment_split(hand_events: pd.DataFrame) -> None:
    result = funnel(hand_events, ["A", "B", "C"], window=timedelta(hours=1), segment_by="segment")
    users = {seg: part["users"].tolist() for seg, part in result.by_segment.groupby("segment")}
    assert users == {"d": [4, 3, 2], "m": [2, 1, 1]}
    seg = dict(zip(result.per_user["user"], result.per_user["segment"], strict=True))
    assert seg["u7"] == "d"
    # Tiny samples: tested, but never flagged.
    assert len(result.segment_tests) == 4
    assert result.flags.empty


def test_window_expiry_and_longer_window(hand_events: pd.DataFrame) -> None:
    result = funnel(hand_events, ["A", "B", "C"], window=timedelta(hours=2))
    # u4's C (90 min) now counts.
    assert result.table["users"].tolist() == [6, 4, 4]
    short = funnel(hand_events, ["A", "B", "C"], window=timedelta(minutes=15))
    # B within 15 min of A: u1 (10), u5's second attempt (10), u7 (5); every C is more than 15 min after A.
    assert short.table["users"].tolist() == [6, 3, 0]


def test_window_boundary_is_inclusive() -> None:
    events = _events({"u": [("A", 0), ("B", 60)]})
    assert funnel(events, ["A", "B"], window=timedelta(hours=1)).table["users"].tolist() == [1, 1]
    assert funnel(events, ["A", "B"], window=timedelta(minutes=59)).table["users"].tolist() == [1, 0]


def test_unordered_funnel(hand_events: pd.DataFrame) -> None:
    result = funnel(hand_events, ["A", "B", "C"], window=timedelta(hours=1), ordered=False)
    # u2 now completes (any order); u6 never does A; u4's window from A holds A and B only.
    assert result.table["users"].tolist() == [6, 5, 4]
    assert result.time_basis == "window start"


def test_repeated_step_in_ordered_funnel() -> None:
    events = _events({"u1": [("view", 0), ("view", 1), ("buy", 2)], "u2": [("view", 0), ("buy", 1)]})
    result = funnel(events, ["view", "view", "buy"], window=timedelta(hours=1))
    assert result.table["users"].tolist() == [2, 1, 1]


def test_funnel_argument_errors(hand_events: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="non-empty list"):
        funnel(hand_events, [], window=timedelta(hours=1))
    with pytest.raises(DataError, match="positive timedelta"):
        funnel(hand_events, ["A"], window=timedelta(0))
    with pytest.raises(DataError, match="cannot split by 'device'"):
        funnel(hand_events, ["A", "B"], window=timedelta(hours=1), segment_by="device")
    with pytest.raises(DataError, match="twice"):
        funnel(hand_events, ["A", "A"], window=timedelta(hours=1), ordered=False)


def test_absent_step_is_noted(hand_events: pd.DataFrame) -> None:
    result = funnel(hand_events, ["A", "Z"], window=timedelta(hours=1))
    assert result.table["users"].tolist() == [6, 0]
    assert any("Z" in note for note in result.notes)


def test_missing_columns_error_names_them() -> None:
    with pytest.raises(DataError) as info:
        prepare_events(pd.DataFrame({"user": ["a"], "when": ["2025-01-01"]}))
    assert "event" in info.value.message and "timestamp" in info.value.message
    assert "user" not in info.value.message.split(":")[1]


def test_bad_rows_are_quarantined_with_reasons() -> None:
    events = pd.DataFrame(
        {
            "user": ["a", None, "c", "d", "  ", "f", "g"],
            "event": ["A", "A", "", "A", "A", None, "B"],
            "timestamp": [
                "2025-01-01T00:00:00Z",
                "2025-01-01T00:01:00Z",
                "2025-01-01T00:02:00Z",
                "not a date",
                "2025-01-01T00:04:00Z",
                None,
                "01/02/2025 10:00",
            ],
        }
    )
    prepared = prepare_events(events)
    assert len(prepared.events) + len(prepared.quarantined) == len(events)
    reasons = dict(zip(prepared.quarantined.index, prepared.quarantined["reason"], strict=True))
    assert reasons == {
        1: "user is missing",
        2: "event is missing",
        3: "timestamp 'not a date' is not a readable date",
        4: "user is missing",
        5: "event is missing; timestamp is missing",
    }
    # Non-ISO dates still parse (the slow path), and the kept rows keep their other values.
    assert sorted(prepared.events["user"]) == ["a", "g"]
    result = funnel(events, ["A"], window=timedelta(hours=1))
    assert len(result.quarantined) == 5
    assert any("quarantined" in note for note in result.notes)


def test_all_rows_bad_gives_an_empty_funnel() -> None:
    events = pd.DataFrame({"user": [None], "event": ["A"], "timestamp": ["x"]})
    result = funnel(events, ["A", "B"], window=timedelta(hours=1), segment_by=None)
    assert result.table["users"].tolist() == [0, 0]
    assert len(result.quarantined) == 1


def test_timestamps_naive_numeric_and_timezones() -> None:
    naive = pd.DataFrame(
        {"user": ["a", "a"], "event": ["A", "B"], "timestamp": pd.to_datetime(["2025-01-01 00:00", "2025-01-01 00:10"])}
    )
    numeric = naive.assign(timestamp=naive["timestamp"].astype("int64") // 10**9)
    zoned = pd.DataFrame(
        {"user": ["a", "a"], "event": ["A", "B"], "timestamp": ["2025-01-01T01:00:00+01:00", "2025-01-01T00:10:00Z"]}
    )
    for frame in (naive, numeric, zoned):
        prepared = prepare_events(frame)
        assert prepared.quarantined.empty
        assert prepared.events["timestamp"].iloc[0] == T0


def test_sessions_split_on_gap_or_given_column() -> None:
    events = _events({"u": [("A", 0), ("B", 29), ("C", 60), ("D", 200)], "v": [("A", 0)]})
    prepared = prepare_events(events)
    by_user = prepared.events.groupby("user")["_session"].nunique().to_dict()
    assert by_user == {"u": 3, "v": 1}  # 29 min < 30 min gap; 31 and 140 min split
    assert prepare_events(events, session_gap=timedelta(hours=3)).events.groupby("user")["_session"].nunique()["u"] == 1
    given = events.assign(session=np.where(events["event"].isin(["A", "D"]), "s1", "s2"))
    prepared = prepare_events(given)
    # u's s1 = {A, D}, s2 = {B, C}; v's s1 is a different session from u's s1.
    assert prepared.n_sessions == 3


def test_wilson_matches_statsmodels() -> None:
    successes = np.array([0, 1, 5, 37, 50, 99, 100])
    trials = np.array([10, 10, 20, 80, 50, 100, 100])
    low, high = wilson_interval(successes, trials)
    for x, n, lo, hi in zip(successes, trials, low, high, strict=True):
        ref_lo, ref_hi = proportion_confint(x, n, alpha=0.05, method="wilson")
        assert lo == pytest.approx(ref_lo, abs=1e-12)
        assert hi == pytest.approx(ref_hi, abs=1e-12)
    nan_low, _ = wilson_interval(0, 0)
    assert np.isnan(nan_low)


def test_two_proportion_test_matches_statsmodels() -> None:
    z, p = two_proportion_test(45, 100, 70, 110)
    ref_z, ref_p = proportions_ztest([45, 70], [100, 110])
    assert z == pytest.approx(ref_z) and p == pytest.approx(ref_p)


def test_segment_flag_on_a_planted_difference() -> None:
    rng = np.random.default_rng(3)
    spec, segments = {}, {}
    for i in range(600):
        user = f"u{i}"
        segments[user] = "bad" if i % 3 == 0 else "good"
        rate = 0.3 if segments[user] == "bad" else 0.6
        spec[user] = [("A", 0)] + ([("B", 5)] if rng.random() < rate else [])
    result = funnel(_events(spec, segments), ["A", "B"], window=timedelta(hours=1), segment_by="segment")
    flags = result.flags
    assert set(flags["segment"]) == {"bad", "good"}
    bad = flags[flags["segment"] == "bad"].iloc[0]
    assert bad["difference"] == pytest.approx(bad["rate"] - bad["rest_rate"])
    assert bad["difference"] < -0.2 and bad["p_value"] < 0.01
    assert (bad["from_step"], bad["to_step"]) == ("A", "B")


def test_out_of_range_and_odd_timestamps_are_quarantined_not_raised() -> None:
    far = pd.Series(np.array(["3000-01-01", "2025-01-01"], dtype="datetime64[us]"))
    for stamps in ([1e20, 1.7e9], far, far.dt.tz_localize("Europe/Paris"), ["3000-01-01T00:00:00", "2025-01-01"]):
        prepared = prepare_events(pd.DataFrame({"user": ["a", "b"], "event": ["e", "e"], "timestamp": stamps}))
        assert len(prepared.events) == 1
        assert prepared.quarantined["reason"].str.contains("not a readable date").all()
