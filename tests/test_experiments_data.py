"""Exposures and events to per-arm sufficient statistics: loading, quarantine, per-user semantics, speed paths."""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from framework2.errors import DataError
from framework2.sample.experiments import SRM_DELIVERED, large_dataset, sample_experiments
from framework2.tasks.experiments.data import (
    QUARANTINE_COLUMNS,
    ExperimentData,
    aggregate,
    aggregate_many,
    load_table,
    load_tables,
    normalise_tables,
    read_sql_query,
    read_sql_table,
)
from framework2.tasks.experiments.model import ArmStats, ExperimentSpec, MetricSpec


def _spec(**overrides: object) -> ExperimentSpec:
    base: dict[str, object] = {
        "key": "exp",
        "variations": ["control", "treatment"],
        "start": datetime(2025, 1, 1, tzinfo=UTC),
        "end": datetime(2025, 1, 31, tzinfo=UTC),
        "pre_period_days": 7,
        "metrics": [
            MetricSpec(name="conv", kind="binomial", event="purchase"),
            MetricSpec(name="rev", kind="mean", event="purchase"),
            MetricSpec(name="load", kind="mean", event="load_time", missing="exclude"),
            MetricSpec(name="cps", kind="ratio", event="click", denominator_event="session"),
        ],
    }
    return ExperimentSpec.model_validate(base | overrides)


# Hand-written world. u1/u2 control, u3/u4 treatment; u5 saw both arms; u6's variation is unknown; u7's
# timestamp is garbage; u8 was exposed before the start; one row has no user; "other" is not analysed.
EXPOSURES = pd.DataFrame(
    [
        ("exp", "u1", "control", "2025-01-10T10:00:00Z"),
        ("exp", "u1", "control", "2025-01-12T09:00:00+00:00"),  # a repeat: the first exposure still counts
        ("exp", "u2", "control", "2025-01-11 00:00:00"),  # no offset: UTC
        ("exp", "u3", "treatment", "2025-01-10T00:00:00Z"),
        ("exp", "u4", "treatment", "2025-01-15T12:00:00Z"),
        ("exp", "u5", "control", "2025-01-10T00:00:00Z"),
        ("exp", "u5", "treatment", "2025-01-11T00:00:00Z"),
        ("exp", "u6", "blue", "2025-01-10T00:00:00Z"),
        ("exp", "u7", "control", "next tuesday"),
        ("exp", "u8", "control", "2024-12-20T00:00:00Z"),
        ("exp", None, "control", "2025-01-10T00:00:00Z"),
        ("other", "u1", "x", "2025-01-10T00:00:00Z"),
    ],
    columns=["experiment", "user", "variation", "timestamp"],
)
EVENTS = pd.DataFrame(
    [
        # u1 (first exposure Jan 10 10:00; pre-period from Jan 3 10:00)
        ("u1", "purchase", "2025-01-03T09:59:59Z", "1000"),  # just before the pre-period: ignored
        ("u1", "purchase", "2025-01-03T10:00:00Z", "7"),  # exactly at the pre-period's start: covariate
        ("u1", "purchase", "2025-01-09T00:00:00Z", "20"),  # covariate
        ("u1", "purchase", "2025-01-10T10:00:00Z", "30"),  # exactly at exposure: counts
        ("u1", "purchase", "2025-01-20T00:00:00Z", "10"),
        ("u1", "session", "2025-01-11T00:00:00Z", None),  # no session row has a value: each counts 1
        ("u1", "session", "2025-01-12T00:00:00Z", ""),
        ("u1", "click", "2025-01-11T00:01:00Z", "3"),
        ("u1", "click", "2025-01-12T00:01:00Z", "2"),
        ("u1", "load_time", "2025-01-11T00:00:05Z", "1.5"),
        # u2 (exposed Jan 11): a purchase long before, one session without clicks
        ("u2", "purchase", "2025-01-01T00:00:00Z", "99"),
        ("u2", "session", "2025-01-11T08:00:00Z", None),
        # u3 (exposed Jan 10): pre-period purchase, one in window, one after the end; clicks but no session
        ("u3", "purchase", "2025-01-05T00:00:00Z", "15"),
        ("u3", "purchase", "2025-01-12T00:00:00Z", "50"),
        ("u3", "purchase", "2025-02-05T00:00:00Z", "70"),
        ("u3", "click", "2025-01-12T00:00:00Z", "4"),
        ("u3", "load_time", "2025-01-12T00:00:00Z", "2"),
        ("u3", "load_time", "2025-01-13T00:00:00Z", "3"),
        # u4 (exposed Jan 15 12:00): only a pre-period session
        ("u4", "session", "2025-01-10T00:00:00Z", None),
        # u5 is excluded (both arms); "nobody" was never exposed
        ("u5", "purchase", "2025-01-12T00:00:00Z", "100"),
        ("nobody", "purchase", "2025-01-12T00:00:00Z", "100"),
        # bad rows
        ("u1", "purchase", "2025-01-12T00:00:00Z", "abc"),
        (None, "purchase", "2025-01-12T00:00:00Z", "5"),
        ("u1", "purchase", "", "5"),
    ],
    columns=["user", "event", "timestamp", "value"],
)

