"""PPIS pricing cut into partitions of whole categories, in process or on Dask.

The expensive part, each SKU's own fit with its category's week, weekday and promotion factors, needs only
its category's sales, so a partition holding whole categories fits exactly what the whole catalogue would.
The pooling (SKU -> category -> store) needs every category's fits at once and is cheap: it runs here on the
gathered fits, then the guarded optimum and projection (per SKU, vectorised) for the whole catalogue. The
other whole-catalogue quantities, the baseline window's end (the latest sales day) and the check that some
sales row is usable, are taken here before splitting.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from framework2.config import PricingGuardrails
from framework2.scale import ScaleOut, balanced_partitions, partition_count, run_partitions
from framework2.tasks.pricing.elasticity import (
    catalogue_index,
    fit_own_elasticities,
    pool_elasticities,
    sku_codes,
    usable_sales,
)
from framework2.tasks.pricing.recommend import recommend_prices

NO_CATEGORY = "(none)"  # as estimate_elasticities names a missing category


@task(name="ppis-price-partition", cache_policy=NO_CACHE)
def price_partition(catalogue: pd.DataFrame, sales: pd.DataFrame, whole: bool = True) -> pd.DataFrame:
    """The own elasticity fits of the SKUs of whole categories (``whole``: all of them)."""
    return fit_own_elasticities(sales, catalogue, require_sales=whole)


def _categories(catalogue: pd.DataFrame) -> np.ndarray:
    category = catalogue["category"].astype(object).where(catalogue["category"].notna(), NO_CATEGORY)
    return category.astype(str).to_numpy()


def split_catalogue(
    catalogue: pd.DataFrame, sales: pd.DataFrame, count: int
) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """(catalogue, sales) per partition: whole categories, balanced by sales rows, rows in their original order."""
    index = catalogue_index(catalogue)
    sku_of_row = sku_codes(sales["sku"], index)
    category = _categories(catalogue)
    cat_code, names = pd.factorize(category)
    known = sku_of_row >= 0
    rows_per_cat = np.bincount(cat_code[sku_of_row[known]], minlength=len(names))
    # A category without sales still costs its SKUs' pricing: weigh it by its SKU count too.
    weight = rows_per_cat + np.bincount(cat_code, minlength=len(names))
    groups = balanced_partitions({str(n): float(w) for n, w in zip(names, weight, strict=True)}, count)
    row_cat = np.where(known, cat_code[np.maximum(sku_of_row, 0)], -1)
    code_of = {str(n): i for i, n in enumerate(names)}
    parts = []
    for group in groups:
        codes = np.array([code_of[name] for name in group])
        parts.append((catalogue[np.isin(cat_code, codes)], sales.iloc[np.flatnonzero(np.isin(row_cat, codes))]))
    return parts


def price_catalogue(
    catalogue: pd.DataFrame,
    sales: pd.DataFrame,
    positions: pd.DataFrame | None,
    baseline: pd.Series,
    policy: PricingGuardrails,
    scale: ScaleOut,
) -> pd.DataFrame:
    """Recommendations for every catalogue SKU (in catalogue order), computed in ``scale``'s partitions."""
    index = catalogue_index(catalogue)
    count = partition_count(scale, catalogue["category"].nunique(dropna=False))
    parts = [(catalogue, sales)]
    if count > 1:
        usable_sales(sales, index)  # the whole run's check: one partition may rightly have no usable rows
        parts = split_catalogue(catalogue, sales, count)
    inputs = [
        {"catalogue": part_catalogue, "sales": part_sales, "whole": count == 1} for part_catalogue, part_sales in parts
    ]
    results = run_partitions("ppis-price-partitions", price_partition, inputs, scale)
    own_fits = pd.concat(results).reindex(index) if len(results) > 1 else results[0]
    elasticities = pool_elasticities(own_fits)
    return recommend_prices(catalogue, elasticities, positions, baseline, policy)
