"""PPIS — hourly pricing intelligence.

Pipeline: take the pricing lock (or record the run as skipped) → load and validate catalogue + sales →
collect competitor feeds (stale fallback) → price index and positioning → elasticities (pooled) → guarded
profit-optimal prices → approval for large changes → store results, applied prices and the run's completion
in one transaction → artifacts and events → release the lock.

``ppis-approve-prices`` decides changes a run left pending, after that run has ended.
"""

from __future__ import annotations

from typing import Annotated, Any

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
from pydantic import Field

from framework2.config import CompetitorRule, GuardrailOverrides, get_settings, with_overrides
from framework2.errors import DataError
from framework2.events import emit
from framework2.flows.lifecycle import Exclusive, SystemRun, run_recorded
from framework2.scale import ScaleOut, resolve_scale
from framework2.store import pricing as store
from framework2.store.engine import open_store
from framework2.store.runs import as_utc
from framework2.systems import SYSTEMS, SystemResult
from framework2.tasks.pricing.approval import Decision, PriceApproval, apply_approval, start_deadline
from framework2.tasks.pricing.elasticity import baseline_units
from framework2.tasks.pricing.market import category_positions, undercuts
from framework2.tasks.pricing.partitions import price_catalogue
from framework2.tasks.pricing.report import (
    held_for_confidence,
    positioning_chart,
    projected_totals,
    recommendation_rows,
    summary_markdown,
)
from framework2.tasks.pricing.steps import (
    SYSTEM,
    collect_market,
    load_inputs,
    position,
    quarantine_inputs,
)

MODEL_VERSION = "ppis-poisson-pooled-2"  # 2: projection bands use common random numbers
LOCK = "ppis"  # the store lease one pricing run holds from its start to its end
MOVING = ["applied", "approved", "pending_approval", "advisory"]  # changes the projection is about


