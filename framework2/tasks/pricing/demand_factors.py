"""What moves daily sales besides the price: the week's level, the weekday, promotions.

A price effect measured on raw daily sales also picks up whatever moved with the price: a promotion that
came with a display and an advert sells more than its price cut explains, a price rise in a slow season
looks worse than it is. So the elasticity fit (``elasticity.py``) divides each day's expected units by a
factor for what is not price, learned per category:

- **week level** (one per category and calendar week): trend, seasons and any category-wide shock, shrunk
  toward no weekly effect in categories of few SKUs (there one SKU's price step moves the level as much as
  the season does);
- **weekday** (one per category and day of the week);
- **promotions** are left out of the price fit. Promotion days come from a ``promo`` column in the sales when
  there is one; otherwise a *temporary price cut* counts as one: a price at least ``CUT_DEPTH`` below a higher
  price both in the ``CUT_WINDOW`` days before and in the ``CUT_WINDOW`` days after (a permanent cut has no
  higher price after it), on SKUs whose price holds from one day to the next on at least ``POSTED_SHARE``
  of days (posted prices; a price that changes every day has no "regular" level to cut from). A promotion's
  extra lift and its price cut move together on every promotion, so the data can hardly split them (a shared
  lift fitted alongside converged to half the true lift on markets whose promotions sold 1.3x more): the
  elasticity is learned from regular-price changes only, at the cost of wider intervals, and the lift is
  reported per category afterwards (``promo_lift``).

Per category, so a partition of whole categories computes what the whole catalogue would. The factors and the
per-SKU price curves are fitted in turn (``FACTOR_PASSES`` rounds of a Poisson coordinate ascent): each
factor is the ratio of the units sold to the units the price curves expect in its cells.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import maximum_filter1d

CUT_WINDOW = 14
CUT_DEPTH = 0.05
POSTED_SHARE = 0.5
FACTOR_PASSES = 2
# A cell's factor moves at most this far from 1 in one update: a category-week with almost no sales says little.
_MAX_RATIO = 5.0
_PSEUDO = 0.5
# A category's week levels are shrunk toward "no weekly effect" by skus / (skus + WEEK_SKUS_HALF): with three SKUs
# a week's level is mostly their own price steps (error 0.41 -> 0.38 and losing moves 11 % -> 8 % on a market of
# 3-SKU categories; no change on 30-SKU ones).
WEEK_SKUS_HALF = 5.0


def temporary_cuts(code: np.ndarray, day: np.ndarray, price: np.ndarray, n_sku: int) -> np.ndarray:
    """Per row: is this day's price a temporary cut (see the module docstring)?"""
    if len(day) == 0:
        return np.zeros(0, dtype=bool)
    # Days numbered by the distinct days sold on (the same as calendar days for daily sales): a history with a
    # lone row decades away costs one column, not one per calendar day between (the grid is SKUs x days).
    offset = day - day.min()
    present = np.zeros(int(offset.max()) + 1, dtype=bool)
    present[offset] = True
    day = (np.cumsum(present) - 1)[offset]
    n_days = int(day.max()) + 1
    # CUT_WINDOW empty days after the last, so every "after" window exists.
    grid = np.full((n_sku, n_days + CUT_WINDOW), -np.inf, dtype=np.float32)
    grid[code, day] = price
    # trailing[t] = max(grid[t - CUT_WINDOW + 1 .. t]); a running-max filter is linear in the days.
    trailing = maximum_filter1d(grid, CUT_WINDOW, axis=1, mode="constant", cval=-np.inf, origin=CUT_WINDOW // 2 - 1)
    before = np.hstack([np.full((n_sku, 1), -np.inf, dtype=np.float32), trailing[:, : n_days - 1]])  # t-W .. t-1
    after = trailing[:, CUT_WINDOW : CUT_WINDOW + n_days]  # t+1 .. t+W
    grid = grid[:, :n_days]
    higher = np.minimum(before, after)[code, day]
    pairs = np.isfinite(grid[:, 1:]) & np.isfinite(grid[:, :-1])
    held = (pairs & (grid[:, 1:] == grid[:, :-1])).sum(axis=1) / np.maximum(pairs.sum(axis=1), 1)
    posted = held >= POSTED_SHARE
    return posted[code] & np.isfinite(higher) & (price < (1.0 - CUT_DEPTH) * higher)


class DemandFactors:
    """Per-category week and weekday factors on log scale, fitted to the regular days of usable SKUs."""

    def __init__(
        self, category: np.ndarray, day: np.ndarray, n_cat: int, first_day: int, skus: np.ndarray | None = None
    ) -> None:
        self.n_cat = n_cat
        # How far a category's own week levels are believed: few SKUs share a week, so one SKU's price step
        # moves the level as much as the season does (see WEEK_SKUS_HALF).
        self.week_weight = np.ones(n_cat) if skus is None else skus / (skus + WEEK_SKUS_HALF)
        self.first_day = first_day
        # Weeks numbered by the weeks sold in (a lone row decades away adds one week, not thousands); the last
        # number is for a week looked up later that had no regular sales (its factor stays 1).
        span = int((day.max() - first_day) // 7) + 1 if len(day) else 1
        present = np.zeros(span, dtype=bool)
        present[(day - first_day) // 7] = True
        self.week_number = np.where(present, np.cumsum(present) - 1, int(present.sum()))
        self.n_weeks = int(present.sum()) + 1
        self.cells = self._cells(category, day)
        self.log = {name: np.zeros(size) for name, (_, size) in self.cells.items()}

    def _cells(self, category: np.ndarray, day: np.ndarray) -> dict[str, tuple[np.ndarray, int]]:
        calendar_week = (day - self.first_day) // 7
        inside = (calendar_week >= 0) & (calendar_week < len(self.week_number))
        week = np.where(
            inside, self.week_number[np.clip(calendar_week, 0, len(self.week_number) - 1)], self.n_weeks - 1
        )
        return {
            "week": (category * self.n_weeks + week, self.n_cat * self.n_weeks),
            "weekday": (category * 7 + day % 7, self.n_cat * 7),
        }

    def factor(self, category: np.ndarray | None = None, day: np.ndarray | None = None) -> np.ndarray:
        """Per row (the fitted rows, or the given ones), the multiplier on expected units."""
        cells = self.cells if category is None or day is None else self._cells(category, day)
        total = sum(self.log[name][cell] for name, (cell, _) in cells.items())
        return np.exp(np.asarray(total, dtype=float))

    def update(self, units: np.ndarray, expected: np.ndarray) -> None:
        """One round: each factor in turn becomes (units sold) / (units expected) over its cells."""
        for name, (cell, size) in self.cells.items():
            mu = expected * self.factor()
            sold = np.bincount(cell, weights=units, minlength=size)
            want = np.bincount(cell, weights=mu, minlength=size)
            ratio = np.clip((sold + _PSEUDO) / (want + _PSEUDO), 1 / _MAX_RATIO, _MAX_RATIO)
            seen = (want > 0).reshape(self.n_cat, -1)
            levels = (self.log[name] + np.log(ratio)).reshape(self.n_cat, -1)
            if name == "week":
                levels = levels * self.week_weight[:, None]
            # Only ratios between cells are identified (each SKU's intercept takes the level): the mean over the
            # cells a category has data in stays at 1, so a partition of whole categories gets the same factors.
            mean = np.where(seen, levels, 0.0).sum(axis=1) / np.maximum(seen.sum(axis=1), 1)
            self.log[name] = np.where(seen, levels - mean[:, None], 0.0).ravel()


def promo_lift(category: np.ndarray, units: np.ndarray, expected: np.ndarray, n_cat: int) -> np.ndarray:
    """Per category: units sold on promotion days over what their price (and week, weekday) explains; NaN where
    a category had no promotion day with an expectation."""
    sold = np.bincount(category, weights=units, minlength=n_cat)
    want = np.bincount(category, weights=expected, minlength=n_cat)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(want > 0, sold / want, np.nan)
