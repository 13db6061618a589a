"""PUXT statistics engine: agreement with scipy/statsmodels reference computations and CI coverage by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import integrate
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from framework2.errors import DataError
from framework2.tasks.experiments.model import ArmStats
from framework2.tasks.experiments.stats import (
    adjust_p_values,
    bayes_normal,
    cuped,
    diff_test,
    moments,
    ratio_variance,
    relative_lift,
    srm_check,
    summarise_arm,
    welch_df,
)


def arm_stats(
    variation: str,
    y: np.ndarray,
    *,
    x: np.ndarray | None = None,
    den: np.ndarray | None = None,
    users: int | None = None,
) -> ArmStats:
    """Sufficient statistics of per-user values ``y`` (numerators when ``den`` is given, covariate ``x``)."""
    y = np.asarray(y, dtype=float)
    kw: dict = {}
    if den is not None:
        d = np.asarray(den, dtype=float)
        kw.update(den_total=d.sum(), den_total_sq=(d * d).sum(), num_den=(y * d).sum())
    if x is not None:
        xa = np.asarray(x, dtype=float)
        kw.update(has_covariate=True, cov_total=xa.sum(), cov_total_sq=(xa * xa).sum(), cov_value=(xa * y).sum())
    return ArmStats(variation, len(y) if users is None else users, len(y), y.sum(), (y * y).sum(), **kw)


def _welch(c: ArmStats, t: ArmStats, kind: str = "mean", alpha: float = 0.05):
    sc, st = summarise_arm(c, kind), summarise_arm(t, kind)
    df = welch_df(sc.var_mean, sc.n, st.var_mean, st.n)
    return diff_test(sc.mean, sc.var_mean, st.mean, st.var_mean, df, alpha)


def test_welch_matches_scipy_ttest_ind() -> None:
    rng = np.random.default_rng(11)
    yc, yt = rng.normal(10, 3, 180), rng.normal(10.8, 5, 95)
    res = _welch(arm_stats("A", yc), arm_stats("B", yt))
    ref = sps.ttest_ind(yt, yc, equal_var=False)
    assert res.p_value == pytest.approx(ref.pvalue, abs=1e-9)
    assert res.df == pytest.approx(ref.df, abs=1e-9)
    assert res.stat == pytest.approx(ref.statistic, abs=1e-9)
    lo, hi = ref.confidence_interval(0.95)
    assert (res.ci_low, res.ci_high) == (pytest.approx(lo, abs=1e-9), pytest.approx(hi, abs=1e-9))


def test_binomial_variance_is_the_bernoulli_variance_as_the_reference_engine_uses() -> None:
    # gbstats's proportion statistic: p (1 - p), not the sample variance p (1 - p) n / (n - 1) of the 0/1 data.
    rng = np.random.default_rng(12)
    y = (rng.random(50) < 0.3).astype(float)
    summary = summarise_arm(arm_stats("A", y), "binomial")
    p = y.mean()
    assert summary.var == pytest.approx(p * (1 - p), abs=1e-15)
    assert summary.var == pytest.approx(np.var(y, ddof=0), abs=1e-15)
    res = _welch(arm_stats("A", y), arm_stats("B", (rng.random(60) < 0.4).astype(float)), kind="binomial")
    assert 0 < res.p_value < 1


def test_srm_matches_scipy_chisquare() -> None:
    observed, shares = [5210, 4790, 2100], [0.4, 0.4, 0.2]
    res = srm_check(observed, shares)
    ref = sps.chisquare(observed, f_exp=[sum(observed) * s for s in shares])
    assert res.chi2 == pytest.approx(ref.statistic, rel=1e-12)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert res.flagged == (ref.pvalue < 0.001)
    balanced = srm_check([5020, 4980], [1, 1])
    assert not balanced.flagged and balanced.p_value > 0.5
    assert srm_check([10_000, 9_500], [1, 1]).flagged  # 2.6 % imbalance on 19.5k users: p ~ 3e-4


def test_srm_without_users_or_with_one_variation_is_not_flagged() -> None:
    assert srm_check([0, 0], [1, 1]).p_value is None
    assert not srm_check([500], [1]).flagged
    with pytest.raises(DataError):
        srm_check([1, 2], [1])


@pytest.mark.parametrize(("method", "reference"), [("holm", "holm"), ("bh", "fdr_bh")])
def test_adjusted_p_values_match_statsmodels_multipletests(method: str, reference: str) -> None:
    rng = np.random.default_rng(13)
    p = np.concatenate([rng.uniform(0, 0.02, 4), rng.uniform(0, 1, 8), [0.01, 0.01]])
    expected = multipletests(p, method=reference)[1]
    got = adjust_p_values(list(p), method)  # type: ignore[arg-type]
    assert np.allclose(got, expected, atol=1e-12)
    with_gaps = adjust_p_values([p[0], None, p[1], p[2], None], method)  # type: ignore[arg-type]
    assert with_gaps[1] is None and with_gaps[4] is None
    assert np.allclose([with_gaps[0], with_gaps[2], with_gaps[3]], multipletests(p[:3], method=reference)[1])
    assert adjust_p_values([0.2, None], "none") == [0.2, None]


def test_cuped_estimate_matches_ols_treatment_coefficient() -> None:
    rng = np.random.default_rng(14)
    n_c, n_t = 700, 640
    xc, xt = rng.gamma(2, 5, n_c), rng.gamma(2, 5, n_t)
    yc = 3 + 0.8 * xc + rng.normal(0, 4, n_c)
    yt = 3.6 + 0.7 * xt + rng.normal(0, 4, n_t)
    res = cuped(arm_stats("A", yc, x=xc), arm_stats("B", yt, x=xt))
    assert res.applied
    y = np.concatenate([yc, yt])
    x = np.concatenate([xc, xt])
    treat = np.r_[np.zeros(n_c), np.ones(n_t)]
    ols = sm.OLS(y, sm.add_constant(np.column_stack([treat, x - x.mean()]))).fit()
    assert res.mean_t - res.mean_c == pytest.approx(ols.params[1], abs=1e-9)
    assert res.theta == pytest.approx(ols.params[2], abs=1e-9)
    # The adjusted means are each arm's mean at the pooled covariate mean (OLS prediction).
    assert res.mean_c == pytest.approx(ols.params[0], abs=1e-9)
    # Unequal-variance SE of the adjusted difference is close to OLS's HC2 standard error.
    se = math.sqrt(res.var_c / n_c + res.var_t / n_t)
    assert se == pytest.approx(sm.OLS(y, ols.model.exog).fit(cov_type="HC2").bse[1], rel=0.02)
    raw = np.var(yc, ddof=1) / n_c + np.var(yt, ddof=1) / n_t
    assert res.variance_reduction == pytest.approx(1 - se**2 / raw, rel=1e-9)
    assert res.variance_reduction > 0.5


def test_cuped_falls_back_to_raw_when_covariate_is_constant() -> None:
    rng = np.random.default_rng(15)
    yc, yt = rng.normal(5, 1, 50), rng.normal(5, 1, 60)
    res = cuped(arm_stats("A", yc, x=np.full(50, 3.0)), arm_stats("B", yt, x=np.full(60, 3.0)))
    assert not res.applied and res.theta is None and res.variance_reduction is None
    assert res.mean_t - res.mean_c == pytest.approx(yt.mean() - yc.mean())
    assert "no variance" in res.note


def test_ratio_delta_method_variance_matches_direct_linearisation_and_bootstrap() -> None:
    rng = np.random.default_rng(16)
    sessions = rng.poisson(4, 1500) + 1
    clicks = rng.binomial(sessions, rng.beta(2, 8, 1500))
    arm = arm_stats("A", clicks, den=sessions)
    var = ratio_variance(arm)
    ratio = clicks.sum() / sessions.sum()
    direct = np.var(clicks - ratio * sessions, ddof=1) / (len(clicks) * sessions.mean() ** 2)
    assert var == pytest.approx(direct, rel=1e-9)
    idx = rng.integers(0, len(clicks), (4000, len(clicks)))
    boot = clicks[idx].sum(1) / sessions[idx].sum(1)
    # 4000 resamples estimate a variance to about +/- 2.2 % (sd sqrt(2/4000)); 8 % allows ~3.5 sd.
    assert var == pytest.approx(boot.var(ddof=1), rel=0.08)
    assert summarise_arm(arm, "ratio").mean == pytest.approx(ratio)


def test_summaries_reject_impossible_sums() -> None:
    with pytest.raises(DataError, match="more users"):
        summarise_arm(ArmStats("A", users=3, n=5, total=1, total_sq=1), "mean")
    with pytest.raises(DataError, match="conversions"):
        summarise_arm(ArmStats("A", users=5, n=5, total=7, total_sq=7), "binomial")
    empty = summarise_arm(ArmStats("A", users=4, n=0, total=0, total_sq=0), "mean")
    assert empty.mean is None and empty.var is None


@pytest.mark.parametrize("kind", ["mean", "binomial"])
def test_relative_lift_ci_covers_true_lift_at_nominal_rate(kind: str) -> None:
    # 2000 simulated experiments; the coverage estimate has sd sqrt(0.95 * 0.05 / 2000) = 0.0049, so
    # 0.95 +/- 3 sd = [0.935, 0.965].
    sims, true_lift = 2000, 0.08
    rng = np.random.default_rng(17)
    if kind == "mean":
        n = 400
        yc = rng.lognormal(1.0, 0.8, (sims, n))
        yt = rng.lognormal(1.0, 0.8, (sims, n)) * (1 + true_lift)
    else:
        n = 3000
        yc = (rng.random((sims, n)) < 0.2).astype(float)
        yt = (rng.random((sims, n)) < 0.2 * (1 + true_lift)).astype(float)
    mc, vc = moments(n, yc.sum(1), (yc**2).sum(1))
    mt, vt = moments(n, yt.sum(1), (yt**2).sum(1))
    df = welch_df(vc / n, n, vt / n, n)
    lf = relative_lift(mc, vc / n, mt, vt / n, df, 0.05)
    coverage = np.mean((lf.ci_low <= true_lift) & (true_lift <= lf.ci_high))
    tol = 3 * math.sqrt(0.95 * 0.05 / sims)
    assert abs(coverage - 0.95) <= tol, coverage


def test_bayes_normal_matches_closed_forms() -> None:
    lift, se = 0.04, 0.02
    res = bayes_normal(lift, se)  # flat prior: the posterior is N(lift, se^2), the frequentist numbers
    assert res.chance_to_beat == pytest.approx(sps.norm.cdf(lift / se), abs=1e-12)
    assert res.credible_low == pytest.approx(lift - 1.959964 * se, abs=1e-6)
    assert res.method == "normal posterior of the relative lift, flat prior"
    assert bayes_normal(lift, se, prior_sd=1e9).credible_low == pytest.approx(res.credible_low, abs=1e-9)
    loss, _ = integrate.quad(lambda x: max(0.0, -x) * sps.norm.pdf(x, lift, se), -1, 1, points=[0])
    assert res.expected_loss == pytest.approx(loss, abs=1e-9)
    shrunk = bayes_normal(lift, se, prior_sd=0.3)
    assert shrunk.method == "normal posterior of the relative lift, N(0, 0.3^2) prior"
    post_var = 1 / (1 / 0.3**2 + 1 / se**2)
    assert (shrunk.credible_low + shrunk.credible_high) / 2 == pytest.approx(post_var * lift / se**2)
    worse = bayes_normal(lift, se, higher_is_better=False, prior_sd=0.3)
    assert worse.chance_to_beat == pytest.approx(1 - shrunk.chance_to_beat)
