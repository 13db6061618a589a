"""One experiment's full analysis from per-arm sufficient statistics, and the decision it supports.

:func:`analyse` compares every treatment with the control (the spec's first variation) on every metric:

* fixed-horizon results: one Welch t test per comparison on one scale (the relative lift with its delta-method
  variance, or the absolute difference where the control mean is 0), giving its p-value, CI, significance and
  the interval adjusted with it (Holm or Benjamini-Hochberg over all treatments x metrics), plus the minimum
  detectable effect at this sample; CUPED when a pre-period covariate exists; the difference's own test always
  alongside. See :mod:`~framework2.tasks.experiments.stats`;
* the Bayesian chance to beat control, expected loss and 95 % credible interval on the same scale, under each
  metric's prior (flat by default) (same module);
* the always-valid mSPRT p-value and confidence sequence, see :mod:`~framework2.tasks.experiments.sequential`,
  also adjusted with ``spec.correction``. The sequential test runs on the same (CUPED-adjusted when available)
  estimate as the fixed-horizon one. Pass the last run's result as ``previous`` to keep the always-valid p-value
  a running minimum and the confidence sequence a running intersection across daily runs.

Decision rule (first match wins). It is based on the sequential results, because teams look every day and the
fixed-horizon p-values are only valid for a single look fixed in advance; those are reported alongside.

1. Sample ratio mismatch (chi-square p < 0.001 on users per variation) -> ``stop``: the assignment is broken
   and no metric can be trusted. Not ``decisive``: it is a data-quality stop, flagged by ``srm.flagged``.
2. Fewer than two variations with users -> ``keep running``: no comparison is possible.
3. A guardrail breached in any treatment -> ``stop`` naming the guardrail. Breached means its always-valid
   confidence sequence lies entirely on the worse side of ``-guardrail_tolerance`` (relative lift, sign
   following ``higher_is_better``; on the absolute difference against 0 when the control mean is 0). Guardrails
   use the unadjusted level alpha: missing harm costs more than a false alarm. A breach only counts once both
   arms have at least ``min_users_per_arm`` analysed users, as the normal approximations behind the interval
   are not trustworthy on a handful of users (a note says when that holds a breach back).
4. Some variation has fewer than ``min_users_per_arm`` users -> ``keep running``, naming them.
5. No primary metric (every metric is a guardrail) -> ``keep running``.
6. The primary metric (the first non-guardrail metric) is significantly better in some treatment by the
   sequential test after correction (adjusted always-valid p <= alpha) -> ``ship`` the best such treatment
   (largest lift in the good direction). No guardrail is breached here, or rule 3 would have fired.
7. Every treatment is significantly worse on the primary metric -> ``stop``.
8. Otherwise ``keep running``, quoting the best treatment's chance to beat control — unless the spec's ``end``
   has passed (``as_of``): then ``stop`` (rule ``ended``), saying no effect was detectable at this sample size
   and the smallest effect it could have detected.

``decisive`` is True for rules 3, 6 and 7 (a statistical ship/stop); ``breached_guardrails`` lists every breach
(metric, variation) so the flow can emit events.

Edge cases produce results with notes instead of errors: a zero control mean (the absolute difference is the
comparison's scale, lift None), an arm with one value (the lift, but no variance: no test), zero variance in
both arms (p = 1 when the means agree, no test when they differ), a
metric present for only some users (``n`` < ``users``, reported), a metric or arm absent from the statistics.
Inconsistent inputs (unknown metric or variation, different user counts for one arm, impossible sums) raise
:class:`~framework2.errors.DataError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from framework2.errors import DataError
from framework2.tasks.experiments.model import ArmStats, ExperimentSpec, MetricKind, MetricSpec
from framework2.tasks.experiments.power import (
    fixed_users_needed,
    minimum_detectable_effect,
    sequential_mde,
    sequential_users_needed,
)
from framework2.tasks.experiments.sequential import absolute_tau, always_valid_p, confidence_sequence
from framework2.tasks.experiments.stats import (
    SRM_THRESHOLD,
    adjust_p_values,
    adjusted_interval,
    bayes_normal,
    cuped,
    diff_test,
    lift_point,
    relative_lift,
    srm_check,
    summarise_arm,
    welch_df,
)

Decision = Literal["ship", "keep running", "stop"]
Rule = Literal["srm", "one_arm", "guardrail", "min_users", "no_primary", "ship", "all_worse", "inconclusive", "ended"]


class Comparison(BaseModel):
    """One treatment against the control on one metric. Relative quantities are fractions (0.05 = +5 %)."""

    metric: str
    kind: MetricKind
    variation: str
    control: str
    higher_is_better: bool = True
    control_users: int
    control_n: int
    treatment_users: int
    treatment_n: int
    control_mean: float | None = Field(None, description="Raw mean (ratio for ratio metrics).")
    treatment_mean: float | None = None
    control_mean_adjusted: float | None = Field(None, description="CUPED-adjusted mean; the raw mean without CUPED.")
    treatment_mean_adjusted: float | None = None
    scale: Literal["relative", "absolute"] | None = Field(
        None,
        description="The scale of the comparison's one test (p-value, CI, significance, Bayesian result): the "
        "relative lift, or the absolute difference where the control mean is 0 and no lift exists.",
    )
    abs_diff: float | None = Field(None, description="Treatment minus control, CUPED-adjusted when applied.")
    abs_ci_low: float | None = None
    abs_ci_high: float | None = None
    abs_p_value: float | None = Field(None, description="Welch test of the difference (the absolute scale).")
    rel_lift: float | None = Field(None, description="(treatment - control) / |control|; None if control is 0.")
    ci_low: float | None = Field(None, description="Fixed-horizon CI of the relative lift (delta method).")
    ci_high: float | None = None
    se: float | None = Field(None, description="Standard error of the estimate on the comparison's scale.")
    df: float | None = Field(None, description="Welch-Satterthwaite degrees of freedom of the test.")
    p_value: float | None = Field(None, description="Fixed horizon, on the comparison's scale.")
    p_adjusted: float | None = None
    ci_adjusted_low: float | None = Field(
        None,
        description="Interval at level 1 - alpha * p / p_adjusted on the comparison's scale: it excludes 0 exactly "
        "when the comparison is significant after the correction.",
    )
    ci_adjusted_high: float | None = None
    significant: bool = Field(False, description="Fixed horizon: adjusted p <= alpha.")
    mde: float | None = Field(
        None,
        description="Fixed horizon: the smallest true effect (comparison's scale, either direction) this sample "
        "detects with 80 % power at the family's Bonferroni alpha.",
    )
    mde_sequential: float | None = Field(
        None,
        description="The smallest effect the always-valid test (which the decision follows) detects with 80 % "
        "power at this sample, at the family's Bonferroni alpha: larger than mde, the price of daily looks.",
    )
    planning_variance: float | None = Field(
        None,
        description="Var(lift) x users in the pair if the treatment mean were the control's x (1 +/- target): "
        "what users_needed is planned with (the larger of the two directions).",
    )
    posterior_mean: float | None = Field(None, description="Mean of the Bayesian posterior, comparison's scale.")
    target_effect: float | None = Field(
        None,
        description="The relative effect the users-needed figures are for (the metric's target_effect, else "
        "the experiment's sequential_tau).",
    )
    users_needed: int | None = Field(
        None,
        description="More users (both arms) before the always-valid test, which the decision follows, detects "
        "target_effect with 80 % power at the family's Bonferroni alpha; 0 when there are enough.",
    )
    users_needed_fixed: int | None = Field(
        None, description="The same for a fixed-horizon test looked at once (fewer: one look costs less)."
    )
    days_needed: float | None = Field(None, description="users_needed at the recent rate of new users.")
    direction: Literal["better", "worse", "flat"] | None = None
    cuped_applied: bool = False
    cuped_theta: float | None = None
    variance_reduction: float | None = Field(None, description="1 - Var(adjusted diff) / Var(raw diff).")
    chance_to_beat: float | None = None
    expected_loss: float | None = Field(None, description="Posterior E[shortfall] of the treatment, lift units.")
    credible_low: float | None = Field(None, description="95 % credible interval on the comparison's scale.")
    credible_high: float | None = None
    bayes_method: str | None = None
    seq_scale: Literal["relative", "absolute"] | None = Field(
        None, description="What the sequential test ran on: the relative lift, or the difference if no lift exists."
    )
    seq_p_value: float | None = None
    seq_p_adjusted: float | None = None
    seq_ci_low: float | None = Field(None, description="Always-valid confidence sequence of the relative lift.")
    seq_ci_high: float | None = None
    seq_abs_ci_low: float | None = Field(None, description="Confidence sequence of the difference (absolute scale).")
    seq_abs_ci_high: float | None = None
    seq_best: tuple[float, float, float] | None = Field(
        None,
        description="(estimate, variance, mixture sd) of the look with the smallest always-valid p so far: what the "
        "adjusted confidence sequence is built from.",
    )
    seq_ci_adjusted_low: float | None = Field(
        None,
        description="Confidence sequence at level 1 - alpha * p / p_adjusted on the sequential scale: it excludes 0 "
        "exactly when the comparison is significant by the always-valid test after the correction.",
    )
    seq_ci_adjusted_high: float | None = None
    seq_significant: bool = Field(False, description="Always-valid: adjusted sequential p <= alpha.")
    is_guardrail: bool = False
    guardrail_tolerance: float = 0.0
    guardrail_breached: bool = Field(False, description="Sequential interval entirely worse than the tolerance.")
    guardrail_worse_fixed: bool = Field(False, description="The same check on the fixed-horizon CI (information).")
    notes: list[str] = Field(default_factory=list)


class SrmReport(BaseModel):
    """Sample-ratio-mismatch check of users per variation."""

    observed: dict[str, int]
    expected: dict[str, float]
    chi2: float | None = None
    p_value: float | None = None
    threshold: float = SRM_THRESHOLD
    flagged: bool = False
    note: str = ""


class GuardrailBreach(BaseModel):
    """A guardrail metric significantly worse than its tolerance in one treatment."""

    metric: str
    variation: str
    tolerance: float
    scale: Literal["relative", "absolute"]
    estimate: float
    seq_ci_low: float
    seq_ci_high: float
    message: str


class ExperimentAnalysis(BaseModel):
    """Everything :func:`analyse` found, JSON-serialisable with ``model_dump(mode="json")``."""

    experiment: str
    control: str
    variations: list[str]
    alpha: float
    correction: Literal["holm", "bh", "none"]
    sequential_tau: float
    users: dict[str, int]
    srm: SrmReport
    primary_metric: str | None
    comparisons: list[Comparison]
    decision: Decision
    rule: Rule
    reason: str
    decisive: bool
    winner: str | None = None
    breached_guardrails: list[GuardrailBreach] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    def comparison(self, metric: str, variation: str) -> Comparison | None:
        """The comparison of ``variation`` with control on ``metric``, if one was made."""
        for c in self.comparisons:
            if c.metric == metric and c.variation == variation:
                return c
        return None


def _f(x: Any) -> float | None:
    """A plain float for JSON, None for missing or non-finite values."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _direction(diff: float, higher_is_better: bool) -> Literal["better", "worse", "flat"]:
    if diff == 0:
        return "flat"
    return "better" if (diff > 0) == higher_is_better else "worse"


