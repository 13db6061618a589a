"""What a PUXT owner reads after a performance run: release regressions first, then the synthetic probes with their
phase percentiles and scaling alerts, the real-user Web Vitals with their ratings, and every release comparison
with its p-value, effect size and verdict, with ECDF charts of baseline against candidate."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from framework2.tasks.charts import figure_to_data_uri, plt
from framework2.tasks.performance.compare import (
    DEFAULT_ALERT_THRESHOLD_MS,
    DEFAULT_MIN_EFFECT,
    DEFAULT_MIN_P75_CHANGE,
    DEFAULT_MIN_SAMPLES,
    REGRESSION,
    Alert,
    Comparison,
    regressions_first,
    response_time_alert,
)
from framework2.tasks.performance.rum import THRESHOLDS, UNITS
from framework2.tasks.performance.synthetic import PhaseStats, ProbeResult

# More panels than this make each ECDF too small to read; the rest are in the table.
MAX_PANELS = 12
BASELINE_COLOUR = "#8c8c8c"
CANDIDATE_COLOUR = "#2166ac"
REGRESSION_COLOUR = "#b2182b"
# Rows of quarantine reasons shown; the flow stores all of them.
QUARANTINE_REASONS_SHOWN = 5


def _cell(text: object) -> str:
    # A pipe inside a cell would end it.
    return str(text).replace("|", "\\|").replace("\n", " ")


def _num(value: float | None, unit: str) -> str:
    """A value in the metric's unit: whole milliseconds, or three significant digits for unitless CLS."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.0f}" if unit == "ms" else f"{value:.3g}"


def _pct(change: float | None) -> str:
    if change is None or math.isnan(change):
        return "—"
    if math.isinf(change):
        return "from 0"
    rounded = round(change * 100)
    # "-0 %" reads like a change; anything that rounds to zero is shown as unchanged.
    return "±0 %" if rounded == 0 else f"{rounded:+d} %"


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2g}" if value >= 1e-4 else "< 0.0001"


# --- chart --------------------------------------------------------------------------------------------------


def _panels(
    data: Sequence[Comparison] | Mapping[str, tuple[ArrayLike, ArrayLike]],
) -> list[tuple[str, np.ndarray, np.ndarray, bool, str, str]]:
    """(title, baseline, candidate, is regression, baseline name, candidate name) per drawable panel."""
    if isinstance(data, Mapping):
        return [
            (str(label), np.asarray(b, dtype=float), np.asarray(c, dtype=float), False, "baseline", "candidate")
            for label, (b, c) in data.items()
        ]
    return [
        (
            f"{c.label} · {c.verdict}",
            c.baseline,
            c.candidate,
            c.verdict == REGRESSION,
            c.baseline_release or "baseline",
            c.candidate_release or "candidate",
        )
        for c in regressions_first(data)
    ]


def _ecdf(ax: plt.Axes, values: np.ndarray, **style: object) -> None:
    values = np.sort(values[~np.isnan(values)])
    if values.size:
        ax.step(values, np.arange(1, values.size + 1) / values.size, where="post", **style)


def performance_chart(
    data: Sequence[Comparison] | Mapping[str, tuple[ArrayLike, ArrayLike]], *, max_panels: int = MAX_PANELS
) -> str | None:
    """ECDFs of baseline against candidate, one panel per comparison (regressions first, in red), as a PNG data URI.

    ``data`` is a list of :class:`Comparison` or a mapping label -> (baseline values, candidate values). The
    dotted line marks the 75th percentile, where Core Web Vitals are judged: a candidate curve to its right
    there is slower at p75. The x axis ends at the 99th percentile so a long tail does not squash the curves.
    None when nothing has values on both sides.
    """
    panels = [p for p in _panels(data) if p[1].size and p[2].size]
    if not panels:
        return None
    shown = panels[:max_panels]
    ncols = min(3, len(shown))
    nrows = math.ceil(len(shown) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 2.5 * nrows), squeeze=False)
    for ax, (title, base, cand, regression, base_name, cand_name) in zip(axes.flat, shown, strict=False):
        _ecdf(ax, base, color=BASELINE_COLOUR, linewidth=1.3, label=base_name)
        _ecdf(ax, cand, color=REGRESSION_COLOUR if regression else CANDIDATE_COLOUR, linewidth=1.3, label=cand_name)
        ax.axhline(0.75, color="#252525", linestyle=":", linewidth=0.8)
        both = np.concatenate([base, cand])
        # Latency tails are long: cut the axis at the 99th percentile so the body of the curves stays readable.
        low, high = float(np.nanmin(both)), float(np.nanpercentile(both, 99))
        if high > low:
            ax.set_xlim(low, high)
        ax.set_ylim(0, 1.02)
        ax.set_title(title, fontsize=8, color=REGRESSION_COLOUR if regression else "#252525")
        ax.tick_params(labelsize=7)
        if regression:
            for spine in ax.spines.values():
                spine.set_edgecolor(REGRESSION_COLOUR)
                spine.set_linewidth(1.6)
    for ax in list(axes.flat)[len(shown) :]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7, loc="lower right")
    axes.flat[0].set_ylabel("share of samples ≤ x", fontsize=7)
    more = f" (first {len(shown)} of {len(panels)})" if len(panels) > len(shown) else ""
    fig.suptitle(f"Baseline vs candidate, cumulative distribution{more}", fontsize=10)
    fig.tight_layout()
    return figure_to_data_uri(fig)


