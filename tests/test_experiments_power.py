"""How far an experiment is from a decision: the power arithmetic checked by simulating the tests it describes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from framework2.tasks.experiments.power import fixed_users_needed, minimum_detectable_effect, sequential_users_needed
from framework2.tasks.experiments.sequential import mixture_log_lr


def test_a_fixed_horizon_test_at_the_users_needed_detects_the_effect_80_percent_of_the_time():
    se, n, effect, alpha = 0.05, 10_000, 0.1, 0.05
    users = fixed_users_needed(se, n, effect, alpha)
    sd = se * np.sqrt(n / users)
    estimates = np.random.default_rng(1).normal(effect, sd, 200_000)
    power = np.mean(np.abs(estimates) / sd > sps.norm.ppf(1 - alpha / 2))
    assert power == pytest.approx(0.8, abs=0.005)
    # The effect that sample size detects is the one asked for.
    assert minimum_detectable_effect(sd, 1e9, alpha) == pytest.approx(effect, rel=1e-3)


def test_the_always_valid_test_at_the_users_needed_has_rejected_with_at_least_80_percent_odds():
    se, n, effect, alpha, tau = 0.05, 10_000, 0.1, 0.05, 0.1
    users = sequential_users_needed(se, n, effect, alpha, tau)
    fixed = fixed_users_needed(se, n, effect, alpha)
    assert users > fixed  # looking every day costs users
    v = se**2 * n / users
    estimates = np.random.default_rng(2).normal(effect, np.sqrt(v), 200_000)
    rejected = mixture_log_lr(estimates, v, tau) >= np.log(1 / alpha)
    # At that single look alone the test rejects 80 % of the time (earlier looks only add to it).
    assert np.mean(rejected) == pytest.approx(0.8, abs=0.01)
    # With 10 % fewer users it would not yet be 80 %.
    v_less = se**2 * n / (0.9 * users)
    fewer = np.random.default_rng(3).normal(effect, np.sqrt(v_less), 200_000)
    assert np.mean(mixture_log_lr(fewer, v_less, tau) >= np.log(1 / alpha)) < 0.79


def test_users_needed_say_nothing_without_a_usable_error_or_effect():
    assert fixed_users_needed(0.0, 100, 0.1, 0.05) is None
    assert sequential_users_needed(0.05, 100, 0.0, 0.05, 0.1) is None
    # An effect that would need a million times the users is not an answer worth printing.
    assert fixed_users_needed(1.0, 10, 1e-6, 0.05) is None


def test_users_to_decide_are_planned_at_the_effect_sought_not_the_one_observed():
    # Observed: control 130/1000, treatment 100/1000 (a lower treatment). Planning at the observed treatment rate
    # said ~12,600 users; a true +/-10 % effect on a 13 % rate needs ~24,000 for 80 % power in one look.
    from framework2.tasks.experiments.analysis import analyse
    from framework2.tasks.experiments.model import ArmStats, ExperimentSpec, MetricSpec

    spec = ExperimentSpec(
        key="plan",
        variations=["c", "t"],
        metrics=[MetricSpec(name="conv", kind="binomial", event="buy")],
        correction="none",
    )
    comp = analyse(spec, {"conv": {"c": ArmStats("c", 1000, 1000, 130, 130), "t": ArmStats("t", 1000, 1000, 100, 100)}})
    comp = comp.comparisons[0]
    total = comp.users_needed_fixed + 2000
    rng = np.random.default_rng(7)
    per_arm = total // 2
    for effect in (0.1, -0.1):
        conv_c = rng.binomial(per_arm, 0.13, 20_000) / per_arm
        conv_t = rng.binomial(per_arm, 0.13 * (1 + effect), 20_000) / per_arm
        lift = conv_t / conv_c - 1
        var = conv_t * (1 - conv_t) / per_arm / conv_c**2 + conv_t**2 * conv_c * (1 - conv_c) / per_arm / conv_c**4
        power = np.mean(np.abs(lift) / np.sqrt(var) > sps.norm.ppf(0.975))
        assert power >= 0.79, (effect, power, total)