def compare(
    metric: MetricSpec, control: ArmStats, treatment: ArmStats, *, alpha: float = 0.05, tau: float = 0.1
) -> Comparison:
    """Fixed-horizon, Bayesian and sequential comparison of one treatment with the control on one metric.

    ``p_adjusted``/``seq_p_adjusted`` equal the raw values here; :func:`analyse` adjusts them over the family.
    Guardrail flags are left to :func:`analyse` too.
    """
    kind = metric.kind
    hib = metric.higher_is_better
    c = summarise_arm(control, kind)
    t = summarise_arm(treatment, kind)
    notes: list[str] = []
    out: dict[str, Any] = {
        "metric": metric.name,
        "kind": kind,
        "variation": treatment.variation,
        "control": control.variation,
        "higher_is_better": hib,
        "control_users": c.users,
        "control_n": c.n,
        "treatment_users": t.users,
        "treatment_n": t.n,
        "is_guardrail": metric.guardrail,
        "guardrail_tolerance": metric.guardrail_tolerance,
        "notes": notes,
    }
    why_missing = {
        "ratio": "users with a zero denominator carry no information",
        "mean": "users without a value are excluded (missing='exclude')",
        "binomial": "users without a value are excluded",
    }[kind]
    for s in (c, t):
        if s.n < s.users:
            notes.append(f"{metric.name!r} has a value for {s.n} of {s.users} users in {s.variation!r}: {why_missing}")
    empty = [s.variation for s in (c, t) if s.mean is None]
    if empty:
        what = "no user with a non-zero denominator" if kind == "ratio" else "no user with a value"
        notes.append(f"{what} in {', '.join(map(repr, empty))}: nothing to compare")
        return Comparison(**out)
    assert c.mean is not None and t.mean is not None  # narrowed by the check above
    out["control_mean"], out["treatment_mean"] = c.mean, t.mean
    mc, mt, vc, vt = c.mean, t.mean, c.var, t.var

    if kind == "ratio":
        if control.has_covariate or treatment.has_covariate:
            notes.append("CUPED is not applied to ratio metrics")
    elif control.has_covariate and treatment.has_covariate:
        if c.n >= 2 and t.n >= 2:
            adj = cuped(control, treatment)
            notes.append(adj.note)
            if adj.applied:
                mc, mt, vc, vt = adj.mean_c, adj.mean_t, adj.var_c, adj.var_t
                out.update(cuped_applied=True, cuped_theta=adj.theta, variance_reduction=_f(adj.variance_reduction))
    elif control.has_covariate != treatment.has_covariate:
        notes.append("the pre-period covariate is missing in one arm: CUPED not applied")
    diff = mt - mc
    out.update(control_mean_adjusted=mc, treatment_mean_adjusted=mt, abs_diff=diff, direction=_direction(diff, hib))
    if mc != 0:
        # The lift exists as soon as both means do, even before there is a variance to test it with.
        out.update(rel_lift=_f(lift_point(mc, mt)), scale="relative")
    else:
        zero = "zero conversions in the control" if kind == "binomial" else "the control mean is 0"
        notes.append(f"{zero}: a relative lift on a zero baseline is undefined; the absolute difference is tested")
        out["scale"] = "absolute"

    if vc is None or vt is None:
        few = ", ".join(f"{s.variation!r} has {s.n}" for s in (c, t) if s.n < 2)
        notes.append(f"a variance needs at least 2 values per arm ({few}): no test, interval or sequential result")
        return Comparison(**out)
    vmc, vmt = vc / c.n, vt / t.n
    if vmc + vmt == 0:
        if diff == 0:
            notes.append(
                f"both arms have zero variance and the same value ({mc:.6g}): no difference and no uncertainty"
            )
            out.update(p_value=1.0, p_adjusted=1.0, abs_p_value=1.0, seq_p_value=1.0, seq_p_adjusted=1.0)
        else:
            notes.append(
                f"both arms have zero variance but different values ({mc:.6g} vs {mt:.6g}): a test needs some "
                "spread in at least one arm; keep collecting users"
            )
        return Comparison(**out)

    df = welch_df(vmc, c.n, vmt, t.n)
    d = diff_test(mc, vmc, mt, vmt, df, alpha)
    out.update(abs_ci_low=_f(d.ci_low), abs_ci_high=_f(d.ci_high), abs_p_value=_f(d.p_value), df=_f(df))
    estimate, se = diff, float(d.se)
    if mc != 0:
        lf = relative_lift(mc, vmc, mt, vmt, df, alpha)
        if lf.se > 0:
            estimate, se = float(lf.lift), float(lf.se)
            out.update(ci_low=_f(lf.ci_low), ci_high=_f(lf.ci_high))
            seq_p = always_valid_p(lf.lift, lf.se**2, tau)
            lo, hi = confidence_sequence(lf.lift, lf.se**2, tau, alpha)
            out.update(seq_scale="relative", seq_p_value=seq_p, seq_p_adjusted=seq_p, seq_ci_low=lo, seq_ci_high=hi)
            out["seq_best"] = (float(lf.lift), float(lf.se**2), tau)
        else:
            # Only a constant-zero treatment gets here: the delta method then claims a certain lift of -100 %.
            notes.append(
                "the delta-method variance of the lift is 0 (treatment constant at 0): the difference is tested"
            )
            out["scale"] = "absolute"
    relative = out["scale"] == "relative"
    p = _f(lf.p_value) if relative else _f(d.p_value)
    out.update(se=_f(se), p_value=p, p_adjusted=p)
    out["ci_adjusted_low"], out["ci_adjusted_high"] = (
        (out["ci_low"], out["ci_high"]) if relative else (out["abs_ci_low"], out["abs_ci_high"])
    )

    prior_sd = metric.prior_sd if metric.prior == "informative" else None
    if not relative and prior_sd is not None:
        notes.append("the informative prior is on the relative lift, which is undefined here: a flat prior is used")
        prior_sd = None
    b = bayes_normal(estimate, se, hib, prior_sd=prior_sd, scale="relative lift" if relative else "difference")
    out.update(
        chance_to_beat=b.chance_to_beat,
        expected_loss=b.expected_loss,
        credible_low=b.credible_low,
        credible_high=b.credible_high,
        bayes_method=b.method,
        posterior_mean=b.mean,
    )
    if prior_sd is not None:
        notes.append(
            f"informative prior N(0, {prior_sd:g}^2) on the lift: posterior lift {b.mean:+.1%} "
            f"[{b.credible_low:+.1%}, {b.credible_high:+.1%}] against the observed {estimate:+.1%}"
        )
    if relative:
        out["planning_variance"] = _planning_variance(metric, kind, mc, vc, c.n, t.n, tau)

    if out.get("seq_scale") is None:
        pooled_sd = math.sqrt((vc + vt) / 2)
        tau_abs = absolute_tau(tau, mc, pooled_sd)
        if tau_abs is not None:
            seq_p = always_valid_p(diff, vmc + vmt, tau_abs)
            lo, hi = confidence_sequence(diff, vmc + vmt, tau_abs, alpha)
            out.update(
                seq_scale="absolute", seq_p_value=seq_p, seq_p_adjusted=seq_p, seq_abs_ci_low=lo, seq_abs_ci_high=hi
            )
            out["seq_best"] = (float(diff), float(vmc + vmt), tau_abs)
            notes.append(f"sequential test on the absolute difference with mixture sd {tau_abs:.4g}")
    return Comparison(**out)