EXPECTED: dict[str, dict[str, dict[str, float]]] = {
    "conv": {
        "control": {"n": 2, "total": 1, "total_sq": 1, "cov_total": 1, "cov_total_sq": 1, "cov_value": 1},
        "treatment": {"n": 2, "total": 1, "total_sq": 1, "cov_total": 1, "cov_total_sq": 1, "cov_value": 1},
    },
    "rev": {
        # u1: 30 + 10 = 40, covariate 7 + 20 = 27; u2: 0
        "control": {"n": 2, "total": 40, "total_sq": 1600, "cov_total": 27, "cov_total_sq": 729, "cov_value": 1080},
        # u3: 50 (the purchase after the end does not count), covariate 15; u4: 0
        "treatment": {"n": 2, "total": 50, "total_sq": 2500, "cov_total": 15, "cov_total_sq": 225, "cov_value": 750},
    },
    "load": {  # missing="exclude": only users with a load time, per-user sums
        "control": {"n": 1, "total": 1.5, "total_sq": 2.25},
        "treatment": {"n": 1, "total": 5, "total_sq": 25},
    },
    "cps": {
        # u1: 5 clicks / 2 sessions, u2: 0 / 1; u3 (no session) and u4 (session only before) are not analysed
        "control": {"n": 2, "total": 5, "total_sq": 25, "den_total": 3, "den_total_sq": 5, "num_den": 10},
        "treatment": {"n": 0, "total": 0, "total_sq": 0, "den_total": 0, "den_total_sq": 0, "num_den": 0},
    },
}


def _check(stats: dict[str, dict[str, ArmStats]], expected: dict[str, dict[str, dict[str, float]]]) -> None:
    for metric, arms in expected.items():
        for variation, want in arms.items():
            got = asdict(stats[metric][variation])
            for name, value in want.items():
                assert got[name] == pytest.approx(value, abs=1e-12), (metric, variation, name)


def test_per_user_semantics_on_a_hand_written_world() -> None:
    data = aggregate(_spec(), EXPOSURES, EVENTS)
    _check(data.stats, EXPECTED)
    assert data.users == {"control": 2, "treatment": 2}
    assert {a.users for arms in data.stats.values() for a in arms.values()} == {2}
    assert data.exposure_rows == 11
    assert data.multiple_exposures == 1
    assert data.outside_window == 1
    # u1: 2 purchases, 2 sessions, 2 clicks, 1 load; u2: 1 session; u3: 1 purchase, 1 click, 2 loads
    assert data.events_attributed == 12
    assert data.pre_period_events == 4  # u1's two purchases, u3's purchase, u4's session
    assert data.stats["conv"]["control"].has_covariate
    assert not data.stats["load"]["control"].has_covariate  # nobody had a pre-period load time
    assert data.stats["cps"]["treatment"].has_covariate  # u4's pre-period session


def test_quarantine_names_each_bad_row_and_its_reason() -> None:
    data = aggregate(_spec(), EXPOSURES, EVENTS)
    q = data.quarantined
    assert list(q.columns) == list(QUARANTINE_COLUMNS)
    exposures = q[q["table"] == "exposures"].set_index("row")["reason"].to_dict()
    assert exposures[7] == "variation 'blue' is not one of control, treatment"
    assert exposures[8] == "unparsable timestamp (not ISO 8601)"
    assert exposures[10] == "missing user"
    assert len(exposures) == 3 and data.quarantined_exposures == 3
    events = q[q["table"] == "events"].set_index("row")
    assert events["reason"].to_dict() == {21: "non-numeric value", 22: "missing user", 23: "missing timestamp"}
    assert events.loc[21, "value"] == "abc"  # the row's own values come along
    assert q.loc[q["row"].eq(8) & q["table"].eq("exposures"), "timestamp"].item() == "next tuesday"
    assert data.quarantined_events == 3 and data.quarantined_rows == 6


