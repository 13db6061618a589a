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
