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

import asyncio
import functools
import hashlib
import hmac
import json
import logging
import math
import operator
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from framework2.errors import Framework2Error
from framework2.events import event_name
from framework2.systems import SYSTEMS

logger = logging.getLogger("framework2.webhooks")

SOURCE_FRAMEWORK2 = "framework-set-2"
SOURCE_GITHUB = "github"
SOURCE_JIRA = "jira"

TIMESTAMP_HEADER = "X-Framework2-Timestamp"
SIGNATURE_HEADER = "X-Framework2-Signature"
DELIVERY_HEADER = "X-Framework2-Delivery"
GITHUB_EVENT_HEADER = "X-GitHub-Event"
GITHUB_SIGNATURE_HEADER = "X-Hub-Signature-256"
GITHUB_DELIVERY_HEADER = "X-GitHub-Delivery"
JIRA_SIGNATURE_HEADER = "X-Hub-Signature"
JIRA_DELIVERY_HEADER = "X-Atlassian-Webhook-Identifier"

# Keys the relay adds to every event payload; a sender may not set them (they would be overwritten silently).
RESERVED_DATA_KEYS = ("delivery", "source", "received_at")
MAX_DEPTH = 32
DELIVERY_PATTERN = r"^[!-~]{1,200}$"  # visible ASCII, and it must fit WebhookDelivery.delivery_id
_DELIVERY_RE = re.compile(DELIVERY_PATTERN)
# Fixed namespace of the deterministic Prefect event ids: uuid5(namespace, "<source>\n<delivery id>").
EVENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:framework2:webhook-delivery")


# --- errors -------------------------------------------------------------------------------------------------


class WebhookError(Framework2Error):
    """A webhook the service refuses, with the HTTP status, the metrics outcome and what the sender should do."""

    def __init__(
        self,
        status: int,
        outcome: str,
        message: str,
        hint: str = "",
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.status = status
        self.outcome = outcome
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"detail": self.message, "hint": self.hint}


