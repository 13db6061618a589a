"""How far an experiment is from a decision: the smallest effect it can see now, and the users it still needs.

Both work from the comparison's estimate and its standard error ``se`` with ``n`` users in the two arms compared,
assuming the standard error shrinks as 1 / sqrt(users) with the split unchanged (true of every estimate here:
a difference of means, a delta-method lift, a ratio). ``effect`` and ``se`` are on the comparison's scale
(relative lift, or the difference on a zero baseline).

Fixed horizon
    A two-sided t test at ``alpha`` detects a true effect d with power ``power`` when
    se <= |d| / (t_{1 - alpha/2} + z_{power}); so the minimum detectable effect now is
    (t_{1 - alpha/2} + z_{power}) * se (Welch's df), and the users needed are n * (se / se_needed)^2 (with the
    normal quantile: by then the df are large).

Always-valid (the test the decision follows)
    The mixture SPRT rejects once its likelihood ratio reaches 1 / alpha (``sequential.py``). With a true effect
    d the estimate is N(d, V); it is at least |d| - z_{power} sqrt(V) with probability ``power``, so the test
    has rejected by then with at least that probability when the ratio at that estimate reaches 1 / alpha. The
    users needed are the smallest n (V = V_now * n_now / n) where it does: found by bisection on log n. It
    ignores the chance of an earlier crossing, so it errs toward more users. Peeking freely costs users: the
    always-valid test needs more than the fixed-horizon one for the same power.

Which standard error
    The users needed are planned at the effect sought, not at the effect observed: a lift's variance depends on
    the treatment mean, so the observed one would make a lower observed treatment need too few users. The
    analysis passes the standard error the pair would have now if the treatment mean were the control's times
    (1 +/- effect) — the larger of the two — with a conversion's variance p (1 - p) at that rate and a mean's
    per-user variance scaled with its mean (the control's coefficient of variation).

Multiple comparisons
    The family's correction is met with Bonferroni's alpha / m, which is what Holm asks of the smallest p-value
    and more than Benjamini-Hochberg asks: the counts err toward more users, never fewer.
"""

from __future__ import annotations

import math

from scipy import stats as sps

from framework2.tasks.experiments.sequential import mixture_log_lr

POWER = 0.8
# Beyond this many times the users there are now, "how many more" stops being a useful answer.
MAX_GROWTH = 1e6


def minimum_detectable_effect(se: float, df: float, alpha: float, power: float = POWER) -> float:
    """The smallest true effect (either direction) a two-sided fixed-horizon test at ``alpha`` detects with
    ``power``: (t_{1 - alpha/2} + z_{power}) * se."""
    return float((sps.t.ppf(1 - alpha / 2, df) + sps.norm.ppf(power)) * se)


def fixed_users_needed(se: float, n: float, effect: float, alpha: float, power: float = POWER) -> float | None:
    """Users (both arms) a fixed-horizon test needs to detect ``effect`` with ``power``; None without a usable se
    or effect, or beyond ``MAX_GROWTH`` times ``n``."""
    if not (se > 0 and n > 0 and effect != 0 and math.isfinite(effect)):
        return None
    needed_se = abs(effect) / (sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power))
    users = n * (se / needed_se) ** 2
    return float(users) if users <= n * MAX_GROWTH else None


def sequential_users_needed(
    se: float, n: float, effect: float, alpha: float, tau: float, power: float = POWER
) -> float | None:
    """Users (both arms) the always-valid test needs before it rejects with probability >= ``power`` when the
    true effect is ``effect`` (mixture sd ``tau`` on the same scale); None as for ``fixed_users_needed``."""
    if not (se > 0 and n > 0 and tau > 0 and effect != 0 and math.isfinite(effect)):
        return None
    v_now, target, z = se * se, math.log(1 / alpha), sps.norm.ppf(power)

    def rejects(users: float) -> bool:
        v = v_now * n / users
        low = abs(effect) - z * math.sqrt(v)
        return low > 0 and float(mixture_log_lr(low, v, tau)) >= target

    high = n
    while not rejects(high):
        high *= 2
        if high > n * MAX_GROWTH:
            return None
    low = high / 2
    if rejects(low):  # already enough at (or below) the users there are
        low = 1.0
    for _ in range(60):
        mid = math.sqrt(low * high)
        if rejects(mid):
            high = mid
        else:
            low = mid
        if high / low < 1.0001:
            break
    return float(high)


def sequential_mde(se: float, alpha: float, tau: float, power: float = POWER) -> float | None:
    """The smallest effect the always-valid test detects with ``power`` at the current standard error ``se`` (the
    test the decision follows: larger than the fixed-horizon MDE, the price of looking every day)."""
    if not (se > 0 and tau > 0):
        return None
    v, target, z = se * se, math.log(1 / alpha), sps.norm.ppf(power)

    def rejects(effect: float) -> bool:
        low = effect - z * se
        return low > 0 and float(mixture_log_lr(low, v, tau)) >= target

    low, high = 0.0, se
    while not rejects(high):
        high *= 2
        if high > 1e12 * se:
            return None
    for _ in range(100):
        mid = (low + high) / 2
        if rejects(mid):
            high = mid
        else:
            low = mid
        if high - low < 1e-9 * high:
            break
    return float(high)
