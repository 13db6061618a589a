"""PCES stakeholder communication: who hears about a requirement change, what they read, and how it is sent.

Plain functions over plain models: the flow decides when to call them and the store keeps the queue.

Who
---
``stakeholders_for`` derives the audience from ownership only, never from a list someone has to keep up to
date: the requirement's owner, the assignees of the tasks the impact reaches (linked before or after the
change, new and leaving tasks included) and the owners of the components it reaches. A person appears once,
with every role (``"requirement owner"``, ``"assignee of jira:SHOP-12"``, ``"owner of component checkout"``)
so one message can say everything they must do. Task keys and handles are taken verbatim (a handle is only
stripped of surrounding blanks): "Ana" and "ana" may well be two accounts on a chat system. The list is sorted
by handle. A person's ``Preference`` picks the mode and the channel; a person without one gets a daily
digest on the default channel, because one readable summary a day beats a ping per edit. Without an impact
report (impact analysis off or failed) only the requirement owner is told: nothing says who else is touched.

What
----
``change_message`` writes readable markdown: what changed (the diff's summary, criteria added and removed,
fields changed, the start of the body diff), the impact (tasks, components, effort delta with its P10-P90
band, P50/P85 shift, risk with its reasons), the decision with its reasons, and what *this* person has to do
given their roles. One exception to the preference: when the change needs approval, the requirement owner's
message is sent immediately whatever they prefer — the run waits for the decision only ``[pces]
approvalWait`` (4 h by default), so a daily digest would arrive after the window has closed.

``digest`` turns the queued digest messages into one message per (recipient, channel) for the day: a subject
with the count, a list of the changes, then one section per change, newest first. Messages carry no time,
so "newest" is queue order: the caller passes them oldest first, as they were queued. A change key queued
twice for the same person (the same version re-sent) appears once, the newest copy. Immediate messages are
returned unchanged, first and in their order; the digests follow, sorted by recipient and channel.

Delivery
--------
``deliver`` sends one message through a Prefect notification block named like ``[notifications] block``
(``"<block-type-slug>/<name>"``, e.g. ``"custom-webhook/ana"``, ``"slack-webhook/team"``): the message's
channel, else the default. It never raises: a final failure is ``sent=False`` with the error, and the caller
keeps the message queued for the next run.

What the installed Prefect (3.8) does with HTTP failures, read from ``prefect/blocks/notifications.py``:

- ``CustomWebhookNotificationBlock.notify`` sends with httpx and calls ``raise_for_status()``: a 4xx or 5xx
  raises ``httpx.HTTPStatusError``.
- Every apprise-based block (Slack, Teams, Discord, Mattermost, Opsgenie, PagerDuty, Twilio, SendGrid…)
  *swallows* failures: apprise logs "…error=500." and returns False, and the block raises
  ``NotificationError`` (with apprise's log as ``.log``) only while ``block.raise_on_failure()`` is active.
  Called plainly, a 500 from Slack looks exactly like a success. So ``deliver`` always sends inside
  ``raise_on_failure()``; the status code is read back from apprise's "error=NNN" in the log.
- ``notify`` (and ``Block.load``) are ``async_dispatch``-ed: inside an async flow or a running event loop they
  return a coroutine instead of sending, and a coroutine nobody awaits sends nothing. So ``deliver`` asks
  for the sync implementation (``_sync=True``) and awaits anything awaitable a custom block still returns.

Retries: exceptions (connection refused, timeouts, …) and 5xx, 408 and 429 answers are transient and retried
up to ``attempts`` times in all, waiting ``backoff_seconds`` × 1, 2, 4, … in between. Any other 4xx is not
retried — a wrong URL or a revoked token does not heal in seconds — nor is a channel that names no block
(``ConfigError``). The message stays queued either way, so a fixed configuration delivers it on the next run.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from datetime import date, datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field

from framework2.errors import ConfigError
from framework2.sections import Section
from framework2.tasks.context.evolution import FieldChange, RequirementDiff
from framework2.tasks.context.impact import Decision, ImpactReport

Mode = Literal["immediate", "digest"]

OWNER_ROLE = "requirement owner"
ASSIGNEE_ROLE = "assignee of "  # + task key
COMPONENT_ROLE = "owner of component "  # + component name
BODY_DIFF_LINES = 30  # enough to see an edit; the full text is in the store and the artifact
NO_CHANNEL_HINT = (
    "no notification channel: set [notifications] block in framework2.toml (e.g. 'custom-webhook/ops' or "
    "'slack-webhook/ops') or give the person a channel in their preference"
)
# Answers worth retrying: the server is overloaded, restarting or rate-limiting, not refusing the request.
_TRANSIENT_STATUS = frozenset({408, 429})
_APPRISE_STATUS = re.compile(r"error=(\d{3})\b")


# --- Boundary models -----------------------------------------------------------------------------------------


class Preference(Section):
    """How a person wants to hear about requirement changes."""

    handle: str = Field(..., min_length=1)
    mode: Mode = Field("digest", description="Default digest: one readable summary a day beats a ping per edit.")
    channel: str | None = Field(
        None, description="Notification block, e.g. 'custom-webhook/ana' or 'slack-webhook/team'; None: default."
    )


class Stakeholder(BaseModel):
    """A person to tell about a change, every reason why, and how they want to hear it."""

    handle: str
    roles: list[str] = Field(default_factory=list, description="e.g. 'requirement owner', 'assignee of SHOP-12'.")
    mode: Mode = "digest"
    channel: str | None = None


class Message(BaseModel):
    """One notification to one person; the caller queues it until ``deliver`` reports it sent."""

    recipient: str
    mode: Mode
    channel: str | None = None
    subject: str
    body: str = Field(..., description="Markdown.")
    change_keys: list[str] = Field(default_factory=list, description="e.g. ['REQ-12@v3']: what the message covers.")


class Delivery(BaseModel):
    """The outcome of sending one message. ``sent=False``: keep the message queued."""

    message: Message
    sent: bool
    attempts: int = Field(..., description="Sends tried (0 when there was nothing to send through).")
    error: str | None = None


# --- Who -----------------------------------------------------------------------------------------------------


def change_key(requirement_id: str, version: int) -> str:
    """The key a message uses to name one version of a requirement, e.g. ``REQ-12@v3``."""
    return f"{requirement_id}@v{version}"


def stakeholders_for(
    requirement_owner: str | None,
    impact: ImpactReport | None,
    task_assignees: Mapping[str, str],
    component_owners: Mapping[str, str],
    preferences: Mapping[str, Preference],
) -> list[Stakeholder]:
    """Everyone a change concerns, from ownership: the requirement owner, assignees of impacted tasks and owners of
    impacted components; one entry per person with all their roles, sorted by handle, their preference applied."""
    roles: dict[str, list[str]] = {}

    def add(handle: str | None, role: str) -> None:
        handle = (handle or "").strip()
        if handle and role not in roles.setdefault(handle, []):
            roles[handle].append(role)

    add(requirement_owner, OWNER_ROLE)
    if impact is not None:
        for task in sorted(set(impact.tasks) | set(impact.added_tasks) | set(impact.removed_tasks)):
            add(task_assignees.get(task), ASSIGNEE_ROLE + task)
        for component in sorted(impact.components):
            add(component_owners.get(component), COMPONENT_ROLE + component)

    people = []
    for handle in sorted(roles):
        preference = preferences.get(handle) or Preference(handle=handle)
        people.append(Stakeholder(handle=handle, roles=roles[handle], mode=preference.mode, channel=preference.channel))
    return people


# --- What ----------------------------------------------------------------------------------------------------


def _show(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "(none)"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _field_line(change: FieldChange) -> str:
    if isinstance(change.before, list) and isinstance(change.after, list):
        new = [f"+{v}" for v in change.after if v not in change.before]
        gone = [f"-{v}" for v in change.before if v not in change.after]
        return f"`{change.field}`: {', '.join(new + gone)}"
    return f"`{change.field}`: {_show(change.before)} → {_show(change.after)}"


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _fenced(text: str, info: str) -> list[str]:
    """A fenced code block longer than any backtick run inside, so the text cannot close it early."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + info, text, fence]


