"""What a pricing analyst reads: the recommendations table, the positioning chart, the hourly summary."""

from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from framework2.tasks.charts import figure_to_data_uri


@dataclass
class FeedStatus:
    """How one feed fared this run: fresh, stale (last good snapshot used) or unavailable."""

    feed: str
    competitor: str
    state: str  # "fresh" | "stale" | "unavailable"
    offers: int = 0
    quarantined: int = 0
    reason: str | None = None
    snapshot_age_minutes: float | None = None

    def describe(self) -> str:
        if self.state == "fresh":
            return f"{self.feed}: fresh, {self.offers} offers ({self.quarantined} quarantined)"
        if self.state == "stale":
            return (
                f"{self.feed}: STALE — {self.reason}; using the last good snapshot from "
                f"{self.snapshot_age_minutes:.0f} min ago ({self.offers} offers)"
            )
        return f"{self.feed}: UNAVAILABLE — {self.reason}; no snapshot young enough, left out of the analysis"


@dataclass
class Totals:
    """Projected per-day effect of the changes, summed with independence between SKUs assumed."""

    profit: float
    profit_low: float
    profit_high: float
    revenue: float
    changes: int


_Z90 = 1.6448536269514722


def projected_totals(recs: pd.DataFrame, mask: pd.Series) -> Totals:
    """Sum per-SKU deltas; the 90 % band of the sum treats SKUs as independent (half-width in quadrature)."""
    if recs.empty:
        return Totals(0.0, 0.0, 0.0, 0.0, 0)
    part = recs[mask]
    if part.empty:
        return Totals(0.0, 0.0, 0.0, 0.0, 0)
    sd = (part["profit_delta_high"] - part["profit_delta_low"]).fillna(0) / (2 * _Z90)
    total = float(part["profit_delta"].fillna(0).sum())
    half = _Z90 * math.sqrt(float((sd**2).sum()))
    return Totals(total, total - half, total + half, float(part["revenue_delta"].fillna(0).sum()), len(part))


def recommendation_rows(recs: pd.DataFrame, limit: int = 50) -> list[dict]:
    """The changes with the largest expected profit effect first, each with its reason."""
    changed = recs[recs["recommended_price"].round(2) != recs["current_price"].round(2)]
    top = changed.reindex(changed["profit_delta"].abs().sort_values(ascending=False).index).head(limit)
    rows = []
    for sku, r in top.iterrows():
        rows.append(
            {
                "sku": sku,
                "category": r["category"],
                "current": round(float(r["current_price"]), 2),
                "recommended": round(float(r["recommended_price"]), 2),
                "change_%": round(100 * float(r["change_pct"]), 1),
                "binding": r["binding_guardrail"] or "—",
                "elasticity": _interval(r["elasticity"], r["elasticity_low"], r["elasticity_high"]),
                "profit_Δ/day": _interval(r["profit_delta"], r["profit_delta_low"], r["profit_delta_high"]),
                "odds_gain": _odds(r.get("gain_odds")),
                "status": r["status"],
                "why": r["explanation"],
            }
        )
    return rows


def _odds(value: object) -> str:
    """P(profit gain) as a percentage; a dash where there is none (no elasticity, no move)."""
    if value is None or not isinstance(value, int | float) or not math.isfinite(value):
        return "—"
    return f"{value:.0%}"


def held_for_confidence(recs: pd.DataFrame) -> pd.DataFrame:
    """The SKUs whose move was held because its odds of raising profit were under the run's bar
    (``min_confidence``, raised by ``max_losing_share``)."""
    if recs.empty or "binding_guardrail" not in recs.columns:
        return recs.iloc[0:0]
    return recs[recs["binding_guardrail"] == "low_confidence"]


def _interval(mid: float, low: float, high: float) -> str:
    if mid is None or (isinstance(mid, float) and np.isnan(mid)):
        return "—"
    return f"{mid:.2f} [{low:.2f}, {high:.2f}]"


