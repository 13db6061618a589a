"""PPIS reads and writes: catalogue and sales in, snapshots, positions and recommendations out.

Bulk writes go through ``insert(...)`` with lists of dicts (one executemany) because an hourly run may
write hundreds of thousands of rows; each write is one transaction, so a failure leaves nothing half-done.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine

from framework2.store.engine import session_scope
from framework2.store.locks import Lease
from framework2.store.models import (
    AnalysisRun,
    CompetitorOffer,
    FeedSnapshot,
    MarketPosition,
    PriceRecommendation,
    Product,
    SalesRecord,
    utcnow,
)
from framework2.store.runs import as_utc, finish_in, storable

CATALOGUE_COLUMNS = [
    "sku",
    "name",
    "category",
    "cost",
    "price",
    "min_markup",
    "max_markup",
    "max_change_pct",
    "price_ending",
]


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as dicts with NaN turned into None (NULL), numpy scalars into Python ones."""
    clean = frame.astype(object).where(pd.notna(frame), None)
    return clean.to_dict(orient="records")


def load_catalogue(engine: Engine) -> pd.DataFrame:
    """Active products with cost, current price and guardrail overrides."""
    with engine.connect() as conn:
        frame = pd.read_sql(
            select(*[getattr(Product, c) for c in CATALOGUE_COLUMNS]).where(Product.active.is_(True)), conn
        )
    return frame.astype({"cost": float, "price": float})


def load_sales(engine: Engine, since: date) -> pd.DataFrame:
    """Daily sales of active products from ``since`` on, as sku, day (datetime64), price, units, and promo
    (1/0, NaN where a row does not say) when any stored row says; the elasticity fit finds the temporary price
    cuts of SKUs whose rows never say."""
    with engine.connect() as conn:
        frame = pd.read_sql(
            select(SalesRecord.sku, SalesRecord.day, SalesRecord.price, SalesRecord.units, SalesRecord.promo)
            .join(Product, Product.sku == SalesRecord.sku)
            .where(SalesRecord.day >= since, Product.active.is_(True)),
            conn,
        )
    frame["day"] = pd.to_datetime(frame["day"])
    if frame["promo"].notna().any():
        # 1 / 0 where a row says, NaN where it does not: a SKU whose rows never say gets its price cuts found.
        frame["promo"] = pd.to_numeric(frame["promo"].astype(object), errors="coerce").astype(float)
    else:
        frame = frame.drop(columns=["promo"])
    return frame.astype({"price": float, "units": int})


def upsert_catalogue(engine: Engine, catalogue: pd.DataFrame) -> int:
    """Insert or replace products by sku (used by the sample world and imports)."""
    present = [c for c in CATALOGUE_COLUMNS if c in catalogue.columns]
    rows = _records(catalogue[present])
    now = utcnow()
    with session_scope(engine) as session:
        existing = set(session.scalars(select(Product.sku)).all())
        new = [r | {"updated_at": now, "currency": "EUR", "active": True} for r in rows if r["sku"] not in existing]
        if new:
            session.execute(insert(Product), new)
        for row in (r for r in rows if r["sku"] in existing):
            session.execute(update(Product).where(Product.sku == row["sku"]).values(**row, updated_at=now))
    return len(rows)


def replace_sales(engine: Engine, sales: pd.DataFrame) -> int:
    """Replace the sales history of the SKUs in ``sales`` with these rows."""
    frame = sales[[c for c in ("sku", "day", "price", "units", "promo") if c in sales.columns]].copy()
    frame["day"] = pd.to_datetime(frame["day"]).dt.date
    with session_scope(engine) as session:
        skus = frame["sku"].unique().tolist()
        for start in range(0, len(skus), 500):
            session.execute(delete(SalesRecord).where(SalesRecord.sku.in_(skus[start : start + 500])))
        session.execute(insert(SalesRecord), _records(frame))
    return len(frame)


def upsert_sales(engine: Engine, sales: pd.DataFrame) -> int:
    """Insert sales rows, replacing any stored row for the same sku and day (a re-sent day corrects it)."""
    frame = sales[[c for c in ("sku", "day", "price", "units", "promo") if c in sales.columns]].copy()
    if "promo" in frame.columns:
        frame["promo"] = frame["promo"].astype(object).where(frame["promo"].notna(), None)
    frame["day"] = pd.to_datetime(frame["day"]).dt.date
    if frame.empty:
        return 0
    dialect = engine.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:  # pragma: no cover - other databases are not supported stores
        raise NotImplementedError(f"upsert is not implemented for {dialect}")
    statement = dialect_insert(SalesRecord)
    statement = statement.on_conflict_do_update(
        index_elements=["sku", "day"],
        set_={"price": statement.excluded.price, "units": statement.excluded.units}
        | ({"promo": statement.excluded.promo} if "promo" in frame.columns else {}),
    )
    with session_scope(engine) as session:
        session.execute(statement, _records(frame))
    return len(frame)


