"""The plain decisions inside the PPIS flow: which changes apply, wait, or follow a person's answer."""

from __future__ import annotations

import pandas as pd
import pytest

from framework2.flows.pricing import decide_statuses, position_changes
from framework2.tasks.pricing.approval import PriceApproval, apply_approval
from framework2.tasks.pricing.report import projected_totals


def recs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "current_price": [10.0, 10.0, 10.0, 10.0],
            "recommended_price": [10.0, 10.5, 11.5, 8.0],
            "needs_approval": [False, False, True, True],
            "profit_delta": [0.0, 2.0, 5.0, 1.0],
            "profit_delta_low": [0.0, 1.0, 3.0, -1.0],
            "profit_delta_high": [0.0, 3.0, 7.0, 3.0],
            "revenue_delta": [0.0, 1.0, 1.0, 1.0],
        },
        index=pd.Index(["same", "small", "big-up", "big-down"], name="sku"),
    )


def test_dynamic_mode_applies_small_changes_and_holds_large_ones() -> None:
    status = decide_statuses(recs(), "dynamic")
    assert status.to_dict() == {
        "same": "unchanged",
        "small": "applied",
        "big-up": "pending_approval",
        "big-down": "pending_approval",
    }


def test_advisory_mode_applies_nothing_but_still_projects_the_effect() -> None:
    from framework2.flows.pricing import MOVING

    r = recs()
    r["status"] = decide_statuses(r, "advisory")
    assert set(r["status"]) == {"unchanged", "advisory"}
    assert projected_totals(r, r["status"].isin(MOVING)).profit == 8.0


@pytest.mark.parametrize(
    ("decision", "skus", "expected"),
    [
        ("approve all", [], {"big-up": "approved", "big-down": "approved"}),
        ("reject all", [], {"big-up": "rejected", "big-down": "rejected"}),
        ("approve selected", ["big-down", "small"], {"big-up": "rejected", "big-down": "approved"}),
        ("leave pending", [], {"big-up": "pending_approval", "big-down": "pending_approval"}),
    ],
)
def test_approval_decides_only_pending_changes(decision: str, skus: list[str], expected: dict) -> None:
    status = decide_statuses(recs(), "dynamic")
    answer = PriceApproval(decision=decision, approved_skus=skus, approver="ana")
    decided, unmatched = apply_approval(status, answer)
    assert unmatched == (["small"] if "small" in skus else [])  # named but not waiting: reported
    assert decided[["big-up", "big-down"]].to_dict() == expected
    assert decided[["same", "small"]].tolist() == ["unchanged", "applied"]  # untouched by the answer


def test_position_changes_lists_skus_that_moved() -> None:
    before = pd.DataFrame({"position": ["cheapest", "at market", "above market"]}, index=["a", "b", "c"])
    after = pd.DataFrame({"position": ["cheapest", "above market", "above market"]}, index=["a", "b", "d"])
    changes = position_changes(before, after)
    assert changes.to_dict("index") == {"b": {"before": "at market", "after": "above market"}}


def test_projected_totals_add_bands_in_quadrature() -> None:
    r = recs()
    totals = projected_totals(r, pd.Series([False, True, True, False], index=r.index))
    assert totals.profit == 7.0 and totals.changes == 2
    # 90 % half-widths 1 and 2 → combined sqrt(1 + 4)
    assert totals.profit_high - totals.profit == pytest.approx(5**0.5)
    empty = projected_totals(r.iloc[0:0], pd.Series(dtype=bool))
    assert (empty.profit, empty.changes) == (0.0, 0)
