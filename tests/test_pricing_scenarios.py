"""PPIS judged by true profit on markets it does not assume (``sample/scenario_market.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from framework2.config import PricingGuardrails
from framework2.sample.scenario_market import SCENARIOS, Scenario, scenario_market
from framework2.tasks.pricing import baseline_units, estimate_elasticities
from framework2.tasks.pricing.recommend import recommend_prices

LINEAR = next(s for s in SCENARIOS if s.demand == "linear")
LOGIT = next(s for s in SCENARIOS if s.demand == "logit")


@pytest.mark.parametrize("scenario", [SCENARIOS[0], LINEAR, LOGIT], ids=["constant", "linear", "logit"])
def test_the_true_elasticity_is_the_slope_of_the_true_demand_curve(scenario: Scenario) -> None:
    market = scenario_market(scenario, 50, 60, seed=2)
    price = market.catalogue["price"].to_numpy(dtype=float)
    step = 1e-5
    numeric = (np.log(market.expected_units(price * (1 + step))) - np.log(market.expected_units(price))) / np.log1p(
        step
    )
    sold = market.expected_units(price) > 0
    assert np.allclose(market.true_elasticity().to_numpy()[sold], numeric[sold], rtol=1e-3)


def _losing(confidence: float, curve: str = "line", share: float = 1.0) -> tuple[float, float]:
    market = scenario_market(LINEAR, 400, 120, seed=5)
    est = estimate_elasticities(market.sales, market.catalogue)
    policy = PricingGuardrails(
        competitor_band_low=None,
        competitor_band_high=None,
        min_confidence=confidence,
        max_losing_share=share,
        move_curve=curve,
    )
    recs = recommend_prices(market.catalogue, est, None, baseline_units(market.sales), policy)
    moved = np.abs(recs["change_pct"].to_numpy(dtype=float)) > 1e-9
    gain = market.profit_change(recs["recommended_price"].to_numpy(dtype=float))[moved]
    return float(np.mean(gain < 0)), float(gain.sum())


def test_the_confidence_rule_cuts_moves_that_lose_true_profit_on_linear_demand_and_keeps_most_profit() -> None:
    # Measured (400 SKUs x 120 days, seed 5): 5 % of moves lose with the rule, 22 % without; 63 % of the profit
    # (before the curve choice: 12 % and 29 %).
    losing, profit = _losing(0.8)
    losing_any, profit_any = _losing(0.0)
    assert losing <= 0.35 * losing_any, (losing, losing_any)
    assert profit >= 0.55 * profit_any, (profit, profit_any)


def test_the_run_share_rule_keeps_losing_moves_under_five_percent_on_linear_demand() -> None:
    # Odds of 0.8 lose one move in five where the odds are right (as on linear demand). Measured: minConfidence
    # alone lets 5.2 % of moves lose; with the default 4 % share 3.1 %, for 86 % of the profit.
    losing, profit = _losing(0.8, share=0.04)
    alone, profit_alone = _losing(0.8)
    assert losing < 0.05 and losing < alone, (losing, alone)
    assert profit >= 0.8 * profit_alone, (profit, profit_alone)


def test_moves_sized_on_the_line_lose_less_often_than_on_constant_elasticity_when_demand_bends() -> None:
    # Measured: 5 % against 9 % of moves lose true profit at the default confidence.
    line, _ = _losing(0.8, "line")
    constant, _ = _losing(0.8, "constant")
    assert line < 0.85 * constant, (line, constant)
