"""Censored, recency-weighted empirical distributions with a bounded upper tail, for durations and waits.

PPMS learns how long work takes from a tracker's history, where two things are always true:

- **Censoring.** Work still running (or still waiting) has lasted *at least* as long as it has so far. Leaving
  it out biases every estimate short (of the work started lately, only the quick part is done); imputing it
  from a fitted curve is what made earlier versions explode. A Kaplan-Meier estimate counts each running item
  as "at least this long" and nothing more.
- **Heavy tails.** Most items take about what is usual, a few take many times longer. The empirical
  distribution keeps the tail that the data show; beyond its last tenth an exponential in log space (a
  Pareto tail in days) is fitted to the values above that point (censored ones included, as in a censored
  exponential fit) and **capped at twice the longest value seen** (three times for waits, ``waits.py``): the
  data say nothing about what lies further out, and an unbounded fit replayed over hundreds of items produced
  completion dates in the year 5185. The Pareto index is kept between ``MIN_TAIL_INDEX`` and ``MAX_TAIL_INDEX``.

Items already past half that cap (running about as long as the longest thing the history holds) keep an
uncapped exponential tail *from where they are*: their remaining time is never zero and grows with how long
they have run (median remaining = elapsed x (2^(1/index) - 1)), as the tail of real work does (Lindy-like).

Values are in log space (log working days); callers floor them before taking logs. Weights (recency, see
``recency_weights``) enter both the Kaplan-Meier counts and the tail fit.

Sampling takes uniforms in *survival orientation* (u close to 0 means a long value), so a caller can make
items move together by feeding correlated uniforms (see ``flow.copula_uniforms``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TAIL_SHARE = 0.10
MIN_TAIL_VALUES = 10
MIN_TAIL_INDEX = 2.0
MAX_TAIL_INDEX = 20.0
CAP_FACTOR = 2.0
HALF_LIFE_DAYS = 91.0
INVERSE_LEVELS = 2**16
_TINY = 1e-300


def recency_weights(age_days: np.ndarray, half_life_days: float = HALF_LIFE_DAYS) -> np.ndarray:
    """0.5 ** (age / half-life): work of the last quarter counts fully, a quarter older half as much.

    Teams change speed (one real history's P85 cycle time fell from 17 to 6 days over two years); a
    distribution that weighs 2009 as much as last month forecasts the old team.
    """
    age = np.maximum(np.asarray(age_days, dtype=float), 0.0)
    # At most 40 half-lives (1e-12): a weight must stay positive, or a history long past counts for nothing.
    return np.power(0.5, np.minimum(age / half_life_days, 40.0))


@dataclass(frozen=True)
class CensoredDistribution:
    """A weighted Kaplan-Meier distribution of log values with a fitted, capped exponential tail."""

    values: np.ndarray  # distinct event values below the tail threshold, ascending
    survival: np.ndarray  # S(v) just after each of ``values`` (non-increasing)
    threshold: float  # where the fitted tail starts (log space)
    tail_mass: float  # S(threshold): the share beyond it
    index: float  # exponential rate in log space = Pareto index of the tail
    cap: float  # largest value drawn for an item not already past it
    events: int
    censored: int
    largest: float  # largest value seen (event or censored)
    inverse: np.ndarray  # value at survival level k / INVERSE_LEVELS (the empirical part's inverse, tabulated)
    inverse32: np.ndarray  # the same in single precision, for big scopes' single-precision draws
    cap_factor: float = CAP_FACTOR  # the cap is this many times the longest value seen

    @classmethod
    def fit(
        cls,
        log_values: np.ndarray,
        observed: np.ndarray,
        weights: np.ndarray | None = None,
        *,
        cap_factor: float = CAP_FACTOR,
    ) -> CensoredDistribution:
        """Fit to ``log_values`` where ``observed`` is False for censored ones (lasted at least that long); the
        tail is capped at ``cap_factor`` times the longest value seen."""
        v = np.asarray(log_values, dtype=float)
        seen = np.asarray(observed, dtype=bool)
        w = np.ones(len(v)) if weights is None else np.asarray(weights, dtype=float)
        if len(v) == 0 or not seen.any():
            raise ValueError("a censored distribution needs at least one observed value")
        if not (np.isfinite(v).all() and np.isfinite(w).all() and (w > 0).all()):
            raise ValueError("values and weights must be finite, weights > 0")
        order = np.lexsort((~seen, v))  # at ties, events leave the risk set before censored values
        v, seen, w = v[order], seen[order], w[order]
        at_risk = np.cumsum(w[::-1])[::-1]
        step = np.where(seen, 1.0 - w / at_risk, 1.0)
        surv = np.cumprod(step)
        event_values, event_surv = v[seen], surv[seen]
        # Collapse ties: the survival after the last of equal values.
        last = np.r_[event_values[1:] != event_values[:-1], True]
        event_values, event_surv = event_values[last], event_surv[last]

        # Tail start: the first event value with S <= TAIL_SHARE that leaves enough values above it to fit the
        # tail to (MIN_TAIL_VALUES, fewer in a small group); failing that, the largest such event. Some values
        # always lie above it, so the tail keeps mass: the longest work is never drawn as "no longer than seen".
        needed = min(MIN_TAIL_VALUES, max(1, len(v) // 5))
        above_count = len(v) - np.searchsorted(v, event_values, side="right")
        enough = np.flatnonzero(above_count >= needed)
        threshold = float(event_values[0])
        if len(enough):
            preferred = enough[event_surv[enough] <= TAIL_SHARE]
            threshold = float(event_values[preferred[0] if len(preferred) else enough[-1]])
        above = v > threshold
        if above.any():
            exposure = float((w[above] * (v[above] - threshold)).sum())
            hits = float((w[above] * seen[above]).sum())
            index = hits / exposure if exposure > 0 and hits > 0 else MIN_TAIL_INDEX
        else:
            # A single value: nothing to fit a tail to.
            index = MIN_TAIL_INDEX
        index = float(np.clip(index, MIN_TAIL_INDEX, MAX_TAIL_INDEX))
        keep = event_values <= threshold
        at = np.searchsorted(event_values, threshold, side="right") - 1
        tail_mass = float(event_surv[at]) if at >= 0 else 1.0
        if tail_mass <= 0.0:  # one value only: keep a sliver of tail rather than none
            tail_mass = 1.0 / (len(v) + 1)
        largest = float(v.max())
        values, survival = event_values[keep], event_surv[keep]
        grid = np.arange(INVERSE_LEVELS + 1) / INVERSE_LEVELS
        # For each level: the first value whose survival is at or below it (survival is non-increasing).
        first = np.minimum(np.searchsorted(-survival, -grid, side="left"), len(values) - 1)
        return cls(
            values=values,
            survival=survival,
            threshold=threshold,
            tail_mass=tail_mass,
            index=index,
            cap=max(largest, threshold) + math.log(cap_factor),
            events=int(seen.sum()),
            censored=int((~seen).sum()),
            largest=largest,
            inverse=values[first],
            inverse32=values[first].astype(np.float32),
            cap_factor=cap_factor,
        )

    # --- the survival function and its inverse ----------------------------------------------------------

    def _tail_survival(self, c: np.ndarray) -> np.ndarray:
        """S(c) for threshold <= c <= cap: the tail mass spread as an exponential truncated at the cap."""
        span = self.cap - self.threshold
        top = math.exp(-self.index * span)
        return self.tail_mass * (np.exp(-self.index * (c - self.threshold)) - top) / (1.0 - top)

    def survival_at(self, c: np.ndarray | float) -> np.ndarray:
        """P(V > c) under the capped distribution (0 at and beyond the cap)."""
        c = np.asarray(c, dtype=float)
        j = np.searchsorted(self.values, c, side="right") - 1
        inner = np.where(j >= 0, self.survival[np.maximum(j, 0)] if len(self.values) else 1.0, 1.0)
        tail = self._tail_survival(np.clip(c, self.threshold, self.cap))
        return np.where(c < self.threshold, inner, np.where(c >= self.cap, 0.0, tail))

    def sample_above(self, floors: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
        """Values drawn given V > floor, one per uniform (survival orientation: u near 0 = long).

        ``floors`` broadcasts against ``uniforms`` (one per row is cheapest). Where a floor is at or past the cap,
        the value is the floor plus an exponential excess at the tail's rate (never equal to the floor, growing
        with it); so is it within a factor ``cap_factor`` of the cap, where the capped distribution would leave
        almost nothing above it. The empirical part is inverted through a table of ``INVERSE_LEVELS`` survival
        levels (at most 1/65,536 of probability off, towards the longer value): a binary search per draw was
        most of a 2,000-task forecast's time.
        """
        floors = np.asarray(floors, dtype=float)
        u = np.asarray(uniforms)
        # Single-precision uniforms (a big scope's) stay single: 7 digits are plenty for log days.
        dtype = np.float32 if u.dtype == np.float32 else np.float64
        u = np.clip(u, np.finfo(dtype).tiny, 1.0)
        level = u * self.survival_at(floors).astype(dtype)  # the survival level each draw lands on
        index = (level * INVERSE_LEVELS).astype(np.int32)
        np.minimum(index, INVERSE_LEVELS, out=index)
        out = (self.inverse32 if dtype == np.float32 else self.inverse)[index]
        tail = level < self.tail_mass
        if tail.any():
            span = self.cap - self.threshold
            top = math.exp(-self.index * span)
            share = np.clip(level[tail].astype(float) / max(self.tail_mass, _TINY), 0.0, 1.0)
            out[tail] = self.threshold - np.log(share * (1.0 - top) + top) / self.index
        np.maximum(out, floors.astype(dtype), out=out)
        # Within a factor cap_factor of the cap, the capped distribution would squeeze the rest of an item
        # into the sliver below the cap ("done tomorrow" for the longest-running work): such items get the
        # open tail from where they are instead.
        beyond = np.broadcast_to(floors >= self.cap - math.log(self.cap_factor), out.shape)
        if beyond.any():
            wide = np.broadcast_to(floors, out.shape)
            excess = -np.log(np.broadcast_to(u, out.shape)[beyond].astype(float)) / self.index
            out[beyond] = wide[beyond] + excess
        return out

    def quantile(self, q: float) -> float:
        """The value below which a share ``q`` falls (unconditional)."""
        return float(self.sample_above(np.array([[-np.inf]]), np.array([[1.0 - q]]))[0, 0])

    def describe(self) -> str:
        """Counts and the tail in words."""
        return (
            f"{self.events} finished and {self.censored} still running (counted as lasting at least as long as "
            f"they have so far); beyond the top {TAIL_SHARE:.0%} a Pareto tail of index {self.index:.2g}, capped at "
            f"x{self.cap_factor:g} the longest seen"
        )