class ContractError(WebhookError):
    """The body is JSON but not a webhook the contract accepts (422), with every problem and the allowed values."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(
            422,
            "invalid",
            "the webhook does not match the contract {system, event, data}: "
            + "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors),
            "send one of the allowed system/event pairs listed in 'allowed' (GET /webhook/framework-set-2 "
            "describes each)",
        )
        self.errors = errors

    def body(self) -> dict[str, Any]:
        return {**super().body(), "errors": self.errors, "allowed": allowed_events()}


# --- the events each system accepts -------------------------------------------------------------------------


Name = Annotated[str, Field(min_length=1, max_length=200)]


class EventData(BaseModel):
    """Base of every event's ``data``: named fields are checked, other keys travel on to the event payload.

    Strict: "2" is not a version and "true" not a boolean, exactly as the published JSON Schema says."""

    model_config = ConfigDict(extra="allow", strict=True)


class PricesChanged(EventData):
    feeds: list[Name] | None = Field(
        None, description="CompetitorFeed blocks to collect; empty: every configured feed."
    )
    reason: str | None = Field(None, max_length=500, description="Why, shown in the run's parameters.")


class TasksChanged(EventData):
    tracker: str | None = Field(None, max_length=50, description="Where the tasks live: github, jira, csv, ...")
    key: str | None = Field(None, max_length=200, description="The task's key, e.g. PAY-12 or org/repo#34.")
    action: str | None = Field(None, max_length=100, description="What happened: created, updated, closed, ...")


class ForecastRequested(EventData):
    projects: list[Name] | None = Field(None, description="Project keys to forecast; empty: every project.")


class HealthRequested(EventData):
    reason: str | None = Field(None, max_length=500, description="Why the health is wanted now.")


class RequirementChanged(EventData):
    requirement: Name = Field(description="The requirement's id, as in its file's front matter.")
    version: int | None = Field(None, ge=1, description="The new version; empty: the newest stored.")


class RequirementsUpdated(EventData):
    requirements_source: Name | None = Field(None, description="The requirements-source block that changed.")


class ReleaseDeployed(EventData):
    release: Name = Field(description="The release label the real-user measurements carry (tag or version).")
    app: Name | None = Field(None, description="The PLOS app the release belongs to.")
    environment: str | None = Field(None, max_length=100)


class ExperimentUpdated(EventData):
    experiment: Name | None = Field(None, description="The experiment whose data or definition changed.")


class ReleaseRequested(EventData):
    app: Name = Field(description="App name; its Deployments are <app>-blue and <app>-green.")
    image: str = Field(min_length=1, max_length=500, description="Image to release.")
    namespace: Name = Field("default", description="Namespace of the app.")
    cluster_block: Name = Field("plos", description="Name of the kubernetes-cluster block.")


class RollbackRequested(EventData):
    app: Name = Field(description="App to roll back.")
    namespace: Name = Field("default", description="Namespace of the app.")
    cluster_block: Name = Field("plos", description="Name of the kubernetes-cluster block.")
    reason: str = Field("rollback requested by webhook", max_length=500)


class DeploymentFailed(EventData):
    app: Name = Field(description="The app (or repository) whose deployment failed.")
    environment: str | None = Field(None, max_length=100)
    state: str | None = Field(None, max_length=50, description="The deployer's state, e.g. failure or error.")
    url: str | None = Field(None, max_length=2000, description="Where the deployer shows the failure.")


SystemCode = Literal[tuple(sorted(SYSTEMS))]  # type: ignore[valid-type]  # the registry decides


class RunRequested(EventData):
    systems: list[SystemCode] | None = Field(None, description="System codes to run; empty: all.")  # type: ignore[valid-type]
    only_due: bool = Field(False, description="Skip systems whose last good run is younger than their interval.")


@dataclass(frozen=True)
class InboundEvent:
    """One event a webhook may carry: which system, its name, what it makes happen and what its data holds."""

    system: str
    name: str
    effect: str
    deployment: str | None  # the deployment a trigger in prefect.yaml starts for it
    data: type[EventData]

    @property
    def prefect_event(self) -> str:
        return event_name(self.system, self.name)


INBOUND_EVENTS: tuple[InboundEvent, ...] = (
    InboundEvent(
        "ppis",
        "prices.changed",
        "A catalogue or competitor price changed outside the hourly schedule: re-run pricing now.",
        "ppis-hourly-pricing",
        PricesChanged,
    ),
    InboundEvent(
        "ppms",
        "tasks.changed",
        "Tasks changed in a tracker (GitHub issue or pull request, Jira issue or link): re-sync the sources.",
        "ppms-sync",
        TasksChanged,
    ),
    InboundEvent(
        "ppms",
        "forecast.requested",
        "Re-forecast completion dates (all projects, or the ones named).",
        "ppms-forecast",
        ForecastRequested,
    ),
    InboundEvent(
        "ppos",
        "health.requested",
        "Recompute project and portfolio health now instead of at the next 15-minute run.",
        "ppos-project-health",
        HealthRequested,
    ),
    InboundEvent(
        "pces",
        "requirement.changed",
        "A requirement changed: assess its impact (and, through existing triggers, re-forecast and re-score "
        "project health).",
        "pces-change-impact",
        RequirementChanged,
    ),
    InboundEvent(
        "pces",
        "requirements.updated",
        "A requirements repository or directory was updated: ingest it and record what changed.",
        "pces-ingest",
        RequirementsUpdated,
    ),
    InboundEvent(
        "puxt",
        "release.deployed",
        "A release went live: measure its performance against the baseline release.",
        "puxt-performance",
        ReleaseDeployed,
    ),
    InboundEvent(
        "puxt",
        "experiment.updated",
        "Experiment data or definitions changed: re-analyse the experiments.",
        "puxt-experiments",
        ExperimentUpdated,
    ),
    InboundEvent(
        "plos",
        "release.requested",
        "Start a blue-green release of an app with an image.",
        "plos-blue-green-release",
        ReleaseRequested,
    ),
    InboundEvent(
        "plos",
        "rollback.requested",
        "Roll an app's latest release back (e.g. from an incident tool).",
        "plos-rollback",
        RollbackRequested,
    ),
    InboundEvent(
        "plos",
        "deployment.failed",
        "A deployment outside PLOS failed (GitHub deployment_status failure/error): report the app's release state.",
        "plos-release-status",
        DeploymentFailed,
    ),
    InboundEvent(
        "pso",
        "run.requested",
        "Run the orchestrator now (all systems or the ones named).",
        "pso-orchestrator",
        RunRequested,
    ),
)

ALLOWED: dict[str, dict[str, InboundEvent]] = {}
for _spec in INBOUND_EVENTS:
    ALLOWED.setdefault(_spec.system, {})[_spec.name] = _spec
# A table entry for a system the registry does not know is a programming error: fail at import, not at runtime.
assert set(ALLOWED) <= set(SYSTEMS) | {"pso"}, f"unknown systems in INBOUND_EVENTS: {set(ALLOWED) - set(SYSTEMS)}"


def allowed_events() -> dict[str, list[str]]:
    """System code → the event names it accepts (what a 422 lists)."""
    return {system: sorted(events) for system, events in sorted(ALLOWED.items())}


# --- request and response models (OpenAPI) ------------------------------------------------------------------


class WebhookEnvelope(BaseModel):
    """The framework-set-2 webhook: an allowed system/event pair and that event's data."""

    model_config = ConfigDict(extra="forbid")

    system: str = Field(description="System code: " + ", ".join(sorted(ALLOWED)))
    event: str = Field(description="Event name allowed for the system (GET /webhook/framework-set-2 lists them).")
    data: dict[str, Any] = Field(description="The event's data; {} when it needs none.")


