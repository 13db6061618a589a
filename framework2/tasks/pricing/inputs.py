"""Validation of our own pricing inputs (catalogue, sales): bad rows are split off with a reason, never dropped.

The same checks run on a CSV being loaded and on what a pricing run reads from the store, so a row stored
before a check existed (an infinite price, say) is skipped by the run with its reason instead of failing it.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from framework2.errors import DataError
from framework2.store.models import Product
from framework2.tasks.boundary import DayRange, NumberRange, Reasons, text_rule

CATALOGUE_REQUIRED = ["sku", "category", "cost", "price"]
SALES_REQUIRED = ["sku", "day", "price", "units"]

# Every range a pricing input must fall in, in one place (the loaders, the run and the recommendation use these).
# Money: only whole cents can be charged, so nothing below one; ten million is far above any catalogue item and
# keeps prices, their ratios and the projections built from them finite.
MONEY = NumberRange(low=0.01, high=10_000_000, rule="a positive number from 0.01 to 10000000")
# Units sold per SKU and day: whole, and small enough to stay exact in a float and in a 64-bit integer sum.
UNITS = NumberRange(low=0, high=1_000_000_000, whole=True, rule="a whole number from 0 to 1000000000")
# Sales days: pandas (and so the pricing run) cannot represent days far outside this.
DAYS = DayRange(low=date(1900, 1, 1), high=date(2199, 12, 31))
# Per-SKU guardrail overrides: the same meaning as PricingGuardrails, bounded so a typo cannot ask for cost x 1e9.
GUARDRAIL_RANGES = {
    "min_markup": NumberRange(low=0, high=100, rule="a number from 0 to 100 (0.05 = cost + 5 %)"),
    "max_markup": NumberRange(low=0, high=100, low_open=True, rule="a number above 0 up to 100 (3.0 = cost + 300 %)"),
    "max_change_pct": NumberRange(low=0, high=1, low_open=True, rule="a fraction in (0, 1] (0.1 = 10 %)"),
    "price_ending": NumberRange(low=0, high=1, high_open=True, rule="a fraction in [0, 1) (0.99 = x.99)"),
}
# Text limits come from the store's columns: one source of truth for how long a SKU, name or category may be.
SKU = text_rule(Product, "sku", key=True)
NAME = text_rule(Product, "name", required=False)
CATEGORY = text_rule(Product, "category", key=True)


# What a header read as one column holds when the file was saved with another separator (Excel in many locales
# writes ";").
_OTHER_SEPARATORS = {";": "semicolons", "\t": "tabs", "|": "bars"}


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        hint = f"{what} needs {', '.join(columns)}; check the import mapping"
        if len(frame.columns) == 1:
            found = [name for sep, name in _OTHER_SEPARATORS.items() if sep in str(frame.columns[0])]
            if found:
                hint = (
                    f"the header reads as one column: the file looks separated by {found[0]}; save it as "
                    f"comma-separated CSV (in Excel: CSV UTF-8) with the columns {', '.join(columns)}"
                )
        raise DataError(f"{what} lacks column(s) {', '.join(missing)}", hint=hint)


def _repeated(keys: pd.DataFrame, reasons: Reasons) -> pd.Series:
    """Rows whose key an earlier row already has, among rows not refused yet: a refused row must not push out
    a good one after it."""
    ok = reasons.by_row.isna().to_numpy()
    repeated = np.zeros(len(keys), dtype=bool)
    repeated[ok] = keys[ok].duplicated(keep="first").to_numpy(dtype=bool)
    return pd.Series(repeated, index=keys.index)


def validate_catalogue(catalogue: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(valid, quarantined): text within its column, cost and price in ``MONEY``, sku unique, overrides in range.

    Valid rows come back with numbers as floats (NaN = no override) and a blank name as "".
    """
    _require(catalogue, CATALOGUE_REQUIRED, "the catalogue")
    reasons = Reasons(catalogue.index)
    reasons.merge(SKU.check(catalogue["sku"], "sku"))
    reasons.merge(CATEGORY.check(catalogue["category"], "category"))
    if "name" in catalogue.columns:
        reasons.merge(NAME.check(catalogue["name"], "name"))
    cost, why = MONEY.parse(catalogue["cost"], "cost", required=True)
    reasons.merge(why)
    price, why = MONEY.parse(catalogue["price"], "price", required=True)
    reasons.merge(why)
    overrides = {}
    for column, limits in GUARDRAIL_RANGES.items():
        if column in catalogue.columns:
            overrides[column], why = limits.parse(catalogue[column], column, required=False)
            reasons.merge(why)
    if "min_markup" in overrides and "max_markup" in overrides:
        both = overrides["min_markup"].notna() & overrides["max_markup"].notna()
        reasons.add(both & (overrides["max_markup"] <= overrides["min_markup"]), "max_markup must exceed min_markup")
    reasons.add(_repeated(catalogue[["sku"]], reasons), "duplicate sku (an earlier row has it)")
    valid, quarantined = reasons.split(catalogue)
    valid["cost"], valid["price"] = cost[valid.index], price[valid.index]
    for column, value in overrides.items():
        valid[column] = value[valid.index]
    # The name column is NOT NULL: a blank name is stored as empty text, not as a failed insert.
    valid["name"] = valid["name"].where(valid["name"].notna(), "") if "name" in valid.columns else ""
    return valid, quarantined


