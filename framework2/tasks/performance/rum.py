"""PUXT real-user measurements (RUM): validate Web Vitals beacons and summarise them per page, release and metric.

**Input.** A table (DataFrame, or a CSV path) with columns ``page, release, metric, value, timestamp``; other
columns are kept. ``metric`` is one of LCP, INP, CLS, TTFB, FCP (case and surrounding spaces ignored); LCP, INP,
TTFB and FCP are in milliseconds, CLS is unitless. Timestamps may be datetimes (naive ones are UTC), date
strings, or numbers: Unix seconds, or Unix milliseconds for values above 10^11 (browsers send ms).

- Missing required columns raise :class:`~framework2.errors.DataError` naming them.
- Bad rows go to ``quarantined`` with a ``reason`` (every problem of the row, joined by "; "): missing page or
  release, unknown metric, missing or non-numeric value, negative value, implausible value (above
  :data:`PLAUSIBLE_MAX`: 60 s for the timings, 10 for CLS; such values come from background tabs and broken
  beacons, not from users waiting), missing or unreadable timestamp.

**Summary.** :func:`rum_summary` gives per page x release x metric the count, p50, p75, p95 (numpy ``linear``
percentiles), the share of good samples, and the rating of the p75, because Core Web Vitals are judged at the
75th percentile of page loads. Ratings use Google's thresholds (:data:`THRESHOLDS`): ``good`` when
p75 <= the first, ``poor`` when p75 > the second, ``needs improvement`` in between (so a p75 of exactly
2500 ms LCP is good and exactly 4000 ms still needs improvement).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from framework2.errors import DataError

REQUIRED_COLUMNS: tuple[str, ...] = ("page", "release", "metric", "value", "timestamp")
METRICS: tuple[str, ...] = ("LCP", "INP", "CLS", "TTFB", "FCP")
UNITS: dict[str, str] = {"LCP": "ms", "INP": "ms", "CLS": "", "TTFB": "ms", "FCP": "ms"}
# (good up to and including, poor above) per metric: web.dev's Core Web Vitals and supporting metrics.
THRESHOLDS: dict[str, tuple[float, float]] = {
    "LCP": (2500.0, 4000.0),
    "INP": (200.0, 500.0),
    "CLS": (0.1, 0.25),
    "TTFB": (800.0, 1800.0),
    "FCP": (1800.0, 3000.0),
}
# Values above these are measurement artefacts (a tab left in the background, a broken beacon), not waits.
PLAUSIBLE_MAX: dict[str, float] = {"LCP": 60_000.0, "INP": 60_000.0, "CLS": 10.0, "TTFB": 60_000.0, "FCP": 60_000.0}
GOOD, NEEDS_IMPROVEMENT, POOR = "good", "needs improvement", "poor"
PERCENTILE_METHOD = "linear"
# Numeric timestamps above this are milliseconds since the epoch (1e11 s would be the year 5138).
_MS_EPOCH_CUTOFF = 1e11
# ``DataFrame.attrs`` key under which :func:`read_rum_csv` names the rows (index label → reason) pandas cannot
# hold as written (a cell count other than the header's, a NUL byte); :func:`prepare_rum` quarantines them.
ROW_PROBLEMS_ATTR = "rum_row_problems"

SUMMARY_COLUMNS: tuple[str, ...] = (
    "page",
    "release",
    "metric",
    "unit",
    "count",
    "p50",
    "p75",
    "p95",
    "good_share",
    "rating",
)


@dataclass(frozen=True)
class RumData:
    """Valid measurements (``metric`` upper-cased, ``value`` float, ``timestamp`` UTC) and the rows set aside."""

    valid: pd.DataFrame
    quarantined: pd.DataFrame

    @property
    def releases(self) -> list[str]:
        """Releases in the order they were first seen (by earliest timestamp)."""
        return _release_order(self.valid)


def rate(metric: str, value: float) -> str:
    """Google's rating of ``value`` for ``metric``: ``good``, ``needs improvement`` or ``poor``."""
    key = metric.strip().upper()
    if key not in THRESHOLDS:
        raise DataError(f"no rating thresholds for metric {metric!r}", f"use one of {', '.join(METRICS)}")
    good, poor = THRESHOLDS[key]
    if value <= good:
        return GOOD
    return POOR if value > poor else NEEDS_IMPROVEMENT


