"""The tables' columns, and decoding them into arrays: timestamps in UTC nanoseconds, values, category codes, users."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import numpy as np
import pandas as pd

from framework2.errors import DataError

TableKind = Literal["exposures", "events"]

EXPOSURE_COLUMNS: tuple[str, ...] = ("experiment", "user", "variation", "timestamp")
EVENT_COLUMNS: tuple[str, ...] = ("user", "event", "timestamp")
QUARANTINE_COLUMNS: tuple[str, ...] = (
    "table",
    "row",
    "reason",
    "experiment",
    "user",
    "variation",
    "event",
    "timestamp",
    "value",
)
_REQUIRED: dict[str, tuple[str, ...]] = {"exposures": EXPOSURE_COLUMNS, "events": EVENT_COLUMNS}
# Columns read as text from CSV, so that "00123" stays "00123" in both tables and a bad cell keeps its text.
_TEXT_COLUMNS = ("experiment", "user", "variation", "event", "timestamp", "value")
# Id and name columns, returned as pandas categoricals by the loaders (see ``load_table``).
_KEY_COLUMNS = ("experiment", "user", "variation", "event")

_NS_MAX = np.iinfo(np.int64).max
RECENT_DAYS = 7
_NS_MIN = np.iinfo(np.int64).min  # NaT's integer value
_NS_PER_DAY = 86_400 * 10**9
_UTC_NS = pd.DatetimeTZDtype("ns", "UTC")


# ----------------------------------------------------------------------------------------- column decoding


def _timestamps_ns(col: pd.Series, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nanoseconds since the epoch (UTC) plus masks of missing and unparsable cells."""
    dtype = col.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or (isinstance(dtype, np.dtype) and dtype.kind == "M"):
        idx = pd.DatetimeIndex(col)
        idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
        ns = idx.as_unit("ns").asi8
        missing = ns == _NS_MIN
        return ns, missing, np.zeros(len(ns), dtype=bool)
    if isinstance(dtype, pd.ArrowDtype) and dtype.kind == "M":
        return _timestamps_ns(pd.Series(pd.to_datetime(col, utc=True)), what)
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        if col.isna().all():
            n = len(col)
            return np.full(n, _NS_MIN, dtype=np.int64), np.ones(n, dtype=bool), np.zeros(n, dtype=bool)
        raise DataError(
            f"{what} holds numbers, not timestamps",
            "store ISO 8601 text (2025-03-03T10:00:00Z) or a timestamp type; epoch numbers are ambiguous",
        )
    missing = _missing_mask(col)
    parsed = pd.to_datetime(col, utc=True, errors="coerce", format="ISO8601")
    ns = pd.DatetimeIndex(parsed).as_unit("ns").asi8
    bad = (ns == _NS_MIN) & ~missing
    if bad.any() and bad.sum() == (~missing).sum():
        sample = col[bad].iloc[0]
        raise DataError(
            f"{what}: no timestamp parses (for example {sample!r})",
            "write timestamps as ISO 8601, e.g. 2025-03-03T10:00:00Z",
        )
    return ns, missing, bad


