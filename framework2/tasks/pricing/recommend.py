"""Profit-optimal prices inside the guardrails, with projected effects and a one-line reason.

Moves are sized and judged on the straight line through today's price p0 and sales with the SKU's
elasticity e there, q = q0 * (1 + e (p / p0 - 1)) (``curves.py``: it sells less than a constant-elasticity
curve at every other price, so a move that pays on it pays there too). With unit cost c the profit (p - c) * q
is maximised at p* = (p0 (e - 1) / e + c) / 2. For e >= -1 demand is inelastic at today's price: the price
moves up by the full per-run change, or to p* if that is nearer ("inelastic_demand").

Guardrails form a feasible interval, built in priority order:

1. ``min_markup`` (floor, hard: always kept) and ``max_markup`` (ceiling; dropped only if a per-SKU
   override puts it below the floor),
2. ``max_change`` around the current price,
3. ``competitor_band_low`` / ``competitor_band_high`` around the competitor reference price
   (skipped without in-stock competitor data or when the policy disables a side),
4. ``observed_range``: the lowest and highest price the SKU's sales were seen at, widened by
   ``observed_range_margin`` (the fitted curve is a guess beyond them; last, so business limits win).

A constraint that would leave the interval empty is overridden and listed in ``conflicts``; it still
pulls the price to the end of the interval nearest to it, so a price below the cost floor moves up to
the floor (the smallest compliant change), not all the way to the optimum. The target
(optimum, inelastic move or missing-data fallback) is clipped into the interval and the constraint
that set the bound it was clipped to is named in ``binding_guardrail``. For inelastic demand the
target is the current price plus the full per-run change, so ``inelastic_demand`` is named unless a
different limit (a band, the markup ceiling, or the floor when the change limit was dropped) stops
it first. Missing-data prices are also kept inside the interval: the floor always wins.

Prices end in whole cents. A price ending (0.99 -> x.99) rounds down to the nearest such price that
is still inside the interval and does not turn a rise into a cut; if none is, the price stays
unrounded. A held price is never re-ended.

A move the elasticity's uncertainty does not back (odds of a profit gain under ``min_confidence``) holds
the current price (``low_confidence``), unless the current price breaks a guardrail. Calibrated odds of 0.8 still
lose one time in five, so the run's bar rises above ``min_confidence`` until its moves are expected to lose money
in at most ``max_losing_share`` of cases (``confidence_bar``): the least sure moves hold first.

Percentages are fractions (``change_pct=0.1`` is +10 %), as in the config. Projections are per day:
projected_units = baseline * (new / current)^e, deltas are against keeping the current price, and the
low/high figures are the 5th/95th percentiles over ``n_draws`` elasticities drawn from each SKU's
normal posterior (drawn in chunks of SKUs to bound memory).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from framework2.config import PricingGuardrails
from framework2.errors import DataError
from framework2.tasks.pricing.curves import demand_ratio, move_optimum
from framework2.tasks.pricing.elasticity import catalogue_index
from framework2.tasks.pricing.inputs import MONEY

GUARDRAILS = (
    "min_markup",
    "max_markup",
    "max_change",
    "competitor_band_low",
    "competitor_band_high",
    "observed_range",
)
BINDINGS = (*GUARDRAILS, "inelastic_demand", "missing_data", "low_confidence")
_MIN_MARKUP, _MAX_MARKUP, _MAX_CHANGE, _BAND_LOW, _BAND_HIGH, _OBSERVED = range(6)
_EPS = 1e-9
_DRAW_CHUNK = 20_000

RECOMMENDATION_COLUMNS = [
    "category",
    "cost",
    "current_price",
    "optimal_price",
    "recommended_price",
    "change_pct",
    "binding_guardrail",
    "conflicts",
    "needs_approval",
    "elasticity",
    "elasticity_low",
    "elasticity_high",
    "baseline_units",
    "projected_units",
    "revenue_delta",
    "revenue_delta_low",
    "revenue_delta_high",
    "profit_delta",
    "profit_delta_low",
    "profit_delta_high",
    "gain_odds",
    "explanation",
]


def optimal_price(cost: np.ndarray | pd.Series | float, elasticity: np.ndarray | pd.Series | float) -> np.ndarray:
    """Profit-optimal price c*e/(1+e) under constant elasticity; NaN where e >= -1 or inputs are NaN."""
    c = np.asarray(cost, dtype=float)
    e = np.asarray(elasticity, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(e < -1, c * e / (1 + e), np.nan)


def _numeric(frame: pd.DataFrame, column: str, default: float, n: int) -> np.ndarray:
    """A per-SKU override column with NaN (or absence) meaning the policy default."""
    if column not in frame.columns:
        return np.full(n, default, dtype=float)
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    # An infinite override would make a bound infinite and with it the price: it counts as no override.
    return np.where(np.isfinite(values), values, default)


def _pct(value: float) -> str:
    return f"{value * 100:.4g}%"


def _num(value: float) -> str:
    # A real minus sign reads better in the UI than a hyphen.
    return f"{value:.2f}".replace("-", "\u2212")


def recommend_prices(
    catalogue: pd.DataFrame,
    elasticities: pd.DataFrame | None,
    positions: pd.DataFrame | None,
    baseline: pd.Series | None,
    policy: PricingGuardrails,
    *,
    n_draws: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """Recommended price per catalogue SKU with its binding guardrail, projections and explanation.

    ``elasticities`` is the output of ``estimate_elasticities``, ``positions`` of ``price_positions``
    (the band uses its ``<policy.competitor_reference>_price`` column, so it follows the policy even if
    positions were computed with another reference), ``baseline`` mean daily units per sku. SKUs
    missing from any of them are treated as having no data of that kind, and so is a cost or price outside
    ``MONEY``. A change that cannot be computed (no current price) always needs approval; such rows (NaN
    ``change_pct``) cannot be stored, which is why ``validate_catalogue`` keeps them out of a pricing run.
    """
    missing_cols = [c for c in ("sku", "cost", "price") if c not in catalogue.columns]
    if missing_cols:
        raise DataError(
            f"catalogue is missing column(s) {', '.join(missing_cols)}; found {list(catalogue.columns)}",
            "the catalogue needs sku, cost and price (the current price)",
        )
    if n_draws < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}")
    index = catalogue_index(catalogue)
    n = len(index)
    cost = pd.to_numeric(catalogue["cost"], errors="coerce").to_numpy(dtype=float)
    cur = pd.to_numeric(catalogue["price"], errors="coerce").to_numpy(dtype=float)
    # A cost or price outside MONEY (inf, 1e-300, 1e300: stored before loads were checked) is no data, so it
    # takes the missing-data path instead of turning into an infinite or zero recommendation.
    cost = np.where(MONEY.contains(cost), cost, np.nan)
    cur = np.where(MONEY.contains(cur), cur, np.nan)
    min_m = _numeric(catalogue, "min_markup", policy.min_markup, n)
    max_m = _numeric(catalogue, "max_markup", policy.max_markup, n)
    max_c = _numeric(catalogue, "max_change_pct", policy.max_change_pct, n)
    ending = _numeric(catalogue, "price_ending", np.nan if policy.price_ending is None else policy.price_ending, n)

    el = (elasticities if elasticities is not None else pd.DataFrame(index=index)).reindex(index)
    e = _column(el, "elasticity", n)
    se = _column(el, "elasticity_se", n)
    e_low = _column(el, "elasticity_low", n)
    e_high = _column(el, "elasticity_high", n)
    seen_low, seen_high = _column(el, "price_low", n), _column(el, "price_high", n)
    curve = el["curve"].to_numpy(dtype=object) if "curve" in el.columns else np.full(n, None, dtype=object)
    margin = np.nan if policy.observed_range_margin is None else policy.observed_range_margin
    pos = (positions if positions is not None else pd.DataFrame(index=index)).reindex(index)
    ref_col = f"{policy.competitor_reference}_price"
    ref = _column(pos, ref_col if ref_col in pos.columns else "reference_price", n)
    base = (baseline if baseline is not None else pd.Series(dtype=float)).reindex(index).to_numpy(dtype=float)

    # Feasible interval in priority order; lo_by/hi_by remember which constraint set each bound.
    lo, hi = np.zeros(n), np.full(n, np.inf)
    lo_by, hi_by = np.full(n, -1), np.full(n, -1)
    dropped = np.zeros((n, len(GUARDRAILS)), dtype=bool)
    inf = np.inf
    with np.errstate(invalid="ignore"):
        constraints = [
            (_MIN_MARKUP, cost * (1 + min_m), np.full(n, inf)),
            (_MAX_MARKUP, np.full(n, -inf), cost * (1 + max_m)),
            (_MAX_CHANGE, cur * (1 - max_c), cur * (1 + max_c)),
            (_BAND_LOW, ref * (policy.competitor_band_low or np.nan), np.full(n, inf)),
            (_BAND_HIGH, np.full(n, -inf), ref * (policy.competitor_band_high or np.nan)),
            # Last: the demand curve is only known where prices have been; business limits come first. The
            # current price is always inside (a price set since the last sale is not pushed back by it).
            (_OBSERVED, _widen(seen_low * (1 - margin), cur, np.fmin), _widen(seen_high * (1 + margin), cur, np.fmax)),
        ]
    for cid, c_lo, c_hi in constraints:
        c_lo = np.where(np.isnan(c_lo), -inf, c_lo)
        c_hi = np.where(np.isnan(c_hi), inf, c_hi)
        new_lo, new_hi = np.maximum(lo, c_lo), np.minimum(hi, c_hi)
        fits = new_lo <= new_hi * (1 + _EPS)
        # A constraint that contradicts higher-priority ones is overridden, but still honoured as far as
        # they allow: the interval shrinks to the end nearest to it (e.g. a price below the cost floor
        # moves up to the floor, the smallest compliant change, not to wherever the optimum is).
        wants_lower = ~fits & (c_hi < lo)
        wants_higher = ~fits & (c_lo > hi)
        lo_by = np.where(fits & (c_lo > lo), cid, np.where(wants_higher, hi_by, lo_by))
        hi_by = np.where(fits & (c_hi < hi), cid, np.where(wants_lower, lo_by, hi_by))
        lo, hi = (
            np.where(fits, new_lo, np.where(wants_higher, hi, lo)),
            np.where(fits, new_hi, np.where(wants_lower, lo, hi)),
        )
        dropped[:, cid] = ~fits

    line = policy.move_curve == "line"
    p_opt = move_optimum(cost, e, cur, line)
    # No current price is missing data too: the optimum on the line, the change and its odds all start from it.
    missing = ~np.isfinite(e) | ~np.isfinite(cost) | ~np.isfinite(cur)
    inelastic = ~missing & (e >= -1)
    cost_plus = cost * (1 + policy.cost_plus_markup)
    hold = policy.missing_data_rule == "hold"
    miss_target = np.where(np.isfinite(cur), cur, cost_plus) if hold else np.where(np.isfinite(cost), cost_plus, cur)
    up_target = np.fmin(np.where(np.isfinite(cur), cur * (1 + max_c), hi), p_opt)
    target = np.select([missing, inelastic], [miss_target, up_target], p_opt)
    with np.errstate(invalid="ignore"):
        below = target < lo * (1 - _EPS)
        above = target > hi * (1 + _EPS)
    clipped = np.minimum(np.maximum(target, lo), hi)

    names = np.array([*GUARDRAILS, None], dtype=object)
    binding = np.full(n, None, dtype=object)
    binding[below] = names[lo_by[below]]
    binding[above] = names[hi_by[above]]
    binding[missing & ~below & ~above] = "missing_data"
    # For inelastic demand the change limit is the move itself, not a guardrail that stopped it.
    plain_up = inelastic & ~below & (~above | (hi_by == _MAX_CHANGE))
    binding[plain_up] = "inelastic_demand"

    cents = _to_cents(clipped, lo, hi)
    ended, end_applied, end_skipped = _apply_ending(cents, lo, cur, ending, skip=missing & hold)
    with np.errstate(invalid="ignore"):
        # A current price outside the guardrails must move (the floor, a band), as far as they need.
        forced = (cur < lo * (1 - _EPS)) | (cur > hi * (1 + _EPS))

    def odds_of(price: np.ndarray) -> np.ndarray:
        moves = _moves(price, cur) & ~missing
        return np.where(moves, gain_odds(price, cur, cost, e, se, n_draws=n_draws, seed=seed, line=line), np.nan)

    end_odds = odds_of(ended)
    # An ending rounds down, so it can push a cut past where the cut pays: where the ending alone takes a move under
    # minConfidence and the cent price does not, the cent price stands.
    end_undone = end_applied & (np.abs(ended - cents) > _EPS) & ~forced & ~(end_odds >= policy.min_confidence)
    odds = end_odds
    if end_undone.any():
        cent_odds = odds_of(cents)
        end_undone &= cent_odds >= policy.min_confidence
        odds = np.where(end_undone, cent_odds, end_odds)
    proposed = np.where(end_undone, cents, ended)
    end_applied = end_applied & ~end_undone
    moved = _moves(proposed, cur)
    candidate = moved & ~missing & ~forced
    bar = confidence_bar(odds[candidate], policy.min_confidence, policy.max_losing_share)
    # With no bar (minConfidence 0, maxLosingShare 1) the point estimate alone decides, odds or not.
    unsure = candidate & (bar > 0) & ~(odds >= bar)
    # A forced move needs no odds to reach the guardrail it breaks; going on beyond it must pay like any move.
    nearest = _to_cents(np.clip(cur, lo, hi), lo, hi)
    short = forced & moved & ~missing & (bar > 0) & ~(odds >= bar) & (np.abs(nearest - proposed) > _EPS)
    rec = np.select([unsure, short], [cur, nearest], proposed)
    binding[unsure] = "low_confidence"
    binding[short] = names[np.where(cur < lo, lo_by, hi_by)][short]
    with np.errstate(invalid="ignore", divide="ignore"):
        change = rec / cur - 1
    needs_approval = ~(np.abs(change) <= policy.approval_change_pct + _EPS)

    proj = _project(rec, cur, cost, base, e, se, n_draws=n_draws, seed=seed, line=line)
    conflicts = np.full(n, "", dtype=object)
    for cid, name in enumerate(GUARDRAILS):
        flag = dropped[:, cid]
        if flag.any():
            conflicts[flag] = np.where(conflicts[flag] == "", name, conflicts[flag] + ", " + name)

    category = catalogue["category"].to_numpy() if "category" in catalogue.columns else np.full(n, None)
    explanation = _explain(
        p_opt=p_opt,
        e=e,
        e_low=e_low,
        e_high=e_high,
        missing=missing,
        inelastic=inelastic,
        target=target,
        cost=cost,
        cur=cur,
        below=below,
        above=above,
        lo_by=lo_by,
        hi_by=hi_by,
        clipped=cents,
        rec=rec,
        ending=ending,
        end_applied=end_applied,
        end_skipped=end_skipped,
        conflicts=conflicts,
        change=change,
        needs_approval=needs_approval,
        unsure=unsure,
        proposed=proposed,
        odds=odds,
        bar=bar,
        short=short,
        nearest=nearest,
        end_undone=end_undone,
        ended=ended,
        end_odds=end_odds,
        min_m=min_m,
        max_m=max_m,
        max_c=max_c,
        ref=ref,
        seen_low=seen_low,
        seen_high=seen_high,
        curve=curve,
        policy=policy,
    )
    out = pd.DataFrame(
        {
            "category": category,
            "cost": cost,
            "current_price": cur,
            "optimal_price": p_opt,
            "recommended_price": rec,
            "change_pct": change,
            "binding_guardrail": binding,
            "conflicts": conflicts,
            "needs_approval": needs_approval,
            "elasticity": e,
            "elasticity_low": e_low,
            "elasticity_high": e_high,
            "baseline_units": base,
            **proj,
            "gain_odds": odds,
            "explanation": explanation,
        },
        index=index,
    )
    return out[RECOMMENDATION_COLUMNS]


def _missing_reason(cost: float, cur: float, target: float, hold: bool, markup: float) -> str:
    """Why a SKU takes the missing-data rule and what that gave, saying so where the rule could not apply as set."""
    has_cost, has_cur = bool(np.isfinite(cost)), bool(np.isfinite(cur))
    gone = [w for w, lost in (("no usable cost", not has_cost), ("no usable current price", not has_cur)) if lost]
    why = (" and ".join(gone) or "no usable elasticity").capitalize()
    if not np.isfinite(target):
        return f"{why}; no price can be set (load a cost or a current price)"
    held, cost_plus = f"holding the current price {target:.2f}", f"cost plus {_pct(markup)} {target:.2f}"
    if hold:
        return f"{why}; {held if has_cur else cost_plus + ' (no current price to hold)'}"
    return f"{why}; {cost_plus if has_cost else held + ' (cost plus needs a cost)'}"


def _moves(price: np.ndarray, cur: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.isfinite(price / cur) & (np.abs(price / cur - 1) > _EPS)


def _odds_against(odds: float, bar: float) -> tuple[str, str]:
    """Odds and bar as percentages with enough decimals that they never read as equal (79.5% vs 80.0%)."""
    for digits in (0, 1, 2):
        have, need = f"{odds:.{digits}%}", f"{bar:.{digits}%}"
        if have != need:
            break
    return have, need


def _widen(bound: np.ndarray, current: np.ndarray, pick: np.ufunc) -> np.ndarray:
    """``bound`` moved out to ``current`` where that is further; NaN (no bound) stays NaN."""
    return np.where(np.isnan(bound), np.nan, pick(bound, current))


def _column(frame: pd.DataFrame, column: str, n: int) -> np.ndarray:
    if column not in frame.columns:
        return np.full(n, np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)


def _to_cents(price: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Round to cents, toward the inside of [lo, hi]; keep the exact value if no cent fits."""
    r = np.round(price, 2)
    with np.errstate(invalid="ignore"):
        r = np.where(r < lo - _EPS, np.ceil(price * 100 - 1e-6) / 100, r)
        r = np.where(r > hi + _EPS, np.floor(price * 100 + 1e-6) / 100, r)
        inside = (r >= lo - _EPS) & (r <= hi + _EPS)
    return np.where(inside, r, price)


