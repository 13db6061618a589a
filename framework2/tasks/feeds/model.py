"""What a feed read yields and how it can fail: the offer columns, the limits, the errors (transient or not) and the
outcome of collecting one feed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from framework2.errors import FeedError
from framework2.tasks.boundary import CONTROL_CHARACTERS, DECIMAL_NUMBER

OFFER_COLUMNS = ["competitor", "sku", "price", "in_stock", "observed_at", "feed"]

# A price feed has a handful of columns; thousands are not an export of offers (and pandas pays per column).
MAX_FEED_COLUMNS = 200
MAX_FEED_HEADER_CHARS = 20_000
# Integers longer than this are kept as their text (they are no price, sku or time we can use, and Python
# refuses to convert past 4,300 digits, with a ValueError that is no feed error).
_MAX_INT_DIGITS = 30
_NAME_CHARS = 40
# Controls (C0, C1), line/paragraph separators, direction overrides and the replacement character a lone
# surrogate became: none is in a catalogue SKU, and each makes a quoted reason read other than it is.
_CONTROL = f"{CONTROL_CHARACTERS}|\ufffd"
# What the CSV loads accept as a number (plain decimal); float() would also take "1_000", "１２" and "inf".
_DECIMAL = re.compile(DECIMAL_NUMBER, re.ASCII)
# Words pandas reads as a time relative to the moment of parsing, which is not when the offer was observed.
_RELATIVE_TIMES = {"now", "today", "tomorrow", "yesterday"}

_TRUE_WORDS = {"true", "t", "yes", "y", "1", "in stock", "in_stock", "instock", "available"}
_CURRENCY_MARKS = "$€£¥"


class TransientFeedError(FeedError):
    """The feed may work if asked again: timeout, connection failure, HTTP 5xx or 429."""

    transient = True


class PermanentFeedError(FeedError):
    """Asking again will not help until someone changes the feed or its block (e.g. HTTP 4xx)."""

    transient = False


class MalformedFeedError(PermanentFeedError):
    """The feed answered, but the document as a whole cannot be read as offers."""


@dataclass
class FeedCollection:
    """One feed's snapshot: the parsed offers and where and when they came from."""

    feed: str
    competitor: str
    fetched_at: datetime
    offers: pd.DataFrame
    size_bytes: int
    attempts: int = 1


@dataclass
class FeedOutcome:
    """Result of one feed in ``collect_all``: a collection, or the error that stopped it."""

    feed: str
    competitor: str
    collection: FeedCollection | None = None
    error: FeedError | None = None

    @property
    def ok(self) -> bool:
        """True when the feed was collected."""
        return self.collection is not None

    @property
    def transient(self) -> bool:
        """True when the failure may go away on a later attempt."""
        return isinstance(self.error, TransientFeedError)

    @property
    def reason(self) -> str:
        """Why the feed failed ("" when it did not)."""
        return str(self.error) if self.error else ""
