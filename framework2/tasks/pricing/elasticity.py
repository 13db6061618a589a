"""Own-price elasticity per SKU from daily sales, vectorised across all SKUs at once.

Method
------
1. **Own fit.** For each SKU a Poisson log-linear model

       log E[units_t] = a + e * (log p_t - mean log p)

   is fitted by damped Newton iterations run on every SKU together: the per-SKU sums the 2x2
   Hessian needs are ``np.bincount`` over factorised SKU codes, and each 2x2 system is solved in
   closed form. Zero-unit days stay in the fit (no ``log(0)`` hack). A step that raises a SKU's
   negative log-likelihood is halved for that SKU only, so a poor start cannot diverge. The standard
   error comes from the Fisher information, inflated by the Pearson dispersion (quasi-Poisson,
   floored at 1) so over-dispersed sales get honest intervals.
   A SKU gets an own estimate only if it sold on at least ``min_days`` days and the standard
   deviation of its log price is at least ``min_log_price_std``; otherwise the data cannot separate
   the price effect from noise.

2. **What is not price** (``demand_factors.py``): each category's week level and weekday divide out of
   the expected units, and promotion days (a ``promo`` column, else temporary price cuts) are left out of
   the price fit, so a promotion's extra lift is not read as price sensitivity.

3. **Partial pooling** (``pooling.py``): SKU -> category -> store, normal at every level, with the spread
   within categories and between them integrated over their posterior instead of fixed at a point
   estimate. A category with no usable SKU takes the store's estimate (source "store"); SKUs without an
   own estimate take their category's (source "category"); a store with under three own estimates in all
   shrinks toward the documented prior ``PRIOR_MEAN`` / ``PRIOR_SD`` (source "prior").

4. **Demand that bends** (``demand_curves.py``): every SKU is also fitted on exponential and linear demand;
   each category takes the curve its days fit best, the chosen curve's elasticity at the centre price is
   pooled as above, and the elasticity at today's price (the catalogue's ``price``) is read off that curve
   (column ``curve``). Where the log-linear curve is chosen, nothing changes.

The own fits run per partition of whole categories (``fit_own_elasticities``); the pooling needs every
category at once (``pool_elasticities``) and is cheap.

Intervals are normal: estimate +/- z * se with z for the requested two-sided ``interval``.
Rows with a SKU missing from the catalogue, a non-positive price or negative/missing units are
ignored here (upstream validation quarantines them).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

from framework2.errors import DataError
from framework2.tasks.pricing.demand_curves import BENT, CURVES, choose_curves, elasticity_at, fit_line
from framework2.tasks.pricing.demand_factors import FACTOR_PASSES, DemandFactors, promo_lift, temporary_cuts
from framework2.tasks.pricing.inputs import PROMO_FALSE, PROMO_TRUE
from framework2.tasks.pricing.pooling import PRIOR_MEAN, PRIOR_SD, pool  # noqa: F401 (the prior, re-exported)

# A slope running past this is separation (all sales at one price level: no finite fit), so the fit stops and
# the SKU has no own estimate. A converged fit below it is kept however steep: a tight -15.3 [-23, -7.6] is
# data, and the pooling weighs it by its own standard error.
MAX_ABS_ELASTICITY = 50.0
PRICE_OUTLIER_RATIO = 2.0
_MAX_STEP = 2.0
_MAX_ITER = 60
_TOL = 1e-10

ESTIMATE_COLUMNS = [
    "elasticity",
    "elasticity_se",
    "elasticity_low",
    "elasticity_high",
    "own_estimate",
    "own_se",
    "shrinkage",
    "n_days",
    "log_price_std",
    "source",
    "category",
    "promo_lift",
    "price_low",
    "price_high",
]


def _require(df: pd.DataFrame, columns: list[str], what: str, hint: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{what} is missing column(s) {', '.join(missing)}; found {list(df.columns)}", hint)


def catalogue_index(catalogue: pd.DataFrame) -> pd.Index:
    """The catalogue's SKUs as a unique string index (DataError on duplicates)."""
    index = pd.Index(catalogue["sku"].astype(str), name="sku")
    if not index.is_unique:
        dupes = index[index.duplicated()].unique()[:5].tolist()
        raise DataError(f"catalogue has duplicate SKUs, e.g. {dupes}", "keep one catalogue row per SKU")
    return index