class WebhookAccepted(BaseModel):
    """The webhook is stored and will become exactly one Prefect event."""

    event_id: str = Field(description="Id of the Prefect event (uuid5 of source and delivery id).")
    event: str = Field(description="The Prefect event name, framework2.<system>.<event>.")
    delivery: str = Field(description="The delivery id the webhook was de-duplicated by.")
    duplicate: bool = Field(description="True when this delivery id was accepted before (nothing new stored).")


class WebhookNotice(BaseModel):
    """A provider webhook that was understood but causes no event (a ping, or an event that is not used)."""

    detail: str
    ignored: bool = True


class Problem(BaseModel):
    """Why the webhook was refused and what to do about it."""

    detail: str
    hint: str = ""


class ContractProblem(Problem):
    """A 422: every problem found and the allowed system/event pairs."""

    errors: list[dict[str, Any]] = Field(description="Each problem: loc (where), msg (what), allowed (if a choice).")
    allowed: dict[str, list[str]] = Field(description="System code → accepted event names.")


class EventDescription(BaseModel):
    system: str
    event: str
    prefect_event: str
    effect: str
    deployment: str | None
    data_schema: dict[str, Any]


def describe_events() -> list[EventDescription]:
    """The events table as data (served at GET /webhook/framework-set-2)."""
    return [
        EventDescription(
            system=spec.system,
            event=spec.name,
            prefect_event=spec.prefect_event,
            effect=spec.effect,
            deployment=spec.deployment,
            data_schema=spec.data.model_json_schema(),
        )
        for spec in INBOUND_EVENTS
    ]