def _worse(low: float | None, high: float | None, tolerance: float, higher_is_better: bool) -> bool:
    """Whether an interval lies entirely on the worse side of the tolerated change."""
    if low is None or high is None:
        return False
    return high < -tolerance if higher_is_better else low > tolerance


def _guardrail_flags(comp: Comparison, min_n: int) -> dict[str, Any]:
    hib, tol = comp.higher_is_better, comp.guardrail_tolerance
    if comp.seq_scale == "relative":
        seq_worse = _worse(comp.seq_ci_low, comp.seq_ci_high, tol, hib)
    else:
        seq_worse = _worse(comp.seq_abs_ci_low, comp.seq_abs_ci_high, 0.0, hib)
    if comp.ci_low is not None:
        fixed_worse = _worse(comp.ci_low, comp.ci_high, tol, hib)
    else:
        fixed_worse = _worse(comp.abs_ci_low, comp.abs_ci_high, 0.0, hib)
    enough = min(comp.control_n, comp.treatment_n) >= min_n
    notes = list(comp.notes)
    if seq_worse and not enough:
        notes.append(
            f"the always-valid interval is entirely worse than the guardrail tolerance, but an arm has fewer than "
            f"{min_n} values: not counted as a breach yet"
        )
    if comp.seq_scale == "absolute" and tol > 0:
        notes.append("the control mean is 0, so the relative tolerance cannot apply: checked against no change")
    return {"guardrail_breached": seq_worse and enough, "guardrail_worse_fixed": fixed_worse, "notes": notes}


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.1%}"


