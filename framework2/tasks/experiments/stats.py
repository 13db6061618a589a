"""The fixed-horizon and Bayesian statistics of PUXT's A/B analysis, computed from per-arm sufficient statistics.

Everything here works from :class:`~framework2.tasks.experiments.model.ArmStats` (counts and sums), never from
per-user rows. The core formulas are plain arithmetic on numpy/scipy, so they accept arrays as well as floats
(the tests run thousands of simulated experiments through them at once); edge cases (an empty arm, a zero
variance, a zero control mean) are handled by the caller, :mod:`framework2.tasks.experiments.analysis`.

Per-arm moments
    For ``mean`` metrics the arm mean is ``total / n`` and the per-user variance is the sample variance (``n - 1``
    in the denominator) from ``total`` and ``total_sq``. A ``binomial`` metric's variance is ``p (1 - p)``, the
    Bernoulli variance, as GrowthBook's engine (gbstats) uses; a t-test on the 0/1 data would use
    ``p (1 - p) n / (n - 1)``, which differs by a factor that matters only for tiny arms (0.019 in a CI bound at
    n = 50) — one convention, the reference engine's, so results can be checked against it.
    For ``ratio`` metrics (sum of numerators over sum of denominators) the estimate is ``R = total / den_total``
    and its variance comes from the delta method: with per-user numerator Y and denominator D,
    ``Var(R) ~ (s_Y^2 - 2 R s_YD + R^2 s_D^2) / (n * mean(D)^2)``, the variance of the mean of the linearised
    values ``(Y - R D) / mean(D)``. :class:`ArmSummary` stores that linearised per-user variance in ``var`` so
    ``var / n`` is the variance of the arm's estimate for every kind.

One statistic per comparison
    A comparison's p-value, confidence interval, significance and decision all come from one test on one scale:
    the relative lift when the control mean is not 0 (as gbstats does), else the absolute difference (a relative
    lift on a zero baseline is undefined). Both use a t distribution with the Welch-Satterthwaite degrees of
    freedom of the two means' variances, for every metric kind. So "p <= alpha" and "the CI excludes 0" are the
    same statement, which they were not when the p-value came from the difference and the CI from the lift.

Difference of means
    ``diff = treatment - control`` with standard error ``sqrt(v_t/n_t + v_c/n_c)`` (Welch: no equal-variance
    assumption), which reproduces ``scipy.stats.ttest_ind(equal_var=False)`` for mean metrics. p-values are
    two-sided. Always reported (``abs_*``); the comparison's own statistic where the lift is undefined.

Relative lift
    ``lift = (treatment - control) / |control|``, which is ``treatment / control - 1`` for a positive control
    mean and keeps "positive = treatment larger" when a mean metric's control is negative; it is undefined
    for a zero control mean. Its variance is the delta method on the ratio of two independent means, in the
    linear (not log) form: ``Var(lift) ~ se_t^2 / c^2 + t^2 se_c^2 / c^4``; t = lift / sd, and the CI is
    lift +/- q * sd with q the Welch t quantile. The linear form stays defined when the treatment mean is 0,
    which the log form is not.

Adjusted intervals
    With a multiple-comparison correction a comparison is significant when its *adjusted* p-value is <= alpha.
    Its adjusted interval is the interval at level ``1 - alpha * p / p_adjusted`` (Ludbrook's compatible
    intervals), so it excludes 0 exactly when the comparison is significant; for Bonferroni this is alpha / m.

Multiple comparisons
    Holm's step-down (family-wise error) or Benjamini-Hochberg's step-up (false discovery rate) adjustment
    over the whole family passed in; comparisons without a p-value are left out of the family.

CUPED
    With a pre-period covariate X (the same metric before exposure) in both arms, the adjusted outcome is
    ``Y - theta (X - mean_X_pooled)`` with ``theta`` = pooled within-arm covariance of (Y, X) over pooled
    within-arm variance of X. That makes the adjusted difference equal to the treatment coefficient of an OLS
    of Y on a treatment dummy and X. The per-arm adjusted variance is ``v_Y - 2 theta c_XY + theta^2 v_X``
    (the uncertainty of theta itself is ignored, negligible at experiment sizes). ``variance_reduction`` is
    ``1 - Var(adjusted diff) / Var(raw diff)``. When X has no variance CUPED falls back to the raw analysis.
    Ratio metrics are never CUPED-adjusted (the sums for a ratio covariate are not collected).

Bayesian
    The estimate on the comparison's scale (relative lift, or the difference on a zero baseline) is treated as
    normal with its standard error, for every metric kind, as gbstats's effect model does. The prior is each
    metric's choice (``MetricSpec.prior``): ``flat`` (the default, as the reference engine's), so the posterior
    is N(estimate, se^2) and the credible interval equals the normal-quantile confidence interval; or
    ``informative``, N(0, ``prior_sd``^2) on the relative lift (default 0.3: a 30 % lift is one prior sd away),
    which pulls small, noisy experiments toward no effect — at n = 50 an observed +92 % lift can fall outside
    its own credible interval, which is why it is not the default. An informative prior on a zero baseline has
    no scale to live on, so there the flat one is used and a note says so. The posterior's probabilities are
    closed-form.
    * Chance to beat control is the posterior probability that the treatment is better (respecting
      ``higher_is_better``). Expected loss is the posterior mean of how much worse, in relative-lift units,
      the treatment is than control (0 when it is better): ``E[max(0, -lift)]``, or ``E[max(0, lift)]`` when
      lower is better. The credible interval is the central 95 % interval of the relative lift.

Sample ratio mismatch
    Pearson's chi-square goodness of fit of the users per variation against ``total * expected share``, with
    ``k - 1`` degrees of freedom; flagged when p < ``SRM_THRESHOLD`` (0.001), a threshold strict enough that a
    daily check over months rarely raises a false alarm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as sps

from framework2.errors import DataError
from framework2.tasks.experiments.model import ArmStats, MetricKind

SRM_THRESHOLD = 0.001
BAYES_PRIOR_SD = 0.3
BAYES_LEVEL = 0.95
# Sums of squares computed from running totals lose precision by cancellation; a variance this small relative
# to the mean square is rounding noise on constant data, not real spread.
_REL_VAR_EPS = 1e-12

Correction = Literal["holm", "bh", "none"]
Number = float | np.ndarray


@dataclass(frozen=True)
class ArmSummary:
    """One arm's estimate: ``mean`` (a ratio for ratio metrics) and the per-user variance behind its error.

    ``mean`` is None when the arm has no analysed value (n == 0, or a ratio whose denominators sum to 0);
    ``var`` is None when fewer than two values exist. ``var / n`` is the variance of ``mean``.
    """

    variation: str
    users: int
    n: int
    mean: float | None
    var: float | None

    @property
    def var_mean(self) -> float | None:
        """Variance of the arm's estimate."""
        return None if self.var is None else self.var / self.n