def request_schemas(ref_prefix: str = "#/components/schemas/") -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The framework-set-2 request body as JSON Schema: one alternative per allowed system/event pair, so the
    documentation (and a fuzzer) knows exactly which combinations are valid. Returns (body schema, components)."""
    variants = []
    for spec in INBOUND_EVENTS:
        title = "".join(part.capitalize() for part in re.split(r"[._]", f"{spec.system}.{spec.name}")) + "Webhook"
        variants.append(
            create_model(
                title,
                __config__=ConfigDict(extra="forbid"),
                __doc__=f"{spec.prefect_event}: {spec.effect}",
                system=(Literal[spec.system], Field(description="System code.")),  # type: ignore[valid-type]
                event=(Literal[spec.name], Field(description="Event name.")),  # type: ignore[valid-type]
                data=(spec.data, Field(description=f"Data of {spec.name}.")),
            )
        )
    union: Any = functools.reduce(operator.or_, variants)
    schema = TypeAdapter(union).json_schema(ref_template=ref_prefix + "{model}")
    components: dict[str, dict[str, Any]] = schema.pop("$defs", {})
    for name, component in components.items():
        if name in {s.data.__name__ for s in INBOUND_EVENTS}:
            # The reserved keys are refused (422); say so in the schema, so valid-looking data is valid.
            component["not"] = {"anyOf": [{"required": [key]} for key in RESERVED_DATA_KEYS]}
    return schema, components


# --- parsing and validation ---------------------------------------------------------------------------------


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(body: bytes) -> Any:
    """Decode the body as strict JSON (no NaN/Infinity); a 400 says where the parser stopped."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WebhookError(400, "malformed", f"the body is not UTF-8 (byte {exc.start})", "send UTF-8 JSON") from exc
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except json.JSONDecodeError as exc:
        raise WebhookError(
            400,
            "malformed",
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})",
            "send a JSON object; check the quoting and commas near that position",
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise WebhookError(400, "malformed", f"the body is not valid JSON: {exc}", "send a plain JSON object") from exc


def _check_values(value: Any, loc: list[str | int]) -> list[dict[str, Any]]:
    """Nesting depth, NUL characters and lone surrogates: JSON allows them, but the store or Prefect's
    PostgreSQL event store cannot hold them (a refused event would block Prefect's persister)."""
    problems: list[dict[str, Any]] = []
    stack: list[tuple[Any, list[str | int]]] = [(value, loc)]
    while stack and len(problems) < 10:
        item, where = stack.pop()
        if len(where) - len(loc) > MAX_DEPTH:
            problems.append({"loc": where, "msg": f"nested deeper than {MAX_DEPTH} levels"})
            continue
        if isinstance(item, dict):
            for key, child in item.items():
                if not _storable(key):
                    problems.append({"loc": where, "msg": "a key contains NUL or invalid Unicode"})
                stack.append((child, [*where, key]))
        elif isinstance(item, list):
            stack.extend((child, [*where, i]) for i, child in enumerate(item))
        elif isinstance(item, str) and not _storable(item):
            problems.append({"loc": where, "msg": "text contains NUL (\\u0000) or an unpaired surrogate escape"})
    return problems


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate_data(spec: InboundEvent, data: Any, loc: list[str | int]) -> dict[str, Any]:
    """Check ``data`` against the event's model; return it normalised (defaults filled in, JSON-safe)."""
    if not isinstance(data, dict):
        raise ContractError([{"loc": loc, "msg": "data must be a JSON object ({} when the event needs none)"}])
    problems = [
        {"loc": [*loc, key], "msg": f"'{key}' is reserved: the service sets it on the event payload"}
        for key in RESERVED_DATA_KEYS
        if key in data
    ]
    problems += _check_values(data, loc)
    if problems:
        raise ContractError(problems)
    try:
        model = spec.data.model_validate(data)
    except ValidationError as exc:
        raise ContractError(
            [
                {"loc": [*loc, *err["loc"]], "msg": err["msg"]}
                for err in exc.errors(include_url=False, include_context=False, include_input=False)
            ]
        ) from exc
    return model.model_dump(mode="json")