def _apply_ending(
    price: np.ndarray, lo: np.ndarray, cur: np.ndarray, ending: np.ndarray, skip: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Round down to the nearest price ending in ``ending`` if it stays >= lo (it is <= price).

    Rounding down may not turn a rise into a cut (4.60 from 4.18 must not become 3.99), nor a price that stays
    where it is into one (7.66 held must not become 6.99: no elasticity asked for that cut).
    """
    end_cents = np.round(ending * 100)
    with np.errstate(invalid="ignore"):
        cents = np.floor(price * 100 + 1e-6)
        rounded = (np.floor((cents - end_cents) / 100) * 100 + end_cents) / 100
        wanted = np.isfinite(ending) & np.isfinite(price) & ~skip
        reverses = (price >= cur * (1 - _EPS)) & (rounded < cur * (1 - _EPS))
        fits = wanted & (rounded >= lo - _EPS) & (rounded > 0) & ~reverses
    return np.where(fits, rounded, price), fits, wanted & ~fits


def confidence_bar(odds: np.ndarray, min_confidence: float, max_losing_share: float) -> float:
    """The odds a move needs in this run: ``min_confidence``, raised until the moves at or above it are expected
    to lower profit in at most ``max_losing_share`` of cases (the mean of 1 - odds over them).

    Odds of 0.8 mean one move in five loses: a run whose moves all sit near the bar loses on many of them. The
    bar rises through the odds one value at a time (moves with equal odds hold or move together, so the result
    does not depend on the catalogue's order) and stops before the first value that would break the share.
    """
    odds = np.asarray(odds, dtype=float)
    values, counts = np.unique(odds[np.isfinite(odds) & (odds >= min_confidence)], return_counts=True)
    if not len(values):
        return float(min_confidence)
    values, counts = values[::-1], counts[::-1].astype(float)
    expected_losers = np.cumsum(counts * (1.0 - values))
    within = expected_losers / np.cumsum(counts) <= max_losing_share + _EPS
    # The share only grows as lower odds join, so the moves kept are a prefix of ``values``.
    if within.all():
        return float(min_confidence)
    if not within[0]:
        return max(float(min_confidence), 1.0 - max_losing_share)  # no move is sure enough: it would need this
    return float(values[np.flatnonzero(within)[-1]])


def gain_odds(
    rec: np.ndarray,
    cur: np.ndarray,
    cost: np.ndarray,
    e: np.ndarray,
    se: np.ndarray,
    *,
    n_draws: int,
    seed: int,
    line: bool = True,
) -> np.ndarray:
    """P(moving from ``cur`` to ``rec`` raises profit) over normal draws of the elasticity; NaN without one.

    With D(r) the units at price ratio r over today's (``curves.demand_ratio``: 1 + e (r - 1) on the line
    through today's price, r^e under constant elasticity), the profit change is
    q_today [(rec - c) D(rec/cur) - (cur - c)]: its sign does not depend on how many units sell, so no
    baseline is needed. The draws are ``_project``'s (same seed), so the odds and the profit band come from the
    same elasticities.
    """
    n = len(rec)
    out = np.full(n, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_r = np.log(rec / cur)
    # Without a standard error there is no telling how sure the elasticity is: no odds (not certainty).
    ok = np.isfinite(log_r) & np.isfinite(e) & np.isfinite(cost) & np.isfinite(se) & (se >= 0)
    if not ok.any():
        return out
    spread = np.where(ok, se, 0.0)
    z = np.random.default_rng(seed).standard_normal(n_draws)
    for start in range(0, n, _DRAW_CHUNK):
        s = slice(start, min(start + _DRAW_CHUNK, n))
        draws = e[s, None] + spread[s, None] * z[None, :]
        with np.errstate(invalid="ignore", over="ignore"):
            ratio = demand_ratio(draws, log_r[s, None], line)
            gain = (rec[s] - cost[s])[:, None] * ratio - (cur[s] - cost[s])[:, None]
        out[s] = np.where(ok[s], (gain > 0).mean(axis=1), np.nan)
    return out


def _project(
    rec: np.ndarray,
    cur: np.ndarray,
    cost: np.ndarray,
    base: np.ndarray,
    e: np.ndarray,
    se: np.ndarray,
    *,
    n_draws: int,
    seed: int,
    line: bool = True,
) -> dict[str, np.ndarray]:
    """Daily units, revenue and profit deltas vs the current price on the policy's curve (``curves.py``), with
    5-95 % bands over draws."""
    with np.errstate(invalid="ignore", divide="ignore"):
        log_r = np.log(rec / cur)
    unchanged = log_r == 0
    # Without an elasticity only an unchanged price has a known effect (none).
    unknown = ~np.isfinite(e) & ~unchanged
    e0 = np.where(np.isfinite(e), e, 0.0)
    se0 = np.where(np.isfinite(se), se, 0.0)
    with np.errstate(invalid="ignore", over="ignore"):
        q_new = np.where(unknown, np.nan, base * demand_ratio(e0, log_r, line))
        q_new = np.where(unchanged, base, q_new)
        rev = rec * q_new - cur * base
        prof = (rec - cost) * q_new - (cur - cost) * base
    n = len(rec)
    bands = np.full((4, n), np.nan)
    # Common random numbers: every SKU uses the same standard-normal draws, so a SKU's band depends on that
    # SKU alone, not on which other SKUs were priced with it (the same band in one run or in partitions).
    z = np.random.default_rng(seed).standard_normal(n_draws)
    for start in range(0, n, _DRAW_CHUNK):
        s = slice(start, min(start + _DRAW_CHUNK, n))
        draws = e0[s, None] + se0[s, None] * z[None, :]
        with np.errstate(invalid="ignore", over="ignore"):
            q = base[s, None] * demand_ratio(draws, np.where(unchanged[s], 0.0, log_r[s])[:, None], line)
            rev_d = rec[s, None] * q - (cur[s] * base[s])[:, None]
            prof_d = (rec[s] - cost[s])[:, None] * q - ((cur[s] - cost[s]) * base[s])[:, None]
        bands[0:2, s] = np.percentile(rev_d, [5, 95], axis=1)
        bands[2:4, s] = np.percentile(prof_d, [5, 95], axis=1)
    bands[:, unknown] = np.nan
    return {
        "projected_units": q_new,
        "revenue_delta": rev,
        "revenue_delta_low": bands[0],
        "revenue_delta_high": bands[1],
        "profit_delta": prof,
        "profit_delta_low": bands[2],
        "profit_delta_high": bands[3],
    }


# How the explanation names a category's bent demand curve (``demand_curves.py``).
_BENT_WORDS = {
    "linear": "on the category's linear demand curve",
    "exponential": "on the category's exponential demand curve",
}


def _explain(
    *,
    p_opt: np.ndarray,
    e: np.ndarray,
    e_low: np.ndarray,
    e_high: np.ndarray,
    missing: np.ndarray,
    inelastic: np.ndarray,
    target: np.ndarray,
    cost: np.ndarray,
    cur: np.ndarray,
    below: np.ndarray,
    above: np.ndarray,
    lo_by: np.ndarray,
    hi_by: np.ndarray,
    clipped: np.ndarray,
    rec: np.ndarray,
    ending: np.ndarray,
    end_applied: np.ndarray,
    end_skipped: np.ndarray,
    conflicts: np.ndarray,
    change: np.ndarray,
    needs_approval: np.ndarray,
    unsure: np.ndarray,
    proposed: np.ndarray,
    odds: np.ndarray,
    bar: float,
    short: np.ndarray,
    nearest: np.ndarray,
    end_undone: np.ndarray,
    ended: np.ndarray,
    end_odds: np.ndarray,
    min_m: np.ndarray,
    max_m: np.ndarray,
    max_c: np.ndarray,
    ref: np.ndarray,
    seen_low: np.ndarray,
    seen_high: np.ndarray,
    curve: np.ndarray,
    policy: PricingGuardrails,
) -> list[str]:
    """One readable sentence per SKU (string building is inherently per row)."""
    ref_name = policy.competitor_reference
    band_low, band_high = policy.competitor_band_low, policy.competitor_band_high

    def limit(cid: int, i: int) -> str:
        if cid == _MIN_MARKUP:
            return f"min markup {_pct(min_m[i])}"
        if cid == _MAX_MARKUP:
            return f"max markup {_pct(max_m[i])}"
        if cid == _MAX_CHANGE:
            return f"max change {_pct(max_c[i])}"
        if cid == _BAND_LOW:
            return f"competitor band {_pct(band_low or 0)} of {ref_name} {ref[i]:.2f}"
        if cid == _BAND_HIGH:
            return f"competitor band {_pct(band_high or 0)} of {ref_name} {ref[i]:.2f}"
        if cid == _OBSERVED:
            return (
                f"the prices sales were seen at, {seen_low[i]:.2f}-{seen_high[i]:.2f} "
                f"\u00b1{_pct(policy.observed_range_margin or 0)} (demand beyond them is a guess)"
            )
        return "no limit"

    hold = policy.missing_data_rule == "hold"
    run_bar = (
        f" (raised from {_pct(policy.min_confidence)} so that at most {_pct(policy.max_losing_share)} of this run's "
        "moves are expected to lose money)"
    )

    def declined(i: int) -> str:
        """The move a price did not make, with its odds against the run's bar."""
        if not np.isfinite(odds[i]):
            return f"the move to {proposed[i]:.2f} has no odds (the elasticity has no standard error)"
        have, need = _odds_against(odds[i], bar)
        raised = run_bar if bar > policy.min_confidence and odds[i] >= policy.min_confidence else ""
        return f"the move to {proposed[i]:.2f} raises profit with odds {have}, under the {need} required{raised}"

    out: list[str] = []
    for i in range(len(rec)):
        rng_txt = f"{_num(e[i])} [{_num(e_low[i])}, {_num(e_high[i])}]"
        if curve[i] in _BENT_WORDS:
            rng_txt += f" ({_BENT_WORDS[curve[i]]})"
        if missing[i]:
            parts = [_missing_reason(cost[i], cur[i], target[i], hold, policy.cost_plus_markup)]
        elif inelastic[i] and e[i] > 0:
            parts = [
                f"Elasticity {rng_txt} is positive (sales rose with the price), read as inelastic: the price moves up"
            ]
        elif inelastic[i]:
            parts = [f"Demand inelastic at elasticity {rng_txt}, so the price moves up"]
        else:
            parts = [f"Optimum {p_opt[i]:.2f} at elasticity {rng_txt}"]
        # Worded from today's price: a cut the change limit stops is "cut no further", not "raised".
        if below[i]:
            verb = "raised to" if not clipped[i] < cur[i] else "cut no further than"
            parts.append(f"{verb} {clipped[i]:.2f} by {limit(lo_by[i], i)}")
        elif above[i] or inelastic[i]:
            verb = "lowered to" if clipped[i] < cur[i] else "capped at"
            parts.append(f"{verb} {clipped[i]:.2f} by {limit(hi_by[i], i)}")
        elif not missing[i]:
            parts.append("within limits")
        label = f".{int(round(ending[i] * 100)):02d}" if np.isfinite(ending[i]) else ""
        if end_applied[i] and proposed[i] != clipped[i]:
            parts.append(f"ending {label} \u2192 {proposed[i]:.2f}")
        elif end_undone[i]:
            parts.append(f"ending {label} skipped (at {ended[i]:.2f} the move would pay with odds {end_odds[i]:.0%})")
        elif end_skipped[i] and rec[i] != cur[i]:
            parts.append(f"ending {label} skipped (would leave the limits or reverse the move)")
        if conflicts[i]:
            parts.append(f"overrode {conflicts[i]} (contradicted higher-priority limits)")
        if unsure[i]:
            parts.append(f"held at {rec[i]:.2f}: {declined(i)}")
        elif short[i]:
            broken = lo_by[i] if cur[i] < nearest[i] else hi_by[i]
            parts.append(
                f"the current price {cur[i]:.2f} breaks {limit(broken, i)}, so it moves to {nearest[i]:.2f} whatever "
                f"the odds; {declined(i).replace('the move to', 'the move on to', 1)}"
            )
        elif np.isfinite(odds[i]):
            parts.append(f"odds it raises profit {odds[i]:.0%}")
        if needs_approval[i]:
            moved = f" ({change[i]:+.1%})".replace("-", "\u2212") if np.isfinite(change[i]) else ""
            parts.append(f"needs approval{moved}")
        out.append("; ".join(parts))
    return out
