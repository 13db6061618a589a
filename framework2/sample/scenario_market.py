"""Pricing markets built the way the PPIS model does *not* assume, so moves can be judged by true profit.

``sample/market.py`` draws demand from the constant-elasticity curve the estimator fits: scoring against it
is circular. Here each scenario breaks one assumption, with the truth kept so a recommendation can be scored
by what it would really do to profit:

- **constant** — constant elasticity, but over-dispersed (gamma-Poisson) sales, a weekday pattern, a 45-day
  cycle and whole-week promotions at 20 % off;
- **linear** — demand falls in a straight line with price (the elasticity grows with the price; at some
  price nobody buys);
- **logit** — each SKU's sales are a logit share of its shoppers, s(p) = 1 / (1 + exp(-(a - b p))), the form
  brand-choice models fit: elasticity -b p (1 - s), growing with the price but never reaching zero demand;
- **sticky** — most SKUs' regular prices move by only 1-3 %, so there is little price variation to learn from;
- **small categories** — categories of 3 SKUs, too few to pool within;
- **promotion lift** — a promotion sells 1.3 times more than its price cut explains (display, advertising),
  and the sales history does not say which days were promotions.

Everything is drawn over whole (SKU x day) arrays; ``expected_units`` gives the true mean demand at any price,
without noise, season or promotion (the regular day the new price will meet).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

GAMMA_SHAPE = 3.0
LOGIT_BASE_SHARE = 0.3  # a logit SKU's share of its shoppers at its base price
PROMO_WEEK_SHARE = 0.08
PROMO_DISCOUNT = 0.20


@dataclass(frozen=True)
class Scenario:
    """One way the market differs from what the model assumes."""

    name: str
    demand: str = "constant"  # "constant" | "linear" | "logit"
    promo_lift: float = 1.0
    sticky_share: float = 0.0
    skus_per_category: int = 30


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("constant elasticity, seasonality, promotions"),
    Scenario("linear demand", demand="linear"),
    Scenario("logit demand", demand="logit"),
    Scenario("sticky prices (60 % move 1-3 %)", sticky_share=0.6),
    Scenario("categories of 3 SKUs", skus_per_category=3),
    Scenario("promotions lift demand x1.3", promo_lift=1.3),
)


@dataclass(frozen=True)
class ScenarioMarket:
    """Catalogue and sales as PPIS reads them, plus the truth behind them."""

    scenario: Scenario
    catalogue: pd.DataFrame
    sales: pd.DataFrame
    volume: np.ndarray  # mean units per regular day at the base price
    base: np.ndarray  # the price the demand curve is anchored at
    slope: np.ndarray  # elasticity at the base price

    def expected_units(self, price: np.ndarray) -> np.ndarray:
        """True mean units per regular day at ``price`` (one per catalogue SKU)."""
        return self.volume * _shape(self.scenario.demand, np.asarray(price, dtype=float) / self.base, self.slope)

    def true_elasticity(self, price: np.ndarray | None = None) -> pd.Series:
        """The elasticity the truth has at ``price`` (default: the current price)."""
        p = self.catalogue["price"].to_numpy(dtype=float) if price is None else np.asarray(price, dtype=float)
        ratio = p / self.base
        if self.scenario.demand == "linear":
            with np.errstate(divide="ignore", invalid="ignore"):
                value = self.slope * ratio / (1.0 + self.slope * (ratio - 1.0))
        elif self.scenario.demand == "logit":
            share = _logit_share(ratio, self.slope)
            value = _logit_b(self.slope) * ratio * (share - 1.0)
        else:
            value = self.slope
        return pd.Series(value, index=pd.Index(self.catalogue["sku"].astype(str), name="sku"), name="elasticity")

    def profit_change(self, new_price: np.ndarray) -> np.ndarray:
        """True profit per regular day at ``new_price`` minus at the current price."""
        cost = self.catalogue["cost"].to_numpy(dtype=float)
        current = self.catalogue["price"].to_numpy(dtype=float)
        new = np.asarray(new_price, dtype=float)
        return (new - cost) * self.expected_units(new) - (current - cost) * self.expected_units(current)


def _logit_b(slope: np.ndarray) -> np.ndarray:
    # The price coefficient (per unit of price / base) that gives elasticity ``slope`` at the base price.
    return -slope / (1.0 - LOGIT_BASE_SHARE)


def _logit_share(ratio: np.ndarray, slope: np.ndarray) -> np.ndarray:
    a = np.log(LOGIT_BASE_SHARE / (1.0 - LOGIT_BASE_SHARE))
    return 1.0 / (1.0 + np.exp(-(a - _logit_b(slope) * (ratio - 1.0))))


def _shape(demand: str, ratio: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """Units at ``ratio`` = price / base over units at the base price."""
    if demand == "linear":
        return np.maximum(0.0, 1.0 + slope * (ratio - 1.0))
    if demand == "logit":
        return _logit_share(ratio, slope) / LOGIT_BASE_SHARE
    return ratio**slope


def scenario_market(scenario: Scenario, n_skus: int = 1_500, n_days: int = 150, *, seed: int = 0) -> ScenarioMarket:
    """Generate one scenario's market (see the module docstring)."""
    rng = np.random.default_rng(seed)
    n_cat = max(1, n_skus // scenario.skus_per_category)
    category = np.arange(n_skus) % n_cat
    cat_mean = rng.uniform(-3.5, -1.3, n_cat)
    slope = np.minimum(cat_mean[category] + rng.normal(0.0, 0.4, n_skus), -1.1)
    base = np.exp(rng.uniform(np.log(2.0), np.log(100.0), n_skus))
    volume = np.exp(rng.normal(np.log(8.0), 0.8, n_skus))
    cost = base * rng.uniform(0.40, 0.65, n_skus)

    # Regular prices: a step every three weeks or so, of about 6 % (sticky SKUs: 1-3 %).
    steps = rng.random((n_skus, n_days)) < 1 / 21
    size = rng.normal(0.0, 0.06, (n_skus, n_days))
    sticky = rng.random(n_skus) < scenario.sticky_share
    small = rng.uniform(0.01, 0.03, (n_skus, n_days)) * rng.choice([-1.0, 1.0], (n_skus, n_days))
    size = np.where(sticky[:, None], small, size)
    regular = base[:, None] * np.exp(np.cumsum(np.where(steps, size, 0.0), axis=1))
    # Whole-week promotions at 20 % off (not for sticky SKUs: their prices barely move).
    weeks = (n_days + 6) // 7
    promo_week = (rng.random((n_skus, weeks)) < PROMO_WEEK_SHARE) & ~sticky[:, None]
    promo = np.repeat(promo_week, 7, axis=1)[:, :n_days]
    price = np.round(np.where(promo, regular * (1 - PROMO_DISCOUNT), regular), 2)

    day = np.arange(n_days)
    season = (1.0 + 0.25 * np.isin(day % 7, [4, 5])) * (1.0 + 0.15 * np.sin(2 * np.pi * day / 45))
    shape = _shape(scenario.demand, price / base[:, None], slope[:, None])
    mean = volume[:, None] * shape * season[None, :] * np.where(promo, scenario.promo_lift, 1.0)
    units = rng.poisson(mean * rng.gamma(GAMMA_SHAPE, 1.0 / GAMMA_SHAPE, mean.shape))

    skus = np.array([f"SC-{i:05d}" for i in range(n_skus)])
    current = np.round(regular[:, -1], 2)
    catalogue = pd.DataFrame(
        {
            "sku": skus,
            "name": skus,
            "category": np.array([f"cat-{c:03d}" for c in category]),
            "cost": np.round(cost, 2),
            "price": current,
        }
    )
    days = pd.date_range("2026-01-05", periods=n_days, freq="D")
    sales = pd.DataFrame(
        {
            "sku": np.repeat(skus, n_days),
            "day": np.tile(days, n_skus),
            "price": price.ravel(),
            "units": units.ravel(),
        }
    )
    return ScenarioMarket(scenario, catalogue, sales, volume, base, slope)