def decide_statuses(recs: pd.DataFrame, mode: str) -> pd.Series:
    """Status before any approval: unchanged, applied (inside the band), pending_approval, or advisory."""
    unchanged = recs["recommended_price"].round(2) == recs["current_price"].round(2)
    status = np.where(unchanged, "unchanged", np.where(recs["needs_approval"], "pending_approval", "applied"))
    if mode == "advisory":
        status = np.where(unchanged, "unchanged", "advisory")
    return pd.Series(status, index=recs.index, dtype=object)


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
    guardrails: GuardrailOverrides | None = None,  # type: ignore[valid-type]
    competitor_rules: list[CompetitorRule] | None = None,
    approval_wait_seconds: Annotated[
        int | None, Field(ge=0, description="Seconds to wait for approval of large changes; 0 leaves them pending.")
    ] = None,
    history_days: Annotated[int | None, Field(ge=7, description="Days of sales history to estimate from.")] = None,
    scale: ScaleOut | None = None,
) -> SystemResult:
    """Analyse the market and recommend prices; unset parameters come from framework2.toml [ppis]."""
    logger = get_run_logger()
    settings = get_settings()
    cfg = settings.ppis
    policy = with_overrides(cfg.guardrails, guardrails)
    rules = competitor_rules if competitor_rules is not None else cfg.competitor_rules
    feed_names = (feeds if feeds is not None else cfg.feeds) if cfg.competitor_tracking else []
    wait = int(cfg.approval_wait.total_seconds()) if approval_wait_seconds is None else approval_wait_seconds
    days = history_days or cfg.history_days
    scale_out = resolve_scale(scale, settings.scale)
    engine = open_store(settings)
    parameters = {
        "feeds": feed_names,
        "guardrails": policy,
        "competitor_rules": rules,
        "approval_wait_seconds": wait,
        "history_days": days,
        "mode": cfg.pricing_optimization,
        "scale": scale_out.model_dump(exclude_none=True),
    }

    def body(run: SystemRun) -> SystemResult:
        run_id, lease, identity = run.id, run.lease, run.inputs  # identity: stored with the record however it ends
        progress = create_progress_artifact(0.0, key="ppis-progress", description="PPIS run progress")
        inputs = load_inputs(engine, days)
        inputs.quarantined = quarantine_inputs(engine, run_id, inputs)
        identity.update(
            {
                "store": engine.url.render_as_string(hide_password=True),
                "sales_window": inputs.window,
                "skus": len(inputs.catalogue),
                "sales_rows": len(inputs.sales),
                "feeds": feed_names,
            }
        )
        update_progress_artifact(progress, 15.0)
        market = collect_market(engine, run_id, feed_names, cfg, inputs.known_prices)
        identity |= {"offers": len(market.offers), "feed_states": {f.feed: f.state for f in market.feeds}}
        update_progress_artifact(progress, 35.0)

        positions = position(inputs.catalogue, market.offers, rules, policy)
        alerts = undercuts(inputs.catalogue, positions, cfg.undercut_alert_pct)
        update_progress_artifact(progress, 50.0)

        recs = pd.DataFrame({"status": pd.Series(dtype=object)})  # no recommendations unless made below
        gaps: list[str] = []
        if inputs.catalogue.empty:
            gaps.append("catalogue is empty")
        elif cfg.pricing_optimization != "off" and inputs.sales.empty:
            gaps.append(f"no sales in the last {days} days, so no recommendations")
        elif cfg.pricing_optimization != "off":
            recs = price_catalogue(
                inputs.catalogue, inputs.sales, positions, baseline_units(inputs.sales), policy, scale_out
            )
            update_progress_artifact(progress, 70.0)
            recs["status"] = decide_statuses(recs, cfg.pricing_optimization)
            pending = int((recs["status"] == "pending_approval").sum())
            if pending and wait > 0:
                _ask_for_approval(recs, pending, wait, logger)
        for gap in gaps:
            logger.warning("%s", gap)

        previous = store.previous_completed_run(engine, SYSTEM, before=run_id)
        changes = position_changes(store.positions_of_run(engine, previous.id), positions) if previous else None
        totals = projected_totals(recs, recs["status"].isin(MOVING))
        status_counts = {str(k): int(v) for k, v in recs["status"].value_counts().items()}
        feed_quarantine = {f"feed:{f.feed}": f.quarantined for f in market.feeds}
        quarantined = inputs.quarantined | feed_quarantine
        quality = _quality(market.feeds, len(market.offers), sum(feed_quarantine.values()))
        if inputs.catalogue.empty:
            quality = 0.0
        elif gaps:
            quality = round(quality * 0.5, 4)
        undercut_skus = sorted(map(str, alerts.index))
        seen_before = set((previous.outcome or {}).get("metrics", {}).get("undercut_skus", [])) if previous else set()
        new_undercuts = sorted(set(undercut_skus) - seen_before)
        metrics = {
            "skus": len(inputs.catalogue),
            "status_counts": status_counts,
            "undercuts": len(alerts),
            "undercut_skus": undercut_skus[:1000],
            "profit_delta_per_day": totals.profit,
            "profit_delta_band": [totals.profit_low, totals.profit_high],
            "quarantined": quarantined,
            "feeds": {f.feed: f.state for f in market.feeds},
        }

        def completion(applied: int, superseded: list[str]) -> dict[str, Any]:
            # Keep what is reported (metrics, artifacts) equal to what is stored.
            recs.loc[recs.index.isin(superseded), "status"] = "superseded"
            status_counts.clear()
            status_counts.update({str(k): int(v) for k, v in recs["status"].value_counts().items()})
            metrics.update(applied=applied, superseded=superseded)
            outcome = {
                "summary": _summary(gaps, len(inputs.catalogue), applied, status_counts, market.feeds, totals),
                "quality": quality,
                "metrics": metrics,
            }
            return {"status": "completed", "inputs": identity, "outcome": outcome}

        done = store.save_results(
            engine,
            run_id,
            positions=positions,
            our_prices=inputs.catalogue.set_index("sku")["price"],
            recommendations=recs,
            apply=cfg.pricing_optimization == "dynamic",
            completion=completion,
            lease=lease,
        )
        summary = done["outcome"]["summary"]
        # The results are committed; what follows informs people, and its failure must not undo them.
        _publish(
            logger,
            recs=recs,
            positions=positions,
            inputs=inputs,
            market=market,
            totals=totals,
            status_counts=status_counts,
            quarantined=quarantined,
            alerts=alerts,
            changes=changes,
            previous=previous,
            new_undercuts=new_undercuts,
            threshold=cfg.undercut_alert_pct,
        )
        update_progress_artifact(progress, 100.0)
        logger.info(summary)
        return SystemResult(system=SYSTEM, run_id=run_id, summary=summary, quality=quality, metrics=metrics)

    # One run at a time prices the catalogue, also across workers: the lease lasts as long as a run may (its
    # approval wait included), so a run paused for a person keeps it.
    end = run_recorded(
        SYSTEM,
        body,
        parameters=parameters,
        engine=engine,
        model_version=MODEL_VERSION,
        exclusive=Exclusive(
            LOCK, ttl=SYSTEMS[SYSTEM].run_limit(settings, parameters), label="pricing run", called="pricing"
        ),
        logger=logger,
    )
    if end.status == "skipped":
        return SystemResult(system=SYSTEM, run_id=end.run_id, status="skipped", summary=end.summary)
    return end.value


def _summary(gaps: list[str], n_skus: int, applied: int, counts: dict[str, int], feeds: list, totals: Any) -> str:
    feed_text = ", ".join(f"{f.feed} {f.state}" for f in feeds) or "none"
    return (
        ("; ".join(gaps).upper() + " — " if gaps else "")
        + f"{n_skus} SKUs: {applied} price changes applied, "
        + f"{counts.get('pending_approval', 0)} await approval; feeds {feed_text}; "
        + f"profit if all take effect {totals.profit:+,.2f}/day [{totals.profit_low:+,.2f}, {totals.profit_high:+,.2f}]"
    )


