"""PUXT against the reference engine's formulas, and one statistic per comparison.

The reference is GrowthBook's stats engine (gbstats 0.8). It is not imported (it pins pandas < 2): its formulas
are restated here from their definitions with scipy, independently of PUXT's code, and PUXT must reproduce them
to 1e-9 on fixed cases:

- a proportion's variance p (1 - p); a mean's sample variance (ddof 1); a ratio's delta-method variance;
- the relative lift (t - c) / c with variance var_t / c^2 + t^2 var_c / c^4 (variances of the means);
- Welch-Satterthwaite degrees of freedom; a two-sided t test and t interval on the lift;
- the Bayesian effect model with a flat prior: the posterior is N(lift, var);
- the sample-ratio-mismatch chi-square.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from framework2.tasks.experiments.analysis import analyse
from framework2.tasks.experiments.model import ArmStats, ExperimentSpec, MetricSpec

TOL = 1e-9


def _reference_lift_test(mc: float, vc: float, nc: int, mt: float, vt: float, nt: int, alpha: float = 0.05):
    """gbstats's two-sided t test on the relative lift, from per-user means and variances."""
    vmc, vmt = vc / nc, vt / nt
    lift = (mt - mc) / mc
    var = vmt / mc**2 + vmc * mt**2 / mc**4
    dof = (vmt + vmc) ** 2 / (vmt**2 / (nt - 1) + vmc**2 / (nc - 1))
    stat = lift / math.sqrt(var)
    p = 2 * (1 - sps.t.cdf(abs(stat), dof))
    half = sps.t.ppf(1 - alpha / 2, dof) * math.sqrt(var)
    return lift, var, dof, p, (lift - half, lift + half)


def _reference_flat_posterior(lift: float, var: float):
    """gbstats's effect model under a flat prior: chance to beat control and the 95 % credible interval."""
    sd = math.sqrt(var)
    return 1 - sps.norm.cdf(0, lift, sd), tuple(sps.norm.ppf([0.025, 0.975], lift, sd))


def _analyse_one(metric: MetricSpec, control: ArmStats, treatment: ArmStats):
    spec = ExperimentSpec(key="ref", variations=["A", "B"], metrics=[metric], correction="none", min_users_per_arm=2)
    return analyse(spec, {metric.name: {"A": control, "B": treatment}}).comparisons[0]


def _values(name: str, y: np.ndarray, den: np.ndarray | None = None) -> ArmStats:
    kw = {} if den is None else {"den_total": den.sum(), "den_total_sq": (den * den).sum(), "num_den": (y * den).sum()}
    return ArmStats(name, len(y), len(y), float(y.sum()), float((y * y).sum()), **kw)


def _assert_matches_reference(comp, lift, var, dof, p, ci) -> None:
    assert comp.scale == "relative"
    assert comp.rel_lift == pytest.approx(lift, abs=TOL)
    assert comp.se == pytest.approx(math.sqrt(var), abs=TOL)
    assert comp.df == pytest.approx(dof, rel=TOL)
    assert comp.p_value == pytest.approx(p, abs=TOL)
    assert (comp.ci_low, comp.ci_high) == (pytest.approx(ci[0], abs=TOL), pytest.approx(ci[1], abs=TOL))
    chance, credible = _reference_flat_posterior(lift, var)
    assert comp.chance_to_beat == pytest.approx(chance, abs=TOL)
    assert (comp.credible_low, comp.credible_high) == (
        pytest.approx(credible[0], abs=TOL),
        pytest.approx(credible[1], abs=TOL),
    )


@pytest.mark.parametrize(("conv_c", "n_c", "conv_t", "n_t"), [(100, 1000, 130, 1000), (10, 50, 18, 50)])
def test_conversion_comparison_reproduces_the_reference_formulas(conv_c: int, n_c: int, conv_t: int, n_t: int):
    metric = MetricSpec(name="conversion", kind="binomial", event="buy")
    comp = _analyse_one(
        metric,
        ArmStats("A", n_c, n_c, float(conv_c), float(conv_c)),
        ArmStats("B", n_t, n_t, float(conv_t), float(conv_t)),
    )
    pc, pt = conv_c / n_c, conv_t / n_t
    ref = _reference_lift_test(pc, pc * (1 - pc), n_c, pt, pt * (1 - pt), n_t)
    _assert_matches_reference(comp, *ref)