def validate_envelope(document: Any) -> tuple[InboundEvent, dict[str, Any]]:
    """The event spec and normalised data of a framework-set-2 webhook, or a ContractError listing every problem."""
    if not isinstance(document, dict):
        raise ContractError([{"loc": ["body"], "msg": "the body must be a JSON object {system, event, data}"}])
    errors: list[dict[str, Any]] = [
        {"loc": ["body", key], "msg": "unexpected field; the contract has only system, event and data"}
        for key in document
        if key not in {"system", "event", "data"}
    ]
    errors += [
        {"loc": ["body", key], "msg": "field required"} for key in ("system", "event", "data") if key not in document
    ]
    system, event = document.get("system"), document.get("event")
    spec: InboundEvent | None = None
    if "system" in document and not (isinstance(system, str) and system in ALLOWED):
        errors.append({"loc": ["body", "system"], "msg": f"unknown system {system!r}", "allowed": sorted(ALLOWED)})
    elif isinstance(system, str) and "event" in document:
        if isinstance(event, str) and event in ALLOWED[system]:
            spec = ALLOWED[system][event]
        else:
            errors.append(
                {
                    "loc": ["body", "event"],
                    "msg": f"event {event!r} is not accepted for system {system!r}",
                    "allowed": sorted(ALLOWED[system]),
                }
            )
    if errors:
        raise ContractError(errors)
    assert spec is not None
    return spec, validate_data(spec, document["data"], ["body", "data"])


# --- signatures, delivery ids, event ids --------------------------------------------------------------------


def signed_bytes(timestamp: str | int, body: bytes, delivery: str | None = None) -> bytes:
    """What the framework-set-2 signature covers: ``<timestamp>.<delivery>.<body>``, or ``<timestamp>.<body>``
    without a delivery id header. Covering the delivery id means a captured request cannot be replayed under a
    new id (it would be a new event), while two distinct deliveries with the same body stay distinct."""
    prefix = f"{timestamp}.{delivery}." if delivery is not None else f"{timestamp}."
    return prefix.encode() + body