def _what_changed(diff: RequirementDiff) -> list[str]:
    lines = ["### What changed", "", diff.summary or f"{diff.id} {diff.kind}", ""]
    if diff.criteria_added:
        lines += ["Acceptance criteria added:", *(f"- {_one_line(c)}" for c in diff.criteria_added), ""]
    if diff.criteria_removed:
        lines += ["Acceptance criteria removed:", *(f"- {_one_line(c)}" for c in diff.criteria_removed), ""]
    if diff.fields_changed or diff.fields_added or diff.fields_removed:
        lines.append("Fields:")
        lines += [f"- {_field_line(c)}" for c in diff.fields_changed]
        lines += [f"- `{f}` set" for f in diff.fields_added]
        lines += [f"- `{f}` removed" for f in diff.fields_removed]
        lines.append("")
    if diff.body_diff:
        body = diff.body_diff.split("\n")
        shown = "\n".join(body[:BODY_DIFF_LINES])
        lines += ["Body:", "", *_fenced(shown, "diff")]
        if len(body) > BODY_DIFF_LINES:
            lines.append(f"… {len(body) - BODY_DIFF_LINES} more diff lines in the store.")
        lines.append("")
    return lines


def _days(value: float) -> str:
    return f"{value:+.1f}"


def _impact(impact: ImpactReport | None) -> list[str]:
    lines = ["### Impact", ""]
    if impact is None:
        return lines + ["No impact analysis for this change (it is switched off or could not run).", ""]
    tasks = ", ".join(impact.tasks) or "none"
    extra = []
    if impact.added_tasks:
        extra.append(f"new: {', '.join(impact.added_tasks)}")
    if impact.removed_tasks:
        extra.append(f"leaving the scope: {', '.join(impact.removed_tasks)}")
    lines.append(f"- Tasks: {tasks}" + (f" ({'; '.join(extra)})" if extra else ""))
    lines.append(f"- Components: {', '.join(impact.components) or 'none'}")
    if impact.services:
        lines.append(f"- Services: {', '.join(impact.services)}")
    low, high = impact.effort_band
    effort = f"- Effort: {_days(impact.effort_delta_days)} working days (P10–P90 {_days(low)} to {_days(high)})"
    if impact.rework_days:
        effort += f", including {impact.rework_days:.1f} d rework on done tasks"
    lines.append(effort)
    if impact.p50_shift_days is not None and impact.p85_shift_days is not None:
        schedule = f"- Schedule: P50 {impact.p50_shift_days:+g} d, P85 {impact.p85_shift_days:+g} d (calendar days)"
        before, after = impact.schedule_before or {}, impact.schedule_after or {}
        if before.get("p85") and after.get("p85"):
            schedule += f"; P85 {before['p85']} → {after['p85']}"
        lines.append(schedule)
    else:
        lines.append(f"- Schedule: no forecast ({impact.schedule_note or 'no schedule'})")
    lines.append(f"- Risk: **{impact.risk}**")
    lines += [f"  - {reason}" for reason in impact.risk_reasons]
    if impact.in_flight:
        lines.append(f"- Releases in flight: {', '.join(impact.in_flight)}")
    if impact.unknown:
        lines.append(f"- Unknown references (the impact may be larger): {', '.join(impact.unknown)}")
    return lines + [""]


