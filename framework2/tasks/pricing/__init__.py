"""PPIS pricing analytics as plain functions: positioning, elasticities, recommendations."""

from framework2.tasks.pricing.elasticity import baseline_units, estimate_elasticities
from framework2.tasks.pricing.market import category_positions, price_positions, undercuts
from framework2.tasks.pricing.recommend import optimal_price, recommend_prices

__all__ = [
    "baseline_units",
    "category_positions",
    "estimate_elasticities",
    "optimal_price",
    "price_positions",
    "recommend_prices",
    "undercuts",
]