def _pval(p: float | None) -> str:
    if p is None:
        return "n/a"
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def _chance(x: float | None) -> str:
    # 0.9999 printed as "100%" (or 3e-6 as "0.0%") would read as certainty.
    if x is None:
        return "n/a"
    if 0.999 < x < 1:
        return ">99.9%"
    if 0 < x < 0.001:
        return "<0.1%"
    return f"{x:.1%}" if 0.99 < x < 1 or 0 < x < 0.01 else f"{x:.0%}"


def _effect(comp: Comparison, alpha: float) -> str:
    """A comparison's effect in words on its scale, with the intervals adjusted as its significance is (the
    always-valid one the decision follows, and the fixed-horizon one)."""
    level = f"{1 - alpha:.0%}"
    relative = comp.scale == "relative"
    show: Any = _pct if relative else (lambda x: "n/a" if x is None else f"{x:+.4g}")
    estimate = comp.rel_lift if relative else comp.abs_diff
    what = "" if relative else "absolute difference "
    seq = (
        (comp.seq_ci_adjusted_low, comp.seq_ci_adjusted_high)
        if comp.seq_ci_adjusted_low is not None
        else ((comp.seq_ci_low, comp.seq_ci_high) if relative else (comp.seq_abs_ci_low, comp.seq_abs_ci_high))
    )
    if seq[0] is None or estimate is None:
        if estimate is None:
            return "no estimate"
        return f"{what}{show(estimate)} (no test yet: see the notes)"
    fixed = (comp.ci_adjusted_low, comp.ci_adjusted_high)
    fixed_text = f"; single-planned-look CI {show(fixed[0])} to {show(fixed[1])}" if fixed[0] is not None else ""
    return (
        f"{what}{show(estimate)} (always-valid {level} CI {show(seq[0])} to {show(seq[1])}{fixed_text}"
        + ("" if relative else "; relative lift undefined")
        + ")"
    )


