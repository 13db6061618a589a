"""Where our prices stand against competitors' offers: per SKU, per category, and undercuts.

Index convention: ``index_vs_min`` / ``index_vs_avg`` = our price / competitor price x 100.
100 is parity, above 100 we are dearer, below 100 we are cheaper (an index of 110 means we charge
10 % more than the competitor figure).

``position`` is decided in this order: "no competitor data" (no in-stock offer), "cheapest" (strictly
below every in-stock competitor), "most expensive" (strictly above all), "at market"
(|index_vs_avg - 100| <= 2), then "below market" / "above market" by index_vs_avg.

Only the latest offer of each competitor for each SKU counts (feeds re-send old rows), and only if
that latest offer is in stock: a competitor that sold out does not set the market. Competitor rules
are applied before any statistic: ``include=False`` drops a competitor's offers, ``include=True``
re-admits them, and a category-specific rule beats a global one for SKUs of that category (among
rules of the same specificity, the later one in the list wins).

Fractions are fractions: ``threshold_pct=0.05`` and ``gap_pct=0.05`` mean 5 %, matching the config.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from framework2.config import CompetitorRule
from framework2.errors import DataError
from framework2.tasks.pricing.elasticity import catalogue_index, sku_codes

# |index_vs_avg - 100| within this counts as "at market".
AT_MARKET_BAND = 2.0
POSITIONS = ("cheapest", "below market", "at market", "above market", "most expensive", "no competitor data")
OFFER_COLUMNS = ["competitor", "sku", "price", "in_stock", "observed_at"]


def _require(df: pd.DataFrame, columns: list[str], what: str, hint: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{what} is missing column(s) {', '.join(missing)}; found {list(df.columns)}", hint)


def _latest_included_offers(catalogue: pd.DataFrame, offers: pd.DataFrame, rules: list[CompetitorRule]) -> pd.DataFrame:
    """Latest offer per (competitor, sku) for catalogue SKUs, after the competitor rules."""
    index = catalogue_index(catalogue)
    code = sku_codes(offers["sku"], index)
    known = code >= 0
    comp_code, comp_names = pd.factorize(offers["competitor"].astype(str), sort=True)
    observed = pd.to_datetime(offers["observed_at"], utc=True).dt.tz_convert(None).to_numpy()[known]
    code, comp = code[known], comp_code[known]
    # Sort by (sku, competitor, time) and keep each pair's last row: the latest observation.
    order = np.lexsort((observed, comp, code))
    c, k = code[order], comp[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = (c[1:] != c[:-1]) | (k[1:] != k[:-1])
    keep = order[last]
    frame = pd.DataFrame(
        {
            "code": code[keep],
            "comp": comp[keep],
            "price": offers["price"].to_numpy(dtype=float)[known][keep],
            "in_stock": offers["in_stock"].to_numpy(dtype=bool)[known][keep],
        }
    )

    if rules:
        cat_code, cat_names = pd.factorize(catalogue["category"].astype(str))
        cats = cat_code[frame["code"].to_numpy()]
        comp = frame["comp"].to_numpy()
        comp_lookup = {name: i for i, name in enumerate(comp_names)}
        cat_lookup = {name: i for i, name in enumerate(cat_names)}
        included = np.ones(len(frame), dtype=bool)
        # Global rules first so that category rules, applied after, override them.
        for rule in sorted(rules, key=lambda r: r.category is not None):
            hit = comp == comp_lookup.get(rule.competitor, -1)
            if rule.category is not None:
                hit &= cats == cat_lookup.get(rule.category, -1)
            included[hit] = rule.include
        frame = frame.loc[included].reset_index(drop=True)
    return frame.assign(competitor=np.asarray(comp_names, dtype=object)[frame["comp"].to_numpy()])


def price_positions(
    catalogue: pd.DataFrame,
    offers: pd.DataFrame,
    rules: list[CompetitorRule] | None = None,
    reference: str = "avg",
) -> pd.DataFrame:
    """Competitor price statistics and our position for every catalogue SKU (index = sku)."""
    _require(catalogue, ["sku", "category", "price"], "catalogue", "the catalogue needs sku, category and price")
    _require(offers, OFFER_COLUMNS, "offers", "offers need competitor, sku, price, in_stock, observed_at")
    if reference not in ("min", "avg", "max"):
        raise ValueError(f"reference must be 'min', 'avg' or 'max', got {reference!r}")
    index = catalogue_index(catalogue)
    n = len(index)
    ours = pd.to_numeric(catalogue["price"], errors="coerce").to_numpy(dtype=float)

    latest = _latest_included_offers(catalogue, offers, rules or [])
    n_offers = np.bincount(latest["code"].to_numpy(), minlength=n)
    stock = latest[latest["in_stock"].to_numpy()]
    sc = stock["code"].to_numpy()
    sp = stock["price"].to_numpy()
    n_in_stock = np.bincount(sc, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = np.bincount(sc, weights=sp, minlength=n) / n_in_stock
    lo = np.full(n, np.inf)
    hi = np.full(n, -np.inf)
    np.minimum.at(lo, sc, sp)
    np.maximum.at(hi, sc, sp)
    has = n_in_stock > 0
    lo[~has], hi[~has] = np.nan, np.nan
    # Cheapest competitor: first row per SKU after sorting by price, ties to the alphabetical first.
    cheapest = np.full(n, None, dtype=object)
    if len(stock):
        by_price = stock.sort_values(["code", "price", "comp"], kind="stable")
        first = by_price.drop_duplicates("code", keep="first")
        cheapest[first["code"].to_numpy()] = first["competitor"].to_numpy()

    ref = {"min": lo, "avg": avg, "max": hi}[reference]
    with np.errstate(invalid="ignore", divide="ignore"):
        idx_min = ours / lo * 100
        idx_avg = ours / avg * 100
    position = np.select(
        [~has | ~np.isfinite(ours), ours < lo, ours > hi, np.abs(idx_avg - 100) <= AT_MARKET_BAND, idx_avg < 100],
        ["no competitor data", "cheapest", "most expensive", "at market", "below market"],
        default="above market",
    )
    return pd.DataFrame(
        {
            "our_price": ours,
            "n_offers": n_offers,
            "n_in_stock": n_in_stock,
            "min_price": lo,
            "avg_price": avg,
            "max_price": hi,
            "cheapest_competitor": cheapest,
            "reference_price": ref,
            "index_vs_min": idx_min,
            "index_vs_avg": idx_avg,
            "position": position.astype(object),
        },
        index=index,
    )


def category_positions(
    positions: pd.DataFrame, catalogue: pd.DataFrame, weights: pd.Series | None = None
) -> pd.DataFrame:
    """Per category: weighted mean index vs avg and the share of SKUs cheapest / above market.

    ``weights`` (e.g. recent revenue per sku) weight the index; missing weights count as 0, and a
    category whose SKUs all weigh 0 falls back to equal weights. Shares are over SKUs with data.
    """
    _require(catalogue, ["sku", "category"], "catalogue", "the catalogue needs sku and category")
    index = catalogue_index(catalogue)
    pos = positions.reindex(index)
    category = pd.Series(catalogue["category"].astype(str).to_numpy(), index=index)
    has = pos["position"].ne("no competitor data") & pos["index_vs_avg"].notna()
    if weights is None:
        w = pd.Series(1.0, index=index)
    else:
        w = weights.reindex(index).astype(float).fillna(0.0).clip(lower=0.0)
    w = w.where(has, 0.0)
    # Categories where every SKU with data weighs 0 get equal weights instead of a 0/0.
    zero_cat = w.groupby(category).transform("sum") <= 0
    w = w.mask(zero_cat & has, 1.0)
    frame = pd.DataFrame(
        {
            "category": category,
            "has": has,
            "w": w,
            "wx": w * pos["index_vs_avg"].fillna(0.0),
            "cheapest": has & pos["position"].eq("cheapest"),
            "above": has & pos["position"].isin(["above market", "most expensive"]),
        }
    )
    g = frame.groupby("category", sort=True)
    out = pd.DataFrame(
        {
            "n_skus": g.size(),
            "n_skus_with_data": g["has"].sum(),
            "index_vs_avg": g["wx"].sum() / g["w"].sum().replace(0.0, np.nan),
        }
    )
    with_data = out["n_skus_with_data"].replace(0, np.nan)
    out["share_cheapest"] = g["cheapest"].sum() / with_data
    out["share_above_market"] = g["above"].sum() / with_data
    out.index.name = "category"
    return out


def undercuts(catalogue: pd.DataFrame, positions: pd.DataFrame, threshold_pct: float = 0.05) -> pd.DataFrame:
    """SKUs where the cheapest in-stock competitor is more than ``threshold_pct`` below our price.

    ``gap_pct`` = 1 - competitor / ours (0.12 = they are 12 % cheaper); sorted by gap, largest first.
    """
    _require(catalogue, ["sku", "price"], "catalogue", "the catalogue needs sku and price")
    index = catalogue_index(catalogue)
    pos = positions.reindex(index)
    ours = pd.to_numeric(catalogue["price"], errors="coerce").to_numpy(dtype=float)
    theirs = pos["min_price"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        hit = theirs < ours * (1 - threshold_pct)
    out = pd.DataFrame(
        {
            "name": catalogue["name"].to_numpy() if "name" in catalogue else None,
            "category": catalogue["category"].to_numpy() if "category" in catalogue else None,
            "competitor": pos["cheapest_competitor"].to_numpy(),
            "competitor_price": theirs,
            "our_price": ours,
            "gap_pct": 1 - theirs / ours,
        },
        index=index,
    )[hit]
    return out.sort_values("gap_pct", ascending=False, kind="stable")
