"""PUXT release comparison: is the candidate release slower than the baseline, and does it matter?

For every metric here a higher value is worse (milliseconds, or CLS), so "candidate worse" means candidate
values tend to be larger.

**Test.** Mann-Whitney U (``scipy.stats.mannwhitneyu``, ``method="auto"``: exact for small samples without
ties, otherwise the normal approximation with tie and continuity correction), with candidate as the first
sample: a two-sided p-value, and a one-sided p-value for "candidate worse" (``alternative="greater"``).
It compares whole distributions without assuming normality, which latencies never are.

**Effect sizes.**

- Cliff's delta = P(candidate > baseline) - P(candidate < baseline) over all pairs, in [-1, 1]; positive is
  worse. It equals the rank-biserial correlation 2U/(n_b n_c) - 1 of the candidate's U.
  Magnitude (Romano et al., 2006): negligible < 0.147 <= small < 0.33 <= medium < 0.474 <= large.
- Hodges-Lehmann shift: the median of all pairwise differences candidate - baseline, in the metric's unit
  (the typical amount by which a candidate sample is slower).
- Shifts of p50, p75 and p95 (numpy ``linear`` percentiles), absolute and relative; p75 is what Core Web
  Vitals are judged on.

**Verdict** (in order):

1. ``insufficient data``: fewer than ``min_samples`` (default 20) values on either side; no test is run, since
   with so few values neither significance nor effect size is reliable.
2. ``regression``: one-sided p < ``alpha`` (default 0.01) AND Cliff's delta >= ``min_effect`` (default 0.147,
   at least "small") AND p75 worse by at least ``min_p75_change`` (default 5 %). Significance alone is not
   enough: with thousands of beacons a 1 % shift is "significant" and not worth a rollback.
3. ``improvement``: the mirror image (significantly better, delta <= -min_effect, p75 better by >= 5 %).
4. ``significant but negligible``: significant in either direction, but the effect is below the thresholds.
5. ``no significant change``.

Each page x metric is its own test; there is no multiple-comparison correction. The strict alpha plus the
effect-size requirement keep chance flags rare (an unchanged metric would need a "small" effect by chance).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

from framework2.errors import DataError
from framework2.tasks.performance.rum import METRICS, UNITS, RumData, as_rum
from framework2.tasks.performance.synthetic import ProbeResult

DEFAULT_ALPHA = 0.01
DEFAULT_MIN_EFFECT = 0.147
DEFAULT_MIN_P75_CHANGE = 0.05
DEFAULT_MIN_SAMPLES = 20
# Cliff's delta magnitude bounds (Romano et al. 2006), checked from the top.
MAGNITUDES: tuple[tuple[float, str], ...] = ((0.474, "large"), (0.33, "medium"), (0.147, "small"), (0.0, "negligible"))
PERCENTILES: tuple[int, ...] = (50, 75, 95)
PERCENTILE_METHOD = "linear"
# Above this many pairs the Hodges-Lehmann median is found by bisection instead of materialising every difference.
_HL_MAX_PAIRS = 2_000_000

REGRESSION = "regression"
IMPROVEMENT = "improvement"
NEGLIGIBLE = "significant but negligible"
NO_CHANGE = "no significant change"
INSUFFICIENT = "insufficient data"

# The product's scaling rule: response time over 100 ms -> scale up.
DEFAULT_ALERT_THRESHOLD_MS = 100.0
DEFAULT_ALERT_STATISTIC = "p95"
DEFAULT_ALERT_PHASE = "total"


@dataclass(frozen=True)
class Comparison:
    """Baseline vs candidate for one metric (and page): test, effect sizes, percentile shifts and verdict.

    ``p75_change`` and the ``*_change`` values of :meth:`percentile_change` are relative (0.25 = 25 % worse).
    Statistics are None for ``insufficient data``. ``baseline``/``candidate`` hold the values compared (for charts).
    """

    metric: str
    unit: str
    page: str | None
    baseline_release: str | None
    candidate_release: str | None
    n_baseline: int
    n_candidate: int
    verdict: str
    explanation: str
    p_value: float | None
    p_value_worse: float | None
    u_statistic: float | None
    cliffs_delta: float | None
    magnitude: str | None
    hodges_lehmann: float | None
    baseline_percentiles: dict[str, float]
    candidate_percentiles: dict[str, float]
    p75_change: float | None
    alpha: float
    min_effect: float
    min_p75_change: float
    min_samples: int
    baseline: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False, compare=False)
    candidate: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False, compare=False)

    @property
    def regression(self) -> bool:
        """Whether the candidate is significantly and meaningfully worse."""
        return self.verdict == REGRESSION

    @property
    def rank_biserial(self) -> float | None:
        """Rank-biserial correlation 2U/(n_b n_c) - 1 of the candidate's U; identical to Cliff's delta."""
        return self.cliffs_delta

    @property
    def significant_worse(self) -> bool:
        """One-sided p < alpha for "candidate worse", whatever the effect size."""
        return self.p_value_worse is not None and self.p_value_worse < self.alpha

    @property
    def label(self) -> str:
        """``page · metric`` (or just the metric)."""
        return f"{self.page} · {self.metric}" if self.page else self.metric

    def shift(self, percentile: int) -> float | None:
        """Candidate minus baseline at ``percentile`` (50, 75 or 95), in the metric's unit."""
        key = f"p{percentile}"
        if key not in self.baseline_percentiles or key not in self.candidate_percentiles:
            return None
        return self.candidate_percentiles[key] - self.baseline_percentiles[key]

    def percentile_change(self, percentile: int) -> float | None:
        """Relative change at ``percentile`` (inf when the baseline is 0 and the candidate is not)."""
        key = f"p{percentile}"
        if key not in self.baseline_percentiles or key not in self.candidate_percentiles:
            return None
        return _relative(self.baseline_percentiles[key], self.candidate_percentiles[key])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (values compared left out; non-finite numbers as None)."""

        def clean(x: Any) -> Any:
            return None if isinstance(x, float) and not math.isfinite(x) else x

        out = {
            name: clean(getattr(self, name))
            for name in self.__dataclass_fields__
            if name not in ("baseline", "candidate", "baseline_percentiles", "candidate_percentiles")
        }
        out["baseline_percentiles"] = {k: clean(v) for k, v in self.baseline_percentiles.items()}
        out["candidate_percentiles"] = {k: clean(v) for k, v in self.candidate_percentiles.items()}
        out["regression"] = self.regression
        return out


def _relative(before: float, after: float) -> float:
    if before == 0:
        return 0.0 if after == 0 else math.copysign(math.inf, after)
    return (after - before) / abs(before)


def _values(data: ArrayLike, side: str) -> np.ndarray:
    try:
        values = np.asarray(data, dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        raise DataError(f"{side} values are not all numbers ({exc})", "pass numbers (ms, or unitless for CLS)") from exc
    # Missing values (NaN) are dropped; an infinite latency is a bug upstream, not a measurement.
    values = values[~np.isnan(values)]
    if np.isinf(values).any():
        raise DataError(f"{side} values contain infinity", "drop or fix the broken measurements first")
    return values


def cliffs_delta(baseline: ArrayLike, candidate: ArrayLike) -> float:
    """P(candidate > baseline) - P(candidate < baseline) over all pairs, in O((n + m) log n)."""
    b = np.sort(np.asarray(baseline, dtype=float))
    c = np.asarray(candidate, dtype=float)
    if b.size == 0 or c.size == 0:
        raise DataError("Cliff's delta needs values on both sides", "pass non-empty samples")
    below = np.searchsorted(b, c, side="left")  # baseline values smaller than each candidate value
    above = b.size - np.searchsorted(b, c, side="right")  # baseline values larger
    return float((below.sum() - above.sum()) / (b.size * c.size))


def magnitude(delta: float) -> str:
    """Romano et al.'s label for |Cliff's delta|: negligible, small, medium or large."""
    size = abs(delta)
    return next(label for bound, label in MAGNITUDES if size >= bound)


def _count_diffs_at_most(b_sorted: np.ndarray, c: np.ndarray, t: float) -> int:
    # Pairs with c - b <= t, i.e. b >= c - t.
    return int((b_sorted.size - np.searchsorted(b_sorted, c - t, side="left")).sum())


def _kth_difference(b_sorted: np.ndarray, c: np.ndarray, k: int) -> float:
    """The k-th smallest (1-based) of all differences c_j - b_i, by bisection on the value."""
    lo = float(c.min() - b_sorted[-1])
    hi = float(c.max() - b_sorted[0])
    if _count_diffs_at_most(b_sorted, c, lo) >= k:
        return lo
    # Invariant: count(lo) < k <= count(hi). Narrow to a sliver of the range (about 40 steps), then snap to the
    # largest actual difference <= hi, which is the k-th: bisecting to the last float could take 1000+ steps
    # near zero.
    tolerance = (hi - lo) * 1e-12
    while hi - lo > tolerance:
        mid = lo + (hi - lo) / 2
        if _count_diffs_at_most(b_sorted, c, mid) >= k:
            hi = mid
        else:
            lo = mid
    idx = np.searchsorted(b_sorted, c - hi, side="left")
    has = idx < b_sorted.size
    return float((c[has] - b_sorted[idx[has]]).max())


def hodges_lehmann(baseline: ArrayLike, candidate: ArrayLike) -> float:
    """Median of all pairwise differences candidate - baseline (the Hodges-Lehmann shift estimate)."""
    b = np.sort(np.asarray(baseline, dtype=float))
    c = np.asarray(candidate, dtype=float)
    if b.size == 0 or c.size == 0:
        raise DataError("the Hodges-Lehmann shift needs values on both sides", "pass non-empty samples")
    pairs = b.size * c.size
    if pairs <= _HL_MAX_PAIRS:
        return float(np.median(np.subtract.outer(c, b)))
    upper = _kth_difference(b, c, pairs // 2 + 1)
    if pairs % 2:
        return upper
    return (_kth_difference(b, c, pairs // 2) + upper) / 2


def _percentiles(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {}
    found = np.percentile(values, PERCENTILES, method=PERCENTILE_METHOD)
    return {f"p{q}": float(v) for q, v in zip(PERCENTILES, found, strict=True)}


def _check_settings(alpha: float, min_effect: float, min_p75_change: float, min_samples: int) -> None:
    if not 0 < alpha < 1:
        raise DataError(f"alpha must be between 0 and 1, got {alpha}", "0.01 is the default")
    if not 0 <= min_effect <= 1:
        raise DataError(f"min_effect is a Cliff's delta between 0 and 1, got {min_effect}", "0.147 means small")
    if min_p75_change < 0:
        raise DataError(f"min_p75_change must not be negative, got {min_p75_change}", "0.05 means 5 %")
    if min_samples < 2:
        raise DataError(f"min_samples must be at least 2, got {min_samples}", "20 is the default")


def _fmt(value: float, unit: str) -> str:
    return f"{value:.0f} {unit}" if unit == "ms" else f"{value:.3g}"


def compare_releases(
    baseline: ArrayLike,
    candidate: ArrayLike,
    *,
    metric: str,
    alpha: float = DEFAULT_ALPHA,
    min_effect: float = DEFAULT_MIN_EFFECT,
    min_p75_change: float = DEFAULT_MIN_P75_CHANGE,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    page: str | None = None,
    baseline_release: str | None = None,
    candidate_release: str | None = None,
    unit: str | None = None,
) -> Comparison:
    """Compare two samples of ``metric`` (higher is worse) and give a verdict; see the module docstring.

    NaN values are dropped. ``unit`` defaults to the RUM unit of ``metric`` (ms, none for CLS), else ms.
    """
    _check_settings(alpha, min_effect, min_p75_change, min_samples)
    b = _values(baseline, "baseline")
    c = _values(candidate, "candidate")
    metric_unit = unit if unit is not None else UNITS.get(metric.upper(), "ms")
    common: dict[str, Any] = {
        "metric": metric,
        "unit": metric_unit,
        "page": page,
        "baseline_release": baseline_release,
        "candidate_release": candidate_release,
        "n_baseline": int(b.size),
        "n_candidate": int(c.size),
        "baseline_percentiles": _percentiles(b),
        "candidate_percentiles": _percentiles(c),
        "alpha": alpha,
        "min_effect": min_effect,
        "min_p75_change": min_p75_change,
        "min_samples": min_samples,
        "baseline": b,
        "candidate": c,
    }
    p75_change = (
        _relative(common["baseline_percentiles"]["p75"], common["candidate_percentiles"]["p75"])
        if b.size and c.size
        else None
    )
    if b.size < min_samples or c.size < min_samples:
        return Comparison(
            **common,
            verdict=INSUFFICIENT,
            explanation=f"{b.size} baseline and {c.size} candidate values; at least {min_samples} each are needed",
            p_value=None,
            p_value_worse=None,
            u_statistic=None,
            cliffs_delta=None,
            magnitude=None,
            hodges_lehmann=None,
            p75_change=p75_change,
        )
    two_sided = stats.mannwhitneyu(c, b, alternative="two-sided")
    worse = stats.mannwhitneyu(c, b, alternative="greater")
    better = stats.mannwhitneyu(c, b, alternative="less")
    # All values tied (e.g. two constant samples): there is nothing to test; scipy may return NaN.
    p_two = 1.0 if math.isnan(two_sided.pvalue) else float(two_sided.pvalue)
    p_worse = 1.0 if math.isnan(worse.pvalue) else float(worse.pvalue)
    p_better = 1.0 if math.isnan(better.pvalue) else float(better.pvalue)
    delta = cliffs_delta(b, c)
    shift = hodges_lehmann(b, c)
    assert p75_change is not None  # both sides have at least min_samples >= 2 values here

    worse_enough = delta >= min_effect and p75_change >= min_p75_change
    better_enough = delta <= -min_effect and p75_change <= -min_p75_change
    effect = (
        f"Cliff's delta {delta:+.3f} ({magnitude(delta)}), p75 {p75_change:+.1%}, "
        f"typical shift {shift:+.3g}{' ' + metric_unit if metric_unit else ''}"
    )
    if p_worse < alpha and worse_enough:
        verdict, why = REGRESSION, f"candidate worse (one-sided p = {p_worse:.2g} < {alpha:g}); {effect}"
    elif p_better < alpha and better_enough:
        verdict, why = IMPROVEMENT, f"candidate better (one-sided p = {p_better:.2g} < {alpha:g}); {effect}"
    elif p_worse < alpha or p_better < alpha:
        direction = "worse" if p_worse < alpha else "better"
        verdict = NEGLIGIBLE
        why = (
            f"candidate {direction} (one-sided p = {min(p_worse, p_better):.2g}) but below the practical "
            f"thresholds (|delta| >= {min_effect:g} and p75 change >= {min_p75_change:.0%}); {effect}"
        )
    else:
        verdict, why = NO_CHANGE, f"no significant difference (two-sided p = {p_two:.2g}); {effect}"
    return Comparison(
        **common,
        verdict=verdict,
        explanation=why,
        p_value=p_two,
        p_value_worse=p_worse,
        u_statistic=float(two_sided.statistic),
        cliffs_delta=delta,
        magnitude=magnitude(delta),
        hodges_lehmann=shift,
        p75_change=p75_change,
    )


def compare_rum(
    data: pd.DataFrame | RumData,
    baseline_release: str,
    candidate_release: str,
    *,
    alpha: float = DEFAULT_ALPHA,
    min_effect: float = DEFAULT_MIN_EFFECT,
    min_p75_change: float = DEFAULT_MIN_P75_CHANGE,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> list[Comparison]:
    """:func:`compare_releases` for every page x metric of raw RUM data, sorted by page then metric.

    Raw data is validated (quarantined rows are left out). A page x metric seen in only one of the releases
    gets ``insufficient data``. A :func:`~framework2.tasks.performance.rum.rum_summary` table cannot be
    compared (percentiles alone do not allow a test) and raises :class:`DataError`.
    """
    if isinstance(data, pd.DataFrame) and "value" not in data.columns and "p75" in data.columns:
        raise DataError(
            "compare_rum needs the raw measurements, got a summary table",
            "pass the page, release, metric, value, timestamp rows the summary was made from",
        )
    valid = as_rum(data).valid
    releases = set(valid["release"].astype(str))
    for label, release in (("baseline", baseline_release), ("candidate", candidate_release)):
        if str(release) not in releases:
            raise DataError(
                f"{label} release {release!r} has no valid measurements",
                f"releases present: {', '.join(sorted(releases)) or 'none'}",
            )
    if str(baseline_release) == str(candidate_release):
        raise DataError(f"baseline and candidate are both {baseline_release!r}", "compare two different releases")
    both = valid[valid["release"].isin([str(baseline_release), str(candidate_release)])]
    order = {m: i for i, m in enumerate(METRICS)}
    keys = sorted(
        {(p, m) for p, m in zip(both["page"], both["metric"], strict=True)}, key=lambda k: (k[0], order[k[1]])
    )
    groups = {key: g for key, g in both.groupby(["page", "metric", "release"], sort=False)}
    empty = np.empty(0)
    out = []
    for page, metric in keys:
        b = groups.get((page, metric, str(baseline_release)))
        c = groups.get((page, metric, str(candidate_release)))
        out.append(
            compare_releases(
                empty if b is None else b["value"].to_numpy(dtype=float),
                empty if c is None else c["value"].to_numpy(dtype=float),
                metric=metric,
                alpha=alpha,
                min_effect=min_effect,
                min_p75_change=min_p75_change,
                min_samples=min_samples,
                page=page,
                baseline_release=str(baseline_release),
                candidate_release=str(candidate_release),
            )
        )
    return out


def regressions_first(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """Regressions (largest effect first), then the rest by one-sided p-value, insufficient data last."""
    rank = {REGRESSION: 0, NEGLIGIBLE: 1, NO_CHANGE: 2, IMPROVEMENT: 3, INSUFFICIENT: 4}

    def key(c: Comparison) -> tuple[int, float, float]:
        return (rank.get(c.verdict, 5), -(c.cliffs_delta or 0.0), c.p_value_worse if c.p_value_worse is not None else 1)

    return sorted(comparisons, key=key)


# --- the scaling alert --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    """The response-time rule applied to one probe; truthy when it fired (scale up)."""

    url: str
    fired: bool
    statistic: str  # e.g. "p95 total"
    observed_ms: float | None
    threshold_ms: float
    action: str  # "scale up" | "none" | "investigate"
    message: str

    def __bool__(self) -> bool:
        return self.fired

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def response_time_alert(
    probe: ProbeResult,
    threshold_ms: float = DEFAULT_ALERT_THRESHOLD_MS,
    *,
    statistic: str = DEFAULT_ALERT_STATISTIC,
    phase: str = DEFAULT_ALERT_PHASE,
) -> Alert:
    """The product's scaling rule: response time above ``threshold_ms`` means scale up (the launch system's HPA).

    Response time is the p95 of the ``total`` phase by default: what a visitor waits for the whole response,
    judged on the slow tail a busy service shows first, without reacting to one slow sample as the max or
    p99 of 50 samples would. A probe far from the app can pass ``phase="ttfb"`` so network handshakes, which
    more pods cannot shorten, do not trigger scaling. A probe with no successful sample does not fire: the
    response time is unknown and a service that refuses connections needs investigating, not more pods
    (``action="investigate"``).
    """
    if statistic not in ("p50", "p95", "p99", "mean"):
        raise DataError(f"unknown statistic {statistic!r}", "use p50, p95, p99 or mean")
    if threshold_ms <= 0:
        raise DataError(f"threshold_ms must be positive, got {threshold_ms}", "the product's rule is 100 ms")
    name = f"{statistic} {phase}"
    stats_ = probe.phase(phase)
    if stats_ is None:
        failures = ", ".join(f"{reason}: {n}" for reason, n in probe.failures.items()) or "no samples"
        return Alert(
            url=probe.url,
            fired=False,
            statistic=name,
            observed_ms=None,
            threshold_ms=threshold_ms,
            action="investigate" if probe.status == "failed" else "none",
            message=f"{probe.url}: no {phase} timing to judge ({probe.status}; {failures})",
        )
    observed = float(getattr(stats_, statistic))
    fired = observed > threshold_ms
    verb = "above" if fired else "within"
    return Alert(
        url=probe.url,
        fired=fired,
        statistic=name,
        observed_ms=observed,
        threshold_ms=threshold_ms,
        action="scale up" if fired else "none",
        message=(
            f"{probe.url}: {name} {observed:.0f} ms over {stats_.count} samples is {verb} {threshold_ms:g} ms"
            + (": scale up (HPA)" if fired else "")
        ),
    )