def _breach(comp: Comparison) -> GuardrailBreach:
    relative = comp.seq_scale == "relative"
    low = comp.seq_ci_low if relative else comp.seq_abs_ci_low
    high = comp.seq_ci_high if relative else comp.seq_abs_ci_high
    estimate = comp.rel_lift if relative else comp.abs_diff
    assert low is not None and high is not None and estimate is not None  # a breach needs an interval
    shown = (lambda x: f"{x:+.1%}") if relative else (lambda x: f"{x:+.4g}")
    side = "higher is better" if comp.higher_is_better else "lower is better"
    message = (
        f"guardrail {comp.metric!r} is worse in {comp.variation!r} beyond its {comp.guardrail_tolerance:.1%} "
        f"tolerance ({side}): change {shown(estimate)}, always-valid CI {shown(low)} to {shown(high)}"
    )
    return GuardrailBreach(
        metric=comp.metric,
        variation=comp.variation,
        tolerance=comp.guardrail_tolerance,
        scale="relative" if relative else "absolute",
        estimate=estimate,
        seq_ci_low=low,
        seq_ci_high=high,
        message=message,
    )


def _users(spec: ExperimentSpec, stats: Mapping[str, Mapping[str, ArmStats]]) -> dict[str, int]:
    """Users per variation, checked to agree across metrics."""
    names = {m.name for m in spec.metrics}
    users: dict[str, int] = {}
    for metric_name, arms in stats.items():
        if metric_name not in names:
            raise DataError(
                f"statistics for metric {metric_name!r}, which experiment {spec.key!r} does not define",
                f"its metrics are {sorted(names)}",
            )
        for variation, arm in arms.items():
            if variation not in spec.variations:
                raise DataError(
                    f"statistics for variation {variation!r}, which experiment {spec.key!r} does not have",
                    f"its variations are {spec.variations}; check the exposure assignment",
                )
            if arm.variation != variation:
                raise DataError(
                    f"metric {metric_name!r}: statistics filed under {variation!r} are for {arm.variation!r}",
                    "key each ArmStats by its own variation",
                )
            if variation in users and users[variation] != arm.users:
                raise DataError(
                    f"variation {variation!r} has {users[variation]} users in one metric and {arm.users} in "
                    f"{metric_name!r}",
                    "users is the arm's exposure count and must be the same for every metric",
                )
            users[variation] = arm.users
    return {v: users.get(v, 0) for v in spec.variations}


