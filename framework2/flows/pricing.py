"""PPIS — hourly pricing intelligence.

Pipeline: load and validate catalogue + sales → collect competitor feeds (stale fallback) → price index
and positioning → elasticities (pooled) → guarded profit-optimal prices → approval for large changes →
store everything with the run → artifacts (recommendations, positioning chart, what changed) → events.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import pandas as pd
from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.context import get_run_context
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field

from framework2.config import CompetitorRule, PricingGuardrails, get_settings
from framework2.events import emit
from framework2.store import pricing as store
from framework2.store.engine import open_store
from framework2.store.runs import finish_run, start_run
from framework2.systems import SystemResult
from framework2.tasks.pricing.market import undercuts
from framework2.tasks.pricing.report import (
    positioning_chart,
    projected_totals,
    recommendation_rows,
    summary_markdown,
)
from framework2.tasks.pricing.steps import SYSTEM, collect_market, estimate, load_inputs, position, recommend

MODEL_VERSION = "ppis-poisson-pooled-1"


class PriceApproval(RunInput):
    """The form shown in the Prefect UI when price changes exceed the approval band."""

    decision: Literal["approve all", "reject all", "approve selected"] = "reject all"
    approved_skus: list[str] = Field(default_factory=list, description="SKUs to approve with 'approve selected'.")
    approver: str = Field(..., description="Who decided (stored with each recommendation).")
    note: str = Field("", description="Why (stored with each recommendation).")


def decide_statuses(recs: pd.DataFrame, mode: str) -> pd.Series:
    """Status before any approval: unchanged, applied (inside the band), pending_approval, or advisory."""
    unchanged = recs["recommended_price"].round(2) == recs["current_price"].round(2)
    status = np.where(unchanged, "unchanged", np.where(recs["needs_approval"], "pending_approval", "applied"))
    if mode == "advisory":
        status = np.where(unchanged, "unchanged", "advisory")
    return pd.Series(status, index=recs.index, dtype=object)


def apply_approval(status: pd.Series, approval: PriceApproval) -> pd.Series:
    """Turn pending changes into approved/rejected by the person's decision."""
    pending = status == "pending_approval"
    if approval.decision == "approve all":
        chosen = pending
    elif approval.decision == "approve selected":
        chosen = pending & status.index.isin(approval.approved_skus)
    else:
        chosen = pending & False
    return status.mask(chosen, "approved").mask(pending & ~chosen, "rejected")


