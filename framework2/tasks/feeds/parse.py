"""JSON or CSV bytes into offers, every field checked; then validation that quarantines what cannot be trusted."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from framework2.blocks.competitor_feed import REQUIRED_OFFER_FIELDS, CompetitorFeed
from framework2.tasks import json_text
from framework2.tasks.feeds.model import (
    _CONTROL,
    _CURRENCY_MARKS,
    _DECIMAL,
    _MAX_INT_DIGITS,
    _NAME_CHARS,
    _RELATIVE_TIMES,
    _TRUE_WORDS,
    MAX_FEED_COLUMNS,
    MAX_FEED_HEADER_CHARS,
    OFFER_COLUMNS,
    MalformedFeedError,
)


def _short(value: Any) -> str:
    # Surrogates and NUL out too: a reason is stored with the feed's snapshot.
    text = json_text.clean_text(str(value))
    return text if len(text) <= _NAME_CHARS else text[: _NAME_CHARS - 3] + "..."


def _names(values: Sequence[Any], limit: int = 10) -> str:
    # A feed names its own fields: quote few of them, each cut short, so a hostile header cannot fill the log.
    shown = [_short(v) for v in list(values)[:limit]]
    more = f", ... ({len(values) - limit} more)" if len(values) > limit else ""
    return (", ".join(shown) + more) if shown else "none"


def _json_records(feed: CompetitorFeed, text: str) -> list[dict[str, Any]]:
    label = feed.label
    try:
        # Lone surrogates become U+FFFD (no store can hold them); NUL stays, for the sku check to name.
        document = json_text.loads(text, nul=False, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise MalformedFeedError(
            f"feed '{label}' is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            hint="check that the URL serves the JSON export (format='csv' if it is CSV)",
        ) from None
    except RecursionError:
        raise MalformedFeedError(
            f"feed '{label}' nests JSON arrays or objects too deeply to read (more than about a thousand levels)",
            hint="an offer list is a few levels deep; ask the competitor to fix the export",
        ) from None

    node, walked = document, []
    for key in (feed.records_path or "").split(".") if feed.records_path else []:
        if not isinstance(node, dict) or key not in node:
            where = ".".join(walked) or "the top level"
            keys = _names(list(node)) if isinstance(node, dict) else f"a {type(node).__name__}, not an object"
            raise MalformedFeedError(
                f"feed '{label}': records_path '{feed.records_path}' not found: "
                f"no key '{key}' at {_short(where)} (found: {keys})",
                hint="fix records_path in the Competitor Feed block",
            )
        node = node[key]
        walked.append(key)
    if not isinstance(node, list):
        where = f"records_path '{feed.records_path}'" if feed.records_path else "the document"
        extra = f" with keys {_names(list(node))}" if isinstance(node, dict) else ""
        raise MalformedFeedError(
            f"feed '{label}': {where} is a JSON {type(node).__name__}{extra}, not a list of offers",
            hint="set records_path to the dotted path of the offer list, e.g. 'data.offers'",
        )
    for position, item in enumerate(node):
        if not isinstance(item, dict):
            raise MalformedFeedError(
                f"feed '{label}': offer #{position + 1} is a JSON {type(item).__name__}, not an object",
                hint="records_path must point at a list of offer objects",
            )
    return node


def _bounded_int(text: str) -> int | str:
    return int(text) if len(text) <= _MAX_INT_DIGITS else text


def _check_fields(feed: CompetitorFeed, present: Sequence[str]) -> dict[str, str | None]:
    """Map our fields to the feed's column names, None for optional fields the feed does not have."""
    available = set(present)
    columns: dict[str, str | None] = {}
    missing = []
    for ours in ("sku", "price", "in_stock", "observed_at"):
        theirs = feed.source_field(ours)
        if theirs in available:
            columns[ours] = theirs
        elif ours in REQUIRED_OFFER_FIELDS or ours in feed.field_mapping:
            missing.append(f"'{theirs}' (our {ours})" if theirs != ours else f"'{ours}'")
        else:
            columns[ours] = None
    if missing:
        raise MalformedFeedError(
            f"feed '{feed.label}': field(s) {', '.join(missing)} not found; fields present: {_names(present)}",
            hint="fix field_mapping in the Competitor Feed block (our field -> the feed's field name)",
        )
    return columns


def _frame_from_records(feed: CompetitorFeed, records: list[dict[str, Any]]) -> pd.DataFrame:
    if not records:
        # An empty list is a valid document (the competitor lists nothing); there are no fields to check.
        return pd.DataFrame()
    present = list(dict.fromkeys(key for record in records for key in record))
    columns = _check_fields(feed, present)
    return pd.DataFrame(
        {
            ours: pd.Series([r.get(theirs) if theirs else None for r in records], dtype=object)
            for ours, theirs in columns.items()
        }
    )