def _validate(arm: ArmStats, kind: MetricKind) -> None:
    if arm.users < 0 or arm.n < 0:
        raise DataError(
            f"arm {arm.variation!r} has a negative count (users={arm.users}, n={arm.n})",
            "users and n are counts of users; check the aggregation",
        )
    if arm.n > arm.users:
        raise DataError(
            f"arm {arm.variation!r} analyses more users than it exposed (n={arm.n} > users={arm.users})",
            "n counts exposed users with a value, so it cannot exceed users",
        )
    if arm.total_sq < 0 or (kind == "ratio" and arm.den_total_sq < 0) or (arm.has_covariate and arm.cov_total_sq < 0):
        raise DataError(f"arm {arm.variation!r} has a negative sum of squares", "check the aggregation")
    if kind == "binomial" and not (0 <= arm.total <= arm.n):
        raise DataError(
            f"binomial arm {arm.variation!r} has {arm.total} conversions for n={arm.n}",
            "a binomial metric's total counts converted users, between 0 and n",
        )


def _sample_var(n: int, total: float, total_sq: float) -> float:
    """Sample variance (ddof 1) from sums, with rounding noise on constant data snapped to 0."""
    ss = total_sq - total * total / n
    if ss <= _REL_VAR_EPS * max(total_sq, 1e-300):
        return 0.0
    return ss / (n - 1)


def moments(n: Number, total: Number, total_sq: Number) -> tuple[Number, Number]:
    """Mean and sample variance (ddof 1) from count, sum and sum of squares; array-friendly, no edge handling."""
    mean = total / n
    var = (total_sq - total * mean) / (n - 1)
    return mean, np.maximum(var, 0.0)