def save_snapshot(
    engine: Engine,
    *,
    run_id: str | None,
    feed: str,
    competitor: str,
    fetched_at: datetime,
    status: str,
    reason: str | None = None,
    offers: pd.DataFrame | None = None,
    quarantined: int = 0,
) -> int:
    """Store one feed collection attempt and, when it succeeded, its validated offers; returns its id."""
    with session_scope(engine) as session:
        snapshot = FeedSnapshot(
            run_id=run_id,
            feed=feed,
            competitor=competitor,
            fetched_at=fetched_at,
            status=status,
            # A feed's error may quote its own bytes (a field name with NUL): stored as every backend can hold it.
            reason=None if reason is None else storable(reason),
            offer_count=0 if offers is None else len(offers),
            quarantined_count=quarantined,
        )
        session.add(snapshot)
        session.flush()
        if offers is not None and len(offers):
            frame = offers[["competitor", "sku", "price", "in_stock", "observed_at"]].copy()
            frame["observed_at"] = pd.to_datetime(frame["observed_at"], utc=True)
            frame["snapshot_id"] = snapshot.id
            session.execute(insert(CompetitorOffer), _records(frame))
        assert snapshot.id is not None
        return snapshot.id


def last_good_snapshot(
    engine: Engine, feed: str, now: datetime, max_age: timedelta
) -> tuple[FeedSnapshot, pd.DataFrame] | None:
    """The newest successful snapshot of ``feed`` younger than ``max_age``, with its offers."""
    with session_scope(engine) as session:
        snapshot = session.scalars(
            select(FeedSnapshot)
            .where(FeedSnapshot.feed == feed, FeedSnapshot.status == "ok", FeedSnapshot.fetched_at >= now - max_age)
            .order_by(FeedSnapshot.fetched_at.desc())
        ).first()
    if snapshot is None:
        return None
    snapshot.fetched_at = as_utc(snapshot.fetched_at)
    with engine.connect() as conn:
        offers = pd.read_sql(
            select(
                CompetitorOffer.competitor,
                CompetitorOffer.sku,
                CompetitorOffer.price,
                CompetitorOffer.in_stock,
                CompetitorOffer.observed_at,
            ).where(CompetitorOffer.snapshot_id == snapshot.id),
            conn,
        )
    offers["observed_at"] = pd.to_datetime(offers["observed_at"], utc=True)
    offers["in_stock"] = offers["in_stock"].astype(bool)
    offers["feed"] = feed
    return snapshot, offers


def _position_rows(run_id: str, positions: pd.DataFrame, our_prices: pd.Series) -> list[dict]:
    frame = pd.DataFrame(
        {
            "run_id": run_id,
            "sku": positions.index.astype(str),
            "our_price": our_prices.reindex(positions.index).to_numpy(dtype=float),
            "reference_price": positions["reference_price"].to_numpy(dtype=float),
            "min_price": positions["min_price"].to_numpy(dtype=float),
            "index_vs_avg": positions["index_vs_avg"].to_numpy(dtype=float),
            "index_vs_min": positions["index_vs_min"].to_numpy(dtype=float),
            "position": positions["position"].astype(str).to_numpy(),
            "n_offers": positions["n_offers"].fillna(0).to_numpy(dtype=int),
        }
    )
    return _records(frame)


RECOMMENDATION_COLUMNS = [
    "current_price",
    "recommended_price",
    "optimal_price",
    "change_pct",
    "binding_guardrail",
    "conflicts",
    "elasticity",
    "elasticity_low",
    "elasticity_high",
    "profit_delta",
    "profit_delta_low",
    "profit_delta_high",
    "revenue_delta",
    "revenue_delta_low",
    "revenue_delta_high",
    "gain_odds",
    "explanation",
    "status",
]


def _recommendation_rows(run_id: str, recommendations: pd.DataFrame) -> pd.DataFrame:
    extra = [c for c in ("decided_by", "decision_note") if c in recommendations.columns]
    frame = recommendations[RECOMMENDATION_COLUMNS + extra].copy()
    frame["conflicts"] = frame["conflicts"].fillna("")
    frame["explanation"] = frame["explanation"].fillna("")
    frame.insert(0, "sku", recommendations.index.astype(str))
    frame.insert(0, "run_id", run_id)
    frame["created_at"] = utcnow()
    return frame


def apply_prices(session: Any, changes: pd.DataFrame) -> list[str]:
    """Set new prices (sku, current_price, recommended_price) where the stored price is still the one the
    recommendation started from; returns the SKUs left alone because their price changed meanwhile."""
    if changes.empty:
        return []
    skus = changes["sku"].tolist()
    query = select(Product.sku, Product.price).where(Product.sku.in_(skus))
    if session.bind.dialect.name == "postgresql":
        query = query.with_for_update()  # no other run may move these prices until we commit
    stored = dict(session.execute(query).all())
    fresh = [abs(stored.get(s, float("nan")) - c) < 0.005 for s, c in zip(skus, changes["current_price"], strict=True)]
    now = utcnow()
    rows = [
        {"sku": s, "price": float(p), "updated_at": now}
        for s, p, ok in zip(skus, changes["recommended_price"], fresh, strict=True)
        if ok
    ]
    if rows:
        session.execute(update(Product), rows)
    return [s for s, ok in zip(skus, fresh, strict=True) if not ok]