def sku_codes(sku: pd.Series, index: pd.Index) -> np.ndarray:
    """Position of each row's SKU in ``index`` (-1 when unknown), fast for categorical columns."""
    if isinstance(sku.dtype, pd.CategoricalDtype):
        # Map the few categories once instead of hashing millions of strings.
        lookup = index.get_indexer(sku.cat.categories.astype(str))
        codes = sku.cat.codes.to_numpy()
        return np.where(codes >= 0, lookup[np.maximum(codes, 0)], -1)
    return index.get_indexer(sku.astype(str))


def _usable_rows(sales: pd.DataFrame, index: pd.Index) -> tuple[np.ndarray, ...]:
    """SKU position, price, units of every row, and which rows can be used."""
    code = sku_codes(sales["sku"], index)
    price = pd.to_numeric(sales["price"], errors="coerce").to_numpy(dtype=float)
    units = pd.to_numeric(sales["units"], errors="coerce").to_numpy(dtype=float)
    ok = (code >= 0) & np.isfinite(price) & (price > 0) & np.isfinite(units) & (units >= 0)
    return code, price, units, ok


def usable_sales(sales: pd.DataFrame, index: pd.Index, *, require: bool = True) -> tuple[np.ndarray, ...]:
    """SKU position, price and units of the rows that can be used: a catalogue SKU, price > 0, units >= 0.

    DataError when ``require`` and no row is usable.
    """
    code, price, units, ok = _usable_rows(sales, index)
    if not ok.all():
        code, price, units = code[ok], price[ok], units[ok]
    if len(code) == 0 and require:
        raise DataError(
            "no usable sales rows: none matched a catalogue SKU with a positive price and units >= 0",
            "check that sales.sku uses the catalogue's SKU codes",
        )
    return code, price, units


