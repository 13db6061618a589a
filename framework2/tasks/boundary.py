"""One validation layer for rows from outside (CSV files people export): read, trim, check, give a reason.

A file that cannot be read as a whole (missing, not UTF-8, no header, a column named twice) is a ``DataError``
before anything is stored. Everything else is judged row by row: a row with more or fewer cells than the
header, a number that is not finite or outside its stated range, text that is blank, too long for its column
or holds control characters gets the first reason it fails and goes to quarantine; the other rows go on.

Rules are declared, not coded per caller: ``NumberRange`` and ``DayRange`` say what a number or a day may be,
``text_rule`` reads a column's length limit from the SQLModel field, so the store's schema stays the one source
of truth for text. Checks are vectorised (a catalogue may have hundreds of thousands of rows); only the rows
that fail build a reason string.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import annotated_types
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, model_validator
from sqlmodel import SQLModel

from framework2.errors import DataError

# Plain decimal notation only: "inf", "NaN", "0x10", "1_000" and non-ASCII digits are not numbers a price list
# should contain, even though Python's float() accepts some of them.
DECIMAL_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_WHOLE = r"\+?[0-9]+(?:\.0*)?"
_DAY = r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
# C0/C1 control characters, line and paragraph separators and direction overrides (which make text read other
# than it is stored): never meaningful in a name or key, and PostgreSQL cannot store NUL at all.
CONTROL_CHARACTERS = r"[\x00-\x1f\x7f-\x9f\u2028-\u202e\u2066-\u2069]"
# Characters that make two keys look equal but differ: zero-width ones, BOM, direction marks, and every space
# but the plain one (no-break, thin, ideographic, ...).
# Hangul and Braille blanks, variation selectors and tag characters too: Unicode's default-ignorables.
_INVISIBLE = (
    r"[\u00a0\u00ad\u034f\u061c\u115f\u1160\u1680\u17b4\u17b5\u180b-\u180f\u2000-\u200f\u202f\u205f"
    r"\u2060-\u2064\u206a-\u206f\u2800\u3000\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0000-\U000e0fff]"
)
_SHOWN = 40  # characters of a bad value quoted in its reason; the whole row is in the quarantine payload
# A catalogue or sales export has a handful of columns; a header of thousands is not one of ours, and pandas
# needs time per column.
MAX_COLUMNS = 200
MAX_HEADER_CHARS = 20_000
# A load holds the file's rows in memory (about 0.4-0.8 KB per row once split and checked), so a file is bounded
# in bytes and in rows; loads upsert, so a bigger export is loaded in parts, one after the other.
MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_ROWS = 5_000_000
MAX_MISSHAPEN_KEPT = 10_000


def shown(value: Any) -> str:
    """A bad value as a reason quotes it: short, with quotes around text so blanks and spaces are visible."""
    if isinstance(value, str):
        text = value if len(value) <= _SHOWN else value[: _SHOWN - 3] + "..."
        return repr(text)
    if isinstance(value, float | np.floating):
        return f"{value:g}"
    return repr(value)


class Reasons:
    """The first reason each row fails, if any: a later check never overwrites an earlier reason."""

    def __init__(self, index: pd.Index) -> None:
        self.by_row = pd.Series(None, index=index, dtype=object)

    def add(self, failed: pd.Series | np.ndarray, reason: str | pd.Series) -> None:
        # NA in a mask (a comparison with a missing value) means the check did not fail.
        failed_rows = np.asarray(failed)
        if failed_rows.dtype != bool:
            failed_rows = pd.array(failed_rows.astype(object), dtype="boolean").fillna(False).to_numpy(dtype=bool)
        todo = pd.Series(failed_rows, index=self.by_row.index) & self.by_row.isna()
        if todo.any():
            self.by_row[todo] = reason[todo] if isinstance(reason, pd.Series) else reason

    def merge(self, reasons: pd.Series) -> None:
        """Add reasons computed elsewhere (None where the row passed)."""
        self.add(reasons.notna(), reasons)

    def split(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(rows that passed, rows that failed with a ``reason`` column); every row lands in exactly one."""
        bad = self.by_row.notna()
        quarantined = frame[bad].copy()
        quarantined["reason"] = self.by_row[bad]
        return frame[~bad].copy(), quarantined


