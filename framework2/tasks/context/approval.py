"""Approval of a requirement change the policy will not accept on its own: the form, and the deadline.

The run pauses with this form in the Prefect UI. At ``[pces] approvalWait`` a watchdog answers it with
"leave pending" (Prefect would fail a run whose pause times out), so the run completes and the change stays
``pending_approval`` — visible in the store and the artifact for a person to decide later.
"""

from __future__ import annotations

import logging
import threading
from typing import Literal
from uuid import UUID

from prefect.input import RunInput
from pydantic import Field

from framework2.tasks.deadline import answer_at_deadline


class ChangeApproval(RunInput):
    """The form shown in the Prefect UI when a requirement change needs approval."""

    decision: Literal["leave pending", "approve", "reject"] = Field(
        "leave pending", description="Accept the change into the plan, reject it, or decide later."
    )
    approver: str = Field(..., min_length=1, description="Who decided (stored with the change).")
    note: str = Field("", description="Why (stored with the change, and sent to the stakeholders).")


STATUS = {"approve": "approved", "reject": "rejected", "leave pending": "pending_approval"}


def start_deadline(flow_run_id: UUID, wait_seconds: float, logger: logging.Logger) -> threading.Timer:
    """Answer the form with "leave pending" after ``wait_seconds`` unless a person answered first."""
    answer = ChangeApproval(decision="leave pending", approver=f"framework2: no decision within {wait_seconds:.0f} s")
    return answer_at_deadline(flow_run_id, wait_seconds, answer.model_dump(), logger)