def read_rum_csv(path: str | Path) -> pd.DataFrame:
    """A RUM CSV as a DataFrame, every column as read (validation happens in :func:`prepare_rum`).

    A row with more or fewer cells than the header is padded or cut to the header's width and named in
    ``attrs[ROW_PROBLEMS_ATTR]``, so :func:`prepare_rum` quarantines it: pandas alone would refuse the whole file
    for one long row, or, when every row is long, silently shift the columns by making the first one the index.
    So is a row with a NUL byte, which pandas would silently cut from the cell.
    DataError when the file is missing, not UTF-8 or empty.
    """
    file = Path(path)
    if not file.is_file():
        raise DataError(f"RUM file {file} does not exist", "export the measurements as CSV first")
    try:
        text = file.read_bytes().decode("utf-8-sig")  # not read_text: a CR inside a quoted cell stays a CR
    except UnicodeDecodeError as exc:
        raise DataError(
            f"RUM file {file.name} is not UTF-8 text (bad byte at position {exc.start})", "save it as CSV UTF-8"
        ) from None
    records = [record for record in csv.reader(io.StringIO(text)) if record]
    if not records:
        raise DataError(
            f"RUM file {file.name} is empty", f"the first row must name the columns: {', '.join(REQUIRED_COLUMNS)}"
        )
    header, rows = records[0], records[1:]
    width = len(header)
    problems = {i: f"{len(row)} cells, the header has {width}" for i, row in enumerate(rows) if len(row) != width}
    for i, row in enumerate(rows):
        if any("\x00" in cell for cell in row):
            problems[i] = "; ".join(filter(None, [problems.get(i), "a cell holds a NUL byte"]))
    even = io.StringIO()
    csv.writer(even).writerows([header, *((row + [""] * width)[:width] for row in rows)])
    even.seek(0)
    # Text columns stay text ("1.10" must not become the float 1.1), values are converted during validation;
    # round_trip: pandas' default float parser can be a unit in the last place off (36029.432725478444).
    frame = pd.read_csv(even, dtype={"page": str, "release": str, "metric": str}, float_precision="round_trip")
    frame.attrs[ROW_PROBLEMS_ATTR] = problems
    return frame


_NS_EPOCH_LIMIT = 9.2e9


def _epoch(numbers: pd.Series) -> pd.Series:
    """Unix seconds or, value by value, milliseconds (above 10^11) as UTC datetimes."""
    ms = numbers.abs() > _MS_EPOCH_CUTOFF
    seconds = numbers.where(~ms, numbers / 1000.0)
    # pandas raises (OverflowError, or FloatingPointError from its own rounding, even with errors="coerce")
    # outside what nanosecond datetimes hold (1677-2262, about ±9.2e9 s): no time, so NaT.
    seconds = seconds.where(seconds.abs() <= _NS_EPOCH_LIMIT)
    try:
        return pd.to_datetime(seconds, unit="s", utc=True, errors="coerce")
    except (OverflowError, FloatingPointError, pd.errors.OutOfBoundsDatetime):
        # Seen once under Hypothesis and not reproduced: value by value, so one bad value is NaT, not a crash.
        return seconds.map(_one_epoch).astype("datetime64[ns, UTC]")


def _one_epoch(value: float) -> pd.Timestamp:
    try:
        return pd.to_datetime(value, unit="s", utc=True)
    except (OverflowError, FloatingPointError, ValueError, pd.errors.OutOfBoundsDatetime):
        return pd.NaT