def test_the_issue_repro_is_consistent_and_equals_the_published_reference_numbers():
    # Control 100/1000, treatment 130/1000: the p-value used to come from the difference (0.0355, significant)
    # while the CI of the lift contained 0. gbstats: p = 0.0656, CI [-0.019, 0.619].
    metric = MetricSpec(name="conversion", kind="binomial", event="buy")
    comp = _analyse_one(metric, ArmStats("A", 1000, 1000, 100.0, 100.0), ArmStats("B", 1000, 1000, 130.0, 130.0))
    assert comp.p_value == pytest.approx(0.0656, abs=5e-5)
    assert (comp.ci_low, comp.ci_high) == (pytest.approx(-0.019, abs=5e-4), pytest.approx(0.619, abs=5e-4))
    assert not comp.significant and comp.ci_low < 0 < comp.ci_high


def test_mean_comparison_reproduces_the_reference_formulas():
    rng = np.random.default_rng(41)
    yc, yt = rng.lognormal(3.0, 0.9, 700), rng.lognormal(3.05, 0.9, 650)
    comp = _analyse_one(MetricSpec(name="revenue", kind="mean", event="buy"), _values("A", yc), _values("B", yt))
    ref = _reference_lift_test(yc.mean(), yc.var(ddof=1), len(yc), yt.mean(), yt.var(ddof=1), len(yt))
    _assert_matches_reference(comp, *ref)


def test_ratio_comparison_reproduces_the_reference_formulas():
    rng = np.random.default_rng(42)
    dc, dt = rng.poisson(4, 900) + 1, rng.poisson(4, 880) + 1
    yc, yt = rng.binomial(dc, 0.2).astype(float), rng.binomial(dt, 0.22).astype(float)
    metric = MetricSpec(name="ctr", kind="ratio", event="click", denominator_event="session")
    comp = _analyse_one(metric, _values("A", yc, dc.astype(float)), _values("B", yt, dt.astype(float)))

    def ratio_moments(y: np.ndarray, d: np.ndarray) -> tuple[float, float]:
        # gbstats's ratio statistic: per-user variance of the ratio by the delta method.
        mm, md = y.mean(), d.mean()
        vm, vd, cov = y.var(ddof=1), d.var(ddof=1), np.cov(y, d, ddof=1)[0, 1]
        return mm / md, vm / md**2 - 2 * cov * mm / md**3 + mm**2 * vd / md**4

    (rc, vc), (rt, vt) = ratio_moments(yc, dc), ratio_moments(yt, dt)
    _assert_matches_reference(comp, *_reference_lift_test(rc, vc, len(yc), rt, vt, len(yt)))


def test_sample_ratio_check_is_the_chi_square_goodness_of_fit():
    spec = ExperimentSpec(
        key="srm",
        variations=["A", "B", "C"],
        expected_split=[0.5, 0.25, 0.25],
        metrics=[MetricSpec(name="conversion", kind="binomial", event="buy")],
    )
    users = {"A": 5120, "B": 2400, "C": 2610}
    stats = {"conversion": {v: ArmStats(v, n, n, n * 0.1, n * 0.1) for v, n in users.items()}}
    srm = analyse(spec, stats).srm
    ref = sps.chisquare(list(users.values()), [sum(users.values()) * s for s in (0.5, 0.25, 0.25)])
    assert srm.chi2 == pytest.approx(ref.statistic, rel=TOL) and srm.p_value == pytest.approx(ref.pvalue, abs=TOL)


def test_a_zero_baseline_is_tested_on_the_absolute_difference_and_says_why():
    metric = MetricSpec(name="conversion", kind="binomial", event="buy")
    comp = _analyse_one(metric, ArmStats("A", 1000, 1000, 0.0, 0.0), ArmStats("B", 1000, 1000, 9.0, 9.0))
    assert comp.scale == "absolute" and comp.rel_lift is None and comp.ci_low is None
    assert comp.p_value == comp.abs_p_value and comp.abs_ci_low > 0
    # The credible interval is on the difference too, not a relative lift of thousands of percent.
    assert comp.credible_low == pytest.approx(comp.abs_ci_low, abs=2e-4) and comp.credible_high < 0.02
    assert any("relative lift on a zero baseline is undefined" in note for note in comp.notes)


