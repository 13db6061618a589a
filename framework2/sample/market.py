"""A synthetic retail market with known true price elasticities.

Used by the demo, the tests and the benchmark. Everything is drawn with numpy over whole
(SKU x day) matrices, so 100,000 SKUs x 90 days take a few seconds and a few hundred MB.

Demand model (the truth the estimator is scored against): for SKU i on day t

    units ~ Poisson(v_i * (p_it / base_i) ** e_i * weekday_t * g_it),   g_it ~ Gamma(k, 1/k)

so units follow a negative binomial around a constant-elasticity curve. The weekday factor and the
gamma noise are independent of price: they add over-dispersion but no bias.

Each category has its own mean elasticity; SKUs deviate from it with a normal spread (kept below
-1.1 so every true optimum exists). Most SKUs see step changes of their regular price and a few
promotions; about 4 % keep one constant price for the whole history, which the estimator must notice
and pool. Volumes are log-normal, so there are slow sellers with many zero days and fast sellers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# (name, mean elasticity): all below -1 so the profit optimum is finite for every category.
CATEGORIES: tuple[tuple[str, float], ...] = (
    ("pantry", -1.4),
    ("household", -1.8),
    ("apparel", -2.2),
    ("electronics", -2.6),
    ("toys", -3.0),
)
SKU_ELASTICITY_SD = 0.25
CONSTANT_PRICE_SHARE = 0.04
GAMMA_SHAPE = 8.0


@dataclass(frozen=True)
class SampleMarket:
    """Generated inputs for the pricing analysis plus the truth behind them."""

    catalogue: pd.DataFrame
    sales: pd.DataFrame
    offers: pd.DataFrame
    true_elasticity: pd.Series


def generate_market(
    n_skus: int = 200,
    n_competitors: int = 4,
    n_days: int = 90,
    *,
    seed: int = 0,
    start: str | pd.Timestamp = "2025-01-06",
) -> SampleMarket:
    """Generate catalogue, daily sales and competitor offers with known elasticities."""
    if n_skus < 1 or n_days < 1 or n_competitors < 0:
        raise ValueError("n_skus and n_days must be >= 1 and n_competitors >= 0")
    rng = np.random.default_rng(seed)
    start_ts = pd.Timestamp(start).normalize()
    if start_ts.tzinfo is not None:
        start_ts = start_ts.tz_convert(None)

    names = [c for c, _ in CATEGORIES]
    means = np.array([m for _, m in CATEGORIES])
    cat = rng.integers(0, len(CATEGORIES), n_skus)
    true_e = np.minimum(means[cat] + rng.normal(0.0, SKU_ELASTICITY_SD, n_skus), -1.1)

    base = np.round(np.exp(rng.normal(np.log(15.0), 0.8, n_skus)), 2).clip(0.5)
    cost = np.round(base / (1.0 + rng.uniform(0.25, 0.9, n_skus)), 2)
    volume = np.exp(rng.normal(np.log(3.0), 1.2, n_skus))
    constant = rng.random(n_skus) < CONSTANT_PRICE_SHARE

    days = np.arange(n_days)
    # Regular price: up to three permanent step changes per SKU.
    regular = np.repeat(base[:, None], n_days, axis=1)
    n_steps = np.where(constant, 0, rng.integers(0, 4, n_skus))
    for k in range(3):
        day_k = rng.integers(1, max(n_days, 2), n_skus)
        mult = np.exp(rng.normal(0.0, 0.10, n_skus))
        on = (k < n_steps)[:, None] & (days[None, :] >= day_k[:, None])
        regular *= np.where(on, mult[:, None], 1.0)
    # Promotions: up to five episodes of 3-10 days at 15-35 % off.
    discount = np.ones((n_skus, n_days))
    n_promos = np.where(constant, 0, rng.integers(1, 6, n_skus))
    for k in range(5):
        first = rng.integers(0, n_days, n_skus)
        length = rng.integers(3, 11, n_skus)
        depth = rng.uniform(0.15, 0.35, n_skus)
        on = (k < n_promos)[:, None] & (days[None, :] >= first[:, None]) & (days[None, :] < (first + length)[:, None])
        discount = np.where(on, np.minimum(discount, 1.0 - depth[:, None]), discount)
    price = np.round(regular * discount, 2)
    del discount

    weekday = 1.0 + 0.15 * np.sin(2 * np.pi * ((start_ts.dayofweek + days) % 7) / 7.0)
    lam = volume[:, None] * (price / base[:, None]) ** true_e[:, None] * weekday[None, :]
    lam *= rng.gamma(GAMMA_SHAPE, 1.0 / GAMMA_SHAPE, lam.shape)
    units = rng.poisson(lam).astype(np.int32)
    del lam

    skus = np.array([f"SKU-{i:06d}" for i in range(1, n_skus + 1)], dtype=object)
    sku_cat = pd.Categorical.from_codes(np.repeat(np.arange(n_skus), n_days), categories=skus)
    sales = pd.DataFrame(
        {
            "sku": sku_cat,
            "day": np.tile(start_ts + pd.to_timedelta(days, unit="D"), n_skus),
            "price": price.ravel(),
            "units": units.ravel(),
        }
    )

    current = np.round(regular[:, -1], 2)
    catalogue = pd.DataFrame(
        {
            "sku": skus,
            "name": [f"{names[c]} item {i}" for i, c in enumerate(cat, start=1)],
            "category": np.asarray(names, dtype=object)[cat],
            "cost": cost,
            "price": current,
            # A few per-SKU overrides so the override path is exercised; NaN = policy default.
            "min_markup": np.nan,
            "max_markup": np.nan,
            "max_change_pct": np.where(rng.random(n_skus) < 0.02, 0.05, np.nan),
            "price_ending": np.where(rng.random(n_skus) < 0.03, 0.95, np.nan),
        }
    )

    offers = _offers(rng, skus, current, n_competitors, start_ts + pd.Timedelta(days=n_days))
    truth = pd.Series(true_e, index=pd.Index(skus, name="sku"), name="true_elasticity")
    return SampleMarket(catalogue=catalogue, sales=sales, offers=offers, true_elasticity=truth)


def _offers(
    rng: np.random.Generator, skus: np.ndarray, current: np.ndarray, n_competitors: int, end: pd.Timestamp
) -> pd.DataFrame:
    """Competitor offers around our current price; some stale duplicates and out-of-stock rows."""
    n = len(skus)
    competitors = np.array([f"competitor-{j + 1:02d}" for j in range(n_competitors)], dtype=object)
    bias = rng.uniform(-0.06, 0.06, n_competitors)
    carried = rng.random((n_competitors, n)) < 0.75
    comp_idx, sku_idx = np.nonzero(carried)
    price = current[sku_idx] * np.exp(bias[comp_idx] + rng.normal(0.0, 0.07, len(sku_idx)))
    end_utc = end.tz_localize("UTC")
    seen = end_utc - pd.to_timedelta(rng.integers(0, 6 * 3600, len(sku_idx)), unit="s")
    # An older observation for a quarter of the pairs: the latest one must win downstream.
    stale = rng.random(len(sku_idx)) < 0.25
    s_comp, s_sku = comp_idx[stale], sku_idx[stale]
    s_price = price[stale] * np.exp(rng.normal(0.0, 0.1, int(stale.sum())))
    s_seen = seen[stale] - pd.to_timedelta(rng.integers(3600, 48 * 3600, int(stale.sum())), unit="s")
    comp_all = np.concatenate([comp_idx, s_comp])
    n_rows = len(comp_all)
    comp_cat = pd.Categorical.from_codes(comp_all, categories=competitors)
    return pd.DataFrame(
        {
            "competitor": comp_cat,
            "sku": pd.Categorical.from_codes(np.concatenate([sku_idx, s_sku]), categories=skus),
            "price": np.round(np.concatenate([price, s_price]), 2).clip(0.01),
            "in_stock": rng.random(n_rows) < 0.9,
            "observed_at": seen.append(s_seen),
            "feed": pd.Categorical.from_codes(comp_all, categories=[f"{c}-feed" for c in competitors]),
        }
    )