def _values(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Event values as floats (NaN for an empty cell or one that is not a number) and a mask of the latter.

    The array may share memory with ``col``: callers copy before writing to it.
    """
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        values = col.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.zeros(len(values), dtype=bool)
    else:
        missing = _missing_mask(col)
        values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isnan(values) & ~missing
    return values, bad


def _missing_mask(col: pd.Series) -> np.ndarray:
    """Null cells and empty strings (what a CSV cell with nothing in it becomes)."""
    missing = col.isna().to_numpy(dtype=bool)
    if col.dtype == object or isinstance(col.dtype, pd.StringDtype | pd.ArrowDtype | pd.CategoricalDtype):
        missing |= (col == "").to_numpy(dtype=bool, na_value=False)
    return missing


def _codes(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes (-1 = missing, including empty strings) and the distinct values they index."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes = col.cat.codes.to_numpy().astype(np.int64)
        uniques = np.asarray(col.cat.categories)
    else:
        codes, uniques = pd.factorize(col, use_na_sentinel=True)
        codes = codes.astype(np.int64, copy=False)
        uniques = np.asarray(uniques)
    if uniques.dtype == object:
        empty = np.flatnonzero(uniques == "")
        if len(empty):
            codes = np.where(codes == empty[0], -1, codes)
    return codes, uniques


def _text_keys(uniques: np.ndarray) -> np.ndarray:
    """Distinct ids as text, so 123 in one table matches "123" in the other."""
    if uniques.dtype.kind == "f" and np.all(np.isfinite(uniques)) and np.all(uniques == np.round(uniques)):
        uniques = uniques.astype(np.int64)
    return uniques.astype(str).astype(object)


def _is_numeric(values: np.ndarray) -> bool:
    return values.dtype.kind in "iufb"


def _user_codes(x_col: pd.Series, e_col: pd.Series) -> tuple[np.ndarray, np.ndarray, int]:
    """Exposure and event user ids as codes in one space of ``n`` users.

    Exposure codes are -1 for a missing id; event codes -1 for a missing id and -2 for a user who appears in
    no exposure row (such events can never count).
    """
    if (
        pd.api.types.is_integer_dtype(x_col.dtype)
        and pd.api.types.is_integer_dtype(e_col.dtype)
        and not x_col.hasnans
        and not e_col.hasnans
        and len(x_col)
    ):
        # Dense integer ids need no hashing at all: the id minus the smallest id is the code.
        x_ids = x_col.to_numpy(dtype=np.int64)
        e_ids = e_col.to_numpy(dtype=np.int64)
        lo, hi = int(x_ids.min()), int(x_ids.max())
        if hi - lo < max(len(x_ids) + len(e_ids), 1_000_000):
            e_codes = e_ids - lo
            e_codes[(e_ids < lo) | (e_ids > hi)] = -2
            return x_ids - lo, e_codes, hi - lo + 1
    if x_col.dtype == object and e_col.dtype == object:
        # Text ids in both tables: one factorize over both columns hashes every id once.
        both, uniques = pd.factorize(np.concatenate([x_col.to_numpy(), e_col.to_numpy()]), use_na_sentinel=True)
        both = both.astype(np.int64, copy=False)
        empty = np.flatnonzero(np.asarray(uniques, dtype=object) == "")
        if len(empty):
            both[both == empty[0]] = -1
        x_codes, e_codes = both[: len(x_col)], both[len(x_col) :]
        exposed = np.zeros(len(uniques) + 1, dtype=bool)  # the extra slot absorbs code -1
        exposed[x_codes] = True
        exposed[-1] = False
        return x_codes, np.where(e_codes < 0, -1, np.where(exposed[e_codes], e_codes, -2)), len(uniques)
    x_codes, x_uniques = _codes(x_col)
    n = len(x_uniques)
    if isinstance(e_col.dtype, pd.CategoricalDtype):
        if isinstance(x_col.dtype, pd.CategoricalDtype) and _same_categories(x_col, e_col):
            return x_codes, e_col.cat.codes.to_numpy().astype(np.int64), n
        e_codes, e_values = _codes(e_col)  # map the (distinct) categories, then gather by code
    else:
        e_codes, e_values = np.empty(0, dtype=np.int64), e_col.to_numpy()  # map every row directly
    e_missing = None
    if _is_numeric(x_uniques) != (e_values.dtype.kind in "iufb"):
        # An int column against a text column: compare as text. The exposures' distinct ids are converted
        # and the exposures re-coded through them, so that equal texts share one code. Missing ids would
        # turn into text too, so they are noted first.
        e_missing = pd.isna(e_values)
        remap, x_text = pd.factorize(_text_keys(x_uniques))
        x_codes = np.append(remap, -1)[x_codes]
        x_uniques, e_values = np.asarray(x_text), _text_keys(e_values)
        n = len(x_uniques)
    # One factorize over the exposures' distinct ids followed by the event ids: the former are distinct, so
    # they keep codes 0..n-1, and an event id gets its exposure code or a new code >= n (never exposed).
    both, uniques = pd.factorize(np.concatenate([x_uniques, e_values]), use_na_sentinel=True)
    mapped = both[n:].astype(np.int64)
    missing = mapped < 0
    empty = np.flatnonzero(np.asarray(uniques, dtype=object) == "") if uniques.dtype == object else []
    if len(empty):
        missing |= mapped == empty[0]
    mapped[mapped >= n] = -2
    mapped[missing] = -1
    if e_missing is not None:
        mapped[e_missing] = -1
    if len(e_codes) or isinstance(e_col.dtype, pd.CategoricalDtype):
        mapped = np.append(mapped, -1)[e_codes]  # a missing category (code -1) picks the appended -1
    return x_codes, mapped, n


def _same_categories(a: pd.Series, b: pd.Series) -> bool:
    # Comparing the categories element-wise is cheaper than hashing both sets to map one onto the other.
    ca, cb = a.cat.categories, b.cat.categories
    return ca is cb or (len(ca) == len(cb) and ca.dtype == cb.dtype and bool(ca.equals(cb)))


def _utc_ns(moment: datetime | None, default: int) -> int:
    if moment is None:
        return default
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(pd.Timestamp(moment).as_unit("ns").value)