def ratio_variance(arm: ArmStats) -> float | None:
    """Delta-method variance of the arm's ratio estimate ``total / den_total`` (None below two users)."""
    summary = summarise_arm(arm, "ratio")
    return summary.var_mean


def summarise_arm(arm: ArmStats, kind: MetricKind) -> ArmSummary:
    """The arm's mean (or ratio) and per-user (or linearised) variance; raises DataError on impossible sums."""
    _validate(arm, kind)
    n = arm.n
    if n == 0:
        return ArmSummary(arm.variation, arm.users, n, None, None)
    if kind == "binomial":
        mean = arm.total / n
        return ArmSummary(arm.variation, arm.users, n, mean, mean * (1 - mean) if n >= 2 else None)
    if kind != "ratio":
        mean = arm.total / n
        var = _sample_var(n, arm.total, arm.total_sq) if n >= 2 else None
        return ArmSummary(arm.variation, arm.users, n, mean, var)
    if arm.den_total == 0:
        return ArmSummary(arm.variation, arm.users, n, None, None)
    ratio = arm.total / arm.den_total
    if n < 2:
        return ArmSummary(arm.variation, arm.users, n, ratio, None)
    mean_den = arm.den_total / n
    var_num = _sample_var(n, arm.total, arm.total_sq)
    var_den = _sample_var(n, arm.den_total, arm.den_total_sq)
    cov = (arm.num_den - arm.total * arm.den_total / n) / (n - 1)
    lin = (var_num - 2 * ratio * cov + ratio * ratio * var_den) / (mean_den * mean_den)
    # Linearised values Y - R D are all 0 when every user has the same ratio; cancellation leaves dust.
    scale = (var_num + ratio * ratio * var_den) / (mean_den * mean_den)
    if lin <= _REL_VAR_EPS * max(scale, 1e-300):
        lin = 0.0
    return ArmSummary(arm.variation, arm.users, n, ratio, lin)


def welch_df(var_mean_c: Number, n_c: Number, var_mean_t: Number, n_t: Number) -> Number:
    """Welch-Satterthwaite degrees of freedom from the variances of the two means."""
    return (var_mean_c + var_mean_t) ** 2 / (var_mean_c**2 / (n_c - 1) + var_mean_t**2 / (n_t - 1))


@dataclass(frozen=True)
class DiffResult:
    """A two-sided test of treatment minus control with its CI at the requested level."""

    diff: Number
    se: Number
    df: Number  # math.inf for the normal test
    stat: Number
    p_value: Number
    ci_low: Number
    ci_high: Number


def _quantile(level: float, df: Number) -> Number:
    return sps.t.ppf(0.5 + level / 2, df)


def diff_test(
    mean_c: Number, var_mean_c: Number, mean_t: Number, var_mean_t: Number, df: Number = math.inf, alpha: float = 0.05
) -> DiffResult:
    """Test of ``mean_t - mean_c`` with variance ``var_mean_c + var_mean_t``: t(df) or normal when df is inf.

    The caller guarantees a positive variance; with ``df = welch_df(...)`` this is Welch's t-test.
    """
    diff = mean_t - mean_c
    se = np.sqrt(var_mean_c + var_mean_t)
    stat = diff / se
    p_value = 2 * sps.t.sf(np.abs(stat), df)
    q = _quantile(1 - alpha, df)
    return DiffResult(diff, se, df, stat, p_value, diff - q * se, diff + q * se)


@dataclass(frozen=True)
class LiftResult:
    """Relative lift ``(t - c) / |c|`` with its delta-method standard error, Welch t test and CI."""

    lift: Number
    se: Number
    stat: Number
    p_value: Number
    ci_low: Number
    ci_high: Number


def lift_point(mean_c: Number, mean_t: Number) -> Number:
    """``(t - c) / |c|``; the caller guarantees a non-zero control mean."""
    return (mean_t - mean_c) / np.abs(mean_c)


def relative_lift(
    mean_c: Number, var_mean_c: Number, mean_t: Number, var_mean_t: Number, df: Number = math.inf, alpha: float = 0.05
) -> LiftResult:
    """Relative lift, its linear delta-method variance, and the t test and CI on it (df: Welch's, or inf for the
    normal); the caller guarantees a non-zero control mean and a positive variance."""
    lift = lift_point(mean_c, mean_t)
    var = var_mean_t / mean_c**2 + mean_t**2 * var_mean_c / mean_c**4
    se = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):  # se 0 (a constant-zero treatment): the caller checks
        stat = lift / se
    q = _quantile(1 - alpha, df)
    return LiftResult(lift, se, stat, 2 * sps.t.sf(np.abs(stat), df), lift - q * se, lift + q * se)


