"""The demo's walk of one requirement change through the chain: PCES → approval → PPMS → PPOS → people.

After the PSO run the demo edits the sample requirements twice, the way a project lead would:

1. a typo fix in REQ-3 — cosmetic: stored as a version, nothing is re-assessed, forecast or announced;
2. two acceptance criteria added to REQ-1 on open work — substantive: PCES assesses it with PPMS's own forecast,
   the demo's policy (approval from 1 working day of effort) pauses the run for approval, the demo answers the
   form as "demo-lead", the criteria become PPMS tasks, PPMS re-forecasts the project, PPOS re-scores its
   health, and the owner hears twice (the ask, with the run link and deadline, then the decision) on a
   loopback inbox that stands in for Slack.

In production the hops are started by events (``prefect.yaml`` triggers); here the flows are called in order
in-process, so the walk needs no worker. ``tests/test_change_chain.py`` runs the event-driven chain on a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import os
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

REQUIREMENT = "REQ-1"
PROJECT = "sample:shop"
APPROVER = "demo-lead"
NEW_CRITERIA = (
    "- [ ] A guest can pay with a saved wallet",
    "- [ ] A guest can keep the address for the next order",
)
# Approval from one working day of added effort, so the walk shows the pause (the default is 10 days).
DEMO_POLICY = {"approval_min_effort_days": 1.0, "approval_on_risk": "never"}


class Hop(BaseModel):
    """One step of the walk: what ran and what it said."""

    hop: str
    what: str


class ChangeWalk(BaseModel):
    """What the walk saw at each hop, and whether the impact's dates are the ones PPMS published."""

    hops: list[Hop] = Field(default_factory=list)
    impact_p85: str | None = None
    published_p85: str | None = None
    messages: list[str] = Field(default_factory=list, description="Subjects the owner's inbox received.")

    @property
    def agrees(self) -> bool:
        return self.impact_p85 is not None and self.impact_p85 == self.published_p85