# --- markdown -----------------------------------------------------------------------------------------------


def _headline(comparisons: Sequence[Comparison], alerts: Sequence[Alert], probes: Sequence[ProbeResult]) -> list[str]:
    lines = []
    regressions = [c for c in comparisons if c.regression]
    if regressions:
        names = ", ".join(c.label for c in regressions)
        lines.append(f"**{len(regressions)} release regression(s)**: {names}.")
    elif comparisons:
        first = comparisons[0]
        lines.append(
            f"No release regression from {first.baseline_release or 'baseline'} to "
            f"{first.candidate_release or 'candidate'} over {len(comparisons)} comparison(s)."
        )
    fired = [a for a in alerts if a.fired]
    if fired:
        lines.append(f"**Scale up**: {len(fired)} of {len(alerts)} probed URL(s) above the response-time threshold.")
    elif alerts:
        lines.append(f"All {len(alerts)} probed URL(s) within the response-time threshold.")
    failed = [p for p in probes if p.status == "failed"]
    if failed:
        lines.append(f"⚠ {len(failed)} URL(s) failed every probe: " + ", ".join(p.url for p in failed) + ".")
    return lines


def _phase(stats: PhaseStats | None, *which: str) -> str:
    if stats is None:
        return "—"
    return " / ".join(f"{getattr(stats, w):.1f}" for w in which)