def adjusted_interval(
    estimate: float, se: float, df: float, alpha: float, p_value: float | None, p_adjusted: float | None
) -> tuple[float, float] | None:
    """The interval at level ``1 - alpha * p / p_adjusted``: it excludes 0 exactly when ``p_adjusted <= alpha``
    (for the t test the interval and the p-value come from). None without p-values."""
    if p_value is None or p_adjusted is None or not se > 0:
        return None
    level_alpha = alpha if p_adjusted <= 0 else min(alpha * p_value / p_adjusted, 1.0)
    if level_alpha >= 1.0:
        return float(estimate), float(estimate)
    q = float(_quantile(1 - level_alpha, df))
    return float(estimate - q * se), float(estimate + q * se)


@dataclass(frozen=True)
class SrmResult:
    """Sample-ratio-mismatch check: chi-square of observed users against the expected split."""

    observed: list[int]
    expected: list[float]
    chi2: float | None
    p_value: float | None
    flagged: bool
    note: str


def srm_check(observed: Sequence[int], shares: Sequence[float], threshold: float = SRM_THRESHOLD) -> SrmResult:
    """Chi-square goodness of fit of users per variation against ``shares`` (normalised); flagged if p < threshold."""
    if len(observed) != len(shares):
        raise DataError(
            f"{len(observed)} user counts for {len(shares)} expected shares",
            "pass one count per variation, in the spec's order",
        )
    if any(o < 0 for o in observed) or any(s <= 0 for s in shares):
        raise DataError("user counts must be >= 0 and shares > 0", "check the exposure counts and expected_split")
    total = int(sum(observed))
    share_sum = float(sum(shares))
    expected = [total * s / share_sum for s in shares]
    obs = [int(o) for o in observed]
    if len(obs) < 2:
        return SrmResult(obs, expected, None, None, False, "a single variation has no split to check")
    if total == 0:
        return SrmResult(obs, expected, None, None, False, "no users yet: nothing to check")
    chi2 = float(sum((o - e) ** 2 / e for o, e in zip(obs, expected, strict=True)))
    p_value = float(sps.chi2.sf(chi2, len(obs) - 1))
    flagged = p_value < threshold
    if flagged:
        shown = [round(e, 1) for e in expected]
        note = f"users per variation {obs} differ from the expected {shown} (p = {p_value:.2g})"
    else:
        note = f"users per variation {obs} are consistent with the expected split (p = {p_value:.3g})"
    if min(expected) < 5:
        note += "; fewer than 5 users expected in some variation, so the chi-square approximation is rough"
    return SrmResult(obs, expected, chi2, p_value, flagged, note)


def adjust_p_values(p_values: Sequence[float | None], method: Correction) -> list[float | None]:
    """Holm or Benjamini-Hochberg adjusted p-values over the non-None entries (None stays None)."""
    out: list[float | None] = list(p_values)
    idx = [i for i, p in enumerate(p_values) if p is not None]
    if method == "none" or not idx:
        return out
    arr = np.array([p_values[i] for i in idx], dtype=float)
    m = len(arr)
    order = np.argsort(arr, kind="stable")
    ranked = arr[order]
    if method == "holm":
        adj = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * ranked))
    elif method == "bh":
        adj = np.minimum(1.0, np.minimum.accumulate((m / np.arange(1, m + 1) * ranked)[::-1])[::-1])
    else:
        raise DataError(f"unknown multiple-comparison correction {method!r}", "use 'holm', 'bh' or 'none'")
    result = np.empty(m)
    result[order] = adj
    for k, i in enumerate(idx):
        out[i] = float(result[k])
    return out


@dataclass(frozen=True)
class CupedResult:
    """CUPED adjustment of one comparison; ``applied`` False means the raw estimates were returned."""

    applied: bool
    theta: float | None
    mean_c: float
    mean_t: float
    var_c: float
    var_t: float
    variance_reduction: float | None
    note: str