def positioning_chart(positions: pd.DataFrame, catalogue: pd.DataFrame, recs: pd.DataFrame | None = None) -> str:
    """A PNG (data URI): price index by category, position counts, and recommended moves."""
    data = positions.join(catalogue.set_index("sku")["category"], how="left")
    have = data.dropna(subset=["index_vs_avg"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    categories = sorted(have["category"].unique())
    if categories:
        axes[0].boxplot([have.loc[have["category"] == c, "index_vs_avg"] for c in categories], showfliers=False)
        axes[0].set_xticks(range(1, len(categories) + 1), categories, rotation=30, ha="right")
    axes[0].axhline(100, color="grey", linestyle="--", linewidth=1)
    axes[0].set_title("Price index vs market average (100 = parity)")
    axes[0].set_ylabel("our price ÷ avg competitor × 100")
    counts = data["position"].value_counts()
    order = ["cheapest", "below market", "at market", "above market", "most expensive", "no competitor data"]
    counts = counts.reindex([o for o in order if o in counts.index])
    axes[1].barh(counts.index[::-1], counts.to_numpy()[::-1], color="#4C72B0")
    axes[1].set_title("SKUs by market position")
    if recs is not None and len(recs):
        moves = 100 * recs["change_pct"].to_numpy(dtype=float)
        axes[2].hist(moves[np.isfinite(moves)], bins=30, color="#55A868")
        axes[2].set_title("Recommended price change (%)")
        axes[2].set_xlabel("change from current price, %")
    else:
        axes[2].set_axis_off()
    fig.tight_layout()
    return figure_to_data_uri(fig)


def summary_markdown(
    *,
    n_skus: int,
    feeds: list[FeedStatus],
    status_counts: dict[str, int],
    totals: Totals,
    quarantined: dict[str, int],
    undercuts: pd.DataFrame,
    categories: pd.DataFrame,
    position_changes: pd.DataFrame | None,
    previous_run_at: str | None,
    chart_uri: str,
    held: pd.DataFrame | None = None,
) -> str:
    """The hourly summary: what changed since the last run, feed health, and the chart."""
    lines = ["# PPIS hourly pricing", ""]
    count = status_counts.get
    lines.append(
        f"**{n_skus} SKUs analysed.** Applied: {count('applied', 0) + count('approved', 0)}, "
        f"waiting for approval: {count('pending_approval', 0)}, rejected: {count('rejected', 0)}, "
        f"advisory only: {count('advisory', 0)}, unchanged: {count('unchanged', 0)}."
    )
    lines.append(
        f"Projected profit effect of the applied and waiting changes: **{totals.profit:+,.2f}/day** "
        f"(90 % band {totals.profit_low:+,.2f} to {totals.profit_high:+,.2f}); revenue {totals.revenue:+,.2f}/day."
    )
    if held is not None and len(held):
        lines += [
            "",
            f"**{len(held)} moves held for low confidence**: the odds that they raise profit, over the elasticity's "
            "uncertainty, were under the bar this run required (`minConfidence`, raised where more than "
            "`maxLosingShare` of the moves would be expected to lose money); e.g.:",
        ]
        for sku, r in held.head(10).iterrows():
            lines.append(f"  - {sku}: {r['explanation']}")
    lines += ["", "## Since the last run" + (f" ({previous_run_at})" if previous_run_at else ""), ""]
    if position_changes is None:
        lines.append("- First run: nothing to compare with.")
    elif position_changes.empty:
        lines.append("- No SKU changed market position.")
    else:
        lines.append(f"- {len(position_changes)} SKUs changed market position, e.g.:")
        for sku, r in position_changes.head(10).iterrows():
            lines.append(f"  - {sku}: {r['before']} → {r['after']}")
    if len(undercuts):
        lines.append(f"- **{len(undercuts)} SKUs undercut** by a competitor beyond the alert threshold, e.g.:")
        for sku, r in undercuts.head(10).iterrows():
            lines.append(
                f"  - {sku}: {r['competitor']} at {r['competitor_price']:.2f} vs ours {r['our_price']:.2f} "
                f"({100 * r['gap_pct']:.1f} % below)"
            )
    if len(categories):
        lines += [
            "",
            "## By category (revenue-weighted price index vs market average)",
            "",
            "| Category | SKUs | with competitor data | index | cheapest | above market |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, c in categories.iterrows():
            index = "—" if pd.isna(c["index_vs_avg"]) else f"{c['index_vs_avg']:.1f}"
            cheapest = "—" if pd.isna(c["share_cheapest"]) else f"{c['share_cheapest']:.0%}"
            above = "—" if pd.isna(c["share_above_market"]) else f"{c['share_above_market']:.0%}"
            lines.append(f"| {name} | {c['n_skus']} | {c['n_skus_with_data']} | {index} | {cheapest} | {above} |")
    lines += ["", "## Competitor feeds", ""]
    lines += [f"- {f.describe()}" for f in feeds] or ["- none configured (own data only)"]
    lines += ["", "## Quarantined input rows", ""]
    lines += [f"- {source}: {count}" for source, count in quarantined.items() if count] or ["- none"]
    lines += ["", "## Positioning", "", f"![PPIS positioning]({chart_uri})", ""]
    lines.append("Price index convention: our price ÷ competitor price × 100 (above 100 = we are dearer).")
    return "\n".join(lines)
