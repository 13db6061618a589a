"""Approval of large price changes: the form, what a decision does, and the deadline.

A run pauses with a form in the Prefect UI. Prefect fails a paused run whose pause times out, so the run
does not rely on that: at the deadline a watchdog answers the form itself with "leave pending", the run
completes, and the changes stay ``pending_approval`` for ``ppis-approve-prices`` to decide later.
"""

from __future__ import annotations

import logging
import threading
from typing import Literal
from uuid import UUID

import pandas as pd
from prefect.input import RunInput
from pydantic import Field

from framework2.tasks.deadline import answer_at_deadline

Decision = Literal["leave pending", "approve all", "reject all", "approve selected"]


class PriceApproval(RunInput):
    """The form shown in the Prefect UI when price changes exceed the approval band."""

    decision: Decision = Field("leave pending", description="What to do with the changes waiting for approval.")
    approved_skus: list[str] = Field(default_factory=list, description="SKUs to approve with 'approve selected'.")
    approver: str = Field(..., description="Who decided (stored with each decided recommendation).")
    note: str = Field("", description="Why (stored with each decided recommendation).")


def apply_approval(status: pd.Series, approval: PriceApproval) -> tuple[pd.Series, list[str]]:
    """Turn pending changes into approved/rejected by the decision; also returns SKUs named but not pending."""
    pending = status == "pending_approval"
    unmatched = sorted(set(approval.approved_skus) - set(status.index[pending]))
    if approval.decision == "leave pending":
        return status, unmatched
    if approval.decision == "approve all":
        chosen = pending
    elif approval.decision == "approve selected":
        chosen = pending & status.index.isin(approval.approved_skus)
    else:
        chosen = pending & False
    return status.mask(chosen, "approved").mask(pending & ~chosen, "rejected"), unmatched


def start_deadline(flow_run_id: UUID, wait_seconds: float, logger: logging.Logger) -> threading.Timer:
    """Answer the form with "leave pending" after ``wait_seconds`` unless a person answered first."""
    answer = PriceApproval(decision="leave pending", approver=f"framework2: no decision within {wait_seconds:.0f} s")
    return answer_at_deadline(flow_run_id, wait_seconds, answer.model_dump(), logger)
