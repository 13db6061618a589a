"""What a product team reads about one experiment: the recommendation and why, the users per arm and the SRM
check, then every comparison with its fixed-horizon, always-valid and Bayesian numbers, and a lift chart."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from framework2.tasks.charts import figure_to_data_uri, plt
from framework2.tasks.experiments.analysis import Comparison, ExperimentAnalysis
from framework2.tasks.experiments.data import ExperimentData

VERDICT_MARK = {"ship": "✅ ship", "keep running": "⏳ keep running", "stop": "⛔ stop"}
MISSING_SAID = {
    "zero": "counted as 0 (missing = zero)",
    "exclude": "left out, and users with no valued row not analysed (missing = exclude)",
    "quarantine": "quarantined with the reason and left out (missing = quarantine)",
}


def _pct(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x * 100:+.{digits}f} %"


def _p(x: float | None) -> str:
    if x is None:
        return "—"
    return "< 0.0001" if x < 1e-4 else f"{x:.4f}"


def _num(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:.4g}"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _interval(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return "—"
    return f"[{low * 100:+.1f} %, {high * 100:+.1f} %]"


def lift_chart(analysis: ExperimentAnalysis) -> str | None:
    """Relative lift per metric and treatment: the fixed-horizon 95 % CI (thick) inside the always-valid
    confidence sequence (thin), guardrails in orange, zero marked. None when no lift could be computed."""
    rows = [c for c in analysis.comparisons if c.rel_lift is not None and c.scale == "relative"]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(rows) + 1.2))
    labels = []
    for y, c in enumerate(reversed(rows)):
        colour = "#d97706" if c.is_guardrail else ("#15803d" if c.seq_significant else "#1d4ed8")
        # The adjusted intervals, as the significance (and the colour) are.
        seq = (c.seq_ci_adjusted_low, c.seq_ci_adjusted_high)
        if None in seq:
            seq = (c.seq_ci_low, c.seq_ci_high)
        if None not in seq:
            ax.plot([seq[0] * 100, seq[1] * 100], [y, y], color=colour, linewidth=1.2, alpha=0.6)
        fixed = (c.ci_adjusted_low, c.ci_adjusted_high)
        if None not in fixed:
            ax.plot([fixed[0] * 100, fixed[1] * 100], [y, y], color=colour, linewidth=4, solid_capstyle="butt")
        ax.plot([c.rel_lift * 100], [y], "o", color="black", markersize=4)
        labels.append(f"{c.metric}{' (guardrail)' if c.is_guardrail else ''}\n{c.variation} vs {c.control}")
    ax.axvline(0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.set_xlabel("relative lift, % (thick: 95 % CI; thin: always-valid sequence; both adjusted)")
    ax.set_title(f"{analysis.experiment}: {analysis.decision}")
    ax.grid(axis="x", alpha=0.3)
    return figure_to_data_uri(fig)


def history_chart(history: Sequence[tuple[datetime, Mapping[str, Any]]]) -> str | None:
    """The primary metric's lift per treatment at every stored analysis, inside its always-valid sequence: how
    the evidence built up look by look. None with fewer than two analyses."""
    if len(history) < 2:
        return None
    primary = history[-1][1].get("primary_metric")
    series: dict[str, list[tuple[datetime, float, float | None, float | None]]] = {}
    for at, analysis in history:
        for c in analysis.get("comparisons", []):
            if c.get("metric") == primary and c.get("rel_lift") is not None:
                series.setdefault(c["variation"], []).append((at, c["rel_lift"] * 100, *_sequence(c)))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    for variation, points in series.items():
        times = [p[0] for p in points]
        line = ax.plot(times, [p[1] for p in points], marker="o", markersize=3, label=variation)[0]
        bounded = [p for p in points if p[2] is not None and p[3] is not None]
        if bounded:
            times, lows, highs = zip(*[(p[0], p[2], p[3]) for p in bounded], strict=True)
            ax.fill_between(times, lows, highs, alpha=0.15, color=line.get_color())
    ax.axhline(0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_ylabel(f"{primary}: relative lift, %")
    ax.set_title("lift at each analysis, with its always-valid 95 % sequence")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    return figure_to_data_uri(fig)


def _scaled(x: float | None) -> float | None:
    return None if x is None else x * 100


def _sequence(c: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """A stored comparison's always-valid interval in %, adjusted as its p-value was (older analyses: as stored)."""
    if c.get("seq_ci_adjusted_low") is not None:
        return _scaled(c.get("seq_ci_adjusted_low")), _scaled(c.get("seq_ci_adjusted_high"))
    return _scaled(c.get("seq_ci_low")), _scaled(c.get("seq_ci_high"))


