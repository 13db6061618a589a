"""Property tests for the competitor-feed parser: whatever a feed sends (any bytes, any CSV or JSON, numbers that
are NaN, infinite, huge or tiny, odd unicode), the parser gives offers or refuses the document as malformed, and
validation keeps each offer or quarantines it with a reason: never an exception of another kind, never a price
that is not a finite positive number, never a row lost."""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from framework2.blocks import CompetitorFeed
from framework2.tasks.feeds import OFFER_COLUMNS, MalformedFeedError, parse_feed, validate_offers

FETCHED = datetime(2026, 12, 1, tzinfo=UTC)
CATALOGUE = pd.Series({"A1": 10.0, "B2": 25.0, "C3": 0.5})

number_text = st.one_of(
    st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "1e400", "-1e400", "1e-400", "0", "-0", "0x10", ""]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str),
    st.text(max_size=8),
)
cell = st.one_of(number_text, st.sampled_from(["A1", "B2", "C3", " A1 ", "a1", "A1\u200b"]), st.text(max_size=12))
json_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    cell,
)


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["sku", "price", "in_stock", "observed_at"])
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def _check(feed: CompetitorFeed, content: bytes) -> None:
    try:
        offers = parse_feed(feed, content, FETCHED)
    except MalformedFeedError as exc:
        assert exc.message and exc.hint  # refused as a whole, with what to check
        return
    assert list(offers.columns) == OFFER_COLUMNS
    prices = offers["price"].to_numpy(dtype=float)
    assert not pd.Series(prices).map(math.isinf).any(), "an infinite price left the parser"

    valid, quarantined = validate_offers(offers, CATALOGUE, ratio_limit=10.0)
    assert len(valid) + len(quarantined) == len(offers), "every offer is kept or quarantined"
    assert quarantined["reason"].map(lambda r: isinstance(r, str) and bool(r.strip())).all()
    kept = valid["price"].to_numpy(dtype=float)
    assert all(math.isfinite(p) and p > 0 for p in kept), "a kept price is a finite positive number"
    assert set(valid["sku"]) <= set(CATALOGUE.index)
    for sku, price in zip(valid["sku"], kept, strict=True):
        assert CATALOGUE[sku] / 10 <= price <= CATALOGUE[sku] * 10


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(cell, min_size=0, max_size=6), max_size=8))
def test_any_csv_feed_is_parsed_into_offers_kept_or_quarantined_or_refused_whole(rows: list[list[str]]) -> None:
    _check(CompetitorFeed(competitor="acme", url="https://feeds.example.com/p.csv", format="csv"), _csv(rows))


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.dictionaries(st.sampled_from(["sku", "price", "in_stock", "observed_at", "other"]), json_value),
        max_size=8,
    )
)
def test_any_json_feed_is_parsed_into_offers_kept_or_quarantined_or_refused_whole(records: list[Any]) -> None:
    # json.dumps writes NaN/Infinity as bare words, which some servers send too
    content = json.dumps(records, default=str).encode("utf-8")
    _check(CompetitorFeed(competitor="acme", url="https://feeds.example.com/p.json", format="json"), content)


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(["csv", "json"]))
def test_any_bytes_are_offers_or_a_malformed_feed(content: bytes, kind: str) -> None:
    _check(CompetitorFeed(competitor="acme", url=f"https://feeds.example.com/p.{kind}", format=kind), content)


def test_a_csv_feed_whose_rows_carry_an_extra_cell_is_refused_not_read_one_column_to_the_left() -> None:
    # pandas made the first column the index: the price 20 was read as the sku, the stock flag as the price
    content = b"sku,price,in_stock,observed_at\nB2,20,1,2026-01-01,extra\n"
    feed = CompetitorFeed(competitor="acme", url="https://feeds.example.com/p.csv", format="csv")
    try:
        parse_feed(feed, content, FETCHED)
    except MalformedFeedError as exc:
        assert "line 2 has 5 cells, the header has 4" in exc.message
    else:
        raise AssertionError("a misshapen feed was read")


def test_an_observation_time_pandas_cannot_hold_is_quarantined_not_a_crash() -> None:
    records = [
        {"sku": "A1", "price": 10, "observed_at": 2**62},
        {"sku": "B2", "price": 20, "observed_at": -5},
        {"sku": "C3", "price": 0.6, "observed_at": 1764547200},
    ]
    feed = CompetitorFeed(competitor="acme", url="https://feeds.example.com/p.json", format="json")
    offers = parse_feed(feed, json.dumps(records).encode(), FETCHED)
    valid, quarantined = validate_offers(offers, CATALOGUE, ratio_limit=10.0)
    assert list(valid["sku"]) == ["C3"]
    assert set(quarantined["reason"]) == {"observed_at is missing or not a readable timestamp"}
