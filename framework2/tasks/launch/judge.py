"""PLOS statistical judge: is the new colour measurably worse than the live one?

Samples of one metric (latency, error ratio per scrape) from the baseline (live colour) and the
candidate (new colour) are compared with a one-sided Mann-Whitney U test in the worse direction. It
makes no normality assumption, which suits latencies with their long right tail. Significance alone
is not enough to fail a release: with many samples a shift of a fraction of a percent becomes
significant, so the candidate fails only when the shift of the medians in the worse direction also
exceeds ``effect_tolerance`` (relative to the baseline median).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field
from scipy.stats import mannwhitneyu


class JudgeResult(BaseModel):
    """Verdict on candidate versus baseline samples of one metric."""

    phase: Literal["successful", "failed", "inconclusive"] = Field(..., description="The verdict.")
    p_value: float | None = Field(None, description="One-sided p-value that the candidate is worse; None if untested.")
    baseline_median: float | None = Field(None, description="Median of the baseline samples.")
    candidate_median: float | None = Field(None, description="Median of the candidate samples.")
    relative_change: float | None = Field(
        None, description="(candidate median - baseline median) / |baseline median|; positive means higher."
    )
    reason: str = Field(..., description="Why the verdict, in words.")


def _finite(samples: Sequence[float]) -> np.ndarray:
    values = np.asarray(samples, dtype=float)
    return values[np.isfinite(values)]


def _relative_change(baseline: float, candidate: float) -> float:
    if baseline != 0:
        return (candidate - baseline) / abs(baseline)
    # From a zero baseline any change is unbounded; no change is no change.
    return 0.0 if candidate == 0 else math.copysign(math.inf, candidate)


def compare_samples(
    baseline: Sequence[float],
    candidate: Sequence[float],
    *,
    higher_is_worse: bool,
    effect_tolerance: float = 0.1,
    alpha: float = 0.05,
    min_samples: int = 5,
) -> JudgeResult:
    """Judge candidate samples against baseline samples (non-finite values are dropped first).

    Failed when the candidate is significantly worse (p < ``alpha``) and its median is worse by more
    than ``effect_tolerance`` of the baseline median; inconclusive when either side has fewer than
    ``min_samples`` values; successful otherwise.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    if effect_tolerance < 0:
        raise ValueError(f"effect_tolerance must not be negative, got {effect_tolerance}")
    if min_samples < 1:
        raise ValueError(f"min_samples must be at least 1, got {min_samples}")

    base, cand = _finite(baseline), _finite(candidate)
    if len(base) < min_samples or len(cand) < min_samples:
        return JudgeResult(
            phase="inconclusive",
            baseline_median=float(np.median(base)) if len(base) else None,
            candidate_median=float(np.median(cand)) if len(cand) else None,
            reason=(
                f"too few samples to judge: baseline {len(base)}, candidate {len(cand)}, "
                f"at least {min_samples} each needed"
            ),
        )

    base_median, cand_median = float(np.median(base)), float(np.median(cand))
    change = _relative_change(base_median, cand_median)
    worse_shift = change if higher_is_worse else -change
    # "greater" asks whether the candidate tends to be larger than the baseline.
    alternative = "greater" if higher_is_worse else "less"
    p_value = float(mannwhitneyu(cand, base, alternative=alternative).pvalue)
    if math.isnan(p_value):  # all values tied: no evidence of any difference
        p_value = 1.0

    direction = "higher" if higher_is_worse else "lower"
    medians = f"median {cand_median:.6g} vs baseline {base_median:.6g} ({change:+.1%})"
    significant = p_value < alpha
    if significant and worse_shift > effect_tolerance:
        phase: Literal["successful", "failed"] = "failed"
        reason = (
            f"candidate is significantly {direction} (p={p_value:.3g} < {alpha}) and its {medians} "
            f"exceeds the tolerance of {effect_tolerance:.0%}"
        )
    elif significant:
        phase = "successful"
        reason = (
            f"candidate is significantly {direction} (p={p_value:.3g}) but its {medians} is within the "
            f"tolerance of {effect_tolerance:.0%}"
        )
    else:
        phase = "successful"
        reason = f"no significant worsening (p={p_value:.3g} >= {alpha}); {medians}"
    return JudgeResult(
        phase=phase,
        p_value=p_value,
        baseline_median=base_median,
        candidate_median=cand_median,
        relative_change=change,
        reason=reason,
    )