def sign(secret: str, timestamp: str | int, body: bytes, delivery: str | None = None) -> str:
    """The ``X-Framework2-Signature`` value for ``body`` sent at ``timestamp`` (with the delivery id, if sent)."""
    digest = hmac.new(secret.encode(), signed_bytes(timestamp, body, delivery), hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def hub_signature(secret: str, body: bytes) -> str:
    """GitHub's ``X-Hub-Signature-256`` / Jira's ``X-Hub-Signature`` value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _same(expected: str, given: str) -> bool:
    # Headers arrive latin-1 decoded, so this encoding never fails; compare_digest takes constant time.
    return hmac.compare_digest(expected.encode(), given.strip().lower().encode("latin-1"))


def verify_framework2(
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    *,
    now: float,
    tolerance: float,
    delivery: str | None = None,
) -> None:
    """Refuse (401) a missing or wrong signature, then a timestamp further than ``tolerance`` from ``now``."""
    if not timestamp or not signature:
        missing = [h for h, v in ((TIMESTAMP_HEADER, timestamp), (SIGNATURE_HEADER, signature)) if not v]
        raise WebhookError(
            401,
            "unauthorised",
            f"missing {' and '.join(missing)}",
            f"sign each request: {SIGNATURE_HEADER}: sha256=HMAC-SHA256(secret, '<timestamp>.<delivery id>.' + body) "
            f"('<timestamp>.' + body without {DELIVERY_HEADER}), {TIMESTAMP_HEADER}: unix seconds",
        )
    if not re.fullmatch(r"\d{1,12}", timestamp.strip()):
        raise WebhookError(401, "unauthorised", f"{TIMESTAMP_HEADER} must be unix seconds", "e.g. 1767225600")
    if not _same(sign(secret, timestamp.strip(), body, delivery), signature):
        covered = "<timestamp>.<delivery id>." if delivery is not None else "<timestamp>."
        raise WebhookError(
            401,
            "unauthorised",
            "the signature does not match",
            f"sign b'{covered}' + the exact body bytes sent with the shared secret (HMAC-SHA256, hex)",
        )
    skew = now - int(timestamp)
    if abs(skew) > tolerance:
        when = f"{skew:.0f} s old" if skew > 0 else f"{-skew:.0f} s in the future"
        raise WebhookError(
            401,
            "stale",
            f"the timestamp is {when}; accepted: within ±{tolerance:.0f} s",
            "sign right before sending and keep the sender's clock in sync (NTP); a replayed request is refused",
        )


def verify_hub(secret: str, header: str, signature: str | None, body: bytes, provider: str) -> None:
    """Refuse (401) a missing or wrong ``sha256=`` body signature (GitHub, Jira)."""
    if not signature:
        raise WebhookError(
            401,
            "unauthorised",
            f"missing {header}: the {provider} webhook is not signed",
            f"set the webhook's secret in {provider} to the value of the configured Secret block",
        )
    if not _same(hub_signature(secret, body), signature):
        raise WebhookError(
            401,
            "unauthorised",
            f"the {header} signature does not match",
            f"the secret in {provider} must equal the configured Secret block's value",
        )


def delivery_id(header_value: str | None, *parts: bytes) -> str:
    """The sender's delivery id when given (checked), else the SHA-256 of what was signed."""
    if header_value is None:
        return hashlib.sha256(b"".join(parts)).hexdigest()
    value = header_value.strip()
    if not _DELIVERY_RE.match(value):
        raise WebhookError(
            400,
            "malformed",
            "the delivery id header must be 1-200 visible ASCII characters",
            "send a UUID or another short id, the same on every retry of one delivery",
        )
    return value


def event_id(source: str, delivery: str) -> str:
    """The deterministic Prefect event id of a delivery: a re-send can never become a second event."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{source}\n{delivery}"))


# --- GitHub and Jira ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Routed:
    """A provider webhook translated into an allowed framework2 event."""

    system: str
    event: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Ignored:
    """A provider webhook that is understood but causes no event, and why."""

    reason: str


def _get(document: Any, *path: str, kind: type | tuple[type, ...] = str, required: bool = True) -> Any:
    """``document[path...]`` of type ``kind``; a ContractError names the missing or mistyped field."""
    value = document
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if value is None and not required:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ContractError([{"loc": ["body", *path], "msg": "missing or of the wrong type"}])
    return value


GITHUB_EVENTS = ("issues", "pull_request", "deployment", "deployment_status", "ping")


def map_github(event: str | None, payload: Any) -> Routed | Ignored:
    """Translate a GitHub webhook (``X-GitHub-Event``) into a framework2 event, or say why it causes none."""
    if not isinstance(payload, dict):
        raise ContractError([{"loc": ["body"], "msg": "a GitHub webhook body is a JSON object"}])
    if event == "ping":
        return Ignored(f"pong: the GitHub webhook (hook {payload.get('hook_id')}) reaches Framework Set 2")
    if event not in GITHUB_EVENTS:
        return Ignored(f"GitHub event {event!r} is not used; subscribe the webhook to: {', '.join(GITHUB_EVENTS[:-1])}")
    repo = _get(payload, "repository", "full_name")
    name = _get(payload, "repository", "name")
    if event in ("issues", "pull_request"):
        item = "issue" if event == "issues" else "pull_request"
        number = _get(payload, item, "number", kind=int)
        data = {
            "tracker": "github",
            "key": f"{repo}#{number}",
            "action": _get(payload, "action"),
            "repo": repo,
            item: number,
            "state": _get(payload, item, "state", required=False),
            "url": _get(payload, item, "html_url", required=False),
        }
        if event == "pull_request":
            data["merged"] = _get(payload, "pull_request", "merged", kind=bool, required=False)
        return Routed("ppms", "tasks.changed", data)
    deployment = _get(payload, "deployment", kind=dict)
    extra = deployment.get("payload")
    if isinstance(extra, str):  # GitHub passes the deployment's payload through as given: maybe JSON text
        try:
            extra = json.loads(extra)
        except ValueError:
            extra = {}
    extra = extra if isinstance(extra, dict) else {}
    app = extra.get("app") if isinstance(extra.get("app"), str) else name
    context = {
        "repo": repo,
        "environment": _get(payload, "deployment", "environment", required=False),
        "ref": _get(payload, "deployment", "ref", required=False),
        "sha": _get(payload, "deployment", "sha", required=False),
    }
    if event == "deployment":
        image = extra.get("image")
        if not isinstance(image, str) or not image:
            return Ignored(
                'the GitHub deployment\'s payload has no \'image\': add {"app": ..., "image": ...} to it '
                "to start a PLOS blue-green release"
            )
        namespace = extra.get("namespace") if isinstance(extra.get("namespace"), str) else "default"
        return Routed("plos", "release.requested", {"app": app, "image": image, "namespace": namespace, **context})
    state = _get(payload, "deployment_status", "state")
    url = _get(payload, "deployment_status", "target_url", required=False)
    if state == "success":
        release = extra.get("release") if isinstance(extra.get("release"), str) else context["ref"] or context["sha"]
        return Routed("puxt", "release.deployed", {"release": release, "app": app, "url": url, **context})
    if state in ("failure", "error"):
        return Routed("plos", "deployment.failed", {"app": app, "state": state, "url": url, **context})
    return Ignored(f"deployment_status {state!r} is not acted on; only success, failure and error are")


JIRA_ISSUE_EVENTS = {"jira:issue_created": "created", "jira:issue_updated": "updated", "jira:issue_deleted": "deleted"}
JIRA_LINK_EVENTS = {"issuelink_created": "link_created", "issuelink_deleted": "link_deleted"}


def map_jira(payload: Any) -> Routed | Ignored:
    """Translate a Jira Cloud webhook (``webhookEvent``) into a framework2 event, or say why it causes none."""
    if not isinstance(payload, dict):
        raise ContractError([{"loc": ["body"], "msg": "a Jira webhook body is a JSON object"}])
    kind = payload.get("webhookEvent")
    if kind in JIRA_ISSUE_EVENTS:
        changelog = payload.get("changelog") if isinstance(payload.get("changelog"), dict) else {}
        items = changelog.get("items") if isinstance(changelog.get("items"), list) else []
        fields = {i["field"] for i in items if isinstance(i, dict) and isinstance(i.get("field"), str)}
        return Routed(
            "ppms",
            "tasks.changed",
            {
                "tracker": "jira",
                "key": _get(payload, "issue", "key"),
                "action": JIRA_ISSUE_EVENTS[kind],
                "project": _get(payload, "issue", "fields", "project", "key", required=False),
                "changed": sorted(fields),
            },
        )
    if kind in JIRA_LINK_EVENTS:
        link = _get(payload, "issueLink", kind=dict)
        return Routed(
            "ppms",
            "tasks.changed",
            {
                "tracker": "jira",
                "action": JIRA_LINK_EVENTS[kind],
                "link": {
                    "source_issue_id": link.get("sourceIssueId"),
                    "destination_issue_id": link.get("destinationIssueId"),
                    "type": (link.get("issueLinkType") or {}).get("name")
                    if isinstance(link.get("issueLinkType"), dict)
                    else None,
                },
            },
        )
    used = ", ".join([*JIRA_ISSUE_EVENTS, *JIRA_LINK_EVENTS])
    return Ignored(f"Jira event {kind!r} is not used; subscribe the webhook to: {used}")


# --- rate limiting and replay protection --------------------------------------------------------------------


class RateLimiter:
    """A token bucket per source: up to ``per_minute`` at once, refilled at ``per_minute`` a minute."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic, max_sources: int = 10_000):
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self.max_sources = max_sources
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, source: str) -> float:
        """Spend one token of ``source``: 0.0 when allowed, else the seconds until the next token."""
        with self._lock:
            now = self.clock()
            tokens, updated = self._buckets.get(source, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - updated) * self.rate)
            if tokens >= 1.0:
                self._buckets[source] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[source] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
            if len(self._buckets) > self.max_sources:
                self._forget_idle(now)
            return wait

    def _forget_idle(self, now: float) -> None:
        # A source whose bucket has refilled is indistinguishable from a new one: forgetting it is free.
        full = [k for k, (t, u) in self._buckets.items() if t + (now - u) * self.rate >= self.capacity]
        for key in full:
            del self._buckets[key]
        while len(self._buckets) > self.max_sources:  # still too many: the longest-idle go first
            del self._buckets[min(self._buckets, key=lambda k: self._buckets[k][1])]


