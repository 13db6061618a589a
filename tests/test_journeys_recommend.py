"""PUXT recommendations on the sample shop (the planted mobile payment problem comes first), slow steps, loops,
the funnel chart and the markdown report."""

from __future__ import annotations

import base64
from datetime import timedelta

import pandas as pd
import pytest

from framework2.sample.journeys import STEPS, sample_journeys
from framework2.tasks.journeys.funnels import funnel, prepare_events
from framework2.tasks.journeys.paths import paths
from framework2.tasks.journeys.recommend import KIND_ORDER, recommend, recommendations_frame
from framework2.tasks.journeys.removal import removal_effects
from framework2.tasks.journeys.report import funnel_chart, journeys_markdown

T0 = pd.Timestamp("2025-01-01", tz="UTC")


@pytest.fixture(scope="module")
def shop() -> tuple:
    prepared = prepare_events(sample_journeys(n_users=5000, seed=0))
    f = funnel(prepared, list(STEPS), window=timedelta(days=1), segment_by="segment")
    p = paths(prepared, goal="purchase")
    r = removal_effects(prepared, "purchase")
    return f, p, r, recommend(f, p, r)


def test_sample_plants_the_mobile_payment_gap(shop: tuple) -> None:
    f, _, _, _ = shop
    flags = f.flags[f.flags["difference"] < 0]
    assert flags[["segment", "from_step", "to_step"]].values.tolist() == [["mobile", "payment", "purchase"]]
    worst = flags.iloc[0]
    assert worst["rate"] == pytest.approx(0.4, abs=0.07) and worst["rest_rate"] == pytest.approx(0.8, abs=0.07)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mobile_payment_is_the_top_recommendation(seed: int) -> None:
    prepared = prepare_events(sample_journeys(n_users=5000, seed=seed))
    f = funnel(prepared, list(STEPS), window=timedelta(days=1), segment_by="segment")
    recs = recommend(f, paths(prepared, goal="purchase"), removal_effects(prepared, "purchase"))
    top = recs[0]
    assert (top.kind, top.segment, top.step) == ("segment", "mobile", "payment")
    assert "mobile" in top.title and "payment" in top.title
    assert top.impact > 1.5 * recs[1].impact
    assert top.evidence["p_value"] < 0.01 and top.evidence["difference"] < 0
    assert "conversions per week" in top.reason and "%" in top.reason


def test_ranking_is_by_impact_and_deterministic(shop: tuple) -> None:
    f, p, r, recs = shop
    keys = [(-round(x.impact, 9), KIND_ORDER[x.kind], x.title) for x in recs]
    assert keys == sorted(keys)
    assert [x.title for x in recommend(f, p, r)] == [x.title for x in recs]
    kinds = {x.kind for x in recs}
    assert {"segment", "drop_off", "loop_path"} <= kinds
    loop = next(x for x in recs if x.kind == "loop_path")
    assert "search" in loop.title and loop.evidence["repeated"] == ["product_view"]
    drop = next(x for x in recs if x.kind == "drop_off" and x.step == "product_view")
    assert drop.evidence["removal_share"] == pytest.approx(r.share_of("product_view"))
    table = recommendations_frame(recs)
    assert table["rank"].tolist() == list(range(1, len(recs) + 1))


def test_drop_off_impact_formula(shop: tuple) -> None:
    f, _, _, recs = shop
    rec = next(x for x in recs if x.kind == "drop_off" and x.step == "add_to_cart")
    t = f.table.set_index("step")
    expected = 0.1 * t.loc["add_to_cart", "drop_off"] * t.loc["purchase", "users"] / t.loc["checkout_start", "users"]
    assert rec.impact == pytest.approx(expected * 7 / f.span_days)


def _slow_events() -> pd.DataFrame:
    """40 users through a → b → c → d; b → c takes about two hours, the other steps a minute."""
    rows = []
    for u in range(40):
        minutes = [0, 1 + u % 3, 120 + u * 3, 121 + u * 3 + u % 2]
        for event, m in zip("abcd", minutes[: 2 + (u % 4 != 0) + (u % 4 > 1)], strict=False):
            rows.append({"user": f"u{u}", "event": event, "timestamp": T0 + pd.Timedelta(minutes=m)})
    return pd.DataFrame(rows)


def test_slow_step_is_recommended_without_paths() -> None:
    f = funnel(_slow_events(), list("abcd"), window=timedelta(days=1))
    recs = recommend(f)
    slow = [x for x in recs if x.kind == "slow_step"]
    assert [x.title for x in slow] == ["Speed up b → c"]
    assert slow[0].evidence["p90_seconds"] > 3 * slow[0].evidence["typical_p90_seconds"]
    assert all(x.kind in {"drop_off", "slow_step"} for x in recs)


def test_funnel_chart_is_a_png_data_uri(shop: tuple) -> None:
    f = shop[0]
    for uri in (funnel_chart(f), funnel_chart(f, by_segment=False)):
        assert uri.startswith("data:image/png;base64,")
        assert base64.b64decode(uri.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_markdown_report(shop: tuple) -> None:
    f, p, r, recs = shop
    md = journeys_markdown(f, p, r, recs)
    assert md.startswith("# PUXT user journeys")
    assert "![funnel](data:image/png;base64," in md
    for heading in ("## Recommendations", "## Funnel", "### By segment", "## Top session paths", "## Removal effects"):
        assert heading in md
    assert md.index("Fix the payment step for mobile") < md.index("## Funnel")
    assert "| payment | 1.00 |" in md
    assert "within 1 day" in md


def test_markdown_with_quarantine_and_nothing_to_recommend() -> None:
    events = pd.DataFrame(
        {"user": ["a", "a", None], "event": ["x", "y", "x"], "timestamp": [T0, T0 + pd.Timedelta(minutes=1), T0]}
    )
    f = funnel(events, ["x", "y"], window=timedelta(hours=1))
    recs = recommend(f, None, None)
    assert recs == []
    md = journeys_markdown(f, None, None, recs, chart="data:image/png;base64,AAAA")
    assert "Nothing stands out" in md and "## Data quality" in md and "user is missing" in md
