"""Price positioning: index convention, competitor rules, latest offers, category roll-up, undercuts."""

from __future__ import annotations

import pandas as pd
import pytest

from framework2.config import CompetitorRule
from framework2.errors import DataError
from framework2.tasks.pricing.market import category_positions, price_positions, undercuts

NOW = pd.Timestamp("2025-04-01 12:00", tz="UTC")


def _catalogue() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sku": ["A", "B", "C"],
            "name": ["apple", "bread", "cheese"],
            "category": ["fruit", "bakery", "fruit"],
            "cost": [50.0, 5.0, 5.0],
            "price": [110.0, 10.0, 10.0],
        }
    )


def _offer(competitor: str, sku: str, price: float, in_stock: bool = True, hours_ago: float = 1.0) -> dict:
    return {
        "competitor": competitor,
        "sku": sku,
        "price": price,
        "in_stock": in_stock,
        "observed_at": NOW - pd.Timedelta(hours=hours_ago),
        "feed": f"{competitor}-feed",
    }


def _offers(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def test_index_is_our_price_over_theirs_times_100():
    offers = _offers(_offer("x", "A", 100.0), _offer("y", "A", 120.0))
    pos = price_positions(_catalogue(), offers, [], "avg")
    a = pos.loc["A"]
    assert (a["min_price"], a["avg_price"], a["max_price"]) == (100.0, 110.0, 120.0)
    assert a["index_vs_min"] == pytest.approx(110.0)  # we are 10 % dearer than the cheapest
    assert a["index_vs_avg"] == pytest.approx(100.0)
    assert a["position"] == "at market"
    assert a["reference_price"] == 110.0
    assert a["cheapest_competitor"] == "x"
    assert price_positions(_catalogue(), offers, [], "min").loc["A", "reference_price"] == 100.0
    assert price_positions(_catalogue(), offers, [], "max").loc["A", "reference_price"] == 120.0


@pytest.mark.parametrize(
    ("prices", "expected"),
    [
        ((120.0, 130.0), "cheapest"),
        ((100.0, 105.0), "most expensive"),
        ((100.0, 140.0), "below market"),
        ((80.0, 125.0), "above market"),
        ((108.0, 116.0), "at market"),
    ],
)
def test_position_labels(prices, expected):
    offers = _offers(_offer("x", "A", prices[0]), _offer("y", "A", prices[1]))
    assert price_positions(_catalogue(), offers, [], "avg").loc["A", "position"] == expected


def test_sku_without_offers_has_no_competitor_data():
    pos = price_positions(_catalogue(), _offers(_offer("x", "A", 100.0)), [], "avg")
    assert list(pos.index) == ["A", "B", "C"]
    b = pos.loc["B"]
    assert b["position"] == "no competitor data"
    assert b["n_offers"] == 0 and pd.isna(b["avg_price"]) and pd.isna(b["index_vs_avg"])


def test_latest_offer_per_competitor_wins():
    offers = _offers(
        _offer("x", "A", 50.0, hours_ago=5),  # stale
        _offer("x", "A", 100.0, hours_ago=1),
        _offer("x", "A", 70.0, hours_ago=3),  # stale
    )
    pos = price_positions(_catalogue(), offers, [], "avg")
    assert pos.loc["A", "n_offers"] == 1
    assert pos.loc["A", "min_price"] == 100.0


def test_out_of_stock_offers_are_ignored_even_when_cheapest():
    offers = _offers(
        _offer("x", "A", 90.0, in_stock=False),
        _offer("y", "A", 120.0),
        # y's latest offer for B is out of stock: the older in-stock one must not come back.
        _offer("y", "B", 9.0, hours_ago=5),
        _offer("y", "B", 9.5, in_stock=False, hours_ago=1),
    )
    pos = price_positions(_catalogue(), offers, [], "avg")
    assert (pos.loc["A", "n_offers"], pos.loc["A", "n_in_stock"]) == (2, 1)
    assert pos.loc["A", "min_price"] == 120.0
    assert pos.loc["A", "position"] == "cheapest"
    assert pos.loc["B", "position"] == "no competitor data"


def test_global_exclusion_rule_drops_a_competitor_everywhere():
    offers = _offers(_offer("x", "A", 100.0), _offer("y", "A", 120.0), _offer("x", "B", 8.0))
    pos = price_positions(_catalogue(), offers, [CompetitorRule(competitor="x")], "avg")
    assert pos.loc["A", "min_price"] == 120.0
    assert pos.loc["B", "position"] == "no competitor data"


def test_category_exclusion_rule_only_affects_that_category():
    offers = _offers(_offer("x", "A", 100.0), _offer("y", "A", 120.0), _offer("x", "B", 8.0))
    rules = [CompetitorRule(competitor="x", category="fruit")]
    pos = price_positions(_catalogue(), offers, rules, "avg")
    assert pos.loc["A", "min_price"] == 120.0
    assert pos.loc["B", "min_price"] == 8.0


def test_category_include_overrides_a_global_exclusion():
    offers = _offers(_offer("x", "A", 100.0), _offer("y", "A", 120.0), _offer("x", "B", 8.0))
    # The category rule comes first in the list and still wins: specificity, not order.
    rules = [
        CompetitorRule(competitor="x", category="bakery", include=True),
        CompetitorRule(competitor="x"),
    ]
    pos = price_positions(_catalogue(), offers, rules, "avg")
    assert pos.loc["A", "min_price"] == 120.0
    assert pos.loc["B", "min_price"] == 8.0


def test_offers_for_unknown_skus_are_ignored():
    offers = _offers(_offer("x", "ZZZ", 1.0), _offer("x", "A", 100.0))
    pos = price_positions(_catalogue(), offers, [], "avg")
    assert pos["n_offers"].sum() == 1


def test_category_positions_weight_the_index_by_sales():
    offers = _offers(_offer("x", "A", 100.0), _offer("x", "C", 20.0), _offer("x", "B", 10.0))
    pos = price_positions(_catalogue(), offers, [], "avg")  # A: 110 above, C: 50 cheapest, B: 100
    equal = category_positions(pos, _catalogue(), None)
    assert equal.loc["fruit", "index_vs_avg"] == pytest.approx(80.0)
    assert equal.loc["fruit", "share_cheapest"] == pytest.approx(0.5)
    assert equal.loc["fruit", "share_above_market"] == pytest.approx(0.5)
    assert equal.loc["bakery", "n_skus_with_data"] == 1
    weighted = category_positions(pos, _catalogue(), pd.Series({"A": 3.0, "C": 1.0}))
    assert weighted.loc["fruit", "index_vs_avg"] == pytest.approx((3 * 110 + 50) / 4)
    # Bakery has no weights at all: equal weights instead of 0/0.
    assert weighted.loc["bakery", "index_vs_avg"] == pytest.approx(100.0)


def test_undercuts_lists_skus_beyond_the_threshold():
    offers = _offers(_offer("x", "A", 100.0), _offer("y", "A", 104.0), _offer("x", "B", 9.7), _offer("y", "C", 8.0))
    pos = price_positions(_catalogue(), offers, [], "avg")
    cut = undercuts(_catalogue(), pos, threshold_pct=0.05)
    assert list(cut.index) == ["C", "A"]  # B is only 3 % below us
    assert cut.loc["C", "competitor"] == "y"
    assert cut.loc["C", "gap_pct"] == pytest.approx(0.2)
    assert cut.loc["A", "competitor_price"] == 100.0 and cut.loc["A", "our_price"] == 110.0


def test_missing_offer_columns_raise_data_error():
    with pytest.raises(DataError, match="offers is missing column.*in_stock"):
        price_positions(_catalogue(), _offers(_offer("x", "A", 1.0)).drop(columns=["in_stock"]), [], "avg")