def _fit_poisson(
    code: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    yy: np.ndarray,
    n_days: np.ndarray,
    days: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised Poisson fit of log mu = a + e*x per SKU code on grouped days.

    Each row is a group of days of one SKU at one price with exposure ``w`` (the number of days, or the sum
    of the days' calendar and promotion factors), unit sum ``y`` and ``yy`` = sum of units^2 / factor (the
    Poisson sufficient statistics, plus what the Pearson statistic needs). Returns the intercept, the
    slope, its variance and whether the fit converged.

    The variance is quasi-Poisson (one dispersion factor per SKU) or, given ``days`` = per group the sums of
    units^2, units * factor and factor^2, the day-level sandwich where that is larger. Why: gamma-Poisson
    sales vary more than in proportion to their mean, so the days far from the usual price (promotions, the
    price steps that carry the elasticity) are noisier than one factor says; on the scenario markets
    quasi-Poisson errors were 5-10 % too small, which inflated the spread the pooling learns and with it
    every interval.
    """
    n_sku = len(n_days)
    sy = np.bincount(code, weights=y, minlength=n_sku)
    syx = np.bincount(code, weights=y * x, minlength=n_sku)
    with np.errstate(divide="ignore"):
        a = np.log(sy / np.maximum(n_days, 1))
    e = np.zeros(n_sku)
    a_base, e_base = a.copy(), e.copy()
    step_a, step_e = np.zeros(n_sku), np.zeros(n_sku)
    nll_base = np.full(n_sku, np.inf)
    done = n_days == 0
    converged = np.zeros(n_sku, dtype=bool)
    full = code, x, y, w, yy
    for _ in range(_MAX_ITER):
        mu = w * np.exp(a[code] + e[code] * x)
        s0 = np.bincount(code, weights=mu, minlength=n_sku)
        s1 = np.bincount(code, weights=mu * x, minlength=n_sku)
        s2 = np.bincount(code, weights=mu * x * x, minlength=n_sku)
        # The y*eta part of the log-likelihood in closed form from the fixed sums.
        nll = s0 - a * sy - e * syx
        worse = ~(nll <= nll_base + 1e-12 * np.abs(nll_base))
        det = s0 * s2 - s1 * s1
        ga, ge = sy - s0, syx - s1
        with np.errstate(divide="ignore", invalid="ignore"):
            da = (s2 * ga - s1 * ge) / det
            de = (s0 * ge - s1 * ga) / det
        bad = ~np.isfinite(da) | ~np.isfinite(de)
        da[bad], de[bad] = 0.0, 0.0
        scale = np.minimum(1.0, _MAX_STEP / np.maximum(np.abs(da), np.abs(de)).clip(1e-300))
        da, de = da * scale, de * scale
        # A SKU whose last step made things worse retries half of it from the last accepted point.
        step_a = np.where(worse, 0.5 * step_a, da)
        step_e = np.where(worse, 0.5 * step_e, de)
        a_base = np.where(worse, a_base, a)
        e_base = np.where(worse, e_base, e)
        nll_base = np.where(worse, nll_base, nll)
        converged |= ~done & ~worse & (np.abs(de) < _TOL * (1 + np.abs(e))) & (np.abs(da) < _TOL * (1 + np.abs(a)))
        # Runaway slopes mean separation (all sales at one price level): stop, it has no finite MLE.
        done |= converged | (np.abs(e) > MAX_ABS_ELASTICITY)
        if done.all():
            break
        a = np.where(done, a, a_base + step_a)
        e = np.where(done, e, e_base + step_e)
        # Shrink the working set once most SKUs are finished, so stragglers cost little.
        keep = ~done[code]
        if keep.mean() < 0.5:
            code, x, y, w, yy = code[keep], x[keep], y[keep], w[keep], yy[keep]
    code, x, y, w, yy = full
    mu = np.exp(a[code] + e[code] * x)
    s0 = np.bincount(code, weights=w * mu, minlength=n_sku)
    s1 = np.bincount(code, weights=w * mu * x, minlength=n_sku)
    s2 = np.bincount(code, weights=w * mu * x * x, minlength=n_sku)
    # Pearson X^2 over days, from the grouped sums: sum (y - mu)^2 / mu per group.
    pearson = np.bincount(code, weights=yy / mu - 2 * y + w * mu, minlength=n_sku)
    with np.errstate(divide="ignore", invalid="ignore"):
        det = s0 * s2 - s1 * s1
        var_e = s0 / det * np.maximum(1.0, pearson / np.maximum(n_days - 2, 1))
    if days is not None:
        uu, uf, ff = days
        # Squared residuals of the days in each group, sum (units - factor * mu)^2, from the grouped sums.
        r = uu - 2 * mu * uf + mu * mu * ff
        b0, b1, b2 = (np.bincount(code, weights=r * x**k, minlength=n_sku) for k in range(3))
        with np.errstate(divide="ignore", invalid="ignore"):
            # (H^-1 B H^-1) for the slope, H^-1 = [[s2, -s1], [-s1, s0]] / det, with the small-sample n / (n - 2).
            robust = (s1 * s1 * b0 - 2 * s0 * s1 * b1 + s0 * s0 * b2) / det**2
            robust *= n_days / np.maximum(n_days - 2, 1)
        var_e = np.fmax(var_e, robust)
    return a, e, var_e, converged


class _Groups:
    """The usable SKUs' days collapsed to one row per (SKU, price), computed once per fit.

    Days at the same price carry the same x, so their unit sums are sufficient: prices repeat a lot (regular
    price, a few promotions) and this cuts the rows the Newton loop touches ~10-20x.
    """

    def __init__(self, code: np.ndarray, price: np.ndarray, units: np.ndarray, usable: np.ndarray,
                 mean_logp: np.ndarray, n_days: np.ndarray) -> None:  # fmt: skip
        self.rows = usable[code]
        fit_code = (np.cumsum(usable) - 1)[code[self.rows]]
        price_id, price_values = pd.factorize(price[self.rows])
        self.group, keys = pd.factorize(fit_code.astype(np.int64) * len(price_values) + price_id)
        self.code = (keys // len(price_values)).astype(np.intp)
        self.x = np.log(price_values[keys % len(price_values)]) - mean_logp[usable][self.code]
        self.units = units[self.rows]
        self.y = np.bincount(self.group, weights=self.units)
        self.n_days = n_days[usable].astype(float)

    def fit(self, factor: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Intercept, slope, slope variance and convergence per usable SKU. ``factor`` (one per usable row of
        the sales) multiplies a day's expected units for what is not price: the week's level, the weekday."""
        w, yy = self._sums(factor)
        return _fit_poisson(self.code, self.x, self.y, w, yy, self.n_days, self._day_sums(factor))

    def _sums(self, factor: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        f = np.ones(len(self.units)) if factor is None else factor[self.rows]
        return np.bincount(self.group, weights=f), np.bincount(self.group, weights=self.units * self.units / f)

    def _day_sums(self, factor: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per group: sum of units^2, of units * factor and of factor^2 (what the sandwich variance needs)."""
        f = np.ones(len(self.units)) if factor is None else factor[self.rows]
        u = self.units
        return tuple(np.bincount(self.group, weights=v) for v in (u * u, u * f, f * f))  # type: ignore[return-value]

    def fit_line(
        self, factor: np.ndarray | None, start: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``demand_line.fit_line`` on these groups: elasticity at the centre price, its variance, the negative
        log-likelihood, convergence and dispersion per usable SKU."""
        w, yy = self._sums(factor)
        return fit_line(self.code, np.expm1(self.x), self.y, w, yy, self.n_days, start)

    def fit_exponential(self, factor: np.ndarray | None) -> tuple[np.ndarray, ...]:
        """Exponential (semi-log) demand, log E[units] = a + m (p / centre - 1): elasticity m at the centre price,
        its variance, the negative log-likelihood and convergence per usable SKU."""
        w, yy = self._sums(factor)
        xr = np.expm1(self.x)
        a, m, var_m, conv = _fit_poisson(self.code, xr, self.y, w, yy, self.n_days, self._day_sums(factor))
        return m, var_m, self._nll(w, a[self.code] + m[self.code] * xr), conv

    def log_nll(self, factor: np.ndarray | None, a: np.ndarray, e: np.ndarray) -> np.ndarray:
        """Negative log-likelihood of the log-linear fit (a, e), on the line fit's scale."""
        w, _ = self._sums(factor)
        return self._nll(w, a[self.code] + e[self.code] * self.x)

    def _nll(self, w: np.ndarray, eta: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            return np.bincount(self.code, weights=w * np.exp(eta) - self.y * eta, minlength=len(self.n_days))


def estimate_elasticities(
    sales: pd.DataFrame,
    catalogue: pd.DataFrame,
    *,
    min_log_price_std: float = 0.01,
    min_days: int = 14,
    interval: float = 0.90,
    require_sales: bool = True,
    factors: bool = True,
) -> pd.DataFrame:
    """Partially pooled own-price elasticity for every catalogue SKU (see module docstring): the own fits of
    ``fit_own_elasticities`` pooled by ``pool_elasticities``."""
    if not 0 < interval < 1:
        raise ValueError(f"interval must be in (0, 1), got {interval}")
    own = fit_own_elasticities(
        sales,
        catalogue,
        min_log_price_std=min_log_price_std,
        min_days=min_days,
        require_sales=require_sales,
        factors=factors,
    )
    return pool_elasticities(own, interval=interval)


def fit_own_elasticities(
    sales: pd.DataFrame,
    catalogue: pd.DataFrame,
    *,
    min_log_price_std: float = 0.01,
    min_days: int = 14,
    require_sales: bool = True,
    factors: bool = True,
) -> pd.DataFrame:
    """Each catalogue SKU's own Poisson fit (NaN where its data cannot give one), with its category.

    ``factors`` (with a ``day`` column) divides out each category's week level, weekday and promotion lift
    (``demand_factors.py``); a ``promo`` column marks promotion days, else temporary price cuts count as them.

    Each SKU is fitted on the three curves of ``demand_curves.py`` (columns ``<curve>_estimate``, ``_se`` and
    ``_gain``, the log-likelihood gain over log-linear), with its centre and current price for the pooling.

    ``require_sales=False`` is for one partition of a catalogue (whole categories): a partition whose SKUs
    sold nothing gets the prior, as those SKUs would in the whole run; the caller checks the whole run.
    """
    _require(sales, ["sku", "price", "units"], "sales", "sales need one row per sku per day: sku, day, price, units")
    _require(catalogue, ["sku", "category"], "catalogue", "the catalogue needs at least sku and category")
    if len(sales) == 0 and require_sales:
        raise DataError("sales history is empty", "load at least min_days days of sales before estimating")
    if len(catalogue) == 0:
        raise DataError("catalogue is empty", "load the catalogue before estimating elasticities")

    index = catalogue_index(catalogue)
    n_sku = len(index)
    code, price, units, ok = _usable_rows(sales, index)
    day = flag = said = None
    if factors and "day" in sales.columns:
        day, dated = _days(sales)
        ok &= dated  # a row without a readable day cannot be placed in a week: left out, in any partition
    if factors and "promo" in sales.columns:
        flag, said = _promo_flags(sales["promo"])
    if not ok.all():
        code, price, units = code[ok], price[ok], units[ok]
        day = day[ok] if day is not None else None
        flag, said = (flag[ok], said[ok]) if flag is not None and said is not None else (None, None)
    if len(code) == 0 and require_sales:
        usable_sales(sales, index)  # raises the no-usable-rows error
    promo = _promotions(code, day, price, flag, said, n_sku)
    days_seen = np.bincount(code, minlength=n_sku)  # every usable day, promotions included
    # The prices sales were seen at (promotions included): recommendations stay near them.
    seen_low, seen_high = np.full(n_sku, np.nan), np.full(n_sku, np.nan)
    if len(code):
        np.fmin.at(seen_low, code, price)
        np.fmax.at(seen_high, code, price)
    on_promo: tuple[np.ndarray, ...] | None = None
    on_promo_day: np.ndarray | None = None
    if promo is not None and promo.any():
        on_promo = code[promo], price[promo], units[promo]
        regular = ~promo
        code, price, units = code[regular], price[regular], units[regular]
        if day is not None:
            on_promo_day, day = day[promo], day[regular]

    logp = np.log(price)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_logp = np.bincount(code, weights=logp, minlength=n_sku) / np.bincount(code, minlength=n_sku)
    # A regular price more than PRICE_OUTLIER_RATIO from the SKU's typical one (a mistyped price, a clearance,
    # a coupon-adjusted cent price) would decide the slope on its own: it is left out of the fit.
    kept = np.abs(logp - mean_logp[code]) <= np.log(PRICE_OUTLIER_RATIO)
    if not kept.all():
        code, price, units, logp = code[kept], price[kept], units[kept], logp[kept]
        day = day[kept] if day is not None else None
    n_days = np.bincount(code, minlength=n_sku)
    selling = np.bincount(code, weights=units > 0, minlength=n_sku)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_logp = np.bincount(code, weights=logp, minlength=n_sku) / n_days
    x = logp - mean_logp[code]
    with np.errstate(invalid="ignore", divide="ignore"):
        lp_std = np.sqrt(np.bincount(code, weights=x * x, minlength=n_sku) / n_days)
    del x, logp  # 9M-row temporaries: free them before the fit allocates its own

    usable = (selling >= min_days) & (lp_std >= min_log_price_std)
    own = np.full(n_sku, np.nan)
    own_se = np.full(n_sku, np.nan)
    bends = {name: (np.full(n_sku, np.nan), np.full(n_sku, np.nan), np.full(n_sku, np.nan)) for name in BENT}
    dispersion = np.full(n_sku, np.nan)
    category = catalogue["category"].astype(object).where(catalogue["category"].notna(), "(none)").astype(str)
    cat_code, cat_names = pd.factorize(category.to_numpy())
    n_cat = len(cat_names)
    lift = np.full(n_cat, np.nan)
    if usable.any():
        groups = _Groups(code, price, units, usable, mean_logp, n_days)
        a_fit, e_fit, var_fit, conv = groups.fit()
        position = np.cumsum(usable) - 1
        fitted: DemandFactors | None = None
        factor: np.ndarray | None = None
        if day is not None and len(day):
            rows = usable[code]
            first = int(day.min()) if on_promo_day is None else int(min(day.min(), on_promo_day.min()))
            first -= first % 7  # weeks from a Monday: the same weeks in any partition
            skus = np.bincount(cat_code[np.flatnonzero(usable)], minlength=n_cat).astype(float)
            fitted = DemandFactors(cat_code[code[rows]], day[rows], n_cat, first, skus)
            x_rows = np.log(price[rows]) - mean_logp[code[rows]]
            factor = np.ones(len(code))
            for _ in range(FACTOR_PASSES):
                with np.errstate(over="ignore", invalid="ignore"):
                    expected = np.exp(a_fit[position[code[rows]]] + e_fit[position[code[rows]]] * x_rows)
                fitted.update(units[rows], np.where(np.isfinite(expected), expected, 0.0))
                factor[rows] = fitted.factor()
                a_fit, e_fit, var_fit, conv = groups.fit(factor)
        if on_promo is not None:
            p_code, p_price, p_units = on_promo
            mine = usable[p_code] & conv[position[p_code]]
            at = position[p_code[mine]]
            with np.errstate(over="ignore", invalid="ignore"):
                expected = np.exp(a_fit[at] + e_fit[at] * (np.log(p_price[mine]) - mean_logp[p_code[mine]]))
            if fitted is not None and on_promo_day is not None:
                expected *= fitted.factor(cat_code[p_code[mine]], on_promo_day[mine])
            finite = np.isfinite(expected)
            lift = promo_lift(cat_code[p_code[mine]][finite], p_units[mine][finite], expected[finite], n_cat)
        with np.errstate(invalid="ignore"):
            se_fit = np.sqrt(var_fit)
        good = conv & np.isfinite(e_fit) & np.isfinite(se_fit) & (se_fit > 0) & (np.abs(e_fit) < MAX_ABS_ELASTICITY)
        own[usable] = np.where(good, e_fit, np.nan)
        own_se[usable] = np.where(good, se_fit, np.nan)
        # The same SKUs fitted on the bent curves (``demand_curves.py``), for the pooling to choose per category.
        nll_log = groups.log_nll(factor, a_fit, e_fit)
        m_line, var_line, nll_line, conv_line, disp = groups.fit_line(factor, e_fit)
        dispersion[usable] = np.where(good, disp, np.nan)
        fits = {"linear": (m_line, var_line, nll_line, conv_line), "exponential": groups.fit_exponential(factor)}
        for name, (m_fit, var_m, nll, conv_m) in fits.items():
            with np.errstate(invalid="ignore"):
                se_m = np.sqrt(var_m)
            fine = good & conv_m & np.isfinite(m_fit) & np.isfinite(se_m) & (se_m > 0)
            estimate, spread, gain = bends[name]
            estimate[usable] = np.where(fine, m_fit, np.nan)
            spread[usable] = np.where(fine, se_m, np.nan)
            gain[usable] = np.where(fine, nll_log - nll, np.nan)

    return pd.DataFrame(
        {
            "own_estimate": own,
            "own_se": own_se,
            "n_days": days_seen,
            "log_price_std": lp_std,
            "category": category.to_numpy(),
            "promo_lift": lift[cat_code],
            "price_low": seen_low,
            "price_high": seen_high,
            "centre_price": np.exp(mean_logp),
            "current_price": _current_prices(catalogue),
            **{f"{name}_{part}": col for name, cols in bends.items() for part, col in zip(_PARTS, cols, strict=True)},
            "dispersion": dispersion,
        },
        index=index,
    )


_PARTS = ("estimate", "se", "gain")


def _current_prices(catalogue: pd.DataFrame) -> np.ndarray:
    if "price" not in catalogue.columns:
        return np.full(len(catalogue), np.nan)
    price = pd.to_numeric(catalogue["price"], errors="coerce").to_numpy(dtype=float)
    return np.where(np.isfinite(price) & (price > 0), price, np.nan)


def pool_elasticities(own_fits: pd.DataFrame, *, interval: float = 0.90) -> pd.DataFrame:
    """Pool the own fits of a whole catalogue (``fit_own_elasticities``) SKU -> category -> store
    (``pooling.py``) into the estimates and ``interval`` bounds every recommendation uses."""
    if not 0 < interval < 1:
        raise ValueError(f"interval must be in (0, 1), got {interval}")
    cat_code, _ = pd.factorize(own_fits["category"].to_numpy())
    own = own_fits["own_estimate"].to_numpy(dtype=float)
    own_se = own_fits["own_se"].to_numpy(dtype=float)
    n_cat = int(cat_code.max()) + 1 if len(cat_code) else 0
    pooled = pool(own, own_se, cat_code, n_cat)
    z = float(norm.ppf(0.5 + interval / 2))
    estimate, se = pooled.estimate, pooled.se
    low, high = estimate - z * se, estimate + z * se
    source = pooled.source
    curve = np.full(len(own), "log-linear", dtype=object)
    if all(f"{name}_gain" in own_fits.columns for name in BENT):
        gains = np.column_stack([own_fits[f"{name}_gain"].to_numpy(dtype=float) for name in BENT])
        disp = own_fits["dispersion"].to_numpy(dtype=float)
        chosen = choose_curves(gains, disp, np.isfinite(own), cat_code, n_cat)[cat_code]
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = own_fits["current_price"].to_numpy(dtype=float) / own_fits["centre_price"].to_numpy(dtype=float)
        ratio = np.where(np.isfinite(ratio), ratio, 1.0)  # no centre price: today's price is the centre
        # Beyond the prices sales were seen at a curve is a guess (a line may have run out of demand there): a
        # current price outside them is read at the nearest one seen.
        with np.errstate(invalid="ignore", divide="ignore"):
            centre = own_fits["centre_price"].to_numpy(dtype=float)
            seen = (
                own_fits["price_low"].to_numpy(dtype=float) / centre,
                own_fits["price_high"].to_numpy(dtype=float) / centre,
            )
        ratio = np.clip(
            ratio, np.where(np.isfinite(seen[0]), seen[0], ratio), np.where(np.isfinite(seen[1]), seen[1], ratio)
        )
        for k, name in enumerate(CURVES):
            use = chosen == k
            if k == 0 or not use.any():
                continue
            m = own_fits[f"{name}_estimate"].to_numpy(dtype=float)
            bent = pool(m, own_fits[f"{name}_se"].to_numpy(dtype=float), cat_code, n_cat)
            at = [np.maximum(elasticity_at(name, v, ratio), -MAX_ABS_ELASTICITY) for v in
                  (bent.estimate, bent.estimate - z * bent.se, bent.estimate + z * bent.se)]  # fmt: skip
            # Where the curve itself runs out at today's price (or its interval has no width left) it says nothing
            # there: the SKU keeps the log-linear reading.
            use &= (at[0] > -MAX_ABS_ELASTICITY) & (at[2] > at[1])
            estimate, low, high = (np.where(use, new, old) for new, old in zip(at, (estimate, low, high), strict=True))
            # The mapped interval is skewed; its half-width stands in for the normal draws of the move odds.
            se = np.where(use, (high - low) / (2 * z), se)
            source = np.where(use, bent.source, source)
            curve[use] = name
    out = pd.DataFrame(
        {
            "elasticity": estimate,
            "elasticity_se": se,
            "elasticity_low": low,
            "elasticity_high": high,
            "own_estimate": own,
            "own_se": own_se,
            "shrinkage": pooled.shrinkage,
            "n_days": own_fits["n_days"].to_numpy(),
            "log_price_std": own_fits["log_price_std"].to_numpy(),
            "source": source,
            "curve": curve,
            "category": own_fits["category"].to_numpy(),
            "promo_lift": own_fits["promo_lift"].to_numpy(),
            "price_low": own_fits["price_low"].to_numpy(),
            "price_high": own_fits["price_high"].to_numpy(),
        },
        index=own_fits.index,
    )
    out.attrs["spread_within_category"] = pooled.tau
    out.attrs["spread_between_categories"] = pooled.omega
    return out


def _days(sales: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Day number of every row (days since 1970-01-05, a Monday: weeks and weekdays line up in any partition)
    and whether the row has a readable day. Offsets are honoured (read as UTC); anything else is unreadable."""
    when = pd.to_datetime(sales["day"], errors="coerce", utc=True).dt.tz_convert(None)
    stamps = when.to_numpy(dtype="datetime64[ns]")
    dated = ~np.isnat(stamps)
    day = np.zeros(len(stamps), dtype=np.int64)
    day[dated] = stamps[dated].astype("datetime64[D]").astype(np.int64) - 4  # 1970-01-05 is day 4 of the epoch
    return day, dated


def _promo_flags(cells: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(promotion day?, said at all?) per row from a ``promo`` column of numbers, booleans or words."""
    if pd.api.types.is_bool_dtype(cells) or pd.api.types.is_numeric_dtype(cells):
        values = pd.to_numeric(cells.astype(object), errors="coerce").to_numpy(dtype=float)
        return np.nan_to_num(values) > 0, np.isfinite(values)
    text = cells.astype(object).where(cells.notna(), "").astype(str).str.strip().str.lower()
    return text.isin(PROMO_TRUE).to_numpy(), text.isin(PROMO_TRUE | PROMO_FALSE).to_numpy()


def _promotions(
    code: np.ndarray,
    day: np.ndarray | None,
    price: np.ndarray,
    flag: np.ndarray | None,
    said: np.ndarray | None,
    n_sku: int,
) -> np.ndarray | None:
    """Per row, a promotion day? A SKU whose sales say so for some day has its flags used (a day not said is
    a regular day); a SKU whose sales never say has its temporary price cuts found (needs days)."""
    detected = temporary_cuts(code, day, price, n_sku) if day is not None and len(day) else None
    if flag is None or said is None:
        return detected
    told = np.bincount(code, weights=said, minlength=n_sku) > 0
    promo = flag & said
    if detected is not None:
        promo = np.where(told[code], promo, detected)
    return promo


def baseline_units(sales: pd.DataFrame, window_days: int = 14) -> pd.Series:
    """Mean daily units per SKU over the last ``window_days`` days of the history.

    The window ends at the latest day in ``sales`` (not today), so a stale feed still gives numbers;
    SKUs without rows in the window are absent from the result.
    """
    _require(sales, ["sku", "day", "units"], "sales", "sales need one row per sku per day: sku, day, price, units")
    if len(sales) == 0:
        raise DataError("sales history is empty", "load recent sales before projecting volumes")
    day = pd.to_datetime(sales["day"])
    recent = day > day.max() - pd.Timedelta(days=window_days)
    sku = sales["sku"][recent]
    if isinstance(sku.dtype, pd.CategoricalDtype):
        sku = sku.cat.remove_unused_categories()
    result = sales["units"][recent].astype(float).groupby(sku, observed=True).mean()
    result.index = pd.Index(result.index.astype(str), name="sku")
    return result.rename("baseline_units")