def _effect(c: Comparison) -> str:
    """The estimate on the comparison's scale: the relative lift, or the difference on a zero baseline."""
    if c.scale == "absolute" and c.abs_diff is not None:
        return f"{c.abs_diff:+.4g} (difference)"
    return _pct(c.rel_lift)


def _scaled_interval(c: Comparison, low: float | None, high: float | None) -> str:
    if c.scale == "absolute":
        return "—" if low is None or high is None else f"[{low:+.4g}, {high:+.4g}]"
    return _interval(low, high)


def _mde(c: Comparison) -> str:
    """The always-valid test's detectable effect now, with a single planned look's beside it."""
    if c.mde is None:
        return "—"
    show = (lambda x: f"±{x:.4g}") if c.scale == "absolute" else (lambda x: f"±{x * 100:.1f} %")
    if c.mde_sequential is None:
        return f"{show(c.mde)} (one look)"
    return f"{show(c.mde_sequential)} (one look {show(c.mde)})"


def _to_decide(c: Comparison) -> str:
    """More users (and days) the always-valid test needs for the target effect."""
    if c.seq_significant:
        return "decided"
    if c.users_needed is None or c.target_effect is None:
        return "—"
    if c.users_needed == 0:
        return f"enough for ±{c.target_effect * 100:.0f} %"
    days = "" if c.days_needed is None else f" (~{c.days_needed:,.0f} d)"
    return f"+{c.users_needed:,}{days} for ±{c.target_effect * 100:.0f} %"


def _comparison_rows(comparisons: Sequence[Comparison]) -> list[str]:
    rows = []
    for c in comparisons:
        cuped = (
            f"yes, variance −{c.variance_reduction * 100:.0f} %" if c.cuped_applied and c.variance_reduction else "no"
        )
        # Adjusted like the sequential p next to it, so the two never disagree.
        seq = (
            _scaled_interval(c, c.seq_ci_adjusted_low, c.seq_ci_adjusted_high)
            if c.seq_ci_adjusted_low is not None
            else _scaled_interval(c, c.seq_ci_low, c.seq_ci_high)
            if c.seq_scale != "absolute"
            else _scaled_interval(c, c.seq_abs_ci_low, c.seq_abs_ci_high)
        )
        loss = (
            "—"
            if c.expected_loss is None
            else (f"{c.expected_loss * 100:.2f} %" if c.scale != "absolute" else f"{c.expected_loss:.4g}")
        )
        rows.append(
            f"| {c.metric}{' 🛡' if c.is_guardrail else ''} | {c.variation} | {_num(c.control_mean)} → "
            f"{_num(c.treatment_mean)} | {_effect(c)} | {_scaled_interval(c, c.ci_adjusted_low, c.ci_adjusted_high)} "
            f"| {_p(c.p_adjusted)} | {_mde(c)} | {_to_decide(c)} | {seq} | {_p(c.seq_p_adjusted)} "
            f"| {'—' if c.chance_to_beat is None else f'{c.chance_to_beat * 100:.1f} %'} "
            f"| {loss} | {cuped} |"
        )
    return rows