def signature_fingerprint(signature: str) -> str:
    """What the store remembers of a request's signature: its SHA-256 (hex), case and spaces aside."""
    return hashlib.sha256(signature.strip().lower().encode("utf-8", "replace")).hexdigest()


# --- the shared secrets -------------------------------------------------------------------------------------


MIN_SECRET_CHARS = 16

# What an unauthenticated sender is told when the secret cannot be used: no block name, URL or hint about the
# set-up. The operator reads the reason and the fix in the service log.
_NOT_CONFIGURED = "the webhook service cannot check signatures right now; the webhook was not accepted"


def _secret_unavailable(reason: str, fix: str, *, retry: bool = False) -> WebhookError:
    logger.error("webhook secret unavailable: %s. Fix: %s", reason, fix)
    return WebhookError(
        503,
        "unavailable",
        _NOT_CONFIGURED,
        "retry later; the service's operator finds the reason in its log",
        headers={"Retry-After": "30"} if retry else None,
    )


def check_secret(value: object) -> str | None:
    """Why ``value`` cannot serve as a shared webhook secret, or None. A blank or short secret can be guessed or
    was set by mistake: requests signed with it must not be trusted."""
    if not isinstance(value, str):
        return "does not hold a string"
    if len(value.strip()) < MIN_SECRET_CHARS:
        return f"holds a secret of {len(value.strip())} non-blank characters; at least {MIN_SECRET_CHARS} are needed"
    if len(set(value)) < 6:
        return "holds a secret of fewer than 6 distinct characters (e.g. 'aaaa…'), which is guessable"
    return None


