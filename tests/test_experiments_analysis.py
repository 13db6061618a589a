"""PUXT experiment analysis: decision rules, edge cases answered with notes, corrections and JSON results."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from framework2.errors import DataError
from framework2.tasks.experiments.analysis import ExperimentAnalysis, analyse
from framework2.tasks.experiments.model import ArmStats, ExperimentSpec, MetricSpec
from tests.test_experiments_stats import arm_stats

CONV = MetricSpec(name="conversion", kind="binomial", event="purchase")
REVENUE = MetricSpec(name="revenue", kind="mean", event="purchase")


def conversions(variation: str, converted: int, users: int) -> ArmStats:
    """A binomial arm straight from its counts (sum of 0/1 equals sum of squares)."""
    return ArmStats(variation, users, users, float(converted), float(converted))


def spec_of(*metrics: MetricSpec, variations: tuple[str, ...] = ("A", "B"), **kw) -> ExperimentSpec:
    return ExperimentSpec(key="checkout-test", variations=list(variations), metrics=list(metrics), **kw)


def latency(rng: np.random.Generator, n: int, factor: float) -> np.ndarray:
    return rng.gamma(4.0, 50.0, n) * factor


LATENCY = MetricSpec(
    name="latency_ms", kind="mean", event="page_load", higher_is_better=False, guardrail=True, guardrail_tolerance=0.02
)


def test_clear_winner_is_shipped_with_arm_and_lift_named() -> None:
    spec = spec_of(CONV)
    result = analyse(spec, {"conversion": {"A": conversions("A", 2000, 20_000), "B": conversions("B", 2600, 20_000)}})
    assert (result.decision, result.rule, result.winner, result.decisive) == ("ship", "ship", "B", True)
    assert "ship 'B'" in result.reason and "+30.0%" in result.reason and "always-valid" in result.reason
    comp = result.comparison("conversion", "B")
    assert comp is not None and comp.seq_significant and comp.significant
    assert comp.rel_lift == pytest.approx(0.3)
    assert comp.chance_to_beat > 0.999 and comp.expected_loss < 1e-4


def test_lower_is_better_primary_ships_the_reduction() -> None:
    rng = np.random.default_rng(31)
    metric = MetricSpec(name="time_to_checkout", kind="mean", event="checkout", higher_is_better=False)
    stats = {
        "time_to_checkout": {
            "A": arm_stats("A", latency(rng, 8000, 1.0)),
            "B": arm_stats("B", latency(rng, 8000, 0.85)),
        }
    }
    result = analyse(spec_of(metric), stats)
    assert result.decision == "ship" and result.winner == "B"
    assert result.comparisons[0].direction == "better" and result.comparisons[0].chance_to_beat > 0.99


def test_sample_ratio_mismatch_stops_and_blocks_the_verdict() -> None:
    spec = spec_of(CONV)
    result = analyse(spec, {"conversion": {"A": conversions("A", 1000, 10_000), "B": conversions("B", 1300, 9_000)}})
    assert result.srm.flagged and result.srm.p_value < 0.001
    assert (result.decision, result.rule, result.decisive) == ("stop", "srm", False)
    assert "sample ratio mismatch" in result.reason and "fix the assignment" in result.reason
    assert "10,000" in result.reason and "9,000" in result.reason


def test_breached_guardrail_stops_naming_it() -> None:
    rng = np.random.default_rng(32)
    n = 5000
    stats = {
        "conversion": {"A": conversions("A", 500, n), "B": conversions("B", 650, n)},
        "latency_ms": {"A": arm_stats("A", latency(rng, n, 1.0)), "B": arm_stats("B", latency(rng, n, 1.10))},
    }
    result = analyse(spec_of(CONV, LATENCY), stats)
    assert (result.decision, result.rule, result.decisive) == ("stop", "guardrail", True)
    assert [(b.metric, b.variation) for b in result.breached_guardrails] == [("latency_ms", "B")]
    assert "'latency_ms'" in result.reason and "2.0% tolerance" in result.reason
    breach = result.breached_guardrails[0]
    assert breach.seq_ci_low > 0.02  # lower is better: the whole interval is beyond +2 %
    assert result.comparison("latency_ms", "B").guardrail_worse_fixed


def test_guardrail_worse_but_within_tolerance_is_not_breached() -> None:
    rng = np.random.default_rng(33)
    n = 50_000
    lenient = LATENCY.model_copy(update={"guardrail_tolerance": 0.05})
    stats = {
        "conversion": {"A": conversions("A", 5000, n), "B": conversions("B", 5020, n)},
        "latency_ms": {"A": arm_stats("A", latency(rng, n, 1.0)), "B": arm_stats("B", latency(rng, n, 1.03))},
    }
    result = analyse(spec_of(CONV, lenient), stats)
    comp = result.comparison("latency_ms", "B")
    assert comp.seq_ci_low > 0  # clearly slower ...
    assert not comp.guardrail_breached and not result.breached_guardrails  # ... but within 5 %
    assert result.decision == "keep running" and result.rule == "inconclusive"


def test_guardrail_breach_waits_for_min_users() -> None:
    rng = np.random.default_rng(34)
    stats = {
        "conversion": {"A": conversions("A", 5, 60), "B": conversions("B", 6, 60)},
        "latency_ms": {"A": arm_stats("A", latency(rng, 60, 1.0)), "B": arm_stats("B", latency(rng, 60, 3.0))},
    }
    result = analyse(spec_of(CONV, LATENCY), stats)
    comp = result.comparison("latency_ms", "B")
    assert comp.seq_ci_low > 0.02 and not comp.guardrail_breached
    assert any("not counted as a breach yet" in note for note in comp.notes)
    assert (result.decision, result.rule) == ("keep running", "min_users")


def test_too_few_users_keeps_running_and_says_how_many() -> None:
    result = analyse(spec_of(CONV), {"conversion": {"A": conversions("A", 6, 60), "B": conversions("B", 30, 55)}})
    assert (result.decision, result.rule, result.decisive) == ("keep running", "min_users", False)
    assert "'A' has 60" in result.reason and "'B' has 55" in result.reason and "100 required" in result.reason


def test_every_treatment_significantly_worse_stops() -> None:
    spec = spec_of(CONV, variations=("A", "B", "C"))
    arms = {
        "A": conversions("A", 2000, 20_000),
        "B": conversions("B", 1500, 20_000),
        "C": conversions("C", 1600, 20_000),
    }
    result = analyse(spec, {"conversion": arms})
    assert (result.decision, result.rule, result.decisive) == ("stop", "all_worse", True)
    assert "'B' -25.0%" in result.reason and "'C' -20.0%" in result.reason
    arms["C"] = conversions("C", 2010, 20_000)
    mixed = analyse(spec, {"conversion": arms})
    assert (mixed.decision, mixed.rule) == ("keep running", "inconclusive")


def test_inconclusive_keeps_running_with_chance_to_beat() -> None:
    result = analyse(
        spec_of(CONV), {"conversion": {"A": conversions("A", 500, 5000), "B": conversions("B", 530, 5000)}}
    )
    assert (result.decision, result.rule, result.decisive) == ("keep running", "inconclusive", False)
    comp = result.comparisons[0]
    assert 0.5 < comp.chance_to_beat < 0.95
    assert (
        f"the chance that 'B' beats control is {comp.chance_to_beat:.0%}: +6.0% (always-valid 95% CI" in result.reason
    )
    # The interval quoted is the adjusted always-valid one the verdict follows, so it cannot contradict it.
    assert comp.seq_ci_adjusted_low < 0 < comp.seq_ci_adjusted_high
    assert f"always-valid 95% CI {comp.seq_ci_adjusted_low:+.1%} to" in result.reason


def test_zero_conversion_control_reports_absolute_difference_and_bayes() -> None:
    result = analyse(spec_of(CONV), {"conversion": {"A": conversions("A", 0, 2000), "B": conversions("B", 12, 2000)}})
    comp = result.comparisons[0]
    assert comp.rel_lift is None and comp.ci_low is None and comp.seq_ci_low is None
    assert comp.abs_diff == pytest.approx(0.006) and comp.p_value is not None
    assert comp.seq_scale == "absolute" and comp.seq_abs_ci_low is not None
    assert comp.chance_to_beat > 0.99 and comp.credible_high is not None
    assert any("zero conversions in the control" in note and "undefined" in note for note in comp.notes)


def test_handful_of_users_is_answered() -> None:
    stats = {"revenue": {"A": arm_stats("A", [3.0, 0.0, 7.5]), "B": arm_stats("B", [4.0, 9.0, 0.0])}}
    result = analyse(spec_of(REVENUE), stats)
    comp = result.comparisons[0]
    assert comp.p_value is not None and comp.control_n == 3 and comp.rel_lift == pytest.approx(13 / 10.5 - 1)
    assert (result.decision, result.rule) == ("keep running", "min_users")
    assert "'A' has 3" in result.reason


def test_metric_missing_for_some_users_reports_n_and_users() -> None:
    rng = np.random.default_rng(35)
    load = MetricSpec(name="load_ms", kind="mean", event="load", missing="exclude", higher_is_better=False)
    stats = {
        "load_ms": {
            "A": arm_stats("A", rng.gamma(4, 50, 800), users=1000),
            "B": arm_stats("B", rng.gamma(4, 50, 760), users=1000),
        }
    }
    comp = analyse(spec_of(load), stats).comparisons[0]
    assert (comp.control_n, comp.control_users, comp.treatment_n, comp.treatment_users) == (800, 1000, 760, 1000)
    assert any("800 of 1000 users in 'A'" in note for note in comp.notes)
    assert any("760 of 1000 users in 'B'" in note for note in comp.notes)


def test_only_one_variation_with_traffic() -> None:
    single = analyse(spec_of(CONV, variations=("A",)), {"conversion": {"A": conversions("A", 40, 400)}})
    assert (single.decision, single.rule) == ("keep running", "one_arm")
    assert "only one variation has traffic" in single.reason and single.comparisons == []
    # Two variations listed, a few users all in A: not yet a significant mismatch, so no comparison either.
    few = analyse(spec_of(CONV), {"conversion": {"A": conversions("A", 1, 8)}})
    assert not few.srm.flagged and few.rule == "one_arm"
    # With real traffic the empty arm is a sample ratio mismatch.
    many = analyse(spec_of(CONV), {"conversion": {"A": conversions("A", 40, 500)}})
    assert many.srm.flagged and many.decision == "stop" and many.rule == "srm"
    nothing = analyse(spec_of(CONV), {})
    assert nothing.rule == "one_arm" and "no variation has traffic" in nothing.reason


def test_zero_variance_in_both_arms() -> None:
    same = analyse(spec_of(REVENUE), {"revenue": {"A": arm_stats("A", [5.0] * 4), "B": arm_stats("B", [5.0] * 6)}})
    comp = same.comparisons[0]
    assert comp.p_value == 1.0 and comp.seq_p_value == 1.0 and comp.rel_lift == 0.0 and comp.ci_low is None
    assert any("zero variance and the same value" in note for note in comp.notes)
    differ = analyse(spec_of(REVENUE), {"revenue": {"A": arm_stats("A", [5.0] * 4), "B": arm_stats("B", [6.0] * 6)}})
    comp = differ.comparisons[0]
    assert comp.p_value is None and comp.seq_p_value is None and comp.rel_lift == pytest.approx(0.2)
    assert any("zero variance but different values" in note for note in comp.notes)
    assert not comp.significant and differ.decision == "keep running"


def test_single_value_arm_still_has_its_lift_but_no_test() -> None:
    result = analyse(spec_of(CONV), {"conversion": {"A": conversions("A", 1, 1), "B": conversions("B", 3, 10)}})
    comp = result.comparisons[0]
    assert comp.p_value is None and comp.seq_p_value is None and comp.abs_diff == pytest.approx(-0.7)
    assert comp.rel_lift == pytest.approx(-0.7)  # both means exist, so the lift does
    assert comp.chance_to_beat is None and comp.ci_low is None
    assert any("at least 2 values per arm" in note and "'A' has 1" in note for note in comp.notes)


def test_metric_without_values_in_an_arm() -> None:
    load = MetricSpec(name="load_ms", kind="mean", event="load", missing="exclude")
    stats = {"load_ms": {"A": ArmStats("A", 50, 0, 0.0, 0.0), "B": arm_stats("B", [1.0, 2.0], users=50)}}
    result = analyse(spec_of(load), stats)
    comp = result.comparisons[0]
    assert comp.control_mean is None and comp.p_value is None
    assert any("no user with a value in 'A'" in note for note in comp.notes)
    assert any("no statistics for metric 'revenue'" in note for note in analyse(spec_of(load, REVENUE), stats).notes)


def test_ratio_metric_uses_the_delta_method_and_welch_df_without_cuped() -> None:
    rng = np.random.default_rng(36)
    ctr = MetricSpec(name="ctr", kind="ratio", event="click", denominator_event="session")
    n = 3000
    sc, st = rng.poisson(3, n) + 1, rng.poisson(3, n) + 1
    cc, ct = rng.binomial(sc, 0.2), rng.binomial(st, 0.23)
    xc, xt = rng.normal(size=n), rng.normal(size=n)
    stats = {"ctr": {"A": arm_stats("A", cc, den=sc, x=xc), "B": arm_stats("B", ct, den=st, x=xt)}}
    comp = analyse(spec_of(ctr), stats).comparisons[0]
    assert comp.df > 1000 and not comp.cuped_applied
    assert comp.control_mean == pytest.approx(cc.sum() / sc.sum())
    assert "CUPED is not applied to ratio metrics" in comp.notes
    assert comp.ci_low < comp.rel_lift < comp.ci_high and comp.seq_scale == "relative"
    assert comp.bayes_method == "normal posterior of the relative lift, flat prior"


def test_cuped_is_applied_when_both_arms_have_the_covariate() -> None:
    rng = np.random.default_rng(37)
    n = 4000
    xc, xt = rng.gamma(2, 10, n), rng.gamma(2, 10, n)
    yc, yt = xc + rng.normal(0, 5, n), xt * 1.02 + rng.normal(0, 5, n)
    with_cov = analyse(spec_of(REVENUE), {"revenue": {"A": arm_stats("A", yc, x=xc), "B": arm_stats("B", yt, x=xt)}})
    raw = analyse(spec_of(REVENUE), {"revenue": {"A": arm_stats("A", yc), "B": arm_stats("B", yt)}})
    adj, plain = with_cov.comparisons[0], raw.comparisons[0]
    assert adj.cuped_applied and adj.variance_reduction > 0.8 and not plain.cuped_applied
    assert adj.ci_high - adj.ci_low < 0.5 * (plain.ci_high - plain.ci_low)
    assert adj.control_mean == plain.control_mean  # raw means stay reported


def test_corrections_span_all_arms_and_metrics() -> None:
    rng = np.random.default_rng(38)
    variations = ("A", "B", "C", "D")
    n = 3000
    stats = {
        "conversion": {v: conversions(v, int(rng.binomial(n, 0.1 + 0.004 * k)), n) for k, v in enumerate(variations)},
        "revenue": {v: arm_stats(v, rng.gamma(2, 5 + 0.1 * k, n)) for k, v in enumerate(variations)},
    }
    for correction, reference in (("holm", "holm"), ("bh", "fdr_bh")):
        result = analyse(spec_of(CONV, REVENUE, variations=variations, correction=correction), stats)
        assert len(result.comparisons) == 6
        raw = [c.p_value for c in result.comparisons]
        assert np.allclose([c.p_adjusted for c in result.comparisons], multipletests(raw, method=reference)[1])
        seq = [c.seq_p_value for c in result.comparisons]
        assert np.allclose([c.seq_p_adjusted for c in result.comparisons], multipletests(seq, method=reference)[1])
    none = analyse(spec_of(CONV, REVENUE, variations=variations, correction="none"), stats)
    assert all(c.p_adjusted == c.p_value for c in none.comparisons)


def test_result_round_trips_through_json() -> None:
    rng = np.random.default_rng(39)
    stats = {
        "conversion": {"A": conversions("A", 0, 300), "B": conversions("B", 4, 310)},
        "latency_ms": {"A": arm_stats("A", latency(rng, 300, 1.0)), "B": arm_stats("B", latency(rng, 310, 1.0))},
    }
    result = analyse(spec_of(CONV, LATENCY), stats)
    text = json.dumps(result.model_dump(mode="json"))
    assert "NaN" not in text and "Infinity" not in text
    assert ExperimentAnalysis.model_validate_json(text) == result


def test_previous_run_keeps_running_minimum_and_intersection() -> None:
    spec = spec_of(CONV)
    day1 = analyse(spec, {"conversion": {"A": conversions("A", 1000, 10_000), "B": conversions("B", 1200, 10_000)}})
    day2_stats = {"conversion": {"A": conversions("A", 2000, 20_000), "B": conversions("B", 2060, 20_000)}}
    alone = analyse(spec, day2_stats).comparisons[0]
    carried = analyse(spec, day2_stats, previous=day1.model_dump(mode="json")).comparisons[0]
    first = day1.comparisons[0]
    assert carried.seq_p_value == min(first.seq_p_value, alone.seq_p_value) < alone.seq_p_value
    assert carried.seq_ci_low == max(first.seq_ci_low, alone.seq_ci_low)
    assert carried.seq_ci_high == min(first.seq_ci_high, alone.seq_ci_high)
    other = spec.model_copy(update={"sequential_tau": 0.2})
    restarted = analyse(other, day2_stats, previous=day1)
    assert any("restart" in note for note in restarted.notes)


def test_inconsistent_statistics_raise_data_error() -> None:
    spec = spec_of(CONV, REVENUE)
    with pytest.raises(DataError, match="does not have"):
        analyse(spec, {"conversion": {"Z": conversions("Z", 1, 10)}})
    with pytest.raises(DataError, match="does not define"):
        analyse(spec, {"bounce": {"A": conversions("A", 1, 10)}})
    with pytest.raises(DataError, match="same for every metric"):
        analyse(
            spec,
            {"conversion": {"A": conversions("A", 1, 10)}, "revenue": {"A": arm_stats("A", [1.0, 2.0], users=11)}},
        )
    with pytest.raises(DataError, match="filed under"):
        analyse(spec, {"conversion": {"A": conversions("B", 1, 10)}})
    with pytest.raises(DataError, match="more users"):
        analyse(spec, {"revenue": {"A": ArmStats("A", 5, 6, 1.0, 1.0), "B": ArmStats("B", 5, 5, 1.0, 1.0)}})


def test_an_experiment_past_its_end_without_a_verdict_stops_and_says_what_it_could_have_detected() -> None:
    from datetime import UTC, datetime

    spec = spec_of(CONV, end=datetime(2026, 3, 31))
    arms = {"conversion": {"A": conversions("A", 500, 5000), "B": conversions("B", 510, 5000)}}
    running = analyse(spec, arms, as_of=datetime(2026, 3, 30, tzinfo=UTC))
    assert running.decision == "keep running" and running.rule == "inconclusive"
    ended = analyse(spec, arms, as_of=datetime(2026, 4, 1, tzinfo=UTC))
    comp = ended.comparisons[0]
    assert (ended.decision, ended.rule, ended.decisive) == ("stop", "ended", False)
    assert ended.reason.startswith("ended 2026-03-31: no detectable effect on 'conversion' at this sample size")
    assert (
        f"smallest effect detectable with 80% power \u00b1{comp.mde_sequential:.1%} by the always-valid test "
        f"(\u00b1{comp.mde:.1%} for a single planned look)" in ended.reason
    )
    assert comp.mde_sequential > 1.3 * comp.mde  # daily looks cost detectable effect
    # At 10 % conversion and 5,000 users per arm a ~17 % lift is what 80 % power needs.
    assert 0.15 < comp.mde < 0.19
    # A verdict reached before the end stands: the end date does not turn a ship into a stop.
    shipped = analyse(
        spec,
        {"conversion": {"A": conversions("A", 500, 5000), "B": conversions("B", 700, 5000)}},
        as_of=datetime(2026, 4, 1, tzinfo=UTC),
    )
    assert shipped.decision == "ship"


def test_the_minimum_detectable_effect_is_what_80_percent_power_needs() -> None:
    from scipy import stats as sps

    from framework2.tasks.experiments.power import minimum_detectable_effect

    se, df, alpha = 0.05, 1e6, 0.05
    mde = minimum_detectable_effect(se, df, alpha)
    # A true effect of exactly the MDE is detected (|estimate| / se beyond the critical value) 80 % of the time.
    crit = sps.norm.ppf(1 - alpha / 2)
    assert sps.norm.sf(crit - mde / se) == pytest.approx(0.8, abs=1e-6)


def test_an_inconclusive_experiment_says_how_many_users_and_days_a_decision_needs() -> None:
    spec = spec_of(CONV)
    arms = {"conversion": {"A": conversions("A", 500, 5000), "B": conversions("B", 520, 5000)}}
    result = analyse(spec, arms, users_per_day=400)
    comp = result.comparisons[0]
    assert result.decision == "keep running" and comp.target_effect == spec.sequential_tau
    # Always-valid needs more than one planned look would; the days follow from the two arms' share of new users.
    assert comp.users_needed > comp.users_needed_fixed > 0
    assert comp.days_needed == pytest.approx(comp.users_needed / 400)
    assert f"to detect a \u00b110% lift with 80% power it needs about {comp.users_needed:,} more users" in result.reason
    assert f"(about {math.ceil(comp.days_needed)} days at the recent rate)" in result.reason


def test_users_needed_is_zero_once_the_sample_can_see_the_target_effect() -> None:
    arms = {"conversion": {"A": conversions("A", 20_000, 200_000), "B": conversions("B", 20_100, 200_000)}}
    comp = analyse(spec_of(CONV), arms).comparisons[0]
    assert comp.users_needed == 0 and comp.days_needed is None


def test_the_experiment_artifact_shows_the_mde_the_users_to_decide_and_each_metric_prior() -> None:
    from framework2.tasks.experiments.report import experiment_markdown

    informative = MetricSpec(name="revenue", kind="mean", event="purchase", prior="informative", prior_sd=0.3)
    rng = np.random.default_rng(5)
    stats = {
        "conversion": {"A": conversions("A", 500, 5000), "B": conversions("B", 520, 5000)},
        "revenue": {"A": arm_stats("A", rng.gamma(2, 10, 5000)), "B": arm_stats("B", rng.gamma(2, 10.2, 5000))},
    }
    result = analyse(spec_of(CONV, informative), stats, users_per_day=400)
    text = experiment_markdown(result)
    comp = result.comparison("conversion", "B")
    assert "| MDE now | users to decide | always-valid CI (adj.) |" in text
    assert f"±{comp.mde_sequential * 100:.1f} % (one look ±{comp.mde * 100:.1f} %)" in text
    assert f"+{comp.users_needed:,} (~" in text
    assert "conversion: flat prior; revenue: N(0, 0.3^2) prior" in text
    assert "so it excludes 0 exactly when the result is significant" in text


def test_the_experiment_artifact_says_how_many_values_were_missing_and_what_became_of_them() -> None:
    from framework2.tasks.experiments.data import ExperimentData, MissingValues
    from framework2.tasks.experiments.report import experiment_markdown

    result = analyse(spec_of(CONV), {"conversion": {"A": conversions("A", 50, 500), "B": conversions("B", 60, 500)}})
    data = ExperimentData(
        key="checkout-test",
        stats={},
        exposure_rows=1000,
        users={"A": 500, "B": 500},
        multiple_exposures=0,
        outside_window=0,
        quarantined_exposures=0,
        quarantined_events=12,
        events_attributed=900,
        pre_period_events=0,
        quarantined=pd.DataFrame(),
        missing_values={"revenue": MissingValues(12, "quarantine")},
        recent_users_per_day=140.0,
    )
    text = experiment_markdown(result, data)
    assert "⚠ revenue: 12 event rows had no value — quarantined with the reason and left out" in text
    assert "New users lately: 140 a day" in text


def test_a_metric_states_the_effect_its_users_to_decide_are_for() -> None:
    stated = CONV.model_copy(update={"target_effect": 0.05})
    arms = {"conversion": {"A": conversions("A", 500, 5000), "B": conversions("B", 520, 5000)}}
    default, five = analyse(spec_of(CONV), arms).comparisons[0], analyse(spec_of(stated), arms).comparisons[0]
    assert (default.target_effect, five.target_effect) == (0.1, 0.05)
    assert five.users_needed > 3 * default.users_needed  # half the effect takes about four times the users


def test_an_informative_prior_says_where_it_moved_the_lift_and_a_naive_as_of_is_utc() -> None:
    from datetime import datetime

    informative = CONV.model_copy(update={"prior": "informative"})
    small = {"conversion": {"A": conversions("A", 10, 50), "B": conversions("B", 18, 50)}}
    comp = analyse(spec_of(informative), small).comparisons[0]
    assert comp.posterior_mean < comp.rel_lift  # +80 % observed, pulled toward no effect
    assert f"posterior lift {comp.posterior_mean:+.1%}" in " ".join(comp.notes)
    assert f"against the observed {comp.rel_lift:+.1%}" in " ".join(comp.notes)
    ended = analyse(spec_of(CONV, end=datetime(2026, 3, 31)), small, as_of=datetime(2026, 4, 2))  # both naive
    assert ended.rule == "ended"


def test_a_shipped_comparison_shows_decided_rather_than_users_to_decide() -> None:
    from framework2.tasks.experiments.report import experiment_markdown

    result = analyse(
        spec_of(CONV), {"conversion": {"A": conversions("A", 500, 5000), "B": conversions("B", 700, 5000)}}
    )
    assert result.decision == "ship"
    assert "| decided |" in experiment_markdown(result)


def test_the_history_chart_draws_the_adjusted_sequence_and_older_analyses_as_stored() -> None:
    from framework2.tasks.experiments.report import _sequence

    adjusted = {"seq_ci_low": 0.001, "seq_ci_high": 0.289, "seq_ci_adjusted_low": -0.011, "seq_ci_adjusted_high": 0.301}
    assert _sequence(adjusted) == (pytest.approx(-1.1), pytest.approx(30.1))
    older = {"seq_ci_low": 0.001, "seq_ci_high": 0.289}  # stored before adjusted sequences existed
    assert _sequence(older) == (pytest.approx(0.1), pytest.approx(28.9))