def validate_sales(sales: pd.DataFrame, known_skus: pd.Index) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(valid, quarantined): known sku, a day in ``DAYS``, price in ``MONEY``, units in ``UNITS``, one row per sku
    and day. Valid rows come back typed: day as datetime64, price float, units int."""
    _require(sales, SALES_REQUIRED, "the sales history")
    reasons = Reasons(sales.index)
    blank = sales["sku"].isna() | (sales["sku"].astype(str).str.strip() == "")
    reasons.add(blank, "sku is empty")
    reasons.add(~sales["sku"].isin(known_skus), "unknown sku (not in the catalogue)")
    day, why = DAYS.parse(sales["day"], "day")
    reasons.merge(why)
    # Sales cannot have happened yet: a future day (a mistyped year) would end the baseline window there and
    # leave every other SKU without recent volumes.
    tomorrow = pd.Timestamp.now(tz="UTC").tz_localize(None).normalize() + pd.Timedelta(days=1)
    reasons.add(day > tomorrow, f"day is in the future (after {tomorrow:%Y-%m-%d})")
    price, why = MONEY.parse(sales["price"], "price", required=True)
    reasons.merge(why)
    units, why = UNITS.parse(sales["units"], "units", required=True)
    reasons.merge(why)
    promo = None
    if "promo" in sales.columns:
        promo, why = _flags(sales["promo"], "promo")
        reasons.merge(why)
    reasons.add(_repeated(pd.DataFrame({"sku": sales["sku"], "day": day}), reasons), "duplicate day for this sku")
    valid, quarantined = reasons.split(sales)
    valid["day"], valid["price"] = day[valid.index], price[valid.index]
    valid["units"] = units[valid.index].astype("int64")
    if promo is not None:
        valid["promo"] = promo[valid.index]
    return valid, quarantined


# The words a promo cell may say (lower case, stripped); the elasticity fit reads the same words.
PROMO_TRUE = frozenset({"1", "true", "yes", "y"})
PROMO_FALSE = frozenset({"0", "false", "no", "n"})
_TRUE, _FALSE = PROMO_TRUE, PROMO_FALSE | {""}


def _flags(cells: pd.Series, column: str) -> tuple[pd.Series, pd.Series]:
    """(True/False/None per cell, the reason where a cell is none of 1/0, true/false, yes/no or empty)."""
    text = cells.astype(object).where(cells.notna(), "").astype(str).str.strip().str.lower()
    flag = pd.Series(np.where(text.isin(_TRUE), True, np.where(text.isin(_FALSE - {""}), False, None)), cells.index)
    flag = flag.astype(object).where(text != "", None)
    bad = ~text.isin(_TRUE | _FALSE)
    reason = pd.Series(None, index=cells.index, dtype=object)
    reason[bad] = f"{column} must be 1/0, true/false, yes/no or empty"
    return flag, reason