_DECISION_TEXT = {
    "auto_accept": "**Auto-accepted**: the change is in the plan; no approval needed.",
    "notify": "**Accepted, for your information**: no approval needed, but it is too large to pass unannounced.",
    "require_approval": "**Needs approval**: the change waits for the requirement owner's decision.",
}


def _decision(decision: Decision | None) -> list[str]:
    lines = ["### Decision", ""]
    if decision is None:
        return lines + ["No policy decision (impact analysis is off or could not run).", ""]
    lines.append(_DECISION_TEXT[decision.action])
    if decision.reasons:
        lines += ["", "Why:", *(f"- {reason}" for reason in decision.reasons)]
    return lines + [""]


def _actions(
    roles: Sequence[str],
    requirement: str,
    impact: ImpactReport | None,
    decision: Decision | None,
    approval: tuple[str, datetime] | None = None,
) -> list[str]:
    """One line per thing this person has to do, in the order of their roles."""
    pending = decision is not None and decision.action == "require_approval"
    added = set(impact.added_tasks) if impact else set()
    removed = set(impact.removed_tasks) if impact else set()
    in_flight = f" (release in flight: {', '.join(impact.in_flight)})" if impact and impact.in_flight else ""
    actions: list[str] = []
    for role in roles:
        if role == OWNER_ROLE:
            if pending and approval is not None:
                link, deadline = approval
                actions.append(
                    f"Approve or reject {requirement} by {deadline:%Y-%m-%d %H:%M} UTC: open {link}, press Resume "
                    "and fill in the form. Unanswered by then, the change stays pending and out of the plan."
                )
            elif pending:
                actions.append(f"Approve or reject {requirement} in the Prefect UI (the flow run's pause form).")
            elif decision is None:
                actions.append(f"Review the change to {requirement}: no impact analysis was made for it.")
            else:
                actions.append(f"Nothing to approve: check the impact above is what you meant for {requirement}.")
        elif role.startswith(ASSIGNEE_ROLE):
            task = role.removeprefix(ASSIGNEE_ROLE)
            after = f" (once {requirement} is approved)" if pending else ""
            if task in removed:
                actions.append(f"Stop work on {task}: it leaves the scope{after}.")
            elif task in added:
                actions.append(f"Estimate {task}: it is new work from this change{after}.")
            else:
                actions.append(f"Re-estimate {task} against the changed requirement{after}.")
        elif role.startswith(COMPONENT_ROLE):
            component = role.removeprefix(COMPONENT_ROLE)
            actions.append(
                f"Check component {component}: what the change means for its design and services{in_flight}."
            )
    return actions or ["Nothing to do: this is for your information."]