def _carry_forward(
    comps: list[Comparison], previous: ExperimentAnalysis | Mapping[str, Any] | None, spec: ExperimentSpec
) -> tuple[list[Comparison], list[str]]:
    """Running minimum of always-valid p-values and running intersection of confidence sequences."""
    if previous is None:
        return comps, []
    prev = previous if isinstance(previous, ExperimentAnalysis) else ExperimentAnalysis.model_validate(previous)
    if (prev.experiment, prev.alpha, prev.sequential_tau) != (spec.key, spec.alpha, spec.sequential_tau):
        return comps, ["the previous analysis used another experiment, alpha or tau: sequential results restart"]
    merged = []
    for comp in comps:
        old = prev.comparison(comp.metric, comp.variation)
        if old is None or old.seq_scale != comp.seq_scale or comp.seq_p_value is None or old.seq_p_value is None:
            merged.append(comp)
            continue
        update: dict[str, Any] = {"seq_p_value": min(comp.seq_p_value, old.seq_p_value)}
        update["seq_p_adjusted"] = update["seq_p_value"]
        if old.seq_p_value < comp.seq_p_value and old.seq_best is not None:
            update["seq_best"] = old.seq_best
        pairs = (("seq_ci_low", "seq_ci_high"), ("seq_abs_ci_low", "seq_abs_ci_high"))
        for lo_key, hi_key in pairs:
            lo, hi = getattr(comp, lo_key), getattr(comp, hi_key)
            old_lo, old_hi = getattr(old, lo_key), getattr(old, hi_key)
            if None not in (lo, hi, old_lo, old_hi):
                update[lo_key], update[hi_key] = _intersect(lo, hi, old_lo, old_hi)
        merged.append(comp.model_copy(update=update))
    return merged, []


def _adjusted_sequence(comp: Comparison, level_alpha: float) -> tuple[float, float]:
    """The confidence sequence at ``level_alpha`` of the look with the smallest always-valid p so far: it excludes
    0 exactly when that p (the running one) is <= ``level_alpha``, i.e. when the adjusted p is <= alpha."""
    assert comp.seq_best is not None
    level_alpha = min(max(level_alpha, 1e-300), 1 - 1e-12)
    low, high = confidence_sequence(comp.seq_best[0], comp.seq_best[1], comp.seq_best[2], level_alpha)
    return float(low), float(high)


def _intersect(lo: float, hi: float, old_lo: float, old_hi: float) -> tuple[float, float]:
    new_lo, new_hi = max(lo, old_lo), min(hi, old_hi)
    # Disjoint intervals can only come from the approximations; the current one is then the honest answer.
    return (lo, hi) if new_lo > new_hi else (new_lo, new_hi)


def analyse(
    spec: ExperimentSpec,
    stats: Mapping[str, Mapping[str, ArmStats]],
    previous: ExperimentAnalysis | Mapping[str, Any] | None = None,
    *,
    as_of: datetime | None = None,
    users_per_day: float | None = None,
) -> ExperimentAnalysis:
    """Analyse an experiment from ``stats[metric_name][variation]`` and recommend ship / keep running / stop.

    ``previous`` is the last run's result (or its JSON dump) for running always-valid p-values and intervals;
    ``as_of`` the moment analysed (past the spec's ``end``, an experiment without a decision has ended);
    ``users_per_day`` the recent rate of new users in the experiment (turns users still needed into days).
    """
    users = _users(spec, stats)
    control = spec.control
    notes: list[str] = []
    srm_res = srm_check([users[v] for v in spec.variations], spec.split())
    srm = SrmReport(
        observed=dict(zip(spec.variations, srm_res.observed, strict=True)),
        expected=dict(zip(spec.variations, srm_res.expected, strict=True)),
        chi2=srm_res.chi2,
        p_value=srm_res.p_value,
        flagged=srm_res.flagged,
        note=srm_res.note,
    )

    comps: list[Comparison] = []
    for metric in spec.metrics:
        arms = stats.get(metric.name)
        if not arms:
            notes.append(f"no statistics for metric {metric.name!r}: not analysed")
            continue
        c_arm = arms.get(control)
        if c_arm is None or c_arm.users == 0:
            if users[control] > 0:
                notes.append(f"metric {metric.name!r} has no statistics for the control {control!r}")
            continue
        for variation in spec.variations[1:]:
            t_arm = arms.get(variation)
            if t_arm is None or t_arm.users == 0:
                if users[variation] > 0:
                    notes.append(f"metric {metric.name!r} has no statistics for {variation!r}")
                continue
            comps.append(compare(metric, c_arm, t_arm, alpha=spec.alpha, tau=spec.sequential_tau))

    comps, carry_notes = _carry_forward(comps, previous, spec)
    notes += carry_notes
    p_adj = adjust_p_values([c.p_value for c in comps], spec.correction)
    seq_adj = adjust_p_values([c.seq_p_value for c in comps], spec.correction)
    family = sum(c.p_value is not None for c in comps) if spec.correction != "none" else 1
    final: list[Comparison] = []
    for comp, pa, sa in zip(comps, p_adj, seq_adj, strict=True):
        update: dict[str, Any] = {
            "p_adjusted": pa,
            "seq_p_adjusted": sa,
            "significant": pa is not None and pa <= spec.alpha,
            "seq_significant": sa is not None and sa <= spec.alpha,
        }
        if comp.seq_best is not None and comp.seq_p_value is not None and sa is not None:
            update["seq_ci_adjusted_low"], update["seq_ci_adjusted_high"] = _adjusted_sequence(
                comp, spec.alpha * comp.seq_p_value / sa if sa > 0 else spec.alpha
            )
        estimate = comp.rel_lift if comp.scale == "relative" else comp.abs_diff
        if comp.se is not None and comp.df is not None and estimate is not None:
            adjusted = adjusted_interval(estimate, comp.se, comp.df, spec.alpha, comp.p_value, pa)
            if adjusted is not None:
                update["ci_adjusted_low"], update["ci_adjusted_high"] = adjusted
            update["mde"] = minimum_detectable_effect(comp.se, comp.df, spec.alpha / max(family, 1))
            if comp.scale == "relative":
                update |= _to_decision(comp, spec, spec.alpha / max(family, 1), users_per_day, sum(users.values()))
            elif comp.seq_best is not None:
                # On a zero baseline the mixture sd is on the difference's scale (``sequential.absolute_tau``).
                update["mde_sequential"] = sequential_mde(comp.se, spec.alpha / max(family, 1), comp.seq_best[2])
        if comp.is_guardrail:
            update.update(_guardrail_flags(comp, spec.min_users_per_arm))
        final.append(comp.model_copy(update=update))

    primary = next((m for m in spec.metrics if not m.guardrail), None)
    breaches = [_breach(c) for c in final if c.guardrail_breached]
    decision, rule, reason, winner = _decide(spec, users, srm, final, primary, breaches)
    if decision == "keep running" and spec.end is not None and as_of is not None and _aware(as_of) >= _aware(spec.end):
        decision, rule, reason = "stop", "ended", _ended_reason(spec, final, primary, reason)
    return ExperimentAnalysis(
        experiment=spec.key,
        control=control,
        variations=list(spec.variations),
        alpha=spec.alpha,
        correction=spec.correction,
        sequential_tau=spec.sequential_tau,
        users=users,
        srm=srm,
        primary_metric=primary.name if primary else None,
        comparisons=final,
        decision=decision,
        rule=rule,
        reason=reason,
        decisive=rule in ("guardrail", "ship", "all_worse"),
        winner=winner,
        breached_guardrails=breaches,
        notes=notes,
    )


