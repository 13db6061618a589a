"""PCES stakeholders: who hears about a change, the markdown they read, daily digests, and delivery through
Prefect notification blocks against a real loopback HTTP receiver (retries, failures kept, no channel)."""

from __future__ import annotations

import asyncio
from datetime import date

from prefect.blocks.notifications import CustomWebhookNotificationBlock, MattermostWebhook

from framework2.tasks.context.evolution import diff_requirements
from framework2.tasks.context.impact import Decision, ImpactReport
from framework2.tasks.context.requirements import Requirement, parse_requirement
from framework2.tasks.context.stakeholders import (
    NO_CHANNEL_HINT,
    Message,
    Preference,
    Stakeholder,
    change_message,
    deliver,
    digest,
    stakeholders_for,
)
from tests.http_fixtures import LoopbackHTTPServer, Reply

DAY = date(2024, 6, 3)
ASSIGNEES = {"jira:SHOP-12": "ben", "jira:SHOP-13": "ana", "jira:SHOP-20": "chen", "jira:SHOP-99": "zoe"}
COMPONENT_OWNERS = {"checkout": "olga", "payments": "ana"}


def _req(*, priority: str, criteria: tuple[str, ...]) -> Requirement:
    items = "\n".join(f"- {c}" for c in criteria)
    text = (
        "---\nid: REQ-12\ntitle: Guest checkout\n"
        f"priority: {priority}\nowner: maria\ntasks: [jira:SHOP-12, jira:SHOP-13]\n---\n"
        f"Guests pay without an account.\n\n## Acceptance criteria\n{items}\n"
    )
    return parse_requirement(text, "checkout.md")


DIFF = diff_requirements(
    _req(priority="should", criteria=("A guest can pay", "Totals include VAT")),
    _req(priority="must", criteria=("A guest can pay", "Guests can pay with PayPal")),
)
IMPACT = ImpactReport(
    requirement="REQ-12",
    tasks=["jira:SHOP-12", "jira:SHOP-13", "jira:SHOP-20"],
    components=["checkout", "payments"],
    services=["web"],
    added_tasks=["jira:SHOP-20"],
    rework_days=0.4,
    effort_delta_days=3.5,
    effort_band=(1.25, 6.0),
    schedule_before={"p50": "2024-06-20", "p85": "2024-06-25", "probability_on_time": 0.8},
    schedule_after={"p50": "2024-06-22", "p85": "2024-06-29", "probability_on_time": 0.6},
    p50_shift_days=2.0,
    p85_shift_days=4.0,
    risk="medium",
    risk_reasons=["P85 moves +4 d > 2 d"],
    owners=["ana", "ben", "chen", "maria", "olga"],
    explanation="",
)
APPROVAL = Decision(action="require_approval", reasons=["effort +3.5 d ≥ 3 d", "P85 shift +4 d ≥ 3 d"])


def _message(recipient: str, key: str, *, mode: str = "digest", channel: str | None = None) -> Message:
    return Message(
        recipient=recipient, mode=mode, channel=channel, subject=f"{key} changed", body=f"## {key}\n", change_keys=[key]
    )


def _webhook(server: LoopbackHTTPServer, path: str = "/hook") -> CustomWebhookNotificationBlock:
    return CustomWebhookNotificationBlock(
        name="pces", url=server.url_for(path), json_data={"subject": "{{subject}}", "body": "{{body}}"}
    )


# --- who -----------------------------------------------------------------------------------------------------


def test_stakeholders_come_from_owner_assignees_and_component_owners_with_merged_roles_and_preferences() -> None:
    preferences = {
        "ana": Preference(handle="ana", mode="immediate", channel="custom-webhook/ana"),
        "olga": Preference(handle="olga", channel="slack-webhook/team"),
    }

    people = stakeholders_for("maria", IMPACT, ASSIGNEES, COMPONENT_OWNERS, preferences)

    assert people == [
        Stakeholder(
            handle="ana",
            roles=["assignee of jira:SHOP-13", "owner of component payments"],
            mode="immediate",
            channel="custom-webhook/ana",
        ),
        Stakeholder(handle="ben", roles=["assignee of jira:SHOP-12"], mode="digest", channel=None),
        Stakeholder(handle="chen", roles=["assignee of jira:SHOP-20"], mode="digest", channel=None),
        Stakeholder(handle="maria", roles=["requirement owner"], mode="digest", channel=None),
        Stakeholder(handle="olga", roles=["owner of component checkout"], mode="digest", channel="slack-webhook/team"),
    ]  # zoe's task is not impacted: she is not told