class _Inbox(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        length = min(int(self.headers.get("Content-Length") or 0), 1_000_000)
        with contextlib.suppress(ValueError):
            type(self).received.append(json.loads(self.rfile.read(length) or b"{}"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:  # quiet: the walk prints what matters
        return


@contextlib.contextmanager
def loopback_inbox() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook receiver on 127.0.0.1 standing in for a chat channel: (its URL, the JSON bodies received)."""
    handler = type("Inbox", (_Inbox,), {"received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/inbox", handler.received
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    from framework2.config import get_settings

    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()


def _health_move(
    before: float | None, before_parts: dict[str, Any], after: float | None, after_parts: dict[str, Any]
) -> str:
    """'73.9 → 74.7: blocked work 62 → 65, …; scope change 100: <why>' — every component that moved, and the
    scope-change component's reason (it names the requirement)."""
    if after is None:
        return f"no health for {PROJECT}"
    moved = []
    for name, part in after_parts.items():
        old, new = (before_parts.get(name) or {}).get("score"), part.get("score")
        if name != "scope_change" and old is not None and new is not None and abs(new - old) >= 0.5:
            moved.append(f"{part.get('label', name)} {old:.0f} → {new:.0f}")
    scope = after_parts.get("scope_change") or {}
    score = scope.get("score")
    text = f"{PROJECT} {before:.1f} → {after:.1f}" if before is not None else f"{PROJECT} {after:.1f}"
    if moved:
        text += f" ({', '.join(moved)})"
    return text + f"; scope change {score:.0f}: {scope.get('explanation', '')}" if score is not None else text


def _edit(directory: Path, name: str, change: Callable[[str], str]) -> None:
    path = directory / name
    path.write_text(change(path.read_text(encoding="utf-8")), encoding="utf-8")


def walk_a_change(requirements_dir: Path, source: str, say: Callable[[str], Any] = print) -> ChangeWalk:
    """Edit the sample requirements (a typo, then a real change) and follow the real change through every hop."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.flow_runs import resume_flow_run
    from sqlalchemy import select

    from framework2.flows import context as pces
    from framework2.flows import planning as ppms
    from framework2.flows import portfolio as ppos
    from framework2.flows.common import paused_for_input
    from framework2.store.engine import open_store, session_scope
    from framework2.store.models import ChangeImpactRow, PpHealth

    walk = ChangeWalk()
    engine = open_store()

    def health() -> tuple[float | None, dict[str, Any]]:
        """The project's newest health score and its components by name."""
        with session_scope(engine) as session:
            row = session.scalars(
                select(PpHealth).where(PpHealth.project == PROJECT).order_by(PpHealth.id.desc())
            ).first()
            if row is None:
                return None, {}
            return float(row.score), {str(c.get("name")): c for c in row.components}

    with loopback_inbox() as (url, inbox):
        CustomWebhookNotificationBlock(
            name="demo-inbox", url=url, method="POST", json_data={"subject": "{{subject}}", "body": "{{body}}"}
        ).save("demo-inbox", overwrite=True)
        stakeholders = {"ana": {"mode": "immediate", "channel": "custom-webhook/demo-inbox"}}
        with _environment(
            {
                "FRAMEWORK2_PCES__IMPACT_POLICY": json.dumps(DEMO_POLICY),
                "FRAMEWORK2_PCES__STAKEHOLDERS": json.dumps(stakeholders),
            }
        ):
            ppos.project_health()  # a baseline after PCES's first read, so the move below is the change's
            before_score, before_parts = health()
            _edit(requirements_dir, "search/suggestions.md", lambda t: t.replace("types.", "tpyes."))
            typo = pces.ingest(sources=[source])
            walk.hops.append(Hop(hop="typo in REQ-3", what=f"{typo.summary}; nothing was triggered"))

            _edit(
                requirements_dir,
                "checkout/guest-checkout.md",
                lambda t: t.rstrip("\n") + "\n" + "\n".join(NEW_CRITERIA) + "\n",
            )
            ingested = pces.ingest(sources=[source])
            walk.hops.append(Hop(hop="edit REQ-1", what=ingested.summary))

            box: dict[str, Any] = {}
            context = contextvars.copy_context()
            worker = threading.Thread(
                target=context.run, args=(lambda: box.setdefault("outcome", pces.change_impact(REQUIREMENT)),)
            )
            worker.start()
            paused = asyncio.run(paused_for_input("pces-change-impact"))
            with session_scope(engine) as session:
                impact = session.scalars(
                    select(ChangeImpactRow)
                    .where(ChangeImpactRow.requirement == REQUIREMENT)
                    .order_by(ChangeImpactRow.id.desc())
                ).first()
                assert impact is not None
                report, reasons, version = impact.report, list(impact.reasons), impact.version
            walk.impact_p85 = (report.get("schedule_after") or {}).get("p85")
            walk.hops.append(
                Hop(
                    hop="impact (PCES)",
                    what=f"{report['explanation']} Needs approval: {'; '.join(reasons)}.",
                )
            )
            resume_flow_run(
                paused, run_input={"decision": "approve", "approver": APPROVER, "note": "worth it for launch"}
            )
            worker.join(timeout=120)
            outcome = box.get("outcome") or {}
            walk.hops.append(
                Hop(
                    hop="approval",
                    what=f"{REQUIREMENT} v{version} {outcome.get('status', 'not answered')} by {APPROVER}; "
                    f"{len(report.get('added_tasks', []))} tasks entered the plan",
                )
            )

            ppms.forecast(projects=[PROJECT], only_if_changed=True)
            published = ppms.newest_forecast(engine, PROJECT)
            walk.published_p85 = published.p85.isoformat() if published and published.p85 else None
            same = "the same date the impact predicted" if walk.agrees else f"the impact said {walk.impact_p85}"
            walk.hops.append(Hop(hop="re-forecast (PPMS)", what=f"P85 {walk.published_p85}: {same}"))

            ppos.project_health()
            after_score, after_parts = health()
            walk.hops.append(
                Hop(hop="health (PPOS)", what=_health_move(before_score, before_parts, after_score, after_parts))
            )

        walk.messages = [str(m.get("subject", "")) for m in inbox]
        walk.hops.append(
            Hop(
                hop="people",
                what=f"ana's inbox got {len(inbox)} messages at once: " + " | ".join(walk.messages)
                if inbox
                else "no message reached the inbox (see the pces-outbox artifact)",
            )
        )
    for hop in walk.hops:
        say(f"  {hop.hop}: {hop.what}")
    return walk