async def load_secret_block(name: str) -> str:
    """The value of the Prefect ``Secret`` block ``name``. When it is missing, unreadable or too weak, the sender
    gets a plain 503 and the service log says which block and how to fix it."""
    from prefect.blocks.system import Secret
    from prefect.exceptions import ObjectNotFound

    try:
        block = await Secret.aload(name)
    except ValueError as exc:
        if not isinstance(exc.__cause__, ObjectNotFound):  # e.g. no PREFECT_API_URL: not the block's fault
            raise _secret_unavailable(
                f"cannot read the Prefect Secret block {name!r}: {exc}",
                "set PREFECT_API_URL for the webhook service to the Prefect server that holds the block",
            ) from exc
        raise _secret_unavailable(
            f"the Prefect Secret block {name!r} holding the webhook secret does not exist",
            f"create it in the Prefect UI (Blocks → + → Secret, name {name!r}), with `framework2 init`, or with "
            f"Python: Secret(value='<shared secret>').save({name!r}); the name comes from [webhooks] in "
            "framework2.toml",
        ) from exc
    except Exception as exc:  # unreachable API, timeouts: the sender should retry later
        raise _secret_unavailable(
            f"cannot read the Prefect Secret block {name!r}: {type(exc).__name__}: {exc}",
            "check that the Prefect API (PREFECT_API_URL) is reachable",
            retry=True,
        ) from exc
    value = block.get()
    problem = check_secret(value)
    if problem is not None:
        raise _secret_unavailable(
            f"the Prefect Secret block {name!r} {problem}",
            "store a random secret in it, e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`",
        )
    return value


class SecretCache:
    """Secret values for ``ttl`` seconds, so a webhook costs no Prefect API call; a rotated secret applies within
    ``ttl``. Failures are not cached: a block created after a 503 works on the next request."""

    def __init__(self, ttl: float = 60.0, loader: Callable[[str], Awaitable[str]] = load_secret_block) -> None:
        self.ttl = ttl
        self.loader = loader
        self._values: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, name: str) -> str:
        cached = self._values.get(name)
        if cached and time.monotonic() - cached[1] < self.ttl:
            return cached[0]
        # One load per block at a time: a burst on a cold cache must not become a burst of API calls.
        async with self._locks.setdefault(name, asyncio.Lock()):
            cached = self._values.get(name)
            if cached and time.monotonic() - cached[1] < self.ttl:
                return cached[0]
            value = await self.loader(name)
            self._values[name] = (value, time.monotonic())
            return value