def test_an_owner_who_is_also_assignee_is_one_stakeholder_and_without_impact_only_the_owner_hears() -> None:
    people = stakeholders_for("ben", IMPACT, ASSIGNEES, {}, {})
    assert [(p.handle, p.roles) for p in people if p.handle == "ben"] == [
        ("ben", ["requirement owner", "assignee of jira:SHOP-12"])
    ]
    assert stakeholders_for("maria", None, ASSIGNEES, COMPONENT_OWNERS, {}) == [
        Stakeholder(handle="maria", roles=["requirement owner"], mode="digest", channel=None)
    ]
    assert stakeholders_for(None, None, ASSIGNEES, COMPONENT_OWNERS, {}) == []


# --- what ----------------------------------------------------------------------------------------------------


def test_the_message_shows_the_diff_the_impact_numbers_and_the_decision_reasons() -> None:
    ben = Stakeholder(handle="ben", roles=["assignee of jira:SHOP-12"], mode="digest", channel="custom-webhook/ben")

    message = change_message(ben, "REQ-12", "Guest checkout", 3, DIFF, IMPACT, APPROVAL)

    assert message.recipient == "ben" and message.channel == "custom-webhook/ben" and message.mode == "digest"
    assert message.change_keys == ["REQ-12@v3"]
    assert message.subject == "REQ-12 v3 changed: Guest checkout — approval needed"
    body = message.body
    assert body.startswith("## REQ-12 v3: Guest checkout\n")
    assert DIFF.summary in body
    assert "Acceptance criteria added:\n- Guests can pay with PayPal" in body
    assert "Acceptance criteria removed:\n- Totals include VAT" in body
    assert "- `priority`: should → must" in body
    assert "- Tasks: jira:SHOP-12, jira:SHOP-13, jira:SHOP-20 (new: jira:SHOP-20)" in body
    assert "- Components: checkout, payments" in body
    assert "- Effort: +3.5 working days (P10–P90 +1.2 to +6.0), including 0.4 d rework on done tasks" in body
    assert "- Schedule: P50 +2 d, P85 +4 d (calendar days); P85 2024-06-25 → 2024-06-29" in body
    assert "- Risk: **medium**\n  - P85 moves +4 d > 2 d" in body
    assert "**Needs approval**" in body
    assert "- effort +3.5 d ≥ 3 d\n- P85 shift +4 d ≥ 3 d" in body
    assert "- Re-estimate jira:SHOP-12 against the changed requirement (once REQ-12 is approved)." in body


def test_each_role_gets_its_own_action() -> None:
    owner = Stakeholder(handle="maria", roles=["requirement owner"], mode="digest", channel=None)
    ana = Stakeholder(
        handle="ana", roles=["assignee of jira:SHOP-20", "owner of component payments"], mode="digest", channel=None
    )
    notify = Decision(action="notify", reasons=["P85 shift +4 d > 0 d"])

    to_owner = change_message(owner, "REQ-12", "Guest checkout", 3, DIFF, IMPACT, APPROVAL)
    to_ana = change_message(ana, "REQ-12", "Guest checkout", 3, DIFF, IMPACT, notify)
    owner_informed = change_message(owner, "REQ-12", "Guest checkout", 3, DIFF, IMPACT, notify)

    assert "- Approve or reject REQ-12 in the Prefect UI" in to_owner.body
    # The run waits for the owner only approvalWait: a digest would arrive too late, so it goes out now.
    assert to_owner.mode == "immediate"
    assert "- Estimate jira:SHOP-20: it is new work from this change." in to_ana.body
    assert "- Check component payments:" in to_ana.body
    assert "Approve or reject" not in to_ana.body
    assert "- P85 shift +4 d > 0 d" in to_ana.body and "**Accepted, for your information**" in to_ana.body
    assert owner_informed.mode == "digest" and "Nothing to approve" in owner_informed.body