def test_the_informative_prior_is_a_choice_shown_with_the_result():
    flat = MetricSpec(name="conversion", kind="binomial", event="buy")
    informative = flat.model_copy(update={"prior": "informative", "prior_sd": 0.3})
    arms = ArmStats("A", 50, 50, 12.0, 12.0), ArmStats("B", 50, 50, 23.0, 23.0)  # +92 % at n = 50
    default, shrunk = _analyse_one(flat, *arms), _analyse_one(informative, *arms)
    assert default.bayes_method == "normal posterior of the relative lift, flat prior"
    assert default.credible_low < default.rel_lift < default.credible_high  # the flat prior keeps the data's lift
    assert shrunk.bayes_method == "normal posterior of the relative lift, N(0, 0.3^2) prior"
    assert shrunk.credible_high < default.credible_high


# --- one statistic: significance and the interval agree, whatever the data ---------------------------------------

_arm = st.tuples(st.integers(2, 5_000), st.floats(0.0, 1.0))


@settings(max_examples=300, deadline=None)
@given(
    arms=st.lists(_arm, min_size=2, max_size=4),
    kind=st.sampled_from(["binomial", "mean"]),
    correction=st.sampled_from(["holm", "bh", "none"]),
    alpha=st.sampled_from([0.01, 0.05, 0.1]),
)
def test_significant_exactly_when_the_adjusted_interval_excludes_zero(arms, kind, correction, alpha):
    variations = [f"v{i}" for i in range(len(arms))]
    metrics = [MetricSpec(name="m", kind=kind, event="e"), MetricSpec(name="g", kind=kind, event="f")]
    stats: dict[str, dict[str, ArmStats]] = {"m": {}, "g": {}}
    for name, (n, rate) in zip(variations, arms, strict=True):
        k = float(round(n * rate))
        stats["m"][name] = ArmStats(name, n, n, k, k)
        # A mean metric whose values are 0 or 2.5: some spread, a variance unlike the Bernoulli one.
        stats["g"][name] = ArmStats(name, n, n, 2.5 * k, 6.25 * k) if kind == "mean" else ArmStats(name, n, n, k, k)
    spec = ExperimentSpec(key="p", variations=variations, metrics=metrics, correction=correction, alpha=alpha)
    for comp in analyse(spec, stats).comparisons:
        if comp.p_value is None or comp.ci_adjusted_low is None:
            continue
        if abs(comp.p_adjusted - alpha) < 1e-9 or abs(comp.p_value - alpha) < 1e-9:
            continue  # on the boundary rounding decides either way
        excludes = comp.ci_adjusted_low > 0 or comp.ci_adjusted_high < 0
        assert comp.significant == excludes, comp
        low, high = (comp.ci_low, comp.ci_high) if comp.scale == "relative" else (comp.abs_ci_low, comp.abs_ci_high)
        assert (comp.p_value <= alpha) == (low > 0 or high < 0), comp
        if comp.seq_p_value is not None and abs(comp.seq_p_adjusted - alpha) > 1e-9:
            # The always-valid test alike: significant after the correction exactly when its adjusted sequence
            # excludes 0, and (uncorrected) p <= alpha exactly when the sequence itself does.
            assert comp.seq_significant == (comp.seq_ci_adjusted_low > 0 or comp.seq_ci_adjusted_high < 0), comp
            seq_low, seq_high = (
                (comp.seq_ci_low, comp.seq_ci_high)
                if comp.seq_scale == "relative"
                else (comp.seq_abs_ci_low, comp.seq_abs_ci_high)
            )
            if abs(comp.seq_p_value - alpha) > 1e-9:
                assert (comp.seq_p_value <= alpha) == (seq_low > 0 or seq_high < 0), comp


def test_a_significance_carried_from_an_earlier_look_keeps_an_adjusted_sequence_that_excludes_zero():
    metric = MetricSpec(name="conversion", kind="binomial", event="buy")
    other = MetricSpec(name="other", kind="binomial", event="see")
    spec = ExperimentSpec(key="c", variations=["A", "B"], metrics=[metric, other], correction="holm")

    def arms(conv_b: int, n: int) -> dict[str, dict[str, ArmStats]]:
        return {
            "conversion": {"A": ArmStats("A", n, n, 0.1 * n, 0.1 * n), "B": ArmStats("B", n, n, conv_b, conv_b)},
            "other": {"A": ArmStats("A", n, n, 0.1 * n, 0.1 * n), "B": ArmStats("B", n, n, 0.1 * n, 0.1 * n)},
        }

    first = analyse(spec, arms(1400, 10_000))  # +40 %: decisive at this look
    later = analyse(spec, arms(10_500, 100_000), previous=first)  # +5 % on ten times the users
    comp = later.comparison("conversion", "B")
    assert comp.seq_significant and comp.seq_best == first.comparison("conversion", "B").seq_best
    assert comp.seq_ci_adjusted_low > 0
