"""PUXT always-valid test: A/A false positives under daily peeking, simultaneous coverage, power, duality."""

from __future__ import annotations

import math

import numpy as np
import pytest

from framework2.errors import DataError
from framework2.tasks.experiments.analysis import analyse
from framework2.tasks.experiments.model import ArmStats, ExperimentSpec, MetricSpec
from framework2.tasks.experiments.sequential import (
    absolute_tau,
    always_valid_p,
    confidence_sequence,
    mixture_log_lr,
)
from framework2.tasks.experiments.stats import diff_test, moments, relative_lift, welch_df

SIMS, LOOKS, DAILY = 1000, 20, 200
ALPHA = 0.05
# Sd of a rejection rate estimated from SIMS experiments at the nominal 5 %: sqrt(0.05 * 0.95 / 1000) = 0.0069.
TOL = 3 * math.sqrt(ALPHA * (1 - ALPHA) / SIMS)


def arm_stats(variation: str, y: np.ndarray) -> ArmStats:
    """Sufficient statistics of the per-user values ``y``."""
    y = np.asarray(y, dtype=float)
    return ArmStats(variation, len(y), len(y), y.sum(), (y * y).sum())


def _simulate_looks(kind: str, lift: float, seed: int, tau: float = 0.1) -> dict[str, np.ndarray]:
    """SIMS experiments, DAILY users per arm per day, a look after each of LOOKS days; all looks at once."""
    rng = np.random.default_rng(seed)
    total = LOOKS * DAILY
    if kind == "binomial":
        yc = (rng.random((SIMS, total)) < 0.1).astype(float)
        yt = (rng.random((SIMS, total)) < 0.1 * (1 + lift)).astype(float)
    else:  # a skewed, revenue-like metric
        yc = rng.lognormal(1.0, 1.0, (SIMS, total))
        yt = rng.lognormal(1.0, 1.0, (SIMS, total)) * (1 + lift)
    at = np.arange(DAILY - 1, total, DAILY)
    n = (at + 1).astype(float)
    mc, vc = moments(n, np.cumsum(yc, 1)[:, at], np.cumsum(yc**2, 1)[:, at])
    mt, vt = moments(n, np.cumsum(yt, 1)[:, at], np.cumsum(yt**2, 1)[:, at])
    lf = relative_lift(mc, vc / n, mt, vt / n)
    naive = diff_test(mc, vc / n, mt, vt / n, welch_df(vc / n, n, vt / n, n)).p_value
    low, high = confidence_sequence(lf.lift, lf.se**2, tau, ALPHA)
    return {"seq_p": always_valid_p(lf.lift, lf.se**2, tau), "naive_p": naive, "low": low, "high": high}


@pytest.mark.parametrize("kind", ["binomial", "mean"])
def test_aa_daily_looks_keep_false_positives_at_alpha_while_naive_peeking_inflates_them(kind: str) -> None:
    looks = _simulate_looks(kind, lift=0.0, seed=21)
    ever_seq = np.mean((looks["seq_p"] <= ALPHA).any(axis=1))
    ever_naive = np.mean((looks["naive_p"] <= ALPHA).any(axis=1))
    assert ever_seq <= ALPHA + TOL, ever_seq
    # Checking a fixed-horizon p < 0.05 at each of 20 looks rejects a true null far more often than 5 %
    # (about 25 % here): exactly why the decision uses the always-valid test.
    assert ever_naive >= 0.15, ever_naive
    # The last look alone is a single fixed-horizon test, which is calibrated.
    assert abs(np.mean(looks["naive_p"][:, -1] <= ALPHA) - ALPHA) <= TOL


@pytest.mark.parametrize("kind", ["binomial", "mean"])
def test_confidence_sequence_covers_true_lift_at_every_look(kind: str) -> None:
    true_lift = 0.1
    looks = _simulate_looks(kind, lift=true_lift, seed=22)
    covered_always = np.mean(((looks["low"] <= true_lift) & (true_lift <= looks["high"])).all(axis=1))
    assert covered_always >= 1 - ALPHA - TOL, covered_always


def test_sequential_test_rejects_a_real_lift_given_enough_users() -> None:
    rng = np.random.default_rng(23)
    n = 20_000
    yc, yt = rng.lognormal(1.0, 1.0, n), rng.lognormal(1.0, 1.0, n) * 1.1
    spec = ExperimentSpec(key="power", variations=["A", "B"], metrics=[MetricSpec(name="rev", kind="mean", event="x")])
    result = analyse(spec, {"rev": {"A": arm_stats("A", yc), "B": arm_stats("B", yt)}})
    comp = result.comparisons[0]
    assert comp.seq_significant and comp.seq_p_value < 1e-4
    assert comp.seq_ci_low <= 0.1 <= comp.seq_ci_high
    # The price of always-validity: the sequence is wider than the fixed-horizon CI.
    assert comp.seq_ci_high - comp.seq_ci_low > comp.ci_high - comp.ci_low
    assert result.decision == "ship"


def test_p_value_and_confidence_sequence_are_dual() -> None:
    for estimate in (0.0, 0.02, 0.05, 0.08, -0.2):
        p = always_valid_p(estimate, 0.02**2, 0.1)
        low, high = confidence_sequence(estimate, 0.02**2, 0.1, ALPHA)
        assert (p <= ALPHA) == (not low <= 0 <= high)
        # At the interval's edge the likelihood ratio is exactly 1/alpha.
        assert mixture_log_lr(estimate, 0.02**2, 0.1, null=high) == pytest.approx(math.log(1 / ALPHA))
    assert always_valid_p(0.0, 0.02**2, 0.1) == 1.0


def test_running_minimum_and_intersection_across_looks() -> None:
    assert always_valid_p(0.0, 0.01, 0.1, previous_p=0.03) == 0.03
    assert always_valid_p(0.5, 0.01, 0.1, previous_p=0.9) < 0.9
    low, high = confidence_sequence(0.05, 0.02**2, 0.1, ALPHA, previous=(0.0, 0.07))
    fresh = confidence_sequence(0.05, 0.02**2, 0.1, ALPHA)
    assert (low, high) == (max(fresh[0], 0.0), min(fresh[1], 0.07))
    # Disjoint from the previous interval: only the approximations can do that, the current one is kept.
    assert confidence_sequence(0.05, 0.02**2, 0.1, ALPHA, previous=(0.5, 0.6)) == fresh


def test_absolute_tau_scales_with_control_mean_and_falls_back_to_pooled_sd() -> None:
    assert absolute_tau(0.1, 20.0, 5.0) == pytest.approx(2.0)
    assert absolute_tau(0.1, -20.0, 5.0) == pytest.approx(2.0)
    assert absolute_tau(0.1, 0.0, 5.0) == pytest.approx(0.5)
    assert absolute_tau(0.1, 0.0, 0.0) is None
    with pytest.raises(DataError):
        absolute_tau(0.0, 1.0, 1.0)
    with pytest.raises(DataError):
        confidence_sequence(0.0, 1.0, 0.1, alpha=1.5)