def test_covariate_absent_without_a_pre_period() -> None:
    data = aggregate(_spec(pre_period_days=0), EXPOSURES, EVENTS)
    assert data.pre_period_events == 0
    for arms in data.stats.values():
        for arm in arms.values():
            assert not arm.has_covariate and arm.cov_total == arm.cov_value == 0.0
    _check(data.stats, {"rev": {"control": {"n": 2, "total": 40}}})


def test_as_of_cuts_exposures_and_events() -> None:
    data = aggregate(_spec(), EXPOSURES, EVENTS, as_of=datetime(2025, 1, 15))  # naive: UTC
    assert data.users == {"control": 2, "treatment": 1}  # u4 was exposed after as_of
    assert data.outside_window == 2
    assert data.stats["rev"]["control"].total == 30  # u1's purchase of Jan 20 is after as_of


def test_aggregate_many_matches_single_runs_and_ignores_other_experiments() -> None:
    other = _spec(key="other", variations=["x"], metrics=[MetricSpec(name="conv", kind="binomial", event="purchase")])
    both = aggregate_many([_spec(), other], EXPOSURES, EVENTS)
    assert both["exp"].stats == aggregate(_spec(), EXPOSURES, EVENTS).stats
    assert both["other"].users == {"x": 1}
    assert both["other"].stats["conv"]["x"].total == 1  # u1's purchases after Jan 10 00:00
    with pytest.raises(DataError, match="given twice"):
        aggregate_many([_spec(), _spec()], EXPOSURES, EVENTS)


def test_integer_and_text_user_ids_match_each_other() -> None:
    x = pd.DataFrame(
        {
            "experiment": ["exp"] * 2,
            "user": [101, 102],
            "variation": ["control", "treatment"],
            "timestamp": pd.to_datetime(["2025-01-10", "2025-01-10"], utc=True),
        }
    )
    e = pd.DataFrame({"user": ["101", "102", "103"], "event": "purchase", "timestamp": "2025-01-11T00:00:00Z"})
    data = aggregate(_spec(), x, e)
    assert data.stats["conv"]["control"].total == 1 and data.stats["conv"]["treatment"].total == 1
    assert data.stats["rev"]["treatment"].total == 1.0  # no value column: every event is worth 1


def test_missing_columns_raise_naming_them(tmp_path: Path) -> None:
    path = tmp_path / "exposures.csv"
    EXPOSURES.drop(columns=["variation", "timestamp"]).to_csv(path, index=False)
    with pytest.raises(DataError, match="variation, timestamp") as err:
        load_table(path, kind="exposures")
    assert "experiment, user, variation, timestamp" in err.value.hint
    with pytest.raises(DataError, match=r"events lack the column\(s\) event"):
        aggregate(_spec(), EXPOSURES, EVENTS.drop(columns=["event"]))


def test_bad_sources_raise_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="suffix"):
        load_table(tmp_path / "events.xlsx", kind="events")
    with pytest.raises(DataError, match="does not exist"):
        load_table(tmp_path / "events.parquet", kind="events")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="not readable"):
        load_table(tmp_path / "broken.parquet", kind="events")
    bad = EVENTS.assign(timestamp="yesterday")
    with pytest.raises(DataError, match="no timestamp parses"):
        aggregate(_spec(), EXPOSURES, bad)
    with pytest.raises(DataError, match="holds numbers"):
        aggregate(_spec(), EXPOSURES, EVENTS.assign(timestamp=1.7e9))
    with pytest.raises(DataError, match="does not exist"):
        read_sql_table(f"sqlite:///{tmp_path / 'missing.db'}", "events", kind="events")


def _same_results(a: dict[str, ExperimentData], b: dict[str, ExperimentData], *, exact: bool = True) -> None:
    """Same statistics; ``exact`` means bit-identical (users summed in the same order)."""
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].users == b[key].users
        assert a[key].quarantined_rows == b[key].quarantined_rows
        if exact:
            assert a[key].stats == b[key].stats, key
            continue
        for metric, arms in a[key].stats.items():
            for variation, arm in arms.items():
                other = asdict(b[key].stats[metric][variation])
                for name, value in asdict(arm).items():
                    assert other[name] == (pytest.approx(value, rel=1e-12) if isinstance(value, float) else value)