def _misshapen_line(text: str) -> str | None:
    """What is wrong with the CSV's shape, else None: a header too wide or too long, or the first row whose
    width differs from the header's ('line N has X cells, the header has Y').

    pandas would read rows that all carry one extra cell by making the first column the index (every value then
    lands one column to the left: the price read as the sku) and fill short rows with blanks (read as "in stock,
    observed now"): neither is what the feed says, so such a feed is refused whole and its last good snapshot
    stands in."""
    try:
        rows = csv.reader(io.StringIO(text))
        header = next(rows, None)
        if header is None:
            return None
        if len(header) > MAX_FEED_COLUMNS:
            return f"the header has {len(header):,} columns; a price feed has at most {MAX_FEED_COLUMNS}"
        if sum(map(len, header)) > MAX_FEED_HEADER_CHARS:
            return f"the header is {sum(map(len, header)):,} characters long; at most {MAX_FEED_HEADER_CHARS:,}"
        for row in rows:
            if row and len(row) != len(header):
                return f"line {rows.line_num} has {len(row)} cells, the header has {len(header)}"
    except csv.Error as exc:  # e.g. a cell over the csv module's limit, a stray quote
        return f"line {rows.line_num}: {exc}"
    return None


def _csv_frame(feed: CompetitorFeed, text: str) -> pd.DataFrame:
    # One reading of line ends for the shape check and for pandas: a lone \r ends a line for pandas but is a
    # stray character to the csv module, and the two disagreeing let a misshapen feed past the check.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        # pandas' parser ends a cell at NUL: "1\x0099" would be read as the price 1.
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise MalformedFeedError(
            f"feed '{feed.label}' is not valid CSV: line {line} contains a NUL character",
            hint="a CSV feed is text; check that the URL serves the CSV export, not a binary file",
        )
    misshapen = _misshapen_line(text)
    if misshapen is not None:
        raise MalformedFeedError(
            f"feed '{feed.label}' is not valid CSV: {misshapen}",
            hint="every row of the feed must have one cell per column of its header; ask the competitor to fix "
            "the export (a value with a comma must be quoted)",
        )
    try:
        # Everything as text: parsing values is ours to do, row by row, without failing the document.
        raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True, index_col=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error) as exc:
        raise MalformedFeedError(
            f"feed '{feed.label}' is not valid CSV: {str(exc).strip()}",
            hint="check that the URL serves the CSV export (format='json' if it is JSON)",
        ) from None
    raw.columns = [str(c).strip() for c in raw.columns]
    twice = sorted({c for c in raw.columns if list(raw.columns).count(c) > 1})
    if twice:
        raise MalformedFeedError(
            f"feed '{feed.label}' is not valid CSV: column {_names(twice, 3)} appears twice in the header",
            hint="ask the competitor to fix the export: one column per field",
        )
    columns = _check_fields(feed, list(raw.columns))
    return pd.DataFrame(
        {
            ours: raw[theirs].astype(object) if theirs else pd.Series([None] * len(raw), dtype=object)
            for ours, theirs in columns.items()
        }
    )


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _sku(value: Any) -> str:
    if _blank(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _price(value: Any) -> float:
    if isinstance(value, bool) or _blank(value):
        return math.nan
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = str(value).strip().strip(_CURRENCY_MARKS).strip()
        if not _DECIMAL.fullmatch(text):
            return math.nan
        number = float(text)
    return number if math.isfinite(number) else math.nan


def _in_stock(value: Any) -> bool:
    if _blank(value):
        return True
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    # Anything not clearly "in stock" ("no", "sold out", "backorder", "maybe") is read as out of stock.
    return str(value).strip().lower() in _TRUE_WORDS


_EARLIEST_OBSERVED = pd.Timestamp("1970-01-01", tz="UTC")
_LATEST_OBSERVED = pd.Timestamp("2200-01-01", tz="UTC")


def _observed_at(value: Any, fetched_at: pd.Timestamp) -> pd.Timestamp:
    if _blank(value):
        return fetched_at
    try:
        if isinstance(value, bool):
            return pd.NaT
        if isinstance(value, int | float):
            # Unix seconds; anything past year 5000 is not one (and pandas wraps such numbers silently).
            if not -1e11 < value < 1e11:
                return pd.NaT
            stamp = pd.Timestamp(value, unit="s", tz="UTC")
        elif str(value).strip().lower() in _RELATIVE_TIMES:
            return pd.NaT
        else:
            stamp = pd.Timestamp(str(value).strip())
    except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime):
        return pd.NaT
    if stamp is pd.NaT:
        return pd.NaT
    # A feed without an offset is read as UTC; guessing the competitor's local zone would be worse.
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    # Pandas keeps far years at a coarser resolution, and the offers table holds nanoseconds: an observation
    # outside 1970-2200 is not a readable time (quarantined), not a crash of the whole feed.
    return stamp if _EARLIEST_OBSERVED <= stamp <= _LATEST_OBSERVED else pd.NaT


def empty_offers() -> pd.DataFrame:
    """No offers, with the offer columns and their types."""
    return pd.DataFrame(
        {
            "competitor": pd.Series(dtype=object),
            "sku": pd.Series(dtype=object),
            "price": pd.Series(dtype=float),
            "in_stock": pd.Series(dtype=bool),
            "observed_at": pd.Series(dtype="datetime64[ns, UTC]"),
            "feed": pd.Series(dtype=object),
        }
    )


