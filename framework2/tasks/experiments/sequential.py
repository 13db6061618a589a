"""The always-valid (sequential) test of PUXT's A/B analysis: teams may look every day without inflating errors.

Method: mixture sequential probability ratio test (mSPRT) with a normal mixture, the "always valid inference"
approach of Johari, Pekelis and Walsh (after Robbins). At each look there is an estimate ``theta_hat`` (the
relative lift, or the absolute difference when the lift is undefined) with variance ``V`` (its squared
standard error at this look). Comparing "the true effect is ``theta0``" against "the true effect is drawn
from N(``theta0``, tau^2)" gives the mixture likelihood ratio

    Lambda = sqrt(V / (V + tau^2)) * exp( tau^2 (theta_hat - theta0)^2 / (2 V (V + tau^2)) ).

Under the null, Lambda over successive looks is (for a normal estimate with known variance) a non-negative
martingale starting at 1, so by Ville's inequality the chance it EVER reaches 1/alpha is at most alpha, however
often and whenever one looks. Hence:

* the always-valid p-value at a look is ``min(1, 1 / Lambda(theta0 = 0))``, and the running minimum over looks
  (pass ``previous_p``) stays valid: rejecting the first time it falls to alpha or below keeps the type I error
  at alpha;
* the confidence sequence at level 1 - alpha is every ``theta0`` not rejected, which is the interval

      theta_hat +/- sqrt( V (V + tau^2) / tau^2 * (2 log(1/alpha) + log((V + tau^2) / V)) ),

  and covers the true effect at every look simultaneously with probability >= 1 - alpha; intersecting it with
  the previous look's interval (pass ``previous``) keeps that guarantee.

The price of peeking freely is width: early on the interval is wider than the fixed-horizon one. In practice
the plug-in variances and the delta-method lift make the guarantee approximate; the tests check the A/A
false-positive rate over 20 daily looks and the simultaneous coverage by simulation.

What tau means
    ``tau`` is the standard deviation of the mixing distribution, on the scale of the estimate. The analysis
    tests the relative lift, so ``ExperimentSpec.sequential_tau`` is used as is: the sd of the plausible
    relative lifts, i.e. the size of lift the test detects fastest (0.1 = a 10 % lift). On the absolute scale
    that is a mixture sd of ``tau * |control mean|``.

    When the control mean is 0 the relative lift is undefined, so the absolute difference is tested with mixture
    sd ``tau * pooled per-user sd`` (:func:`absolute_tau`): the same tau read as a standardised effect size
    (Cohen's d). With no spread in either arm there is nothing to test.

All functions accept numpy arrays as well as floats, so thousands of simulated looks run at once.
"""

from __future__ import annotations

import math

import numpy as np

from framework2.errors import DataError

Number = float | np.ndarray


def _check(tau: float, alpha: float | None = None) -> None:
    if not np.all(np.asarray(tau) > 0):
        raise DataError(f"the mixture sd tau must be positive, got {tau}", "set sequential_tau > 0")
    if alpha is not None and not 0 < alpha < 1:
        raise DataError(f"alpha must be between 0 and 1, got {alpha}", "use for example alpha = 0.05")


def mixture_log_lr(estimate: Number, variance: Number, tau: Number, null: float = 0.0) -> Number:
    """Log of the normal-mixture likelihood ratio of ``estimate`` (variance ``variance``) against ``null``."""
    _check(tau)
    t2 = np.asarray(tau) ** 2
    v = np.asarray(variance, dtype=float)
    return 0.5 * np.log(v / (v + t2)) + t2 * (np.asarray(estimate) - null) ** 2 / (2 * v * (v + t2))


def always_valid_p(
    estimate: Number, variance: Number, tau: Number, previous_p: Number | None = None, null: float = 0.0
) -> Number:
    """Always-valid p-value ``min(1, 1/Lambda)``, lowered to ``previous_p`` (the last look's) when that is smaller.

    ``variance`` must be positive. Reject at level alpha when the result is <= alpha, at any look.
    """
    log_lr = mixture_log_lr(estimate, variance, tau, null)
    p = np.exp(-np.maximum(log_lr, 0.0))
    if previous_p is not None:
        p = np.minimum(p, previous_p)
    return float(p) if np.ndim(p) == 0 else p


def confidence_sequence(
    estimate: Number,
    variance: Number,
    tau: Number,
    alpha: float = 0.05,
    previous: tuple[Number, Number] | None = None,
) -> tuple[Number, Number]:
    """Level ``1 - alpha`` confidence sequence for the effect at this look, optionally intersected with ``previous``.

    If the intersection would be empty (possible only through the approximations) the current interval is kept.
    """
    _check(tau, alpha)
    t2 = np.asarray(tau) ** 2
    v = np.asarray(variance, dtype=float)
    half = np.sqrt(v * (v + t2) / t2 * (2 * math.log(1 / alpha) + np.log((v + t2) / v)))
    low, high = np.asarray(estimate) - half, np.asarray(estimate) + half
    if previous is not None:
        new_low, new_high = np.maximum(low, previous[0]), np.minimum(high, previous[1])
        empty = new_low > new_high
        low, high = np.where(empty, low, new_low), np.where(empty, high, new_high)
    if np.ndim(low) == 0:
        return float(low), float(high)
    return low, high


def absolute_tau(relative_tau: float, control_mean: float, pooled_sd: float) -> float | None:
    """Mixture sd on the absolute scale: ``tau * |control mean|``, else ``tau * pooled sd``, else None."""
    _check(relative_tau)
    if control_mean != 0:
        return relative_tau * abs(control_mean)
    if pooled_sd > 0:
        return relative_tau * pooled_sd
    return None
