"""Answer a paused run's form at a deadline, so a pause never ends in Prefect's timeout failure.

Prefect fails a paused run whose pause times out. Flows that pause for a person instead start this
watchdog: at the deadline it resumes the run with a stated default answer, and the run carries on with
that answer (recorded as given by "framework2: no decision within N s").
"""

from __future__ import annotations

import contextvars
import logging
import threading
from typing import Any
from uuid import UUID

from prefect.flow_runs import resume_flow_run


def answer_at_deadline(
    flow_run_id: UUID, wait_seconds: float, answer: dict[str, Any], logger: logging.Logger
) -> threading.Timer:
    """Resume ``flow_run_id`` with ``answer`` after ``wait_seconds`` unless a person answered first."""
    context = contextvars.copy_context()  # the run's Prefect settings (API URL) for the timer thread

    def resume() -> None:
        try:
            resume_flow_run(flow_run_id, run_input=answer)
        except Exception as exc:  # a person answered at the same moment: nothing to do
            logger.debug("deadline resume not needed: %s", exc)

    timer = threading.Timer(wait_seconds, lambda: context.run(resume))
    timer.daemon = True
    timer.start()
    return timer
