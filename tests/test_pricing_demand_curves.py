"""Demand that bends: the line fit, the elasticity each curve gives at today's price, and the choice per category."""

from __future__ import annotations

import numpy as np
import pytest

from framework2.sample.scenario_market import SCENARIOS, scenario_market
from framework2.tasks.pricing.demand_curves import CURVES, choose_curves, elasticity_at, fit_line
from framework2.tasks.pricing.elasticity import fit_own_elasticities, pool_elasticities

CONSTANT, LINEAR, LOGIT = SCENARIOS[0], SCENARIOS[1], SCENARIOS[2]


def _elasticity_error_and_coverage(curves: bool, scenario, seed: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    market = scenario_market(scenario, 600, 150, seed=seed)
    own = fit_own_elasticities(market.sales, market.catalogue)
    if not curves:  # the log-linear fit alone, as before the curve choice
        own = own.drop(columns=[c for c in own.columns if c.endswith("_gain")])
    est = pool_elasticities(own)
    truth = market.true_elasticity().reindex(est.index).to_numpy()
    inside = (est["elasticity_low"] <= truth) & (truth <= est["elasticity_high"])
    return float(np.median(np.abs(est["elasticity"] - truth))), float(inside.mean())


@pytest.mark.parametrize("scenario", [LINEAR, LOGIT], ids=["linear", "logit"])
def test_demand_that_bends_is_read_at_todays_price_with_intervals_that_hold(scenario) -> None:  # type: ignore[no-untyped-def]
    # Measured (600 SKUs x 150 days, seed 3): linear 0.48 / 0.88 against 0.77 / 0.74 log-linear only;
    # logit 0.42 / 0.89 against 0.49 / 0.81.
    error, coverage = _elasticity_error_and_coverage(True, scenario, seed=3)
    error_before, coverage_before = _elasticity_error_and_coverage(False, scenario, seed=3)
    assert 0.85 <= coverage <= 0.95, coverage
    assert coverage > coverage_before + 0.05, (coverage, coverage_before)
    assert error < 0.9 * error_before, (error, error_before)


def test_constant_elasticity_markets_keep_the_log_linear_curve() -> None:
    market = scenario_market(CONSTANT, 600, 150, seed=3)
    est = pool_elasticities(fit_own_elasticities(market.sales, market.catalogue))
    assert (est["curve"] == "log-linear").all(), est["curve"].value_counts().to_dict()


def test_categories_of_linear_demand_choose_the_line() -> None:
    market = scenario_market(LINEAR, 600, 150, seed=4)
    est = pool_elasticities(fit_own_elasticities(market.sales, market.catalogue))
    assert (est["curve"] == "linear").mean() >= 0.8, est["curve"].value_counts().to_dict()


def test_the_line_fit_recovers_the_slope_and_its_interval_holds() -> None:
    rng = np.random.default_rng(7)
    n_sku, n_days, slope = 300, 120, -2.0
    ratio = np.exp(rng.normal(0.0, 0.08, (n_sku, n_days)))  # never past the choke price, r = 1.5
    ratio /= np.exp(np.log(ratio).mean(axis=1, keepdims=True))  # the centre price is the geometric mean
    units = rng.poisson(20.0 * np.maximum(1.0 + slope * (ratio - 1.0), 0.0))
    code = np.repeat(np.arange(n_sku), n_days)
    y = units.ravel().astype(float)
    m, var, _, converged, _ = fit_line(
        code, ratio.ravel() - 1.0, y, np.ones_like(y), y * y, np.full(n_sku, n_days), np.full(n_sku, -1.0)
    )
    inside = np.abs(m - slope) <= 1.645 * np.sqrt(var)
    assert converged.mean() > 0.95
    assert abs(np.median(m[converged]) - slope) < 0.1
    assert 0.85 <= inside[converged].mean() <= 0.95


def test_each_curve_gives_the_slope_of_its_own_demand_at_another_price() -> None:
    m, ratio, step = np.array([-0.8, -2.0, -3.5]), np.array([0.9, 1.15, 1.2]), 1e-6
    demand = {
        "log-linear": lambda r: r**m,
        "exponential": lambda r: np.exp(m * (r - 1.0)),
        "linear": lambda r: 1.0 + m * (r - 1.0),
    }
    for name in CURVES:
        numeric = (np.log(demand[name](ratio * (1 + step))) - np.log(demand[name](ratio))) / np.log1p(step)
        assert np.allclose(elasticity_at(name, m, ratio), numeric, rtol=1e-4), name


def test_a_line_past_its_choke_price_is_infinitely_elastic() -> None:
    assert elasticity_at("linear", np.array([-4.0]), np.array([1.3]))[0] == -np.inf


def test_a_category_follows_the_curve_its_days_fit_best() -> None:
    category = np.repeat(np.arange(3), 10)
    gains = np.zeros((30, 2))
    gains[category == 1, 0] = 2.0  # exponential fits category 1 better
    gains[category == 2, 1] = 3.0  # the line fits category 2 better
    gains[category == 0] = -1.0  # log-linear fits category 0 best
    chosen = choose_curves(gains, np.ones(30), np.ones(30, dtype=bool), category, 3)
    assert [CURVES[k] for k in chosen] == ["log-linear", "exponential", "linear"]


def test_a_category_without_evidence_of_its_own_follows_the_store() -> None:
    category = np.repeat(np.arange(12), 5)
    gains = np.zeros((60, 2))
    gains[:, 1] = 2.0  # eleven categories of clearly linear demand
    gains[category == 11, 1] = -0.1  # and one whose days barely say anything
    chosen = choose_curves(gains, np.ones(60), np.ones(60, dtype=bool), category, 12)
    assert CURVES[chosen[11]] == "linear"


def test_a_line_that_cannot_be_fitted_to_a_quarter_of_a_categorys_skus_is_not_chosen() -> None:
    # A line that would run out of demand at prices a SKU was sold at gets no fit (NaN gain) for that SKU.
    category = np.zeros(4, dtype=int)
    gains = np.array([[0.5, 20.0], [0.5, 20.0], [0.5, 20.0], [0.5, np.nan]])
    chosen = choose_curves(gains, np.ones(4), np.ones(4, dtype=bool), category, 1)
    assert CURVES[chosen[0]] == "exponential"
    gains[3, 1] = 20.0
    assert CURVES[choose_curves(gains, np.ones(4), np.ones(4, dtype=bool), category, 1)[0]] == "linear"


def test_a_current_price_past_the_prices_seen_is_read_at_the_nearest_price_seen() -> None:
    # Before: a catalogue price at 2x the sales' prices was past the fitted line's choke: -50 [-50, -50].
    market = scenario_market(LINEAR, 300, 150, seed=0)
    catalogue = market.catalogue.copy()
    own = fit_own_elasticities(market.sales, catalogue)
    est = pool_elasticities(own)
    catalogue["price"] = own["price_high"].to_numpy() * 2.0
    far = pool_elasticities(fit_own_elasticities(market.sales, catalogue))
    at_top = catalogue.assign(price=own["price_high"].to_numpy())
    edge = pool_elasticities(fit_own_elasticities(market.sales, at_top))
    linear = (far["curve"] == "linear").to_numpy()
    assert linear.any()
    assert np.allclose(far["elasticity"].to_numpy()[linear], edge["elasticity"].to_numpy()[linear])
    assert (far["elasticity_high"] > far["elasticity_low"]).to_numpy()[linear].all()
    assert np.isfinite(est["elasticity"]).all()
