"""Recommendations: the optimum formula, each guardrail binding by name, endings, projections."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from framework2.config import PricingGuardrails
from framework2.errors import DataError
from framework2.sample.market import generate_market
from framework2.tasks.pricing import baseline_units, estimate_elasticities, price_positions
from framework2.tasks.pricing.recommend import BINDINGS, RECOMMENDATION_COLUMNS, optimal_price, recommend_prices

# Bands, endings and the confidence rule off unless a test turns them on, so expected prices are exact.
PLAIN = PricingGuardrails(
    price_ending=None,
    competitor_band_low=None,
    competitor_band_high=None,
    min_confidence=0,
    max_losing_share=1,
    move_curve="constant",
)


def _recommend(
    cost: float,
    price: float,
    elasticity: float | None,
    *,
    policy: PricingGuardrails = PLAIN,
    ref: float | None = None,
    se: float = 0.2,
    baseline: float = 10.0,
    **overrides: float,
) -> pd.Series:
    catalogue = pd.DataFrame(
        {"sku": ["S"], "name": ["thing"], "category": ["c"], "cost": [cost], "price": [price]}
        | {k: [v] for k, v in overrides.items()}
    )
    index = pd.Index(["S"], name="sku")
    e = np.nan if elasticity is None else elasticity
    elasticities = pd.DataFrame(
        {
            "elasticity": [e],
            "elasticity_se": [se],
            "elasticity_low": [e - 1.645 * se],
            "elasticity_high": [e + 1.645 * se],
        },
        index=index,
    )
    positions = None
    if ref is not None:
        positions = pd.DataFrame(
            {"min_price": [ref], "avg_price": [ref], "max_price": [ref], "reference_price": [ref]}, index=index
        )
    recs = recommend_prices(catalogue, elasticities, positions, pd.Series([baseline], index=index), policy)
    return recs.loc["S"]


@pytest.mark.parametrize("e", [-1.2, -1.5, -2.0, -3.0, -6.0])
def test_unconstrained_optimum_is_c_e_over_1_plus_e(e):
    assert optimal_price(8.0, e) == pytest.approx(8.0 * e / (1 + e))


@pytest.mark.parametrize("e", [-1.3, -2.0, -4.0])
def test_optimum_maximises_profit_on_a_price_grid(e):
    cost = 7.0
    grid = np.linspace(cost, 20 * cost, 200_001)
    profit = (grid - cost) * 1000.0 * grid**e
    assert grid[np.argmax(profit)] == pytest.approx(optimal_price(cost, e), rel=1e-3)


def test_optimum_is_nan_for_inelastic_demand_and_vectorised():
    got = optimal_price(np.array([10.0, 10.0, 10.0, np.nan]), np.array([-2.0, -1.0, -0.5, -2.0]))
    assert got[0] == pytest.approx(20.0)
    assert np.isnan(got[1:]).all()


def test_max_change_guardrail_binds_and_is_named():
    rec = _recommend(cost=10.0, price=20.0, elasticity=-1.5)  # optimum 30
    assert rec["optimal_price"] == pytest.approx(30.0)
    assert rec["recommended_price"] == 22.00
    assert rec["binding_guardrail"] == "max_change"
    assert rec["change_pct"] == pytest.approx(0.10)
    down = _recommend(cost=10.0, price=30.0, elasticity=-3.0)  # optimum 15
    assert (down["recommended_price"], down["binding_guardrail"]) == (27.00, "max_change")


def test_optimum_inside_the_limits_binds_nothing():
    rec = _recommend(cost=10.0, price=19.5, elasticity=-2.0)  # optimum 20
    assert rec["recommended_price"] == 20.00
    assert rec["binding_guardrail"] is None
    assert "within limits" in rec["explanation"]


def test_min_markup_binds_with_a_per_sku_override():
    rec = _recommend(cost=10.0, price=15.5, elasticity=-4.0, min_markup=0.5)  # optimum 13.33 < floor 15
    assert rec["recommended_price"] == 15.00
    assert rec["binding_guardrail"] == "min_markup"
    assert "min markup 50%" in rec["explanation"]


def test_max_markup_binds():
    rec = _recommend(cost=10.0, price=12.0, elasticity=-1.5, max_markup=0.2)  # optimum 30, ceiling 12
    assert rec["recommended_price"] == 12.00
    assert rec["binding_guardrail"] == "max_markup"


def test_competitor_band_high_binds():
    policy = PLAIN.model_copy(update={"competitor_band_high": 1.2})
    rec = _recommend(cost=5.0, price=12.0, elasticity=-1.5, ref=10.0, policy=policy)  # optimum 15, band <= 12
    assert rec["recommended_price"] == 12.00
    assert rec["binding_guardrail"] == "competitor_band_high"
    assert "competitor band 120% of avg 10.00" in rec["explanation"]


def test_competitor_band_low_binds():
    policy = PLAIN.model_copy(update={"competitor_band_low": 0.85})
    rec = _recommend(cost=5.0, price=18.0, elasticity=-3.0, ref=20.0, policy=policy)  # optimum 7.5, band >= 17
    assert rec["recommended_price"] == 17.00
    assert rec["binding_guardrail"] == "competitor_band_low"


def test_competitor_band_is_skipped_without_competitor_data():
    policy = PLAIN.model_copy(update={"competitor_band_high": 1.2})
    rec = _recommend(cost=5.0, price=12.0, elasticity=-1.5, ref=None, policy=policy)
    assert rec["recommended_price"] == 13.20
    assert rec["binding_guardrail"] == "max_change"


def test_band_contradicting_max_change_is_overridden_and_named():
    policy = PLAIN.model_copy(update={"competitor_band_high": 1.2})
    # Band says <= 12, one run may only go down to 18: the band (lower priority) is dropped.
    rec = _recommend(cost=5.0, price=20.0, elasticity=-1.5, ref=10.0, policy=policy)
    assert rec["conflicts"] == "competitor_band_high"
    assert rec["recommended_price"] == 18.00  # optimum 15, held by the change limit
    assert rec["binding_guardrail"] == "max_change"
    assert "overrode competitor_band_high" in rec["explanation"]


def test_price_below_cost_moves_only_up_to_the_floor_not_to_the_optimum():
    # Optimum 30 is far above; max change would allow only 6.60, under the floor 10.50. The floor wins,
    # and the overridden change limit still keeps the move as small as the floor allows.
    rec = _recommend(cost=10.0, price=6.0, elasticity=-1.5)
    assert rec["conflicts"] == "max_change"
    assert rec["recommended_price"] == 10.50
    assert rec["binding_guardrail"] == "min_markup"
    assert rec["needs_approval"]


def test_min_markup_beats_max_change_when_the_current_price_is_below_cost():
    rec = _recommend(cost=10.0, price=8.0, elasticity=-30.0)  # optimum 10.34 < floor 10.50
    assert rec["conflicts"] == "max_change"
    assert rec["recommended_price"] == 10.50
    assert rec["binding_guardrail"] == "min_markup"


def test_inelastic_demand_moves_up_by_the_full_change_and_is_named():
    rec = _recommend(cost=5.0, price=10.0, elasticity=-0.6)
    assert np.isnan(rec["optimal_price"])
    assert rec["recommended_price"] == 11.00
    assert rec["binding_guardrail"] == "inelastic_demand"
    assert rec["explanation"].startswith("Demand inelastic")


def test_inelastic_demand_stopped_by_a_band_names_the_band():
    policy = PLAIN.model_copy(update={"competitor_band_high": 1.2})
    rec = _recommend(cost=5.0, price=10.0, elasticity=-0.6, ref=9.0, policy=policy)
    assert rec["recommended_price"] == 10.80
    assert rec["binding_guardrail"] == "competitor_band_high"


def test_missing_elasticity_holds_the_current_price():
    rec = _recommend(cost=5.0, price=10.0, elasticity=None)
    assert rec["recommended_price"] == 10.00
    assert rec["binding_guardrail"] == "missing_data"
    assert rec["change_pct"] == 0 and not rec["needs_approval"]
    assert rec["projected_units"] == 10.0 and rec["profit_delta"] == 0


def test_missing_cost_holds_the_current_price():
    rec = _recommend(cost=float("nan"), price=10.0, elasticity=-2.0)
    assert (rec["recommended_price"], rec["binding_guardrail"]) == (10.00, "missing_data")
    assert rec["explanation"].startswith("No usable cost")


def test_missing_data_cost_plus_rule():
    policy = PLAIN.model_copy(update={"missing_data_rule": "cost_plus"})
    rec = _recommend(cost=8.0, price=10.0, elasticity=None, policy=policy)
    assert rec["recommended_price"] == 10.40
    assert rec["binding_guardrail"] == "missing_data"
    # A cost-plus price still respects the per-run change limit.
    far = _recommend(cost=5.0, price=10.0, elasticity=None, policy=policy)
    assert (far["recommended_price"], far["binding_guardrail"]) == (9.00, "max_change")
    assert np.isnan(far["projected_units"])


@pytest.mark.parametrize("price", [0.0, float("nan"), 1e12], ids=["zero", "nan", "absurd"])
def test_a_sku_without_a_usable_current_price_takes_the_missing_data_rule_and_says_so(price: float):
    rec = _recommend(cost=10.0, price=price, elasticity=-2.0)
    assert (rec["recommended_price"], rec["binding_guardrail"]) == (13.0, "missing_data")
    assert rec["explanation"].startswith("No usable current price; cost plus 30% 13.00 (no current price to hold)")
    assert "nan" not in rec["explanation"].lower() and rec["needs_approval"]


def test_the_missing_data_rule_says_when_it_could_not_apply_as_set():
    policy = PLAIN.model_copy(update={"missing_data_rule": "cost_plus"})
    no_cost = _recommend(cost=float("nan"), price=10.0, elasticity=-2.0, policy=policy)
    assert no_cost["recommended_price"] == 10.0
    assert no_cost["explanation"].startswith("No usable cost; holding the current price 10.00 (cost plus needs a cost)")
    neither = _recommend(cost=float("nan"), price=float("nan"), elasticity=-2.0)
    assert np.isnan(neither["recommended_price"])
    assert neither["explanation"].startswith(
        "No usable cost and no usable current price; no price can be set (load a cost or a current price)"
    )


def test_price_ending_rounds_down_inside_the_limits():
    policy = PLAIN.model_copy(update={"price_ending": 0.99})
    rec = _recommend(cost=10.0, price=20.0, elasticity=-1.5, policy=policy)
    assert rec["recommended_price"] == 21.99
    assert rec["binding_guardrail"] == "max_change"
    assert "ending .99 \u2192 21.99" in rec["explanation"]
    override = _recommend(cost=10.0, price=20.0, elasticity=-1.5, policy=policy, price_ending=0.95)
    assert override["recommended_price"] == 21.95


def test_price_ending_is_skipped_when_it_would_leave_the_limits():
    policy = PLAIN.model_copy(update={"price_ending": 0.99})
    rec = _recommend(cost=10.0, price=20.0, elasticity=-3.0, policy=policy)  # clipped up to 18.00
    assert rec["recommended_price"] == 18.00
    assert "skipped" in rec["explanation"]


def test_price_ending_never_turns_a_rise_into_a_cut():
    policy = PLAIN.model_copy(update={"price_ending": 0.99})
    rec = _recommend(cost=2.0, price=4.18, elasticity=-1.5, policy=policy)  # up to 4.59; 3.99 would be a cut
    assert rec["recommended_price"] == 4.59


def test_price_ending_never_turns_a_price_that_stays_into_a_cut():
    # On the line the optimum is today's price when cost = p0 (1 + 1/e): 7.66 stays, 6.99 was applied before.
    policy = PLAIN.model_copy(update={"price_ending": 0.99, "min_confidence": 0.0})
    rec = _recommend(cost=3.83, price=7.66, elasticity=-2.0, policy=policy)
    assert rec["optimal_price"] == pytest.approx(7.66)
    assert rec["recommended_price"] == 7.66
    assert "6.99" not in rec["explanation"]


def test_a_positive_elasticity_is_explained_as_such_not_as_inelastic_demand():
    rec = _recommend(cost=10.0, price=20.0, elasticity=0.4)
    assert rec["binding_guardrail"] == "inelastic_demand"
    assert rec["explanation"].startswith("Elasticity 0.40 [")
    assert "is positive (sales rose with the price)" in rec["explanation"]


def test_per_sku_max_change_override_takes_precedence():
    rec = _recommend(cost=10.0, price=20.0, elasticity=-1.5, max_change_pct=0.05)
    assert rec["recommended_price"] == 21.00


def test_approval_flag_follows_the_change_threshold():
    small = _recommend(cost=10.0, price=19.0, elasticity=-2.0)  # +5.3 %
    big = _recommend(cost=10.0, price=20.0, elasticity=-1.5)  # +10 %
    assert not small["needs_approval"]
    assert big["needs_approval"]
    assert "needs approval (+10.0%)" in big["explanation"]


def test_projection_and_its_percentile_band():
    rec = _recommend(cost=10.0, price=20.0, elasticity=-2.0, se=0.3, baseline=10.0, max_change_pct=0.2)
    # Optimum 20 = current: nothing moves.
    assert rec["recommended_price"] == 20.0 and rec["profit_delta"] == 0
    rec = _recommend(cost=10.0, price=20.0, elasticity=-1.5, se=0.3, baseline=10.0)
    q = 10.0 * 1.1**-1.5
    assert rec["projected_units"] == pytest.approx(q)
    assert rec["revenue_delta"] == pytest.approx(22.0 * q - 200.0)
    assert rec["profit_delta"] == pytest.approx(12.0 * q - 100.0)
    # Deltas are monotone in e, so the 5/95 % draw percentiles sit near e -/+ 1.645 se (200 draws).
    for e_q in (-1.5 - norm.ppf(0.95) * 0.3, -1.5 + norm.ppf(0.95) * 0.3):
        assert any(
            abs(rec[col] - (12.0 * 10.0 * 1.1**e_q - 100.0)) < 0.6 for col in ("profit_delta_low", "profit_delta_high")
        )
    assert rec["profit_delta_low"] <= rec["profit_delta"] <= rec["profit_delta_high"]


def test_explanation_reads_like_the_example():
    rec = _recommend(cost=10.0, price=20.0, elasticity=-1.5, se=0.2)
    assert rec["explanation"].startswith(
        "Optimum 30.00 at elasticity \u22121.50 [\u22121.83, \u22121.17]; capped at 22.00 by max change 10%"
    )


def test_missing_catalogue_columns_raise_data_error():
    catalogue = pd.DataFrame({"sku": ["S"], "price": [1.0]})
    with pytest.raises(DataError, match="missing column.*cost"):
        recommend_prices(catalogue, None, None, None, PLAIN)


def test_full_pipeline_on_a_generated_market_respects_every_hard_limit():
    market = generate_market(n_skus=400, n_competitors=4, seed=5)
    policy = PricingGuardrails(move_curve="constant")
    est = estimate_elasticities(market.sales, market.catalogue)
    pos = price_positions(market.catalogue, market.offers, [], policy.competitor_reference)
    recs = recommend_prices(market.catalogue, est, pos, baseline_units(market.sales), policy)
    assert list(recs.columns) == RECOMMENDATION_COLUMNS
    assert len(recs) == 400
    cat = market.catalogue.set_index("sku")
    max_change = cat["max_change_pct"].fillna(policy.max_change_pct)
    price, cost = recs["recommended_price"], recs["cost"]
    assert (price >= cost * (1 + policy.min_markup) - 1e-9).all()
    assert (price <= cost * (1 + policy.max_markup) + 1e-9).all()
    no_conflict = recs["conflicts"] == ""
    assert (recs["change_pct"].abs()[no_conflict] <= max_change[no_conflict] + 1e-9).all()
    assert set(recs["binding_guardrail"].dropna()) <= set(BINDINGS)
    assert recs["explanation"].str.len().gt(20).all()
    assert (recs["profit_delta_low"] <= recs["profit_delta_high"]).all()


# --- move only when it pays: the odds that a move raises profit ----------------------------------------------

CONFIDENT = PLAIN.model_copy(update={"min_confidence": 0.8})


def test_a_move_whose_odds_of_paying_are_poor_holds_and_says_the_odds():
    # Optimum 20 at e = -2, but within e's uncertainty the optimum lies anywhere from ~18 to ~23: a 19.50 -> 20.00
    # move pays only about as often as it costs.
    rec = _recommend(cost=10.0, price=19.5, elasticity=-2.0, se=0.2, policy=CONFIDENT)
    assert rec["recommended_price"] == 19.5 and rec["change_pct"] == 0.0
    assert rec["binding_guardrail"] == "low_confidence" and "low_confidence" in BINDINGS
    assert 0.3 < rec["gain_odds"] < 0.8
    assert "held at 19.50: the move to 20.00 raises profit with odds" in rec["explanation"]
    assert "under the 80% required" in rec["explanation"]
    assert not rec["needs_approval"] and rec["profit_delta"] == 0.0


def test_a_move_that_pays_under_nearly_every_elasticity_goes_ahead_with_its_odds():
    rec = _recommend(cost=10.0, price=20.0, elasticity=-1.5, se=0.1, policy=CONFIDENT)  # optimum 30, capped at 22
    assert rec["recommended_price"] == 22.0 and rec["binding_guardrail"] == "max_change"
    assert rec["gain_odds"] >= 0.8
    assert "odds it raises profit" in rec["explanation"]


def test_a_price_below_the_cost_floor_moves_to_the_floor_whatever_the_odds():
    rec = _recommend(cost=10.0, price=9.0, elasticity=-2.0, se=5.0, policy=CONFIDENT)
    assert rec["recommended_price"] == pytest.approx(10.5) and rec["binding_guardrail"] == "min_markup"


def test_without_an_elasticity_there_are_no_odds_and_the_missing_data_rule_decides():
    rec = _recommend(cost=10.0, price=19.5, elasticity=None, policy=CONFIDENT)
    assert rec["binding_guardrail"] == "missing_data" and np.isnan(rec["gain_odds"])


def test_gain_odds_are_the_normal_probability_that_the_elasticity_makes_the_move_pay():
    from framework2.tasks.pricing.recommend import gain_odds

    cost, cur, e, se = 10.0, 20.0, np.array([-1.6, -2.0, -2.4]), 0.3
    for rec in (21.0, 19.0):
        args = np.full(3, rec), np.full(3, cur), np.full(3, cost), e, np.full(3, se)
        odds = gain_odds(*args, n_draws=200_000, seed=1, line=False)
        # Constant elasticity: profit rises iff e * log(rec/cur) > log((cur - c)/(rec - c)), a threshold on e.
        threshold = np.log((cur - cost) / (rec - cost)) / np.log(rec / cur)
        expected = norm.sf((threshold - e) / se) if rec > cur else norm.cdf((threshold - e) / se)
        assert odds == pytest.approx(expected, abs=0.005)
        # The line through today's price: iff e * (rec/cur - 1) > (cur - c)/(rec - c) - 1.
        line_odds = gain_odds(*args, n_draws=200_000, seed=1)
        threshold = ((cur - cost) / (rec - cost) - 1) / (rec / cur - 1)
        expected = norm.sf((threshold - e) / se) if rec > cur else norm.cdf((threshold - e) / se)
        assert line_odds == pytest.approx(expected, abs=0.005)
        assert np.all(line_odds <= odds + 1e-12)  # the line never sells more than constant elasticity


def test_a_price_beyond_the_prices_sales_were_seen_at_is_clipped_to_them_and_says_so():
    catalogue = pd.DataFrame({"sku": ["S"], "name": ["thing"], "category": ["c"], "cost": [10.0], "price": [20.0]})
    index = pd.Index(["S"], name="sku")
    elasticities = pd.DataFrame(
        {
            "elasticity": [-1.5],  # optimum 30, the change limit allows 22
            "elasticity_se": [0.05],
            "elasticity_low": [-1.58],
            "elasticity_high": [-1.42],
            "price_low": [18.0],
            "price_high": [20.5],  # never sold above 20.50
        },
        index=index,
    )
    rec = recommend_prices(catalogue, elasticities, None, pd.Series([10.0], index=index), PLAIN).loc["S"]
    assert rec["recommended_price"] == pytest.approx(21.52)  # 20.50 + 5 %, rounded down to the cent
    assert rec["binding_guardrail"] == "observed_range"
    assert "the prices sales were seen at, 18.00-20.50 \u00b15%" in rec["explanation"]
    off = PLAIN.model_copy(update={"observed_range_margin": None})
    assert recommend_prices(catalogue, elasticities, None, pd.Series([10.0], index=index), off).loc["S"][
        "recommended_price"
    ] == pytest.approx(22.0)


def test_a_held_move_names_the_price_it_declined_in_every_clause():
    policy = PricingGuardrails(competitor_band_low=None, competitor_band_high=None, move_curve="constant")  # endings on
    rec = _recommend(cost=10.0, price=19.61, elasticity=-2.0, se=0.4, policy=policy)
    assert rec["binding_guardrail"] == "low_confidence" and rec["recommended_price"] == 19.61
    proposed = rec["explanation"].split("the move to ")[1].split(" ")[0]
    assert f"ending .99 \u2192 {proposed}" in rec["explanation"]
    assert proposed != "19.61"


def test_a_current_price_never_seen_in_sales_is_not_pushed_back_into_the_observed_range():
    catalogue = pd.DataFrame({"sku": ["S"], "name": ["thing"], "category": ["c"], "cost": [10.0], "price": [30.0]})
    index = pd.Index(["S"], name="sku")
    elasticities = pd.DataFrame(
        {
            "elasticity": [-3.0],
            "elasticity_se": [2.0],
            "elasticity_low": [-6.3],
            "elasticity_high": [0.3],
            "price_low": [18.0],
            "price_high": [20.5],
        },  # fmt: skip
        index=index,
    )
    rec = recommend_prices(catalogue, elasticities, None, pd.Series([10.0], index=index), CONFIDENT).loc["S"]
    # The optimum (15) is far below, but the odds of the cut are poor: it holds instead of being forced to 21.52.
    assert rec["binding_guardrail"] == "low_confidence" and rec["recommended_price"] == 30.0


def test_moves_are_sized_on_the_line_through_todays_price_by_default():
    # e = -2 at 20 with cost 10: constant elasticity puts the optimum at 20, the line at (20 * 1.5 + 10) / 2 = 20
    # too (same slope today); at 18 the line's optimum is (18 * 1.5 + 10) / 2 = 18.5, constant elasticity's 20.
    default = PLAIN.model_copy(update={"move_curve": "line"})
    assert default.move_curve == "line"
    line = _recommend(cost=10.0, price=18.0, elasticity=-2.0, policy=default)
    constant = _recommend(cost=10.0, price=18.0, elasticity=-2.0)
    assert line["optimal_price"] == pytest.approx(18.5) and constant["optimal_price"] == pytest.approx(20.0)
    assert line["recommended_price"] == pytest.approx(18.5) and line["binding_guardrail"] is None
    # The line sells fewer units than constant elasticity at the new price: 10 * (1 - 2 * 0.5/18).
    assert line["projected_units"] == pytest.approx(10.0 * (1 - 2.0 * 0.5 / 18.0))


def test_inelastic_demand_on_the_line_still_moves_up_by_the_full_change():
    default = PLAIN.model_copy(update={"move_curve": "line"})
    # e = -0.9, cost 8, price 20: the line's optimum (20 * 1.9 / 0.9 + 8) / 2 = 25.11 lies beyond +10 % (22).
    rec = _recommend(cost=8.0, price=20.0, elasticity=-0.9, policy=default)
    assert rec["optimal_price"] == pytest.approx(25.11, abs=0.01)
    assert rec["recommended_price"] == pytest.approx(22.0) and rec["binding_guardrail"] == "inelastic_demand"


def test_the_run_bar_rises_until_its_moves_are_expected_to_lose_in_at_most_the_share_allowed():
    from framework2.tasks.pricing.recommend import confidence_bar

    odds = np.array([1.0, 1.0, 0.95, 0.9, 0.85, 0.8, 0.5])
    # Kept from the top: expected losers 0, 0, .05, .15 over 4 moves = 3.75 % <= 4 %; adding 0.85 makes 6 %.
    assert confidence_bar(odds, 0.8, 0.04) == 0.9
    assert confidence_bar(odds[::-1], 0.8, 0.04) == 0.9  # the catalogue's order does not matter
    assert confidence_bar(odds, 0.8, 1.0) == 0.8  # 1 leaves minConfidence alone
    assert confidence_bar(odds, 0.96, 0.5) == 0.96  # never below minConfidence
    assert confidence_bar(np.array([1.0, 0.97, 0.9]), 0.8, 0.05) == 0.8  # all kept: the bar was not raised
    # Moves with equal odds hold or go together: 0.9 twice with one sure move is 6.7 % expected losers.
    assert confidence_bar(np.array([1.0, 0.9, 0.9]), 0.8, 0.05) == 1.0
    # No move sure enough on its own: the bar says what one would need.
    assert confidence_bar(np.array([0.9, 0.85]), 0.8, 0.04) == pytest.approx(0.96)
    assert confidence_bar(np.array([np.nan]), 0.8, 0.04) == 0.8


def test_a_run_of_barely_sure_moves_holds_the_least_sure_and_says_the_bar_was_raised():
    # 20 SKUs whose moves (20 -> 21.67, paying iff e > -1.71) pay with odds near 0.86 and 20 nearly sure ones: at 0.85
    # one move in seven loses, so with at most 4 % expected to lose the least sure hold, saying so.
    n = 40
    catalogue = pd.DataFrame({"sku": [f"S{i}" for i in range(n)], "category": "c", "cost": 10.0, "price": 20.0})
    index = pd.Index(catalogue["sku"], name="sku")
    se = np.where(np.arange(n) < 20, 0.2, 0.02)
    e = np.full(n, -1.5)
    elasticities = pd.DataFrame(
        {"elasticity": e, "elasticity_se": se, "elasticity_low": e - 1.645 * se, "elasticity_high": e + 1.645 * se},
        index=index,
    )
    policy = PLAIN.model_copy(update={"min_confidence": 0.8, "max_losing_share": 0.04, "move_curve": "line"})
    recs = recommend_prices(catalogue, elasticities, None, pd.Series(10.0, index=index), policy)
    unsure, sure = recs.iloc[:20], recs.iloc[20:]
    assert (unsure["gain_odds"] >= 0.8).all() and (unsure["gain_odds"] < 0.96).all()
    assert (unsure["binding_guardrail"] == "low_confidence").all() and (unsure["change_pct"] == 0).all()
    assert (
        "raised from 80% so that at most 4% of this run's moves are expected to lose money"
        in (unsure["explanation"].iloc[0])
    )
    assert (sure["change_pct"] > 0).all() and (sure["gain_odds"] >= 0.99).all()
    # Without the share rule the same moves go ahead on minConfidence alone.
    loose = recommend_prices(
        catalogue, elasticities, None, pd.Series(10.0, index=index), policy.model_copy(update={"max_losing_share": 1})
    )
    assert (loose["change_pct"] > 0).all()


def test_held_odds_and_the_bar_never_read_as_the_same_percentage():
    from framework2.tasks.pricing.recommend import _odds_against

    assert _odds_against(0.795, 0.8) == ("79.5%", "80.0%")
    assert _odds_against(0.955, 0.96) == ("95.5%", "96.0%")
    assert _odds_against(0.9951, 0.9952) == ("99.51%", "99.52%")
    assert _odds_against(0.62, 0.84) == ("62%", "84%")


def test_only_moves_the_raised_bar_held_blame_it():
    # One SKU's move pays with odds ~0.6 (held by minConfidence alone), one with ~0.86 (held by the raised bar).
    catalogue = pd.DataFrame({"sku": ["weak", "barely"], "category": "c", "cost": 10.0, "price": 20.0})
    index = pd.Index(catalogue["sku"], name="sku")
    se, e = np.array([0.6, 0.2]), np.full(2, -1.5)
    elasticities = pd.DataFrame(
        {"elasticity": e, "elasticity_se": se, "elasticity_low": e - 1.645 * se, "elasticity_high": e + 1.645 * se},
        index=index,
    )
    policy = PLAIN.model_copy(update={"min_confidence": 0.8, "max_losing_share": 0.04, "move_curve": "line"})
    recs = recommend_prices(catalogue, elasticities, None, pd.Series(10.0, index=index), policy)
    assert (recs["binding_guardrail"] == "low_confidence").all()
    assert recs.loc["weak", "gain_odds"] < 0.8 <= recs.loc["barely", "gain_odds"]
    assert "raised from 80%" not in recs.loc["weak", "explanation"]
    assert "raised from 80%" in recs.loc["barely", "explanation"]


def test_a_forced_move_needs_no_odds_to_reach_the_broken_guardrail_but_going_beyond_it_must_pay():
    # The current price is above the band (120 % of 58.30 = 69.96); the optimum 68.89 lies further on, and the move
    # there pays with odds ~0.54: the price comes down to the band and no further.
    policy = PricingGuardrails(competitor_band_low=0.85, competitor_band_high=1.2, price_ending=0.99)
    rec = _recommend(cost=33.17, price=71.50, elasticity=-2.16, se=0.9, ref=58.30, policy=policy)
    assert rec["recommended_price"] == pytest.approx(69.96) and rec["binding_guardrail"] == "competitor_band_high"
    assert (
        "the current price 71.50 breaks competitor band 120% of avg 58.30, so it moves to 69.96 whatever the odds"
        in (rec["explanation"])
    )
    assert "the move on to 67.99 raises profit with odds" in rec["explanation"]
    # Where going on pays, the forced move goes on to the optimum as before.
    sure = _recommend(cost=33.17, price=71.50, elasticity=-2.16, se=0.05, ref=58.30, policy=policy)
    assert sure["recommended_price"] == pytest.approx(67.99) and sure["gain_odds"] >= 0.8


def test_an_ending_that_alone_makes_a_cut_unlikely_to_pay_is_skipped_and_says_so():
    # The cut to 18.85 pays with odds ~0.86; rounded down to 18.49 it would pay with ~0.78, under the 0.8 asked.
    policy = CONFIDENT.model_copy(update={"price_ending": 0.49, "move_curve": "line"})
    rec = _recommend(cost=10.0, price=20.0, elasticity=-2.6, se=0.3, policy=policy)
    assert rec["recommended_price"] == pytest.approx(18.85) and rec["gain_odds"] >= 0.8
    assert "ending .49 skipped (at 18.49 the move would pay with odds 7" in rec["explanation"]


def test_without_a_standard_error_there_are_no_odds_and_the_price_holds_unless_no_rule_is_set():
    held = _recommend(cost=10.0, price=20.0, elasticity=-3.0, se=float("nan"), policy=CONFIDENT)
    assert held["recommended_price"] == 20.0 and held["binding_guardrail"] == "low_confidence"
    assert np.isnan(held["gain_odds"])
    assert "has no odds (the elasticity has no standard error)" in held["explanation"]
    point = _recommend(cost=10.0, price=20.0, elasticity=-3.0, se=float("nan"))  # minConfidence 0, share 1
    assert point["recommended_price"] == 18.0


def test_a_cut_the_change_limit_stops_reads_as_cut_no_further_not_raised():
    rec = _recommend(cost=10.0, price=20.0, elasticity=-3.0)  # optimum 15, the change limit allows 18
    assert "cut no further than 18.00 by max change 10%" in rec["explanation"]
    assert "raised to" not in rec["explanation"]