def change_message(
    recipient: Stakeholder,
    requirement_id: str,
    title: str,
    version: int,
    diff: RequirementDiff,
    impact: ImpactReport | None,
    decision: Decision | None,
    approval: tuple[str, datetime] | None = None,
) -> Message:
    """The markdown message telling ``recipient`` what changed, what it costs, what was decided and what they do;
    ``approval`` (the run's link, the deadline) says where and by when to answer a pending change.

    The requirement owner hears immediately when approval is required (see the module docstring)."""
    pending = decision is not None and decision.action == "require_approval"
    owner = OWNER_ROLE in recipient.roles
    mode: Mode = "immediate" if pending and owner else recipient.mode
    tag = " — approval needed" if pending else ""
    subject = f"{requirement_id} v{version} {diff.kind}: {_one_line(title)}{tag}"
    lines = [
        f"## {requirement_id} v{version}: {_one_line(title)}",
        "",
        f"You get this as {'; '.join(recipient.roles) or 'an interested party'}.",
        "",
        *_what_changed(diff),
        *_impact(impact),
        *_decision(decision),
        "### What you need to do",
        "",
        *(f"- {action}" for action in _actions(recipient.roles, requirement_id, impact, decision, approval)),
    ]
    return Message(
        recipient=recipient.handle,
        mode=mode,
        channel=recipient.channel,
        subject=subject,
        body="\n".join(lines).rstrip() + "\n",
        change_keys=[change_key(requirement_id, version)],
    )


_VERDICT = {"approved": "approved: it is in the plan", "rejected": "rejected: it stays out of the plan"}


def decision_message(
    recipient: Stakeholder,
    requirement_id: str,
    title: str,
    version: int,
    status: str,
    approver: str,
    note: str,
    impact: ImpactReport | None,
) -> Message:
    """The message closing the loop on a change that waited for approval: the verdict, who gave it and why,
    and what it does to the plan. Sent at once: people may be holding work for it."""
    lines = [
        f"## {requirement_id} v{version} {_VERDICT.get(status, status)}",
        "",
        f"Decided by **{approver}**" + (f": {note.strip()}" if note.strip() else " (no note)."),
        "",
    ]
    if impact is not None and status == "approved":
        shift = impact.p85_shift_days
        lines.append(
            f"The plan now carries its effort ({_days(impact.effort_delta_days)} working days)"
            + (f" and P85 moves {shift:+g} calendar days" if shift is not None else "")
            + "; PPMS re-forecasts now."
        )
    elif status == "rejected":
        lines.append("Nothing changes in the plan; work on what it would have added can stop.")
    return Message(
        recipient=recipient.handle,
        mode="immediate",
        channel=recipient.channel,
        subject=f"{requirement_id} v{version} {status} by {_one_line(approver)}: {_one_line(title)}",
        body="\n".join(lines).rstrip() + "\n",
        change_keys=[change_key(requirement_id, version)],
    )


def digest(messages: Sequence[Message], *, day: date) -> list[Message]:
    """One digest per (recipient, channel) for ``day`` from the queued digest messages (given oldest first), newest
    change first; immediate messages come back unchanged, before the digests."""
    immediate = [m for m in messages if m.mode == "immediate"]
    groups: dict[tuple[str, str | None], list[Message]] = {}
    for message in messages:
        if message.mode == "digest":
            groups.setdefault((message.recipient, message.channel), []).append(message)

    digests = []
    for (recipient, channel), queued in sorted(groups.items(), key=lambda item: (item[0][0], item[0][1] or "")):
        newest_first: list[Message] = []
        seen: set[tuple[str, ...]] = set()
        for message in reversed(queued):
            # The same change queued twice (re-sent after a failed run) is one change to read about.
            key = tuple(message.change_keys) or (message.subject, message.body)
            if key not in seen:
                seen.add(key)
                newest_first.append(message)
        count = len(newest_first)
        noun = "requirement change" if count == 1 else "requirement changes"
        keys = list(dict.fromkeys(k for m in newest_first for k in m.change_keys))
        lines = [
            f"# Requirement changes for {recipient} — {day.isoformat()}",
            "",
            f"{count} {noun}, newest first:",
            "",
            *(f"- {m.subject}" for m in newest_first),
        ]
        for message in newest_first:
            lines += ["", "---", "", message.body.rstrip()]
        digests.append(
            Message(
                recipient=recipient,
                mode="digest",
                channel=channel,
                subject=f"{count} {noun} — digest for {day.isoformat()}",
                body="\n".join(lines) + "\n",
                change_keys=keys,
            )
        )
    return immediate + digests