def _parse_timestamps(values: pd.Series) -> pd.Series:
    """``values`` as UTC datetimes; NaT where missing or unreadable."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(values):
        return values.dt.tz_localize("UTC")
    if pd.api.types.is_bool_dtype(values):
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    if pd.api.types.is_numeric_dtype(values):
        return _epoch(values.astype(float))
    # A mixed column (CSV text, or numbers next to strings): numbers are epochs, the rest date text.
    numbers = pd.to_numeric(values.map(lambda v: None if isinstance(v, bool) else v), errors="coerce")
    parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    is_number = numbers.notna()
    if is_number.any():
        parsed[is_number] = _epoch(numbers[is_number].astype(float))
    text = ~is_number & values.notna()
    if text.any():
        as_text = values[text].astype(str)
        # ISO-8601 is the fast path; only what it cannot read goes through the slow per-value parser.
        found = pd.to_datetime(as_text, utc=True, errors="coerce", format="ISO8601")
        retry = found.isna()
        if retry.any():
            found[retry] = pd.to_datetime(as_text[retry], utc=True, errors="coerce", format="mixed")
        parsed[text] = found
    return parsed


def _exact_float(text: str, parsed: float) -> float:
    """``text`` as Python reads it (correctly rounded) where pandas read ``parsed`` from it."""
    try:
        return float(text)
    except ValueError:
        return parsed


def _text(values: pd.Series) -> pd.Series:
    """Stripped text, NA where missing or blank."""
    text = values.astype("string").str.strip()
    return text.mask(text == "")


def prepare_rum(data: pd.DataFrame | str | Path) -> RumData:
    """Validate RUM measurements: typed valid rows and quarantined rows with a ``reason`` column."""
    if isinstance(data, str | Path):
        data = read_rum_csv(data)
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"RUM data must be a DataFrame or a CSV path, got {type(data).__name__}", "load it first")
    if isinstance(data.columns, pd.MultiIndex) or not all(isinstance(c, str) for c in data.columns):
        raise DataError("RUM table columns must be plain names", f"it needs {', '.join(REQUIRED_COLUMNS)}")
    missing = [c for c in REQUIRED_COLUMNS if c not in data.columns]
    if missing:
        raise DataError(
            f"RUM table is missing column(s): {', '.join(missing)}",
            f"it needs {', '.join(REQUIRED_COLUMNS)}; has {list(data.columns)}",
        )
    row_problems = data.attrs.get(ROW_PROBLEMS_ATTR) or {}
    frame = data.reset_index(drop=True)
    # Positions are the file's rows only here: the valid and quarantined tables must not carry the labels on.
    frame.attrs = {k: v for k, v in frame.attrs.items() if k != ROW_PROBLEMS_ATTR}
    page = _text(frame["page"])
    release = _text(frame["release"])
    metric = _text(frame["metric"]).str.upper()
    raw_value = frame["value"]
    value = pd.to_numeric(raw_value, errors="coerce").astype(float)
    # pandas' string parser can be a unit in the last place off ("7.3756045517187605"): Python's is exact.
    text = raw_value.map(lambda v: isinstance(v, str)).astype(bool) & value.notna()
    if text.any():
        value[text] = [_exact_float(t, v) for t, v in zip(raw_value[text], value[text], strict=True)]
    timestamp = _parse_timestamps(frame["timestamp"])

    reasons = np.full(len(frame), "", dtype=object)

    def add(mask: pd.Series | np.ndarray, text: str | pd.Series) -> None:
        # Every problem of a row is listed, so one look at the quarantine tells the whole story.
        where = np.asarray(mask, dtype=bool)
        if not where.any():
            return
        texts = np.asarray(text, dtype=object)[where] if isinstance(text, pd.Series) else text
        sep = np.where(reasons[where] == "", "", "; ")
        reasons[where] = reasons[where] + sep + texts

    if row_problems:
        problem = pd.Series([row_problems.get(label, "") for label in data.index], index=frame.index)
        add(problem != "", problem)
    add(page.isna(), "page is missing")
    add(release.isna(), "release is missing")
    add(metric.isna(), "metric is missing")
    unknown = metric.notna() & ~metric.isin(METRICS)
    add(unknown, "unknown metric " + metric.fillna("").map(repr) + f" (expected one of {', '.join(METRICS)})")
    value_missing = raw_value.isna() | (raw_value.astype("string").str.strip() == "")
    add(value_missing, "value is missing")
    non_numeric = value.isna() & ~value_missing
    add(non_numeric, "value " + raw_value.astype(str).str.slice(0, 40).map(repr) + " is not a number")
    infinite = np.isinf(value)
    add(infinite, "value is not finite")
    add(value < 0, "value is negative")
    limit = metric.map(PLAUSIBLE_MAX).astype(float)
    implausible = (value > limit) & ~infinite
    limit_text = {m: f"{v:g} {UNITS[m]}".strip() for m, v in PLAUSIBLE_MAX.items()}
    shown = "implausible " + metric.fillna("") + " " + value.map("{:g}".format) + " (above "
    add(implausible, shown + metric.map(limit_text).fillna("") + ")")
    ts_missing = frame["timestamp"].isna()
    add(ts_missing, "timestamp is missing")
    add(timestamp.isna() & ~ts_missing, "timestamp is not a readable date")

    bad = reasons != ""
    quarantined = frame.loc[bad].copy()
    quarantined["reason"] = reasons[bad]
    valid = frame.loc[~bad].copy()
    valid["page"] = page[~bad].astype(object)
    valid["release"] = release[~bad].astype(object)
    valid["metric"] = metric[~bad].astype(object)
    valid["value"] = value[~bad]
    valid["timestamp"] = timestamp[~bad]
    return RumData(valid=valid.reset_index(drop=True), quarantined=quarantined.reset_index(drop=True))


def as_rum(data: pd.DataFrame | RumData | str | Path) -> RumData:
    """``data`` validated, unless it already is."""
    return data if isinstance(data, RumData) else prepare_rum(data)


def _release_order(valid: pd.DataFrame) -> list[str]:
    if valid.empty:
        return []
    first = valid.groupby("release", sort=False)["timestamp"].min().sort_values(kind="stable")
    return [str(r) for r in first.index]


def rum_summary(data: pd.DataFrame | RumData | str | Path) -> pd.DataFrame:
    """Per page x release x metric: unit, count, p50, p75, p95, share of good samples and the rating at p75.

    Raw data is validated first and only valid rows are summarised (use :func:`prepare_rum` to see the
    quarantine). Rows are sorted by page, release (in order of first appearance) and metric (LCP, INP, CLS,
    TTFB, FCP).
    """
    valid = as_rum(data).valid
    if valid.empty:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    releases = _release_order(valid)
    rows = []
    for (page, release, metric), group in valid.groupby(["page", "release", "metric"], sort=False):
        values = group["value"].to_numpy(dtype=float)
        p50, p75, p95 = np.percentile(values, [50, 75, 95], method=PERCENTILE_METHOD)
        rows.append(
            {
                "page": page,
                "release": release,
                "metric": metric,
                "unit": UNITS[metric],
                "count": int(values.size),
                "p50": float(p50),
                "p75": float(p75),
                "p95": float(p95),
                "good_share": float(np.mean(values <= THRESHOLDS[metric][0])),
                "rating": rate(metric, float(p75)),
            }
        )
    summary = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    summary["_r"] = summary["release"].map({r: i for i, r in enumerate(releases)})
    summary["_m"] = summary["metric"].map({m: i for i, m in enumerate(METRICS)})
    summary = summary.sort_values(["page", "_r", "_m"], kind="stable").drop(columns=["_r", "_m"])
    return summary.reset_index(drop=True)
