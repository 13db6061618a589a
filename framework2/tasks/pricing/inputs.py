"""Validation of our own pricing inputs (catalogue, sales): bad rows are split off with a reason, never dropped."""

from __future__ import annotations

import numpy as np
import pandas as pd

from framework2.errors import DataError

CATALOGUE_REQUIRED = ["sku", "category", "cost", "price"]
SALES_REQUIRED = ["sku", "day", "price", "units"]


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{what} lacks column(s) {', '.join(missing)}",
            hint=f"{what} needs {', '.join(columns)}; check the import mapping",
        )


def _split(frame: pd.DataFrame, reasons: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    bad = reasons.notna()
    quarantined = frame[bad].copy()
    quarantined["reason"] = reasons[bad]
    return frame[~bad].copy(), quarantined


# Per-SKU guardrail overrides: the same ranges as PricingGuardrails (empty = use the policy value).
GUARDRAIL_RANGES = {
    "min_markup": (lambda v: v >= 0, "zero or more (0.05 = cost + 5 %)"),
    "max_markup": (lambda v: v > 0, "more than zero (3.0 = cost + 300 %)"),
    "max_change_pct": (lambda v: (v > 0) & (v <= 1), "a fraction in (0, 1] (0.1 = 10 %)"),
    "price_ending": (lambda v: (v >= 0) & (v < 1), "a fraction in [0, 1) (0.99 = x.99)"),
}


def validate_catalogue(catalogue: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(valid, quarantined): cost and price must be positive numbers, sku unique, category present."""
    _require(catalogue, CATALOGUE_REQUIRED, "the catalogue")
    cost = pd.to_numeric(catalogue["cost"], errors="coerce")
    price = pd.to_numeric(catalogue["price"], errors="coerce")
    reasons = pd.Series(np.nan, index=catalogue.index, dtype=object)
    # Later checks must not overwrite an earlier reason, so fill only where still empty.
    checks: list[tuple[pd.Series, str]] = [
        (catalogue["sku"].isna() | (catalogue["sku"].astype(str).str.strip() == ""), "sku is empty"),
        (catalogue["sku"].duplicated(keep="first"), "duplicate sku (an earlier row has it)"),
        (catalogue["category"].isna(), "category is missing"),
        (cost.isna() | (cost <= 0), "cost must be a positive number"),
        (price.isna() | (price <= 0), "price must be a positive number"),
    ]
    overrides = {}
    for column, (ok, rule) in GUARDRAIL_RANGES.items():
        if column not in catalogue.columns:
            continue
        given = catalogue[column].notna() & (catalogue[column].astype(str).str.strip() != "")
        value = pd.to_numeric(catalogue[column], errors="coerce")
        checks.append((given & value.isna(), f"{column} must be a number"))
        checks.append((value.notna() & ~ok(value), f"{column} must be {rule}"))
        overrides[column] = value
    if "min_markup" in overrides and "max_markup" in overrides:
        both = overrides["min_markup"].notna() & overrides["max_markup"].notna()
        checks.append(
            (both & (overrides["max_markup"] <= overrides["min_markup"]), "max_markup must exceed min_markup")
        )
    for mask, reason in checks:
        reasons = reasons.where(~(mask & reasons.isna()), reason)
    valid, quarantined = _split(catalogue, reasons)
    valid["cost"], valid["price"] = cost[valid.index], price[valid.index]
    for column, value in overrides.items():
        valid[column] = value[valid.index]
    return valid, quarantined


def validate_sales(sales: pd.DataFrame, known_skus: pd.Index) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(valid, quarantined): units >= 0, price > 0, known sku, one row per sku and day."""
    _require(sales, SALES_REQUIRED, "the sales history")
    price = pd.to_numeric(sales["price"], errors="coerce")
    units = pd.to_numeric(sales["units"], errors="coerce")
    reasons = pd.Series(np.nan, index=sales.index, dtype=object)
    day = pd.to_datetime(sales["day"], errors="coerce")
    checks = [
        (~sales["sku"].isin(known_skus), "unknown sku (not in the catalogue)"),
        (day.isna(), "day is missing or not a date (use YYYY-MM-DD)"),
        (price.isna() | (price <= 0), "price must be a positive number"),
        (units.isna() | (units < 0), "units must be zero or more"),
        (units.notna() & (units % 1 != 0), "units must be a whole number"),
        (
            day.notna() & sales.assign(_day=day).duplicated(subset=["sku", "_day"], keep="first"),
            "duplicate day for this sku",
        ),
    ]
    for mask, reason in checks:
        reasons = reasons.where(~(mask & reasons.isna()), reason)
    return _split(sales, reasons)