def experiment_markdown(
    analysis: ExperimentAnalysis, data: ExperimentData | None = None, *, history: str | None = None
) -> str:
    """The per-experiment artifact: recommendation with its reason, traffic, comparisons, charts (``history``:
    a ``history_chart``), notes."""
    srm = analysis.srm
    users = " · ".join(f"{v}: {analysis.users.get(v, 0):,}" for v in analysis.variations)
    lines = [
        f"# PUXT experiment {analysis.experiment}",
        "",
        f"**{VERDICT_MARK.get(analysis.decision, analysis.decision)}** — {analysis.reason}",
        "",
        f"Users: {users}. Sample ratio check: χ² p = {_p(srm.p_value)}"
        + (
            " — **MISMATCH: the split is not what was configured; no verdict until the assignment is fixed**"
            if srm.flagged
            else " (consistent with the configured split)"
        )
        + ".",
    ]
    if data is not None:
        lines.append(
            f"Exposure rows {data.exposure_rows:,}; excluded: {_count(data.multiple_exposures, 'user')} seen in more "
            f"than one variation, {_count(data.outside_window, 'exposure')} outside the experiment window, "
            f"{_count(data.quarantined_rows, 'quarantined row')} (see the store's quarantine with the reasons)."
        )
        if data.recent_users_per_day is not None:
            lines.append(f"New users lately: {data.recent_users_per_day:,.0f} a day (the rate the days to decide use).")
        for metric, (rows, policy) in data.missing_values.items():
            lines.append(f"⚠ {metric}: {_count(rows, 'event row')} had no value — {MISSING_SAID[policy]}.")
    for breach in analysis.breached_guardrails:
        lines += ["", f"⚠ Guardrail breached: {breach.message}"]
    lines += [
        "",
        "| metric | variation | control → treatment | lift | CI (adj.) | p (adj.) | MDE now | users to decide "
        "| always-valid CI (adj.) | seq. p (adj.) | chance to beat | expected loss | CUPED |",
        "|---|---|---|---:|---|---:|---:|---:|---|---:|---:|---:|---|",
        *(
            _comparison_rows(analysis.comparisons)
            or ["| — | only one arm has data: nothing to compare | | | | | | | | | | | |"]
        ),
    ]
    chart = lift_chart(analysis)
    if chart:
        lines += ["", f"![relative lift]({chart})"]
    if history:
        lines += ["", f"![lift at each analysis]({history})"]
    notes = list(analysis.notes) + [f"{c.metric}/{c.variation}: {n}" for c in analysis.comparisons for n in c.notes]
    if notes:
        lines += ["", "## Notes", "", *(f"- {n}" for n in notes)]
    lines += [
        "",
        "## How to read this",
        "",
        f"- The recommendation follows the always-valid (sequential) test, so it stays trustworthy however often "
        f"the results are looked at; α = {analysis.alpha:g}, {analysis.correction} correction across arms and "
        f"metrics, mixture τ = {analysis.sequential_tau:g} (the relative lift it detects fastest).",
        "- Lift, CI (adj.) and p (adj.) are one fixed-horizon Welch t test on the relative lift (on the difference "
        "where the control is 0), valid only if this is the single planned look. The CI is adjusted with the "
        f"p-value ({analysis.correction}), so it excludes 0 exactly when the result is significant.",
        "- MDE now: the smallest true effect, either way, this sample detects with 80 % power by the always-valid "
        "test the recommendation follows, and in brackets by a single planned look (Bonferroni over the "
        "comparisons); an effect smaller than it can exist unseen. Users to decide: how many "
        "more users (both arms; days at the recent rate of new users) the always-valid test, which the "
        "recommendation follows, needs to detect the stated lift with 80 % power — more than a single planned look "
        "would need, the price of looking every day.",
        "- Chance to beat, expected loss: the normal posterior of the same estimate, under each metric's prior: "
        + _priors(analysis.comparisons)
        + ".",
        "- CUPED uses each user's same metric in the pre-period as a covariate; the variance it removed is shown.",
    ]
    return "\n".join(lines)


def _priors(comparisons: Sequence[Comparison]) -> str:
    """Each metric's prior, as its Bayesian result names it."""
    seen: dict[str, str] = {}
    for c in comparisons:
        if c.bayes_method and c.metric not in seen:
            seen[c.metric] = c.bayes_method.split(", ", 1)[-1]
    return "; ".join(f"{metric}: {prior}" for metric, prior in seen.items()) or "none computed"