def parse_feed(feed: CompetitorFeed, content: bytes, fetched_at: datetime) -> pd.DataFrame:
    """Parse a feed document into offers (``OFFER_COLUMNS``); MalformedFeedError if it is unreadable."""
    label = feed.label
    if not content.strip():
        raise MalformedFeedError(
            f"feed '{label}' returned an empty body",
            hint="check the feed URL and that the competitor's export is being produced",
        )
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MalformedFeedError(
            f"feed '{label}' is not UTF-8 text (bad byte at position {exc.start})",
            hint=f"check that the URL serves the {feed.format.upper()} export, not a file download",
        ) from None

    raw = _frame_from_records(feed, _json_records(feed, text)) if feed.format == "json" else _csv_frame(feed, text)
    if raw.empty:
        return empty_offers()

    stamp = pd.Timestamp(fetched_at)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    observed = [_observed_at(v, stamp) for v in raw["observed_at"]]
    offers = pd.DataFrame(
        {
            "competitor": feed.competitor,
            "sku": raw["sku"].map(_sku).astype(object),
            "price": raw["price"].map(_price).astype(float),
            "in_stock": raw["in_stock"].map(_in_stock).astype(bool),
            "observed_at": pd.to_datetime(pd.Series(observed, dtype=object), utc=True).astype("datetime64[ns, UTC]"),
            "feed": label,
        }
    )
    return offers[OFFER_COLUMNS].reset_index(drop=True)


def validate_offers(
    offers: pd.DataFrame, our_prices: pd.Series, ratio_limit: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split offers into (valid, quarantined); quarantined rows get a ``reason``. Nothing is dropped.

    ``our_prices`` is indexed by sku with our current price. Checks, first failing one wins: sku
    present, price a number, price positive, observed_at readable, sku in our catalogue, price within
    ``ratio_limit`` times / divided by our price, and not a repeat of an earlier valid row for the
    same competitor and sku (the first is kept).
    """
    if offers.empty:
        quarantined = offers.copy()
        quarantined["reason"] = pd.Series(dtype=object)
        return offers.copy(), quarantined

    # Positional work: offers concatenated from several feeds often repeat index labels.
    frame = offers.reset_index(drop=True)
    ours = our_prices[~our_prices.index.duplicated(keep="first")]
    ours.index = ours.index.map(str)
    sku = frame["sku"].fillna("").astype(str)
    price = pd.to_numeric(frame["price"], errors="coerce")
    our_price = sku.map(ours).astype(float)
    reasons = pd.Series("", index=frame.index, dtype=object)

    def flag(mask: pd.Series, reason: pd.Series | str) -> None:
        # Earlier checks win: a row with no price should not also be called "unknown sku".
        todo = mask & (reasons == "")
        reasons[todo] = reason[todo] if isinstance(reason, pd.Series) else reason

    flag(sku.str.strip() == "", "sku is missing")
    flag(price.isna(), "price is missing or not a number")
    flag(price <= 0, "price must be positive (got " + price.astype(str) + ")")
    if "observed_at" in frame:
        flag(frame["observed_at"].isna(), "observed_at is missing or not a readable timestamp")
    flag(sku.str.contains(_CONTROL, regex=True), "sku contains a control character (e.g. NUL or a line break)")
    flag(~sku.isin(ours.index), "unknown sku '" + sku.map(_short) + "' (not in the catalogue)")

    comparable = our_price.notna() & (our_price > 0)
    limit_text = f"{ratio_limit:g}"
    price_text = price.map(lambda p: f"{p:.2f}")
    ours_text = our_price.map(lambda p: f"{p:.2f}")
    flag(
        comparable & (price > our_price * ratio_limit),
        "price " + price_text + f" is more than {limit_text}x our price " + ours_text,
    )
    flag(
        comparable & (price < our_price / ratio_limit),
        "price " + price_text + f" is less than 1/{limit_text} of our price " + ours_text,
    )

    # Duplicates are judged among rows still valid, so a bad first row does not shadow a good repeat.
    # A feed may carry a price history (the same sku at several times; positioning takes the latest), so
    # only a repeat of competitor + sku + observation time is a duplicate.
    competitor = frame["competitor"].astype(str)
    observed = pd.to_datetime(frame["observed_at"], utc=True, errors="coerce").astype(str)
    still_valid = reasons == ""
    keys = (competitor + "\x00" + sku + "\x00" + observed).where(still_valid)
    repeats = still_valid & keys.duplicated(keep="first")
    flag(repeats, "duplicate of an earlier row for competitor '" + competitor + "' sku '" + sku + "' at " + observed)

    bad = (reasons != "").to_numpy()
    valid = offers.iloc[~bad].copy()
    quarantined = offers.iloc[bad].copy()
    quarantined["reason"] = reasons[bad].to_numpy(dtype=object)
    return valid, quarantined