def _to_decision(
    comp: Comparison, spec: ExperimentSpec, alpha: float, users_per_day: float | None, all_users: int
) -> dict[str, Any]:
    """Users (and days) the comparison still needs to detect its target effect, always-valid and fixed-horizon."""
    metric = next(m for m in spec.metrics if m.name == comp.metric)
    target = _target(metric, spec.sequential_tau)
    n = comp.control_n + comp.treatment_n
    assert comp.se is not None
    out: dict[str, Any] = {
        "target_effect": target,
        "mde_sequential": sequential_mde(comp.se, alpha, spec.sequential_tau),
    }
    if comp.planning_variance is None:
        return out
    se = math.sqrt(comp.planning_variance / n)
    total = sequential_users_needed(se, n, target, alpha, spec.sequential_tau)
    fixed = fixed_users_needed(se, n, target, alpha)
    out["users_needed"] = None if total is None else max(0, math.ceil(total - n))
    out["users_needed_fixed"] = None if fixed is None else max(0, math.ceil(fixed - n))
    if out["users_needed"] is not None and users_per_day and users_per_day > 0 and all_users > 0:
        # New users split across all variations; this comparison gets its two arms' share of them.
        share = (comp.control_users + comp.treatment_users) / all_users
        out["days_needed"] = out["users_needed"] / (users_per_day * share) if share > 0 else None
    return out


def _target(metric: MetricSpec, tau: float) -> float:
    """The relative effect a metric's users-to-decide are for: its own, a guardrail's tolerance, else tau."""
    if metric.target_effect:
        return metric.target_effect
    if metric.guardrail and metric.guardrail_tolerance > 0:
        return metric.guardrail_tolerance
    return tau


def _planning_variance(
    metric: MetricSpec, kind: MetricKind, mc: float, vc: float, n_c: int, n_t: int, tau: float
) -> float | None:
    """Var(lift) x (n_c + n_t) with the treatment mean at the control's x (1 +/- target), the larger of the two."""
    target = _target(metric, tau)
    n = n_c + n_t
    f_c, f_t = n_c / n, n_t / n
    worst = None
    for effect in (target, -target):
        mt = mc * (1 + effect)
        if kind == "binomial":
            if not 0 <= mt <= 1:
                continue
            vt = mt * (1 - mt)
        else:
            vt = vc * (1 + effect) ** 2  # the control's coefficient of variation
        k = vt / (f_t * mc * mc) + mt * mt * vc / (f_c * mc**4)
        worst = k if worst is None else max(worst, k)
    return worst if worst is not None and worst > 0 else None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _ended_reason(spec: ExperimentSpec, comps: list[Comparison], primary: MetricSpec | None, why: str) -> str:
    """What an experiment that ran out of time without a decision found, with the effect it could have seen."""
    assert spec.end is not None
    ended = f"ended {_aware(spec.end):%Y-%m-%d}"
    prim = [c for c in comps if primary is not None and c.metric == primary.name]
    if primary is None or not prim:
        return f"{ended} without a comparison on the primary metric: {why}"
    if not any(c.mde is not None for c in prim):
        return f"{ended} before the primary metric {primary.name!r} could be tested: {why}"

    def size(c: Comparison) -> str:
        show = (lambda x: f"\u00b1{x:.1%}") if c.scale == "relative" else (lambda x: f"\u00b1{x:.4g}")
        if c.mde is None:
            return f"{c.variation!r}: no test"
        # The verdict follows the always-valid test, so its detectable effect is the one that was in reach.
        reach = c.mde_sequential if c.mde_sequential is not None else c.mde
        return (
            f"{c.variation!r} {_effect(c, spec.alpha)}, smallest effect detectable with 80% power {show(reach)} "
            f"by the always-valid test ({show(c.mde)} for a single planned look)"
        )

    sizes = "; ".join(size(c) for c in prim)
    return (
        f"{ended}: no detectable effect on {primary.name!r} at this sample size ({sizes}); a smaller effect may "
        "exist: stop, or move the end date and keep running"
    )