def position_changes(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """SKUs whose market position label changed between two runs."""
    joined = before[["position"]].join(after[["position"]], lsuffix="_before", how="inner")
    changed = joined[joined["position_before"] != joined["position"]]
    return changed.rename(columns={"position_before": "before", "position": "after"})


@flow(
    name="ppis-hourly-pricing",
    description="PPIS: competitor positioning, elasticities and guarded price recommendations, hourly.",
)
def hourly_pricing(
    feeds: list[str] | None = None,
    guardrails: PricingGuardrails | None = None,
    competitor_rules: list[CompetitorRule] | None = None,
    approval_wait_seconds: Annotated[
        int | None, Field(ge=0, description="Seconds to wait for approval of large changes; 0 leaves them pending.")
    ] = None,
    history_days: Annotated[int | None, Field(ge=7, description="Days of sales history to estimate from.")] = None,
) -> SystemResult:
    """Analyse the market and recommend prices; unset parameters come from framework2.toml [ppis]."""
    logger = get_run_logger()
    settings = get_settings()
    cfg = settings.ppis
    policy = guardrails or cfg.guardrails
    rules = competitor_rules if competitor_rules is not None else cfg.competitor_rules
    feed_names = (feeds if feeds is not None else cfg.feeds) if cfg.competitor_tracking else []
    wait = int(cfg.approval_wait.total_seconds()) if approval_wait_seconds is None else approval_wait_seconds
    days = history_days or cfg.history_days
    engine = open_store(settings)
    flow_run = get_run_context().flow_run
    parameters = {
        "feeds": feed_names,
        "guardrails": policy,
        "competitor_rules": rules,
        "approval_wait_seconds": wait,
        "history_days": days,
        "mode": cfg.pricing_optimization,
    }
    run_id = start_run(
        engine,
        SYSTEM,
        parameters=parameters,
        flow_run_id=str(flow_run.id) if flow_run else None,
        model_version=MODEL_VERSION,
    )
    progress = create_progress_artifact(0.0, key="ppis-progress", description="PPIS run progress")
    inputs_identity: dict = {}
    try:
        inputs = load_inputs(engine, run_id, days)
        inputs_identity = {
            "store": str(engine.url.render_as_string(hide_password=True)),
            "sales_window": inputs.window,
            "skus": len(inputs.catalogue),
            "sales_rows": len(inputs.sales),
            "feeds": feed_names,
        }
        update_progress_artifact(progress, 15.0)
        market = collect_market(engine, run_id, feed_names, cfg, inputs.known_prices)
        inputs_identity["offers"] = len(market.offers)
        inputs_identity["feed_states"] = {f.feed: f.state for f in market.feeds}
        update_progress_artifact(progress, 35.0)

        positions = position(inputs.catalogue, market.offers, rules, policy)
        alerts = undercuts(inputs.catalogue, positions, cfg.undercut_alert_pct)
        update_progress_artifact(progress, 50.0)

        recs = pd.DataFrame({"status": pd.Series(dtype=object)})  # no recommendations unless made below
        applied = 0
        status_counts: dict[str, int] = {}
        if inputs.catalogue.empty:
            logger.warning("the catalogue is empty: nothing to price (load products into the store)")
        elif cfg.pricing_optimization != "off" and inputs.sales.empty:
            logger.warning("no sales in the last %d days: no elasticities, so no recommendations this run", days)
        elif cfg.pricing_optimization != "off":
            elasticities = estimate(inputs.sales, inputs.catalogue)
            update_progress_artifact(progress, 70.0)
            recs = recommend(inputs.catalogue, elasticities, positions, inputs.sales, policy)
            recs["status"] = decide_statuses(recs, cfg.pricing_optimization)
            pending = int((recs["status"] == "pending_approval").sum())
            if pending and wait > 0:
                recs["status"] = _ask_for_approval(recs, pending, wait, logger)
            status_counts = recs["status"].value_counts().to_dict()
        applied = store.save_results(
            engine,
            run_id,
            positions=positions,
            our_prices=inputs.catalogue.set_index("sku")["price"],
            recommendations=recs,
            apply=cfg.pricing_optimization == "dynamic",
        )
        update_progress_artifact(progress, 85.0)

        previous = store.previous_completed_run(engine, SYSTEM, before=run_id)
        changes = position_changes(store.positions_of_run(engine, previous.id), positions) if previous else None
        totals = projected_totals(recs, recs["status"].isin(["applied", "approved", "pending_approval"]))
        chart = positioning_chart(positions, inputs.catalogue, recs if len(recs) else None)
        feed_quarantine = {f"feed:{f.feed}": f.quarantined for f in market.feeds}
        quarantined = inputs.quarantined | feed_quarantine
        create_markdown_artifact(
            key="ppis-summary",
            markdown=summary_markdown(
                n_skus=len(inputs.catalogue),
                feeds=market.feeds,
                status_counts=status_counts,
                totals=totals,
                quarantined=quarantined,
                undercuts=alerts,
                position_changes=changes,
                previous_run_at=previous.started_at.strftime("%Y-%m-%d %H:%M UTC") if previous else None,
                chart_uri=chart,
            ),
            description="PPIS: what changed since the last run, feeds, positioning chart",
        )
        if len(recs):
            create_table_artifact(
                key="ppis-recommendations",
                table=recommendation_rows(recs),
                description="Largest expected profit effects first, each with why",
            )
        if len(alerts):
            emit(
                SYSTEM,
                "competitor.undercut",
                {
                    "count": len(alerts),
                    "threshold": cfg.undercut_alert_pct,
                    "top": alerts.head(20).reset_index().to_dict("records"),
                },
            )

        quality = _quality(market.feeds, len(market.offers), sum(feed_quarantine.values()))
        gaps = []
        if inputs.catalogue.empty:
            gaps.append("catalogue is empty")
            quality = 0.0
        elif inputs.sales.empty and cfg.pricing_optimization != "off":
            gaps.append(f"no sales in the last {days} days, so no recommendations")
            quality = round(quality * 0.5, 4)
        summary = (
            ("; ".join(gaps).upper() + " — " if gaps else "")
            + f"{len(inputs.catalogue)} SKUs: {applied} price changes applied, "
            f"{status_counts.get('pending_approval', 0)} await approval; feeds "
            + (", ".join(f"{f.feed} {f.state}" for f in market.feeds) or "none")
            + f"; profit if all take effect {totals.profit:+,.2f}/day"
            + f" [{totals.profit_low:+,.2f}, {totals.profit_high:+,.2f}]"
        )
        metrics = {
            "skus": len(inputs.catalogue),
            "applied": applied,
            "status_counts": status_counts,
            "undercuts": len(alerts),
            "profit_delta_per_day": totals.profit,
            "profit_delta_band": [totals.profit_low, totals.profit_high],
            "quarantined": quarantined,
            "feeds": {f.feed: f.state for f in market.feeds},
        }
        finish_run(
            engine,
            run_id,
            status="completed",
            inputs=inputs_identity,
            outcome={"summary": summary, "quality": quality, "metrics": metrics},
        )
        update_progress_artifact(progress, 100.0)
        logger.info(summary)
        return SystemResult(system=SYSTEM, run_id=run_id, summary=summary, quality=quality, metrics=metrics)
    except BaseException as exc:
        finish_run(engine, run_id, status="failed", inputs=inputs_identity, error=f"{type(exc).__name__}: {exc}")
        raise


def _ask_for_approval(recs: pd.DataFrame, pending: int, wait: int, logger) -> pd.Series:  # type: ignore[no-untyped-def]
    """Pause the run with a form in the UI; without an answer in time the changes stay pending."""
    largest = recs[recs["status"] == "pending_approval"].sort_values("change_pct", key=abs, ascending=False)
    listing = "\n".join(
        f"| {sku} | {r['current_price']:.2f} | {r['recommended_price']:.2f} | {100 * r['change_pct']:+.1f} % "
        f"| {r['explanation']} |"
        for sku, r in largest.head(25).iterrows()
    )
    create_markdown_artifact(
        key="ppis-approval-request",
        markdown=f"# {pending} price changes need approval\n\n| SKU | Current | Proposed | Change | Why |\n"
        f"|---|---:|---:|---:|---|\n{listing}\n",
    )
    logger.info("%d changes exceed the approval band; waiting up to %d s for a decision in the UI", pending, wait)
    try:
        approval = pause_flow_run(wait_for_input=PriceApproval, timeout=wait, poll_interval=min(5, max(1, wait // 4)))
    except FlowPauseTimeout:
        logger.warning("no decision within %d s; %d changes stay pending approval, not applied", wait, pending)
        return recs["status"]
    logger.info("approval by %s: %s", approval.approver, approval.decision)
    status = apply_approval(recs["status"], approval)
    recs["decided_by"] = approval.approver
    recs["decision_note"] = approval.note
    return status


def _quality(feeds, offers: int, quarantined: int) -> float:  # type: ignore[no-untyped-def]
    """1.0 when every feed is fresh and clean; stale feeds count half, unavailable ones nothing."""
    if not feeds:
        return 1.0
    feed_score = sum({"fresh": 1.0, "stale": 0.5}.get(f.state, 0.0) for f in feeds) / len(feeds)
    bad_share = quarantined / max(offers + quarantined, 1)
    return round(feed_score * (1 - min(0.5, bad_share)), 4)