def test_csv_and_parquet_give_identical_stats(tmp_path: Path) -> None:
    specs, x, e = sample_experiments(3_000, seed=5)
    direct = aggregate_many(specs, x, e)
    x.to_csv(tmp_path / "x.csv", index=False)
    e.to_csv(tmp_path / "e.csv.gz", index=False)
    x.to_parquet(tmp_path / "x.parquet")
    e.to_parquet(tmp_path / "e.parquet")
    from_csv = aggregate_many(
        specs, load_table(tmp_path / "x.csv", kind="exposures"), load_table(tmp_path / "e.csv.gz", kind="events")
    )
    from_parquet = aggregate_many(specs, *load_tables(tmp_path / "x.parquet", tmp_path / "e.parquet"))
    _same_results(direct, from_csv)
    _same_results(direct, from_parquet)
    loaded = load_table(tmp_path / "x.parquet", kind="exposures")
    assert isinstance(loaded["user"].dtype, pd.CategoricalDtype)
    assert str(loaded["timestamp"].dtype) == "datetime64[ns, UTC]"


def test_csv_keeps_leading_zeros_and_bad_cells(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("experiment,user,variation,timestamp\nexp,007,control,2025-01-10T00:00:00Z\n")
    (tmp_path / "e.csv").write_text(
        "user,event,timestamp,value\n007,purchase,2025-01-11T00:00:00Z,12.5\n7,purchase,2025-01-11T00:00:00Z,1\n"
        "007,purchase,soon,3\n"
    )
    x, e = load_tables(tmp_path / "x.csv", tmp_path / "e.csv")
    assert x["user"].astype(str).tolist() == ["007"]
    assert e["timestamp"].dtype == object  # one cell does not parse: left as text for the quarantine
    data = aggregate(_spec(), x, e)
    assert data.stats["rev"]["control"].total == 12.5  # "7" is another user
    assert data.quarantined["reason"].tolist() == ["unparsable timestamp (not ISO 8601)"]


def test_sql_through_sqlalchemy(tmp_path: Path) -> None:
    specs, x, e = sample_experiments(2_000, seed=3, dirty=False)
    # SQLite stores microseconds: compare against the same data at that resolution.
    x["timestamp"], e["timestamp"] = x["timestamp"].dt.floor("us"), e["timestamp"].dt.floor("us")
    url = f"sqlite:///{tmp_path / 'experiments.db'}"
    engine = sa.create_engine(url)
    x.to_sql("exposures", engine, index=False)
    e.to_sql("events", engine, index=False)
    engine.dispose()
    direct = aggregate_many(specs, x, e)
    via_table = aggregate_many(
        specs, read_sql_table(url, "exposures", kind="exposures"), read_sql_table(url, "events", kind="events")
    )
    via_query = aggregate_many(
        specs,
        read_sql_query(url, "SELECT * FROM exposures", kind="exposures"),
        read_sql_query(url, "SELECT user, event, timestamp, value FROM events", kind="events"),
    )
    _same_results(direct, via_table)
    _same_results(direct, via_query)
    with pytest.raises(DataError, match="cannot be read"):
        read_sql_table(url, "nope", kind="events")
    with pytest.raises(DataError, match="query failed"):
        read_sql_query(url, "SELECT * FROM nope", kind="events")


# ----------------------------------------------------------------------------------------- missing values

# m1/m2 control, m3/m4 treatment, all first exposed Jan 10 (pre-period from Jan 3). "purchase" has a number in
# some rows, so it is measured and its empty cells are missing values; no "session" row has one: a count event.
MV_EXPOSURES = pd.DataFrame(
    [
        ("exp", "m1", "control", "2025-01-10T00:00:00Z"),
        ("exp", "m2", "control", "2025-01-10T00:00:00Z"),
        ("exp", "m3", "treatment", "2025-01-10T00:00:00Z"),
        ("exp", "m4", "treatment", "2025-01-10T00:00:00Z"),
    ],
    columns=["experiment", "user", "variation", "timestamp"],
)
MV_EVENTS = pd.DataFrame(
    [
        ("m1", "purchase", "2025-01-11T00:00:00Z", "10"),  # 0
        ("m1", "purchase", "2025-01-12T00:00:00Z", ""),  # 1 missing, in the window
        ("m2", "purchase", "2025-01-11T00:00:00Z", None),  # 2 missing: m2's only purchase
        ("m3", "purchase", "2025-01-11T00:00:00Z", "30"),  # 3
        ("m3", "purchase", "2025-01-05T00:00:00Z", ""),  # 4 missing, in the covariate window
        ("m4", "purchase", "2025-02-05T00:00:00Z", ""),  # 5 missing, after the end: never read
        ("m1", "session", "2025-01-11T00:00:00Z", ""),  # 6 sessions: a count event
        ("m1", "session", "2025-01-12T00:00:00Z", None),  # 7
        ("m3", "session", "2025-01-11T00:00:00Z", ""),  # 8
        ("nobody", "purchase", "2025-01-11T00:00:00Z", ""),  # 9 missing, of a user never exposed: never read
    ],
    columns=["user", "event", "timestamp", "value"],
)
MISSING_REASON = "no value for 'purchase', which metric 'rev' measures (missing = quarantine)"


def _mv_spec(missing: str, *extra: MetricSpec) -> ExperimentSpec:
    return _spec(
        metrics=[
            MetricSpec(name="conv", kind="binomial", event="purchase", missing=missing),
            MetricSpec(name="rev", kind="mean", event="purchase", missing=missing),
            MetricSpec(name="sessions", kind="mean", event="session", missing=missing),
            *extra,
        ]
    )


def _arm(data: ExperimentData, metric: str) -> dict[str, tuple[int, float]]:
    return {v: (a.n, a.total) for v, a in data.stats[metric].items()}


def test_an_empty_value_of_a_measured_event_is_not_one() -> None:
    data = aggregate(_mv_spec("zero"), MV_EXPOSURES, MV_EVENTS)
    assert data.stats["rev"]["control"].total == 10  # m1: 10 + an empty purchase (not 11)
    assert data.stats["rev"]["treatment"].cov_total == 0  # m3's valueless pre-period purchase is not 1


def test_an_event_without_any_value_is_counted() -> None:
    data = aggregate(_mv_spec("exclude"), MV_EXPOSURES, MV_EVENTS)
    assert _arm(data, "sessions") == {"control": (1, 2.0), "treatment": (1, 1.0)}  # m1: 2 sessions, m3: 1
    assert "sessions" not in data.missing_values and data.quarantined_events == 0
    # Without a value column every event is a count event, whatever the policy.
    no_values = aggregate(_mv_spec("quarantine"), MV_EXPOSURES, MV_EVENTS.drop(columns=["value"]))
    assert _arm(no_values, "rev") == {"control": (2, 3.0), "treatment": (2, 1.0)}  # m1 2, m2 1 | m3 1, m4 0
    assert no_values.missing_values == {} and no_values.quarantined_events == 0


def test_missing_zero_counts_an_empty_value_as_zero() -> None:
    data = aggregate(_mv_spec("zero"), MV_EXPOSURES, MV_EVENTS)
    assert _arm(data, "rev") == {"control": (2, 10.0), "treatment": (2, 30.0)}  # m2 analysed with 0
    assert data.stats["rev"]["treatment"].has_covariate  # m3's pre-period purchase counts (as 0)
    assert data.missing_values == {"rev": (3, "zero")}
    assert data.quarantined_events == 0


def test_missing_exclude_leaves_out_a_user_without_a_valued_row() -> None:
    data = aggregate(_mv_spec("exclude"), MV_EXPOSURES, MV_EVENTS)
    assert _arm(data, "rev") == {"control": (1, 10.0), "treatment": (1, 30.0)}  # m2 (only valueless) is out
    assert not data.stats["rev"]["treatment"].has_covariate  # the only pre-period purchase has no value
    assert data.missing_values == {"rev": (3, "exclude")}
    assert data.quarantined_events == 0


def test_missing_quarantine_quarantines_the_row_with_its_reason_and_counts_it() -> None:
    other = _spec(key="other", metrics=[MetricSpec(name="rev", kind="mean", event="purchase")])
    both = aggregate_many([_mv_spec("quarantine"), other], MV_EXPOSURES, MV_EVENTS)
    data = both["exp"]
    assert _arm(data, "rev") == {"control": (2, 10.0), "treatment": (2, 30.0)}  # no user left out
    assert not data.stats["rev"]["treatment"].has_covariate
    q = data.quarantined
    assert q["table"].tolist() == ["events"] * 3 and q["row"].tolist() == [1, 2, 4]  # read rows only
    assert set(q["reason"]) == {MISSING_REASON}
    assert q["user"].tolist() == ["m1", "m2", "m3"] and q["event"].tolist() == ["purchase"] * 3
    assert data.quarantined_events == 3 and data.quarantined_rows == 3
    assert data.missing_values == {"rev": (3, "quarantine")}
    assert data.missing_values["rev"].rows == 3 and data.missing_values["rev"].policy == "quarantine"
    assert _arm(data, "conv") == {"control": (2, 2.0), "treatment": (2, 1.0)}  # m2's purchase still converts
    assert both["other"].quarantined_events == 0  # the quarantine is the experiment's own


def test_each_metric_applies_its_own_policy_to_a_shared_row() -> None:
    spec = _mv_spec(
        "quarantine",
        MetricSpec(name="rev0", kind="mean", event="purchase"),
        MetricSpec(name="revx", kind="mean", event="purchase", missing="exclude"),
        MetricSpec(name="rps", kind="ratio", event="purchase", denominator_event="session", missing="quarantine"),
    )
    data = aggregate(spec, MV_EXPOSURES, MV_EVENTS)
    # Each row once, naming both quarantine metrics; the others handle the same rows by their own policy.
    reason = "no value for 'purchase', which metrics 'rev', 'rps' measure (missing = quarantine)"
    assert data.quarantined["row"].tolist() == [1, 2, 4] and set(data.quarantined["reason"]) == {reason}
    assert data.quarantined_events == 3
    assert _arm(data, "rev0") == {"control": (2, 10.0), "treatment": (2, 30.0)}
    assert _arm(data, "revx") == {"control": (1, 10.0), "treatment": (1, 30.0)}
    assert _arm(data, "conv") == {"control": (2, 2.0), "treatment": (2, 1.0)}
    assert data.missing_values == {
        "rev": (3, "quarantine"),
        "rev0": (3, "zero"),
        "revx": (3, "exclude"),
        "rps": (3, "quarantine"),  # the numerator's rows; sessions (a count event) miss nothing
    }


def test_missing_values_count_only_rows_the_metric_reads() -> None:
    no_pre = aggregate(_mv_spec("zero"), MV_EXPOSURES, MV_EVENTS, as_of=datetime(2025, 1, 12))
    assert no_pre.missing_values == {"rev": (2, "zero")}  # row 1 (Jan 12) is past as_of; row 4 is pre-period
    spec = _mv_spec("quarantine").model_copy(update={"pre_period_days": 0})
    data = aggregate(spec, MV_EXPOSURES, MV_EVENTS)
    assert data.missing_values == {"rev": (2, "quarantine")}  # no covariate window: row 4 is not read
    assert data.quarantined["row"].tolist() == [1, 2]


def test_loaders_keep_an_empty_value_missing(tmp_path: Path) -> None:
    MV_EXPOSURES.to_csv(tmp_path / "x.csv", index=False)
    MV_EVENTS.to_csv(tmp_path / "e.csv", index=False)
    x, e = load_tables(tmp_path / "x.csv", tmp_path / "e.csv")
    assert e["value"].dtype == np.float64 and e["value"].isna().sum() == 8  # NaN, not 1.0
    spec = _mv_spec("quarantine")
    loaded, direct = aggregate(spec, x, e), aggregate(spec, MV_EXPOSURES, MV_EVENTS)
    assert loaded.stats == direct.stats and loaded.missing_values == direct.missing_values
    assert loaded.quarantined["row"].tolist() == [1, 2, 4]
    # Floats with NaN work the same, and the caller's frame is left as it was.
    floats = e.assign(user=e["user"].astype(str), event=e["event"].astype(str))
    before = floats["value"].copy()
    assert aggregate(spec, MV_EXPOSURES, floats).stats == direct.stats
    pd.testing.assert_series_equal(floats["value"], before)


# ------------------------------------------------------------------------ reference implementation check


def _reference(spec: ExperimentSpec, exposures: pd.DataFrame, events: pd.DataFrame) -> dict[str, dict[str, ArmStats]]:
    """The slow, obvious way: pandas merges and groupbys per metric, per-user values, then per-arm sums."""
    end = pd.Timestamp(spec.end)
    x = exposures[exposures["experiment"] == spec.key]
    x = x[(x["timestamp"] >= pd.Timestamp(spec.start)) & (x["timestamp"] < end)]
    per_user = x.groupby("user").agg(
        first=("timestamp", "min"), arms=("variation", "nunique"), arm=("variation", "min")
    )
    per_user = per_user[per_user["arms"] == 1]
    pre = pd.Timedelta(days=spec.pre_period_days)

    def sums(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        ev = events[events["event"] == name].merge(per_user, left_on="user", right_index=True)
        after = ev[(ev["timestamp"] >= ev["first"]) & (ev["timestamp"] < end)]
        before = ev[(ev["timestamp"] < ev["first"]) & (ev["timestamp"] >= ev["first"] - pre)]
        out = []
        for part in (after, before):
            agg = part.groupby("user")["value"].agg(["count", "sum"])
            out.append(agg.reindex(per_user.index, fill_value=0))
        return out[0], out[1]

    result: dict[str, dict[str, ArmStats]] = {}
    for metric in spec.metrics:
        post, prior = sums(metric.event)
        frame = pd.DataFrame({"arm": per_user["arm"]})
        if metric.kind == "binomial":
            frame["y"], frame["x"] = (post["count"] > 0) * 1.0, (prior["count"] > 0) * 1.0
            keep = pd.Series(True, index=frame.index)
            pre_events = prior["count"]
        elif metric.kind == "mean":
            frame["y"], frame["x"] = post["sum"], prior["sum"]
            keep = post["count"] > 0 if metric.missing == "exclude" else pd.Series(True, index=frame.index)
            pre_events = prior["count"]
        else:
            den_post, den_prior = sums(metric.denominator_event or "")
            frame["y"], frame["x"], frame["d"] = post["sum"], prior["sum"], den_post["sum"]
            keep = den_post["sum"] != 0
            pre_events = prior["count"] + den_prior["count"]
        has_cov = spec.pre_period_days > 0 and bool((pre_events > 0).any())
        kept = frame[keep]
        arms = {}
        for variation in spec.variations:
            part = kept[kept["arm"] == variation]
            y = part["y"].to_numpy(float)
            extra: dict[str, float] = {}
            if metric.kind == "ratio":
                d = part["d"].to_numpy(float)
                extra = {"den_total": d.sum(), "den_total_sq": (d * d).sum(), "num_den": (y * d).sum()}
            if has_cov:
                xv = part["x"].to_numpy(float)
                extra |= {"cov_total": xv.sum(), "cov_total_sq": (xv * xv).sum(), "cov_value": (xv * y).sum()}
            arms[variation] = ArmStats(
                variation=variation,
                users=int((per_user["arm"] == variation).sum()),
                n=len(part),
                total=float(y.sum()),
                total_sq=float((y * y).sum()),
                has_covariate=has_cov,
                **{k: float(v) for k, v in extra.items()},
            )
        result[metric.name] = arms
    return result


def test_matches_a_slow_reference_on_random_data() -> None:
    specs, x, e = large_dataset(80_000, 3, n_events=120_000, seed=11)  # ~20k users
    specs = [
        s.model_copy(
            update={
                "metrics": [*s.metrics, MetricSpec(name="aov", kind="mean", event="purchase", missing="exclude")],
                "start": s.start + timedelta(days=2),
                "pre_period_days": 5 + i,
            }
        )
        for i, s in enumerate(specs)
    ]
    ours = aggregate_many(specs, x, e)
    for spec in specs:
        want = _reference(spec, x, e)
        for metric, arms in want.items():
            for variation, ref in arms.items():
                got = ours[spec.key].stats[metric][variation]
                for f in fields(ArmStats):
                    a, b = getattr(got, f.name), getattr(ref, f.name)
                    if isinstance(b, float):
                        assert a == pytest.approx(b, rel=1e-9, abs=1e-9), (spec.key, metric, variation, f.name)
                    else:
                        assert a == b, (spec.key, metric, variation, f.name)
    assert sum(d.multiple_exposures for d in ours.values()) > 0  # the generator does make some


def test_typed_id_columns_give_the_same_result() -> None:
    results = []
    for ids in ("text", "int", "category"):
        specs, x, e = large_dataset(20_000, 2, n_events=20_000, seed=4, user_ids=ids)
        results.append(aggregate_many(specs, x, e))
        if ids == "text":
            nx, ne = normalise_tables(x, e)
            assert nx["user"].cat.categories is ne["user"].cat.categories
            assert isinstance(nx["experiment"].dtype, pd.CategoricalDtype)
            _same_results(results[0], aggregate_many(specs, nx, ne))
    _same_results(results[0], results[1], exact=False)
    _same_results(results[0], results[2], exact=False)


# ------------------------------------------------------------------------------------------- sample world


def test_sample_is_deterministic() -> None:
    a = sample_experiments(2_000, seed=9)
    b = sample_experiments(2_000, seed=9)
    pd.testing.assert_frame_equal(a[1], b[1])
    pd.testing.assert_frame_equal(a[2], b[2])
    assert not a[1].equals(sample_experiments(2_000, seed=10)[1])


def test_sample_shows_its_true_effects() -> None:
    specs, x, e = sample_experiments()
    data = aggregate_many(specs, x, e)

    def mean(key: str, metric: str, variation: str) -> float:
        arm = data[key].stats[metric][variation]
        return arm.total / (arm.den_total if arm.den_total else arm.n)

    # +8 % conversion in green (about 19k users per arm at ~23 %: the ratio's standard error is ~0.015).
    assert mean("checkout-button", "conversion", "green") / mean("checkout-button", "conversion", "control") == (
        pytest.approx(1.08, abs=0.045)
    )
    assert mean("onboarding", "clicks_per_session", "tour") / mean("onboarding", "clicks_per_session", "control") == (
        pytest.approx(1.10, abs=0.03)
    )
    assert mean("pricing-page", "pricing_views", "annual-first") / mean("pricing-page", "pricing_views", "control") == (
        pytest.approx(1.0, abs=0.03)
    )
    users = data["search-ranking"].users
    assert users["control"] / sum(users.values()) == pytest.approx(SRM_DELIVERED[0], abs=0.01)
    # The flaws the docstring promises are caught.
    checkout = data["checkout-button"]
    assert checkout.multiple_exposures > 100
    assert (checkout.quarantined["reason"].str.startswith("variation 'Green'")).sum() == 5
    assert checkout.quarantined_events == 3
    # The pre-period predicts the window: CUPED has something to work with (r^2 well above 0).
    arm = checkout.stats["revenue"]["control"]
    n = arm.n
    cov = arm.cov_value / n - (arm.cov_total / n) * (arm.total / n)
    var_x = arm.cov_total_sq / n - (arm.cov_total / n) ** 2
    var_y = arm.total_sq / n - (arm.total / n) ** 2
    assert cov * cov / (var_x * var_y) > 0.1


def test_large_dataset_shape() -> None:
    specs, x, e = large_dataset(10_000, 5, seed=1)
    assert len(x) == 10_000 and len(e) == 5_000 and len(specs) == 5
    assert set(x["experiment"]) == {s.key for s in specs}
    assert str(x["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert np.isin(e["event"].unique(), ["purchase", "session", "click", "page_view"]).all()


def test_recent_users_per_day_count_first_exposures_in_the_last_week_of_the_window() -> None:
    # 14 users a day for 10 days from Jan 1, then 2 a day for 10 days; the window ends Jan 21 (as_of).
    days = [datetime(2025, 1, 1, 12, tzinfo=UTC) + timedelta(days=d) for d in range(20)]
    rows = [
        ("exp", f"u{d}-{k}", "control" if k % 2 else "treatment", at.isoformat())
        for d, at in enumerate(days)
        for k in range(14 if d < 10 else 2)
    ]
    exposures = pd.DataFrame(rows, columns=["experiment", "user", "variation", "timestamp"])
    events = pd.DataFrame({"user": ["u0-0"], "event": ["purchase"], "timestamp": ["2025-01-02T00:00:00Z"]})
    data = aggregate(_spec(), exposures, events, as_of=datetime(2025, 1, 21, tzinfo=UTC))
    assert data.recent_users_per_day == pytest.approx(2.0)  # Jan 14-20: 7 days x 2 users
    # A window shorter than a week is taken whole: the 2 days since the first exposure, 14 users a day.
    short = aggregate(_spec(), exposures, events, as_of=datetime(2025, 1, 3, 12, tzinfo=UTC))
    assert short.recent_users_per_day == pytest.approx(28 / 2.0)