def test_a_message_without_impact_analysis_says_so() -> None:
    owner = Stakeholder(handle="maria", roles=["requirement owner"], mode="immediate", channel=None)

    message = change_message(owner, "REQ-12", "Guest checkout", 3, DIFF, None, None)

    assert "No impact analysis for this change" in message.body
    assert "No policy decision" in message.body
    assert "- Review the change to REQ-12: no impact analysis was made for it." in message.body


# --- digest --------------------------------------------------------------------------------------------------


def test_digest_merges_per_recipient_and_channel_newest_first_and_leaves_immediate_messages_alone() -> None:
    urgent = _message("maria", "REQ-12@v3", mode="immediate")
    queue = [
        _message("ben", "REQ-12@v2"),
        urgent,
        _message("ana", "REQ-7@v1", channel="custom-webhook/ana"),
        _message("ben", "REQ-12@v3"),
        _message("ben", "REQ-15@v1"),
        _message("ben", "REQ-12@v3"),  # queued twice: one section
        _message("ben", "REQ-9@v4", channel="slack-webhook/team"),
    ]

    out = digest(queue, day=DAY)

    assert out[0] == urgent
    assert [(m.recipient, m.channel, m.change_keys) for m in out[1:]] == [
        ("ana", "custom-webhook/ana", ["REQ-7@v1"]),
        ("ben", None, ["REQ-12@v3", "REQ-15@v1", "REQ-12@v2"]),
        ("ben", "slack-webhook/team", ["REQ-9@v4"]),
    ]
    ben = out[2]
    assert ben.mode == "digest"
    assert ben.subject == "3 requirement changes — digest for 2024-06-03"
    assert out[1].subject == "1 requirement change — digest for 2024-06-03"
    body = ben.body
    assert body.startswith("# Requirement changes for ben — 2024-06-03\n")
    assert body.count("## REQ-12@v3") == 1
    assert body.index("## REQ-12@v3") < body.index("## REQ-15@v1") < body.index("## REQ-12@v2")
    assert "- REQ-12@v3 changed\n- REQ-15@v1 changed\n- REQ-12@v2 changed" in body


# --- delivery ------------------------------------------------------------------------------------------------


def test_delivery_sends_subject_and_body_to_the_webhook(http_server: LoopbackHTTPServer) -> None:
    http_server.route("/hook", method="POST")
    owner = Stakeholder(handle="maria", roles=["requirement owner"], mode="immediate", channel="custom-webhook/maria")
    message = change_message(owner, "REQ-12", "Guest checkout", 3, DIFF, IMPACT, APPROVAL)
    asked: list[str] = []

    def load(ref: str) -> CustomWebhookNotificationBlock:
        asked.append(ref)
        return _webhook(http_server)

    delivery = deliver(message, default_channel="custom-webhook/ops", load_block=load, backoff_seconds=0)

    assert delivery.sent and delivery.attempts == 1 and delivery.error is None
    assert asked == ["custom-webhook/maria"]  # the person's channel wins over the default
    [request] = http_server.requests_to("/hook")
    assert request.json() == {"subject": message.subject, "body": message.body}


def test_a_500_then_200_is_retried_and_succeeds_on_the_second_attempt(http_server: LoopbackHTTPServer) -> None:
    http_server.route("/hook", Reply(500, "busy"), Reply(200), method="POST")
    waits: list[float] = []

    delivery = deliver(
        _message("ben", "REQ-12@v3"),
        default_channel="custom-webhook/ops",
        load_block=lambda ref: _webhook(http_server),
        backoff_seconds=1.5,
        sleep=waits.append,
    )

    assert delivery.sent and delivery.attempts == 2 and delivery.error is None
    assert len(http_server.requests_to("/hook")) == 2
    assert waits == [1.5]