def save_results(
    engine: Engine,
    run_id: str,
    *,
    positions: pd.DataFrame,
    our_prices: pd.Series,
    recommendations: pd.DataFrame,
    apply: bool,
    completion: Callable[[int, list[str]], dict[str, Any]],
    lease: Lease | None = None,
) -> dict[str, Any]:
    """Store a run's positions and recommendations, apply its prices when ``apply``, and mark it finished.

    One transaction: a run leaves all of its results and its "completed" or none of them, and a price never
    changes without the recommendation that explains it. A price that changed since the run read it (a
    newer run, an import) is not overwritten: that recommendation is stored as ``superseded``.
    ``completion(prices changed, superseded SKUs)`` gives the run's final record (status, inputs, outcome),
    written in the same transaction; it is returned. With ``lease`` (the pricing lock), nothing is stored
    unless the lease is still this run's (``LockLost`` otherwise).
    """
    superseded: list[str] = []
    changed = 0
    with session_scope(engine) as session:
        if lease is not None:
            lease.verify(session)  # first: from here to the commit no other run can take the lock over
        if not positions.empty:
            session.execute(insert(MarketPosition), _position_rows(run_id, positions, our_prices))
        if not recommendations.empty:
            frame = _recommendation_rows(run_id, recommendations)
            to_apply = frame[frame["status"].isin(["applied", "approved"])] if apply else frame.iloc[0:0]
            superseded = apply_prices(session, to_apply)
            if superseded:
                stale = frame["sku"].isin(superseded)
                frame.loc[stale, "status"] = "superseded"
                frame.loc[stale, "explanation"] += "; not applied: the price changed after this run read it"
            changed = len(to_apply) - len(superseded)
            session.execute(insert(PriceRecommendation), _records(frame))
        record = completion(changed, superseded)
        finish_in(session, run_id, **record)
    return record


def decide_pending(engine: Engine, run_id: str, approval: Any) -> dict[str, int]:
    """Apply a person's decision to a run's pending changes, after the run ended (one transaction).

    The pending rows are locked (PostgreSQL) and only rows still pending are decided, so two people
    deciding at once cannot relabel each other's applied prices.
    """
    from framework2.errors import DataError
    from framework2.tasks.pricing.approval import apply_approval

    with session_scope(engine) as session:
        query = select(PriceRecommendation).where(
            PriceRecommendation.run_id == run_id, PriceRecommendation.status == "pending_approval"
        )
        if session.bind.dialect.name == "postgresql":
            query = query.with_for_update()
        rows = session.scalars(query).all()
        status, unmatched = apply_approval(pd.Series({r.sku: r.status for r in rows}, dtype=object), approval)
        if unmatched:
            raise DataError(
                f"not waiting for approval in run {run_id}: {', '.join(unmatched[:20])}"
                + (f" and {len(unmatched) - 20} more" if len(unmatched) > 20 else ""),
                hint="nothing was changed; check the SKUs (case matters) against the ppis-approval-request artifact",
            )
        approved = [r for r in rows if status[r.sku] == "approved"]
        changes = pd.DataFrame(
            {
                "sku": [r.sku for r in approved],
                "current_price": [r.current_price for r in approved],
                "recommended_price": [r.recommended_price for r in approved],
            }
        )
        superseded = set(apply_prices(session, changes))
        for r in rows:
            if status[r.sku] == "pending_approval":
                continue
            r.status = "superseded" if r.sku in superseded else status[r.sku]
            r.decided_by, r.decision_note = approval.approver, approval.note
    return {
        "approved": len(approved) - len(superseded),
        "rejected": int((status == "rejected").sum()),
        "superseded": len(superseded),
        "still_pending": int((status == "pending_approval").sum()),
    }


def previous_completed_run(engine: Engine, system: str, before: str) -> AnalysisRun | None:
    """The newest completed run of ``system`` other than ``before``."""
    with session_scope(engine) as session:
        return session.scalars(
            select(AnalysisRun)
            .where(AnalysisRun.system == system, AnalysisRun.status == "completed", AnalysisRun.id != before)
            .order_by(AnalysisRun.started_at.desc())
        ).first()


def positions_of_run(engine: Engine, run_id: str) -> pd.DataFrame:
    """Stored positions of one run, indexed by sku."""
    with engine.connect() as conn:
        frame = pd.read_sql(
            select(
                MarketPosition.sku,
                MarketPosition.position,
                MarketPosition.index_vs_avg,
                MarketPosition.our_price,
                MarketPosition.min_price,
            ).where(MarketPosition.run_id == run_id),
            conn,
        )
    return frame.set_index("sku")