def cuped(control: ArmStats, treatment: ArmStats) -> CupedResult:
    """CUPED-adjusted means and per-user variances of a mean/binomial metric, with the variance reduction.

    Both arms need ``has_covariate`` and ``n >= 2``; the covariate sums must cover the same ``n`` users as the
    metric's sums. Falls back to the raw estimates (``applied`` False, with a note) when X has no variance.
    """
    for arm in (control, treatment):
        if arm.n < 2:
            raise DataError(f"CUPED needs at least 2 users per arm; {arm.variation!r} has n={arm.n}")
        if not arm.has_covariate:
            raise DataError(f"arm {arm.variation!r} has no covariate", "call cuped only when both arms have one")
    sxx, sxy, syy, x_sum = [], [], [], 0.0
    raw_means, raw_vars = [], []
    for arm in (control, treatment):
        n = arm.n
        mx, my = arm.cov_total / n, arm.total / n
        sxx.append(max(arm.cov_total_sq - n * mx * mx, 0.0))
        sxy.append(arm.cov_value - n * mx * my)
        syy.append(_sample_var(n, arm.total, arm.total_sq) * (n - 1))
        x_sum += arm.cov_total
        raw_means.append(my)
        raw_vars.append(syy[-1] / (n - 1))
    n_c, n_t = control.n, treatment.n
    raw_var_diff = raw_vars[0] / n_c + raw_vars[1] / n_t
    pooled_sxx = sxx[0] + sxx[1]
    x_scale = (control.cov_total_sq + treatment.cov_total_sq) / (n_c + n_t)
    if pooled_sxx <= _REL_VAR_EPS * max(x_scale, 1e-300) * (n_c + n_t):
        return CupedResult(
            False, None, raw_means[0], raw_means[1], raw_vars[0], raw_vars[1], None,
            "CUPED not applied: the pre-period covariate has no variance within the arms",
        )  # fmt: skip
    theta = (sxy[0] + sxy[1]) / pooled_sxx
    x_pooled = x_sum / (n_c + n_t)
    adj_means, adj_vars = [], []
    for k, arm in enumerate((control, treatment)):
        mx = arm.cov_total / arm.n
        adj_means.append(raw_means[k] - theta * (mx - x_pooled))
        ss = syy[k] - 2 * theta * sxy[k] + theta * theta * sxx[k]
        adj_vars.append(max(ss, 0.0) / (arm.n - 1))
    adj_var_diff = adj_vars[0] / n_c + adj_vars[1] / n_t
    reduction = 1 - adj_var_diff / raw_var_diff if raw_var_diff > 0 else None
    note = f"CUPED applied (theta = {theta:.4g})"
    if reduction is not None:
        note += f": variance of the difference reduced by {reduction:.1%}"
    return CupedResult(True, theta, adj_means[0], adj_means[1], adj_vars[0], adj_vars[1], reduction, note)


@dataclass(frozen=True)
class BayesResult:
    """Posterior summary of the effect of treatment over control (relative lift, or the difference)."""

    chance_to_beat: float
    expected_loss: float
    credible_low: float
    credible_high: float
    method: str
    mean: float = math.nan


def bayes_normal(
    lift: float,
    se: float,
    higher_is_better: bool = True,
    *,
    prior_sd: float | None = None,
    level: float = BAYES_LEVEL,
    scale: str = "relative lift",
) -> BayesResult:
    """Normal posterior of the estimate (``lift`` with standard error ``se`` > 0): under a flat prior
    (``prior_sd`` None) N(lift, se^2), else under N(0, prior_sd^2)."""
    precision = 1 / se**2 + (0.0 if prior_sd is None else 1 / prior_sd**2)
    mean = (lift / se**2) / precision
    sd = math.sqrt(1 / precision)
    sign = 1.0 if higher_is_better else -1.0
    chance = float(sps.norm.cdf(sign * mean / sd))
    # Expected shortfall of the worse side: E[max(0, -s L)] for L ~ N(mean, sd^2).
    m = -sign * mean
    loss = float(m * sps.norm.cdf(m / sd) + sd * sps.norm.pdf(m / sd))
    q = float(sps.norm.ppf(0.5 + level / 2))
    prior = "flat prior" if prior_sd is None else f"N(0, {prior_sd:g}^2) prior"
    return BayesResult(chance, loss, mean - q * sd, mean + q * sd, f"normal posterior of the {scale}, {prior}", mean)