def _decide(
    spec: ExperimentSpec,
    users: dict[str, int],
    srm: SrmReport,
    comps: list[Comparison],
    primary: MetricSpec | None,
    breaches: list[GuardrailBreach],
) -> tuple[Decision, Rule, str, str | None]:
    """The documented decision rule of this module; returns (decision, rule, reason, winning variation)."""
    if srm.flagged:
        counts = ", ".join(f"{v} {n:,}" for v, n in srm.observed.items())
        shares = " / ".join(f"{s:.0%}" for s in spec.split())
        return (
            "stop",
            "srm",
            f"sample ratio mismatch: users per variation ({counts}) differ from the expected {shares} split "
            f"(chi-square p = {_pval(srm.p_value)} < {srm.threshold}); the results are untrustworthy; fix the "
            "assignment before reading any metric",
            None,
        )
    with_traffic = [v for v in spec.variations if users[v] > 0]
    if len(with_traffic) < 2:
        if not with_traffic:
            return "keep running", "one_arm", "no variation has traffic yet: no comparison is possible", None
        only = with_traffic[0]
        return (
            "keep running",
            "one_arm",
            f"only one variation has traffic ({only!r}: {users[only]:,} users); no comparison is possible until "
            "another variation gets users",
            None,
        )
    if breaches:
        text = "; ".join(b.message for b in breaches)
        return "stop", "guardrail", text, None
    short = [v for v in spec.variations if users[v] < spec.min_users_per_arm]
    if short:
        listed = ", ".join(f"{v!r} has {users[v]:,}" for v in short)
        return (
            "keep running",
            "min_users",
            f"not enough users yet: {listed}, fewer than the {spec.min_users_per_arm:,} required per arm",
            None,
        )
    if primary is None:
        return "keep running", "no_primary", "every metric is a guardrail: there is no primary metric to ship on", None
    prim = [c for c in comps if c.metric == primary.name]
    treatments = [v for v in spec.variations[1:] if users[v] > 0]
    corr = "" if spec.correction == "none" else f" after {spec.correction} correction"
    better = [c for c in prim if c.seq_significant and c.direction == "better"]
    if better:
        sign = 1.0 if primary.higher_is_better else -1.0
        best = max(
            better,
            key=lambda c: (c.rel_lift is not None, sign * (c.rel_lift if c.rel_lift is not None else c.abs_diff or 0)),
        )
        return (
            "ship",
            "ship",
            f"ship {best.variation!r}: {primary.name!r} {_effect(best, spec.alpha)}, always-valid p = "
            f"{_pval(best.seq_p_adjusted)}{corr}; no guardrail breached",
            best.variation,
        )
    worse = [c for c in prim if c.seq_significant and c.direction == "worse"]
    if worse and len(worse) == len(treatments):
        listed = "; ".join(f"{c.variation!r} {_effect(c, spec.alpha)}" for c in worse)
        return "stop", "all_worse", f"every treatment is significantly worse on {primary.name!r}: {listed}", None
    if not prim:
        return (
            "keep running",
            "inconclusive",
            f"no comparison on the primary metric {primary.name!r} was possible yet",
            None,
        )
    reason = f"no treatment is significantly better on {primary.name!r} yet (always-valid p > {spec.alpha}{corr})"
    ranked = [c for c in prim if c.chance_to_beat is not None]
    if ranked:
        best = max(ranked, key=lambda c: c.chance_to_beat or 0.0)
        reason += (
            f"; the chance that {best.variation!r} beats control is {_chance(best.chance_to_beat)}: "
            f"{_effect(best, spec.alpha)}"
        )
    else:
        reason += "; " + "; ".join(f"{c.variation!r} {_effect(c, spec.alpha)}" for c in prim)
    waits = [c for c in prim if c.users_needed is not None and c.target_effect is not None]
    if waits:
        slowest = max(waits, key=lambda c: c.users_needed or 0)
        assert slowest.target_effect is not None
        if slowest.users_needed:
            days = (
                ""
                if slowest.days_needed is None
                else f" (about {math.ceil(slowest.days_needed)} days at the recent rate)"
            )
            reason += (
                f"; to detect a \u00b1{slowest.target_effect:.0%} lift with 80% power it needs about "
                f"{slowest.users_needed:,} more users{days}"
            )
        else:
            reason += (
                f"; it has had the users to detect a \u00b1{slowest.target_effect:.0%} lift with 80% power, so a "
                "true effect that large would most likely have shown by now"
            )
    return "keep running", "inconclusive", reason, None
