"""The demand curve moves are judged on: no trust beyond the data.

Read as a curve, a log-linear elasticity keeps the same value at every price, and its optimum c e / (1 + e) can
sit far from where the SKU has been sold: a 10 % move toward it overshoots when demand really bends (the
elasticity grows with the price until, at some price, nobody buys). The straight line through today's price p0
and today's sales q0 with the same elasticity e there,

    q = q0 * (1 + e * (p / p0 - 1)),

sells less than the constant-elasticity curve at *every* other price (it is that convex curve's tangent). So a
move that raises profit on the line raises it under constant elasticity too, and the line's optimum,
(p0 (e - 1) / e + c) / 2, is nearer. Recommendations are sized and their odds computed on the line (the
policy's ``move_curve``, default "line"; "constant" gives the bolder curve back).

On the scenario markets (``bench/pricing_scenarios.py``) the line took the share of applied moves that lower
true profit from 4-11 % to 2-4 % wherever the elasticity itself is right, for about 13 % less profit than the
bolder moves made on constant-elasticity markets. Which curve the *elasticity* is read from is a separate
choice (``demand_curves.py``); on every one of them the line through today's price sells no more than the
curve itself (the exponential and the constant-elasticity curve are convex, a linear demand curve is the line).
"""

from __future__ import annotations

import numpy as np


def demand_ratio(e: np.ndarray, log_r: np.ndarray, line: bool = True) -> np.ndarray:
    """Units at price ratio r = exp(log_r) over units today, with elasticity ``e`` today: on the line through
    today's price, 1 + e (r - 1) (never below zero), else r^e. Broadcasts (``e`` may carry draws)."""
    with np.errstate(over="ignore", invalid="ignore"):
        if line:
            return np.maximum(0.0, 1.0 + e * np.expm1(log_r))
        return np.exp(e * log_r)


def move_optimum(cost: np.ndarray, e: np.ndarray, current: np.ndarray, line: bool = True) -> np.ndarray:
    """Profit-optimal price on the line, (p0 (e - 1) / e + c) / 2 where e < 0, or under constant elasticity,
    c e / (1 + e) where e < -1; NaN where the curve has no interior optimum."""
    c = np.asarray(cost, dtype=float)
    e = np.asarray(e, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        if line:
            return np.where(e < 0, (np.asarray(current, dtype=float) * (e - 1) / e + c) / 2, np.nan)
        return np.where(e < -1, c * e / (1 + e), np.nan)