def _synthetic_section(probes: Sequence[ProbeResult], alerts: Sequence[Alert]) -> list[str]:
    lines = [
        "## Synthetic probes",
        "",
        "Milliseconds; TTFB and total as p50 / p95 / p99, the other phases p50 / p95. Failed samples are counted, "
        "not timed.",
        "",
        "| URL | status | ok / failed | failures | connect | TLS | TTFB | download | total | alert |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    # Alerts pair with probes by position when they line up (the same URL may be probed twice), else by URL.
    by_url = {a.url: a for a in alerts}
    paired = len(alerts) == len(probes) and all(a.url == p.url for a, p in zip(alerts, probes, strict=True))
    for i, p in enumerate(probes):
        failures = ", ".join(f"{reason} ×{n}" for reason, n in p.failures.items()) or "—"
        alert = alerts[i] if paired else by_url.get(p.url)
        alert_text = "—"
        if alert is not None:
            alert_text = f"⚠ {alert.action}" if alert.fired else alert.action
            if alert.observed_ms is not None:
                sign = ">" if alert.fired else "≤"
                alert_text += f" ({alert.statistic} {alert.observed_ms:.0f} {sign} {alert.threshold_ms:g})"
        lines.append(
            f"| {_cell(p.url)} | {p.status} | {p.samples_ok} / {p.samples_failed} | {_cell(failures)} "
            f"| {_phase(p.phase('connect'), 'p50', 'p95')} | {_phase(p.phase('tls'), 'p50', 'p95')} "
            f"| {_phase(p.phase('ttfb'), 'p50', 'p95', 'p99')} | {_phase(p.phase('download'), 'p50', 'p95')} "
            f"| {_phase(p.phase('total'), 'p50', 'p95', 'p99')} | {_cell(alert_text)} |"
        )
    if not probes:
        lines.append("| — | no URLs probed | | | | | | | | |")
    return lines


def _rum_section(summary: pd.DataFrame | None, quarantined: pd.DataFrame | None) -> list[str]:
    lines = ["## Real-user measurements", ""]
    if summary is None or summary.empty:
        lines.append("No real-user measurements.")
    else:
        lines += [
            "Percentiles in ms (CLS unitless); rated at p75, as Core Web Vitals are. Good: share of samples within "
            "the good threshold.",
            "",
            "| page | metric | release | samples | p50 | p75 | p95 | good | rating at p75 |",
            "|---|---|---|---:|---:|---:|---:|---:|---|",
        ]
        for r in summary.itertuples(index=False):
            unit = UNITS.get(str(r.metric), "ms")
            rating = str(r.rating) if r.rating == "good" else f"⚠ {r.rating}"
            lines.append(
                f"| {_cell(r.page)} | {r.metric} | {_cell(r.release)} | {r.count} | {_num(r.p50, unit)} "
                f"| {_num(r.p75, unit)} | {_num(r.p95, unit)} | {r.good_share:.0%} | {rating} |"
            )
    if quarantined is not None and not quarantined.empty:
        counts = quarantined["reason"].value_counts()
        shown = "; ".join(f"{_cell(reason)} ({n})" for reason, n in counts.head(QUARANTINE_REASONS_SHOWN).items())
        more = (
            f"; {len(counts) - QUARANTINE_REASONS_SHOWN} more reason(s)"
            if len(counts) > QUARANTINE_REASONS_SHOWN
            else ""
        )
        lines += ["", f"⚠ {len(quarantined)} row(s) quarantined and left out: {shown}{more}."]
    return lines


def _comparison_section(comparisons: Sequence[Comparison], chart: str | None) -> list[str]:
    if not comparisons:
        return ["## Release comparison", "", "No releases compared."]
    first = comparisons[0]
    lines = [
        f"## Release comparison: {first.baseline_release or 'baseline'} → {first.candidate_release or 'candidate'}",
        "",
    ]
    lines += [
        "Regressions first. Percentiles baseline → candidate (relative change); typical shift: Hodges-Lehmann, "
        "in the metric's unit.",
        "",
        "| page | metric | samples (base / cand) | p50 | p75 | p95 | typical shift | Cliff's δ | p (worse) | verdict |",
        "|---|---|---:|---|---|---|---:|---:|---:|---|",
    ]
    for c in regressions_first(comparisons):
        cells = []
        for q in (50, 75, 95):
            b = c.baseline_percentiles.get(f"p{q}")
            a = c.candidate_percentiles.get(f"p{q}")
            cells.append(f"{_num(b, c.unit)} → {_num(a, c.unit)} ({_pct(c.percentile_change(q))})")
        delta = "—" if c.cliffs_delta is None else f"{c.cliffs_delta:+.2f} ({c.magnitude})"
        shift = "—" if c.hodges_lehmann is None else f"{c.hodges_lehmann:+.3g}"
        verdict = f"**⚠ {c.verdict}**" if c.regression else c.verdict
        lines.append(
            f"| {_cell(c.page or '—')} | {_cell(c.metric)} | {c.n_baseline} / {c.n_candidate} | {' | '.join(cells)} "
            f"| {shift} | {delta} | {_p(c.p_value_worse)} | {verdict} |"
        )
    if chart:
        lines += ["", f"![baseline vs candidate distributions]({chart})"]
    return lines


def _method_section(comparisons: Sequence[Comparison], alerts: Sequence[Alert], threshold_ms: float) -> list[str]:
    c = comparisons[0] if comparisons else None
    alpha = c.alpha if c else 0.01
    min_effect = c.min_effect if c else DEFAULT_MIN_EFFECT
    min_change = c.min_p75_change if c else DEFAULT_MIN_P75_CHANGE
    min_samples = c.min_samples if c else DEFAULT_MIN_SAMPLES
    ratings = ", ".join(
        f"{m} {good:g}/{poor:g}{' ' + UNITS[m] if UNITS[m] else ''}" for m, (good, poor) in THRESHOLDS.items()
    )
    return [
        "## Method",
        "",
        f"- Regression: Mann-Whitney U one-sided p < {alpha:g} (candidate slower) **and** Cliff's δ ≥ {min_effect:g} "
        f"**and** p75 worse by ≥ {min_change:.0%}; fewer than {min_samples} samples on a side: insufficient data. "
        "Typical shift: Hodges-Lehmann median of pairwise differences.",
        f"- Ratings at p75, good up to the first threshold, poor above the second: {ratings}.",
        f"- Scaling alert: {alerts[0].statistic if alerts else 'p95 total'} response time above "
        f"{alerts[0].threshold_ms if alerts else threshold_ms:g} ms → scale up (the launch system's HPA). "
        "Percentiles: numpy linear interpolation.",
    ]


def performance_markdown(
    probes: Sequence[ProbeResult],
    rum_summary: pd.DataFrame | None,
    comparisons: Sequence[Comparison],
    *,
    alerts: Sequence[Alert] | None = None,
    quarantined: pd.DataFrame | None = None,
    chart: str | None = None,
    threshold_ms: float = DEFAULT_ALERT_THRESHOLD_MS,
) -> str:
    """The puxt-performance artifact: headline and regressions first, then the probes (with scaling alerts), the
    RUM table with ratings, the release comparison table with the chart, and how verdicts are made.

    ``alerts`` default to :func:`response_time_alert` of each probe at ``threshold_ms``; ``chart`` defaults to
    :func:`performance_chart` of ``comparisons``; ``quarantined`` (the RUM rows set aside) adds a note.
    """
    if alerts is None:
        alerts = [response_time_alert(p, threshold_ms) for p in probes]
    if chart is None and comparisons:
        chart = performance_chart(comparisons)
    lines = ["# PUXT performance", ""]
    lines += _headline(comparisons, alerts, probes)
    regressions = regressions_first([c for c in comparisons if c.regression])
    if regressions:
        lines += ["", "## Regressions", ""]
        lines += [f"- **{c.label}**: {_cell(c.explanation)}" for c in regressions]
    lines += ["", *_synthetic_section(probes, alerts)]
    lines += ["", *_rum_section(rum_summary, quarantined)]
    lines += ["", *_comparison_section(comparisons, chart)]
    lines += ["", *_method_section(comparisons, alerts, threshold_ms)]
    return "\n".join(lines).rstrip() + "\n"
