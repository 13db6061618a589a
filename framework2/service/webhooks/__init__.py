"""The webhook contract: which events each system accepts, how a request is authenticated, and how GitHub and
Jira webhooks are translated into it.

``POST /webhook/framework-set-2`` takes ``{"system": ..., "event": ..., "data": {...}}`` (the contract the
product first promised). Each accepted webhook becomes one Prefect event ``framework2.<system>.<event>`` about
the resource ``framework2.system.<system>``; a deployment trigger in ``prefect.yaml`` turns it into a flow run.
``INBOUND_EVENTS`` below is the table of what may be sent and what it makes happen.

Authentication (``framework-set-2``): ``X-Framework2-Timestamp`` (unix seconds) and ``X-Framework2-Signature:
sha256=<hex>``, the HMAC-SHA256 of ``b"<timestamp>." + raw body`` with the shared secret held in the Prefect
Secret block named by ``[webhooks] secret_block``. The signature is checked first, then the timestamp against
``[webhooks] tolerance`` in both directions, so "stale" is only ever said to someone who knows the secret (it
means their clock is off or they replayed an old request).

GitHub signs the raw body (``X-Hub-Signature-256: sha256=<hex>``); Jira Cloud admin webhooks with a secret
sign it the same way in ``X-Hub-Signature`` (WebSub's ``method=signature``; Atlassian's webhook documentation).
Neither signs a timestamp, so their replay protection is the delivery id (``X-GitHub-Delivery``,
``X-Atlassian-Webhook-Identifier``), which is what their own redeliveries repeat.

A delivery id header is not covered by their signatures, so someone who captured a request could send it again
with a new id. The outbox stores each delivery with its signature's fingerprint (``signature_fingerprint``)
under a unique index: a repeat, under any id, after any restart and on any replica sharing the store, is
answered as a duplicate of the first delivery instead of becoming a second event.
"""

from __future__ import annotations

from framework2.service.webhooks.contract import (
    ALLOWED,
    DELIVERY_HEADER,
    DELIVERY_PATTERN,
    EVENT_ID_NAMESPACE,
    GITHUB_DELIVERY_HEADER,
    GITHUB_EVENT_HEADER,
    GITHUB_SIGNATURE_HEADER,
    INBOUND_EVENTS,
    JIRA_DELIVERY_HEADER,
    JIRA_SIGNATURE_HEADER,
    MAX_DEPTH,
    RESERVED_DATA_KEYS,
    SIGNATURE_HEADER,
    SOURCE_FRAMEWORK2,
    SOURCE_GITHUB,
    SOURCE_JIRA,
    TIMESTAMP_HEADER,
    ContractError,
    ContractProblem,
    DeploymentFailed,
    EventData,
    EventDescription,
    ExperimentUpdated,
    ForecastRequested,
    HealthRequested,
    InboundEvent,
    Name,
    PricesChanged,
    Problem,
    ReleaseDeployed,
    ReleaseRequested,
    RequirementChanged,
    RequirementsUpdated,
    RollbackRequested,
    RunRequested,
    SystemCode,
    TasksChanged,
    WebhookAccepted,
    WebhookEnvelope,
    WebhookError,
    WebhookNotice,
    allowed_events,
    describe_events,
    logger,
    parse_json,
    request_schemas,
    validate_data,
    validate_envelope,
)
from framework2.service.webhooks.providers import (
    GITHUB_EVENTS,
    JIRA_ISSUE_EVENTS,
    JIRA_LINK_EVENTS,
    Ignored,
    Routed,
    map_github,
    map_jira,
)
from framework2.service.webhooks.signing import (
    MIN_SECRET_CHARS,
    RateLimiter,
    SecretCache,
    check_secret,
    delivery_id,
    event_id,
    hub_signature,
    load_secret_block,
    sign,
    signature_fingerprint,
    signed_bytes,
    verify_framework2,
    verify_hub,
)

__all__ = [
    "ALLOWED",
    "ContractError",
    "ContractProblem",
    "DELIVERY_HEADER",
    "DELIVERY_PATTERN",
    "DeploymentFailed",
    "EVENT_ID_NAMESPACE",
    "EventData",
    "EventDescription",
    "ExperimentUpdated",
    "ForecastRequested",
    "GITHUB_DELIVERY_HEADER",
    "GITHUB_EVENTS",
    "GITHUB_EVENT_HEADER",
    "GITHUB_SIGNATURE_HEADER",
    "HealthRequested",
    "INBOUND_EVENTS",
    "Ignored",
    "InboundEvent",
    "JIRA_DELIVERY_HEADER",
    "JIRA_ISSUE_EVENTS",
    "JIRA_LINK_EVENTS",
    "JIRA_SIGNATURE_HEADER",
    "MAX_DEPTH",
    "MIN_SECRET_CHARS",
    "Name",
    "PricesChanged",
    "Problem",
    "RESERVED_DATA_KEYS",
    "RateLimiter",
    "ReleaseDeployed",
    "ReleaseRequested",
    "RequirementChanged",
    "RequirementsUpdated",
    "RollbackRequested",
    "Routed",
    "RunRequested",
    "SIGNATURE_HEADER",
    "SOURCE_FRAMEWORK2",
    "SOURCE_GITHUB",
    "SOURCE_JIRA",
    "SecretCache",
    "SystemCode",
    "TIMESTAMP_HEADER",
    "TasksChanged",
    "WebhookAccepted",
    "WebhookEnvelope",
    "WebhookError",
    "WebhookNotice",
    "allowed_events",
    "check_secret",
    "delivery_id",
    "describe_events",
    "event_id",
    "hub_signature",
    "load_secret_block",
    "logger",
    "map_github",
    "map_jira",
    "parse_json",
    "request_schemas",
    "sign",
    "signature_fingerprint",
    "signed_bytes",
    "validate_data",
    "validate_envelope",
    "verify_framework2",
    "verify_hub",
]