# --- Delivery ------------------------------------------------------------------------------------------------


def load_notification_block(ref: str) -> Any:
    """The notification block ``ref`` ('<block-type-slug>/<name>'), loaded like ``[notifications] block`` is for
    the automations (``Block.load``, same errors); the sync implementation, so it also works inside async flows."""
    from prefect.blocks.core import Block

    if "/" not in ref:
        raise ConfigError(
            f"notification block {ref!r} must be '<block-type-slug>/<name>'", hint="e.g. 'slack-webhook/ops'"
        )
    try:
        return Block.load(ref, _sync=True)
    except ValueError as exc:
        raise ConfigError(
            f"notification block {ref!r} not found: {exc}",
            hint="create it in the Prefect UI (Blocks → + → Slack Webhook / Custom Webhook / Email) or fix the name",
        ) from exc


def _await(awaitable: Awaitable[Any]) -> Any:
    """Run an awaitable to completion from sync code, also when this thread already runs an event loop."""

    async def wait() -> Any:
        return await awaitable

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wait())
    with ThreadPoolExecutor(max_workers=1) as pool:  # a loop runs here: a fresh one in another thread
        return pool.submit(asyncio.run, wait()).result()


def _notify(block: Any, body: str, subject: str) -> None:
    """``block.notify(body, subject)``, made to raise on failure and to send synchronously (module docstring)."""
    strict: AbstractContextManager[Any] = (
        block.raise_on_failure() if callable(getattr(block, "raise_on_failure", None)) else nullcontext()
    )
    with strict:
        notify = block.notify
        # async_dispatch-ed methods expose ``.aio`` and accept ``_sync``; anything else is called as is.
        result = notify(body, subject, _sync=True) if hasattr(notify, "aio") else notify(body, subject)
        if inspect.isawaitable(result):
            _await(result)


def _status(exc: BaseException) -> int | None:
    """The HTTP status a send failed with, when the error says."""
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code
    log = getattr(exc, "log", None)  # prefect's NotificationError carries apprise's log
    match = _APPRISE_STATUS.search(log) if isinstance(log, str) else None
    return int(match.group(1)) if match else None


def _describe(exc: BaseException) -> str:
    text = getattr(exc, "log", None) or str(exc)
    text = _one_line(text if isinstance(text, str) else str(text)) or "the block reported a failure without details"
    return f"{type(exc).__name__}: {text}"


def _permanent(exc: BaseException) -> bool:
    """A failure retrying in seconds cannot fix: a bad block reference, or a 4xx other than 408/429."""
    if isinstance(exc, ConfigError):
        return True
    status = _status(exc)
    return status is not None and 400 <= status < 500 and status not in _TRANSIENT_STATUS


def deliver(
    message: Message,
    *,
    default_channel: str | None,
    attempts: int = 3,
    backoff_seconds: float = 1.0,
    load_block: Callable[[str], Any] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """Send ``message`` through the notification block named by its channel or ``default_channel``, retrying
    transient failures up to ``attempts`` tries with exponential backoff. Never raises: a failure is
    ``sent=False`` with the error, so the caller keeps the message queued."""
    ref = message.channel or default_channel
    if not ref:
        return Delivery(message=message, sent=False, attempts=0, error=NO_CHANNEL_HINT)
    load = load_block or load_notification_block
    tries = max(1, attempts)  # asking for 0 tries still means "send it"
    block: Any = None
    error = ""
    tried = 0
    for tried in range(1, tries + 1):
        try:
            if block is None:  # loading talks to the Prefect API, which can fail transiently too
                block = load(ref)
            _notify(block, message.body, message.subject)
            return Delivery(message=message, sent=True, attempts=tried, error=None)
        except Exception as exc:  # never raise: the caller keeps the message queued
            error = _describe(exc)
            if _permanent(exc):
                error += " (not retried: this will not fix itself)"
                break
        if tried < tries:
            sleep(backoff_seconds * 2 ** (tried - 1))
    return Delivery(
        message=message,
        sent=False,
        attempts=tried,
        error=f"{ref}: not sent after {tried} attempt{'' if tried == 1 else 's'}: {error}",
    )


__all__ = [
    "Delivery",
    "Message",
    "Preference",
    "Stakeholder",
    "change_key",
    "change_message",
    "deliver",
    "digest",
    "load_notification_block",
    "stakeholders_for",
]