def _per_value(cells: pd.Series, judge: Callable[[Any], Any], absent: Any) -> pd.Series:
    """``judge`` of each cell, called once per distinct value (a CSV repeats prices, days and categories a lot);
    ``absent`` for a missing cell."""
    codes, uniques = pd.factorize(cells, use_na_sentinel=True)
    results = np.empty(len(uniques) + 1, dtype=object)
    results[:-1] = [judge(u) for u in uniques]
    results[-1] = absent  # code -1, a missing cell
    return pd.Series(results[codes], index=cells.index)


def _text(cells: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(text cells without surrounding whitespace, NaN where a cell is not text; True where a cell is blank)."""
    if cells.dtype != object:
        return pd.Series(np.nan, index=cells.index, dtype=object), cells.isna()
    text = _per_value(cells, lambda v: v.strip() if isinstance(v, str) else np.nan, np.nan)
    return text, cells.isna() | text.eq("")


def _matches(text: pd.Series, pattern: str) -> pd.Series:
    """True where a text cell matches ``pattern`` whole (ASCII classes: no full-width or Arabic digits)."""
    compiled = re.compile(pattern, re.ASCII)
    return _per_value(text, lambda v: compiled.fullmatch(v) is not None, False).astype(bool)


class NumberRange(BaseModel):
    """What a number may be: finite, within [low, high] (ends open if stated), whole if stated."""

    model_config = ConfigDict(frozen=True)

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False
    whole: bool = False
    rule: str  # how a reason states the range, e.g. "a positive number from 0.01 to 10000000"

    @model_validator(mode="after")
    def _ordered(self) -> NumberRange:
        if not (np.isfinite(self.low) and np.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"a range needs finite low < high, got [{self.low}, {self.high}]")
        return self

    def contains(self, values: np.ndarray | pd.Series) -> np.ndarray:
        """True where a value is finite and inside the range (and whole if required); NaN is outside."""
        v = np.asarray(values, dtype=float)
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(v)
            ok &= v > self.low if self.low_open else v >= self.low
            ok &= v < self.high if self.high_open else v <= self.high
            if self.whole:
                ok &= np.floor(v) == v
        return ok

    def parse(self, cells: pd.Series, column: str, *, required: bool) -> tuple[pd.Series, pd.Series]:
        """(values as floats, NaN where absent or refused; the reason per refused row, else None).

        Accepts text cells (a CSV) or numbers (a stored frame); a blank cell is absent, which is only a
        reason when ``required``.
        """
        text, missing = _text(cells)
        if pd.api.types.is_numeric_dtype(cells) and not pd.api.types.is_bool_dtype(cells):
            values = cells.astype(float)
            malformed = pd.Series(False, index=cells.index)
        else:
            plain = _matches(text, DECIMAL_NUMBER)
            if self.whole:
                # A count is written as digits: "1e2" or "0.99999999999999999999" would only become whole by
                # float rounding, which is not what the file says.
                plain &= _matches(text, _WHOLE)
            other = ~missing & text.isna()  # neither blank nor text: a number in an object column, or junk
            is_number = pd.Series(False, index=cells.index)
            if other.any():
                is_number[other] = [
                    isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in cells[other]
                ]
            values = pd.Series(np.nan, index=cells.index, dtype=float)
            if plain.any():
                # numpy parses digit strings exactly; pd.to_numeric turns 20-digit integers into near misses.
                values[plain] = text[plain].to_numpy(dtype=str).astype(float)
            if is_number.any():
                values[is_number] = cells[is_number].astype(float)
            malformed = ~missing & ~plain & ~is_number
        refused = (~missing & ~pd.Series(self.contains(values), index=cells.index)) | malformed
        reasons = pd.Series(None, index=cells.index, dtype=object)
        if required:
            reasons[missing] = f"{column} is missing"
        if refused.any():
            reasons[refused] = [f"{column} must be {self.rule} (got {shown(v)})" for v in cells[refused]]
        return values.where(~refused & ~missing), reasons


class DayRange(BaseModel):
    """What a day may be: written YYYY-MM-DD (month and day may drop a leading zero), between low and high."""

    model_config = ConfigDict(frozen=True)

    low: date
    high: date

    def parse(self, cells: pd.Series, column: str) -> tuple[pd.Series, pd.Series]:
        """(days as midnight datetime64, NaT where refused; the reason per refused row, else None)."""
        text, missing = _text(cells)
        if pd.api.types.is_datetime64_any_dtype(cells):
            days = pd.Series(pd.to_datetime(cells).dt.normalize(), index=cells.index)
        else:
            # The shape check keeps out what strptime would also take (full-width digits, say); impossible dates
            # (2026-02-30) and years pandas cannot hold become NaT.
            shaped = _matches(text, _DAY)
            days = pd.to_datetime(text.where(shaped), format="%Y-%m-%d", errors="coerce")
            other = ~missing & text.isna()  # date objects in an object column (a stored frame)
            if other.any():
                days[other] = pd.to_datetime([self._one(v) for v in cells[other]])
        lo, hi = pd.Timestamp(self.low), pd.Timestamp(self.high)
        refused = (days.isna() | (days < lo) | (days > hi)) & ~missing
        reasons = pd.Series(None, index=cells.index, dtype=object)
        reasons[missing] = f"{column} is missing (write it YYYY-MM-DD)"
        if refused.any():
            rule = f"a date written YYYY-MM-DD from {self.low} to {self.high}"
            reasons[refused] = [f"{column} must be {rule} (got {shown(v)})" for v in cells[refused]]
        return days.where(~refused & ~missing), reasons

    def _one(self, value: Any) -> date | None:
        if isinstance(value, datetime):  # a stored day read back as a timestamp
            value = value.date()
        return value if isinstance(value, date) and self.low <= value <= self.high else None


class TextRule(BaseModel):
    """What a text cell may be: at most ``max_length`` characters, no control characters, present if required."""

    model_config = ConfigDict(frozen=True)

    max_length: int
    required: bool = True
    key: bool = False  # keys must also not hide invisible characters (two SKUs that look equal must be equal)

    def check(self, cells: pd.Series, column: str) -> pd.Series:
        """The reason per refused row, else None (values are not changed: trimming is the reader's job)."""
        missing = _text(cells)[1]
        text = cells.where(~missing, "").astype(str)
        reasons = pd.Series(None, index=cells.index, dtype=object)
        length = text.str.len()
        too_long = length > self.max_length
        if too_long.any():
            reasons[too_long] = [
                f"{column} is {n} characters long; at most {self.max_length} fit (shorten it)" for n in length[too_long]
            ]
        strange = text.str.contains(CONTROL_CHARACTERS, regex=True)
        if self.key:
            strange |= text.str.contains(_INVISIBLE, regex=True)
        strange &= reasons.isna()
        if strange.any():
            reasons[strange] = [
                f"{column} contains an invisible or control character (U+{ord(_first_strange(t, self.key)):04X}, "
                "e.g. a line break, tab, NUL or zero-width space); remove it"
                for t in text[strange]
            ]
        if self.required:
            reasons[missing] = f"{column} is empty"
        return reasons


def _first_strange(text: str, key: bool) -> str:
    pattern = f"{CONTROL_CHARACTERS}|{_INVISIBLE}" if key else CONTROL_CHARACTERS
    found = re.search(pattern, text)
    return found.group(0) if found else "?"


def text_rule(model: type[SQLModel], field: str, *, required: bool = True, key: bool = False) -> TextRule:
    """The text rule of ``model.field``, its length limit read from the field's ``max_length``."""
    info = model.model_fields[field]
    limits = [m.max_length for m in info.metadata if isinstance(m, annotated_types.MaxLen)]
    if not limits:
        raise ValueError(f"{model.__name__}.{field} has no max_length; give the field one before loading text into it")
    return TextRule(max_length=limits[0], required=required, key=key)


def _check_header(path: Path, what: str, header: list[str]) -> None:
    if len(header) > MAX_COLUMNS:
        raise DataError(
            f"{path}: the header has {len(header):,} columns; a {what} file has at most {MAX_COLUMNS}",
            hint="check that this is the right file and that its delimiter is a comma; nothing was stored",
        )
    if sum(map(len, header)) > MAX_HEADER_CHARS:
        raise DataError(
            f"{path}: the header row is {sum(map(len, header)):,} characters long; at most {MAX_HEADER_CHARS:,}",
            hint=f"a {what} file's header names its columns (sku, name, ...); nothing was stored",
        )


def read_csv_rows(path: Path, what: str, columns: Sequence[str] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows whose cell count matches the header, misshapen rows with a ``reason``), both indexed by file line.

    Cells are text with surrounding whitespace trimmed (so "SKU-1 " and "SKU-1" are one key) and blank cells
    None; header names are trimmed too. Empty lines are skipped. A misshapen row keeps its raw ``cells``: which
    cell belongs to which column is exactly what is unknown.
    """
    if not path.is_file():
        raise DataError(f"{what} file {path} does not exist", hint="check the path")
    split_hint = "split it into parts and load them one after the other (loads upsert); nothing was stored"
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise DataError(
                f"{path} is {size:,} bytes; a {what} file may be at most {MAX_FILE_BYTES:,} bytes",
                hint=split_hint,
            )
        raw = path.read_bytes()
    except OSError as exc:  # no permission, a file on a vanished share
        raise DataError(f"cannot read {path}: {exc.strerror or exc}", hint="check the file's permissions") from None
    raw = raw.removeprefix(codecs.BOM_UTF8)  # Excel's "CSV UTF-8" starts with one
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path} is not UTF-8 text: line {line} has the byte 0x{raw[exc.start]:02x}, which is not UTF-8",
            hint="export the file as UTF-8 CSV (in Excel: CSV UTF-8); nothing was stored",
        ) from None
    # newline="": only \n, \r\n and \r end a line; str.splitlines would also split inside cells at U+2028 etc.
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if not header or not any(cell.strip() for cell in header):
            needs = f" naming its columns ({', '.join(columns)})" if columns else ""
            raise DataError(
                f"{path} is empty or has no header row",
                hint=f"the {what} needs a header row{needs}, then one comma-separated row per line",
            )
        _check_header(path, what, header)
        names = [cell.strip() or f"column_{i + 1}" for i, cell in enumerate(header)]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise DataError(
                f"{path}: column {', '.join(map(shown, twice[:5]))} appears twice in the header",
                hint="keep one column per name; nothing was stored",
            )
        first = reader.line_num + 1
        cells_of: list[list[str]] = []
        widths: list[int] = []
        ends: list[int] = []
        rows_read = misshapen_kept = 0
        for cells in reader:  # kept minimal: a sales history may have millions of rows
            width = len(cells)
            if width and width != len(names):
                # Only the first misshapen rows keep their cells (the quarantine keeps fewer still); the rest are
                # counted, so a file of wrong-width rows costs no more memory than a good one.
                misshapen_kept += 1
                if misshapen_kept > MAX_MISSHAPEN_KEPT:
                    cells = []
            cells_of.append(cells)
            widths.append(width)
            ends.append(reader.line_num)
            rows_read += width > 0
            if rows_read > MAX_ROWS:
                raise DataError(f"{path} has more than {MAX_ROWS:,} rows (line {reader.line_num})", hint=split_hint)
    except csv.Error as exc:  # e.g. a cell longer than the csv module's limit
        raise DataError(
            f"{path} line {reader.line_num}: {exc}", hint="fix that line of the CSV; nothing was stored"
        ) from None
    starts = np.array([first, *ends[:-1]], dtype=np.int64)[: len(ends)]
    starts[1:] += 1  # a row starts on the line after the previous row ended (a quoted cell may span lines)
    counts = np.asarray(widths, dtype=np.int64)
    fits = counts == len(names)
    index = pd.Index(starts[fits], name="line")
    fitting = [cells_of[i] for i in np.flatnonzero(fits)]
    by_column = list(zip(*fitting, strict=True)) if fitting else [() for _ in names]
    # Built in one go: assigning columns one by one into a frame is quadratic in the number of columns.
    rows = pd.DataFrame(
        {
            # NFC: "CAFÉ-1" typed with a combined É and with E + accent is one key, as a reader sees it.
            name: _per_value(
                pd.Series(cells, index=index, dtype=object),
                lambda v: unicodedata.normalize("NFC", v.strip()) or None,
                None,
            )
            for name, cells in zip(names, by_column, strict=True)
        },
        index=index,
        columns=names,
    )
    # Neither an empty line (no cells: not a row) nor a row that fits.
    wrong = np.flatnonzero(~fits & (counts > 0))
    misshapen = pd.DataFrame(
        {
            "cells": [cells_of[i] for i in wrong],
            "reason": [
                f"row has {counts[i]} cells but the header has {len(names)} columns; "
                "fix the row (a value containing a comma needs double quotes)"
                for i in wrong
            ],
        },
        index=pd.Index(starts[wrong], name="line"),
    )
    return rows, misshapen