def _publish(
    logger: Any,
    *,
    recs: pd.DataFrame,
    positions: pd.DataFrame,
    inputs: Any,
    market: Any,
    totals: Any,
    status_counts: dict[str, int],
    quarantined: dict[str, int],
    alerts: pd.DataFrame,
    changes: pd.DataFrame | None,
    previous: Any,
    new_undercuts: list[str],
    threshold: float,
) -> None:
    """Artifacts and events for people and automations; best-effort once the results are stored."""
    try:
        chart = positioning_chart(positions, inputs.catalogue, recs if len(recs) else None)
        create_markdown_artifact(
            key="ppis-summary",
            markdown=summary_markdown(
                n_skus=len(inputs.catalogue),
                feeds=market.feeds,
                status_counts=status_counts,
                totals=totals,
                quarantined=quarantined,
                undercuts=alerts,
                categories=category_positions(positions, inputs.catalogue, _recent_revenue(inputs)),
                position_changes=changes,
                previous_run_at=as_utc(previous.started_at).strftime("%Y-%m-%d %H:%M UTC") if previous else None,
                chart_uri=chart,
                held=held_for_confidence(recs),
            ),
            description="PPIS: what changed since the last run, feeds, positioning chart",
        )
        if len(recs):
            create_table_artifact(
                key="ppis-recommendations",
                table=recommendation_rows(recs),
                description="Largest expected profit effects first, each with why",
            )
        if new_undercuts:
            # Only newly undercut SKUs alert, so an ongoing promotion does not notify every hour.
            top = alerts.loc[alerts.index.isin(new_undercuts)].head(20).reset_index().to_dict("records")
            emit(
                SYSTEM,
                "competitor.undercut",
                {"count": len(new_undercuts), "total": len(alerts), "threshold": threshold, "top": top},
            )
    except Exception as exc:
        logger.warning("results are stored, but publishing artifacts/events failed: %s", exc)


def _recent_revenue(inputs: Any) -> pd.Series:
    """Weights for the category index: recent daily units × current price per SKU."""
    if inputs.sales.empty:
        return pd.Series(dtype=float)
    return baseline_units(inputs.sales) * inputs.catalogue.set_index("sku")["price"]


def _ask_for_approval(recs: pd.DataFrame, pending: int, wait: int, logger) -> None:  # type: ignore[no-untyped-def]
    """Pause the run with a form in the UI; at the deadline the changes stay pending and the run goes on."""
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
    deadline = start_deadline(get_run_context().flow_run.id, wait, logger)
    try:
        # The pause itself outlasts the deadline: Prefect fails a run whose pause times out.
        approval = pause_flow_run(wait_for_input=PriceApproval, timeout=wait + 300, poll_interval=min(5, max(1, wait)))
    except FlowPauseTimeout:
        logger.error("no answer to the approval form, not even the deadline's; %d changes stay pending", pending)
        return
    finally:
        deadline.cancel()
    status, unmatched = apply_approval(recs["status"], approval)
    if unmatched:
        logger.warning("approval named SKUs that were not waiting for approval: %s", ", ".join(unmatched[:20]))
    decided = status.isin(["approved", "rejected"])
    recs["status"] = status
    recs["decided_by"] = pd.Series(np.where(decided, approval.approver, None), index=recs.index, dtype=object)
    recs["decision_note"] = pd.Series(np.where(decided, approval.note, None), index=recs.index, dtype=object)
    logger.info("approval by %s: %s (%d decided)", approval.approver, approval.decision, int(decided.sum()))


def _quality(feeds, offers: int, quarantined: int) -> float:  # type: ignore[no-untyped-def]
    """1.0 when every feed is fresh and clean; stale feeds count half, unavailable ones nothing."""
    if not feeds:
        return 1.0
    feed_score = sum({"fresh": 1.0, "stale": 0.5}.get(f.state, 0.0) for f in feeds) / len(feeds)
    bad_share = quarantined / max(offers + quarantined, 1)
    return round(feed_score * (1 - min(0.5, bad_share)), 4)


@flow(name="ppis-approve-prices", description="PPIS: decide price changes a pricing run left waiting for approval.")
def approve_prices(
    approver: str,
    decision: Decision,
    skus: list[str] | None = None,
    note: str = "",
    run_id: str | None = None,
) -> dict[str, int]:
    """Approve or reject the pending changes of the newest pricing run (or ``run_id`` if it is the newest).

    Only the newest run's changes can be applied: an older run's prices were computed from a market that
    has moved on. A price that changed since the run read it is not overwritten (``superseded``). SKUs
    that are not waiting for approval are refused before anything changes.
    """
    logger = get_run_logger()
    engine = open_store()
    newest = store.previous_completed_run(engine, SYSTEM, before="")
    if newest is None:
        raise DataError("there is no completed pricing run", hint="run ppis-hourly-pricing first")
    if run_id is not None and run_id != newest.id:
        raise DataError(
            f"run {run_id} is not the newest pricing run ({newest.id}); its prices are out of date",
            hint="decide the pending changes of the newest run instead (leave run_id empty)",
        )
    if decision == "approve selected" and not skus:
        raise DataError(
            "'approve selected' needs the SKUs to approve", hint="list them in skus, or pick another decision"
        )
    answer = PriceApproval(decision=decision, approved_skus=skus or [], approver=approver, note=note)
    counts = store.decide_pending(engine, newest.id, answer)
    logger.info("%s decided on run %s: %s", approver, newest.id, counts)
    return counts