def test_a_receiver_always_answering_500_gives_sent_false_after_exactly_the_attempts(
    http_server: LoopbackHTTPServer,
) -> None:
    http_server.route("/hook", Reply(500, "down"), method="POST")
    waits: list[float] = []
    message = _message("ben", "REQ-12@v3")

    delivery = deliver(
        message,
        default_channel="custom-webhook/ops",
        attempts=4,
        load_block=lambda ref: _webhook(http_server),
        backoff_seconds=0.5,
        sleep=waits.append,
    )

    assert not delivery.sent and delivery.attempts == 4
    assert len(http_server.requests_to("/hook")) == 4
    assert waits == [0.5, 1.0, 2.0]  # exponential, none after the last try
    assert delivery.message == message  # handed back whole, to stay queued
    assert delivery.error is not None
    assert delivery.error.startswith("custom-webhook/ops: not sent after 4 attempts: HTTPStatusError:")
    assert "500 Internal Server Error" in delivery.error


def test_an_apprise_block_answered_500_counts_as_a_failure_not_a_success(http_server: LoopbackHTTPServer) -> None:
    # Apprise-based blocks (Slack, Mattermost, …) swallow HTTP errors unless raise_on_failure() is active.
    http_server.route("/hooks/tok", Reply(500, "down"), method="POST")
    block = MattermostWebhook(hostname="127.0.0.1", port=http_server.port, token="tok")

    delivery = deliver(
        _message("ben", "REQ-12@v3"),
        default_channel="mattermost-webhook/ops",
        attempts=2,
        load_block=lambda ref: block,
        backoff_seconds=0,
    )

    assert not delivery.sent and delivery.attempts == 2
    assert len(http_server.requests_to("/hooks/tok")) == 2
    assert delivery.error is not None and "error=500" in delivery.error


def test_a_4xx_is_not_retried_and_an_unreachable_receiver_never_raises(http_server: LoopbackHTTPServer) -> None:
    http_server.route("/hook", Reply(404, "no such hook"), method="POST")
    gone = deliver(
        _message("ben", "REQ-12@v3"),
        default_channel="custom-webhook/ops",
        load_block=lambda ref: _webhook(http_server),
        backoff_seconds=0,
    )
    assert not gone.sent and gone.attempts == 1 and len(http_server.requests_to("/hook")) == 1
    assert gone.error is not None and "404" in gone.error and "not retried" in gone.error

    def broken(ref: str) -> CustomWebhookNotificationBlock:
        raise RuntimeError("Prefect API unreachable")

    down = deliver(
        _message("ben", "REQ-12@v3"),
        default_channel="custom-webhook/ops",
        attempts=2,
        load_block=broken,
        backoff_seconds=0,
    )
    assert not down.sent and down.attempts == 2 and "RuntimeError: Prefect API unreachable" in (down.error or "")


def test_no_channel_configured_gives_sent_false_with_the_hint() -> None:
    delivery = deliver(_message("ben", "REQ-12@v3"), default_channel=None, load_block=lambda ref: 1 / 0)

    assert not delivery.sent and delivery.attempts == 0
    assert delivery.error == NO_CHANNEL_HINT
    assert "[notifications] block" in delivery.error


def test_a_malformed_channel_is_reported_and_not_retried() -> None:
    waits: list[float] = []

    delivery = deliver(_message("ben", "REQ-12@v3", channel="ops"), default_channel=None, sleep=waits.append)

    assert not delivery.sent and delivery.attempts == 1 and waits == []
    assert delivery.error is not None and "must be '<block-type-slug>/<name>'" in delivery.error


def test_delivery_from_inside_an_event_loop_still_sends(http_server: LoopbackHTTPServer) -> None:
    # In an async flow notify() would return an un-awaited coroutine and send nothing; deliver asks for the sync one.
    http_server.route("/hook", method="POST")

    async def in_async_flow() -> bool:
        delivery = deliver(
            _message("ben", "REQ-12@v3"),
            default_channel="custom-webhook/ops",
            load_block=lambda ref: _webhook(http_server),
        )
        return delivery.sent

    assert asyncio.run(in_async_flow())
    assert len(http_server.requests_to("/hook")) == 1
