"""PPMS source blocks: where a GitHub or Jira tracker is, which work to read from it, and its token (secret).

The connectors that use them are in ``framework2.tasks.planning.connectors``.
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, ValidationInfo, field_validator

_REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?/[A-Za-z0-9._-]+$")
_JIRA_PROJECT_KEY = re.compile(r"^[A-Z][A-Z0-9_]+$")


def _http_base_url(value: str, what: str) -> str:
    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{what} must be an https:// URL with a host name (http:// only for a local test), got {value!r}"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"{what} must not have a query or fragment, got {value!r}")
    return value


def _prefix(value: str) -> str:
    # The UI form submits "" for a cleared field: that turns the prefix off.
    return value.strip()


class GitHubSource(Block):
    """GitHub repositories whose issues PPMS reads as tasks (REST API, incremental by updated time).

    Attributes:
        api_url: REST API base URL; https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server.
        repositories: "owner/name" of each repository to read.
        token: Personal access token (classic or fine-grained with Issues: read); secret.
        estimate_label_prefix: Label prefix carrying an estimate in days, e.g. "estimate: 3d".
        points_label_prefix: Label prefix carrying story points, e.g. "points: 5".
        days_per_point: Ideal days one story point stands for.
        hours_per_day: Hours in an ideal day, for estimates written in hours ("estimate: 6h").
        skill_label_prefix: Label prefix naming a skill the task needs, e.g. "skill: python".
        per_page: Issues per page (GitHub allows at most 100).
        timeout_seconds: How long one request may take.
    """

    _block_type_name: ClassVar[str] = "GitHub Source"
    _block_type_slug: ClassVar[str] = "github-source"
    _description: ClassVar[str] = (
        "GitHub repositories whose issues PPMS, the project management system, reads as tasks: the API URL, "
        "the repositories, a token (kept secret), and which labels carry estimates and skills."
    )
    _code_example: ClassVar[str] = """
    ```python
    from framework2.blocks.project_sources import GitHubSource

    GitHubSource(repositories=["octo/shop", "octo/payments"], token="github_pat_...").save("octo")
    ```

    Estimates come from a label (`estimate: 3d`, `estimate: 6h`, `points: 5`) or, when no label has one,
    from a body line `Estimate: 2d`. Dependencies come from body lines `Depends on #12`,
    `Blocked by octo/payments#34` and `Blocks #56`. Add the block's name to `ppms.githubSources`.
    """

    api_url: str = Field(
        "https://api.github.com",
        description="GitHub REST API base URL: https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise.",
    )
    repositories: list[str] = Field(
        ..., min_length=1, description="Repositories to read, each as 'owner/name', e.g. 'octo/shop'."
    )
    token: SecretStr | None = Field(
        None,
        description="Personal access token with read access to the repositories' issues. Stored as a secret. "
        "Without one only public repositories can be read, at 60 requests an hour.",
    )
    estimate_label_prefix: str = Field(
        "estimate:",
        description="Label prefix of an estimate in days, e.g. 'estimate:' for 'estimate: 3d' (units d, h, w). "
        "Empty turns it off.",
    )
    points_label_prefix: str = Field(
        "points:",
        description="Label prefix of story points, e.g. 'points:' for 'points: 5'; converted with days_per_point. "
        "Empty turns it off.",
    )
    days_per_point: float = Field(1.0, gt=0, description="Ideal days of work one story point stands for.")
    hours_per_day: float = Field(8.0, gt=0, le=24, description="Hours in an ideal day, for estimates like '6h'.")
    skill_label_prefix: str = Field(
        "skill:",
        description="Label prefix naming a skill a task needs, e.g. 'skill:' for 'skill: python'. Empty turns it off.",
    )
    per_page: int = Field(100, ge=1, le=100, description="Issues per page of the API (at most 100).")
    timeout_seconds: float = Field(30.0, gt=0, description="Seconds one request may take; a timeout is retried.")

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        return _http_base_url(value, "api_url")

    @field_validator("estimate_label_prefix", "points_label_prefix", "skill_label_prefix")
    @classmethod
    def _prefixes(cls, value: str) -> str:
        return _prefix(value)

    @field_validator("repositories")
    @classmethod
    def _owner_name(cls, value: list[str]) -> list[str]:
        cleaned = [r.strip().strip("/") for r in value if r.strip()]
        bad = [r for r in cleaned if not _REPOSITORY.match(r)]
        if bad:
            raise ValueError(f"repositories must be written 'owner/name' (e.g. 'octo/shop'); not: {', '.join(bad)}")
        if not cleaned:
            raise ValueError("name at least one repository as 'owner/name'")
        return list(dict.fromkeys(cleaned))

    @property
    def label(self) -> str:
        """How errors and logs name this source: the saved block name, else its repositories."""
        return self._block_document_name or ", ".join(self.repositories)


class JiraSource(Block):
    """A Jira Cloud site whose issues PPMS reads as tasks (REST API v3 search, incremental by updated time).

    Attributes:
        site_url: The site, e.g. https://acme.atlassian.net.
        email: Email of the Atlassian account the API token belongs to.
        api_token: Atlassian API token; secret.
        project_keys: Projects to read when no JQL is given.
        jql: The issues to read; default ``project in (<project_keys>)``.
        estimate_field: Field holding the estimate (story points, or a time-tracking field in seconds).
        days_per_point: Ideal days one story point stands for.
        hours_per_day: Hours in an ideal day, for time-tracking estimates.
        assignee_handle: Which assignee attribute becomes the task's assignee (must match people's handles).
        jql_timezone: Time zone of the token's account, in which Jira reads the dates in JQL.
        search_path: Search endpoint; the classic /rest/api/3/search works too.
        skill_label_prefix: Label prefix naming a skill the task needs.
        page_size: Issues per page.
        timeout_seconds: How long one request may take.
    """

    _block_type_name: ClassVar[str] = "Jira Source"
    _block_type_slug: ClassVar[str] = "jira-source"
    _description: ClassVar[str] = (
        "A Jira Cloud site whose issues PPMS, the project management system, reads as tasks: the site, "
        "the account and its API token (kept secret), which issues (JQL) and which field holds estimates."
    )
    _code_example: ClassVar[str] = """
    ```python
    from framework2.blocks.project_sources import JiraSource

    JiraSource(
        site_url="https://acme.atlassian.net",
        email="ppms-bot@acme.com",
        api_token="ATATT...",
        project_keys=["SHOP", "OPS"],
        estimate_field="customfield_10016",  # Story point estimate
        days_per_point=0.5,
    ).save("acme")
    ```

    Dependencies come from "Blocks" issue links, across projects too. Add the block's name to
    `ppms.jiraSources`.
    """

    site_url: str = Field(..., description="Jira Cloud site URL, e.g. https://acme.atlassian.net.")
    email: str = Field(..., min_length=3, description="Email of the Atlassian account the API token belongs to.")
    api_token: SecretStr = Field(
        ..., description="Atlassian API token of that account (id.atlassian.com → Security). Stored as a secret."
    )
    project_keys: list[str] = Field(
        default_factory=list,
        description="Project keys to read, e.g. ['SHOP', 'OPS']; used to build the JQL when jql is empty.",
    )
    jql: str | None = Field(
        None,
        validate_default=True,
        description="JQL selecting the issues to read; empty means 'project in (<project keys>)'. "
        "PPMS adds its own 'updated >=' condition for incremental reads.",
    )
    estimate_field: str | None = Field(
        "customfield_10016",
        description="Id of the field holding the estimate: a story points field (e.g. customfield_10016, converted "
        "with days_per_point) or timeoriginalestimate (seconds). Empty: tasks are unestimated.",
    )
    days_per_point: float = Field(1.0, gt=0, description="Ideal days of work one story point stands for.")
    hours_per_day: float = Field(8.0, gt=0, le=24, description="Hours in an ideal day, for time-tracking estimates.")
    assignee_handle: Literal["accountId", "emailAddress", "displayName"] = Field(
        "accountId",
        description="Assignee attribute used as the task's assignee; people's handles must use the same. "
        "Falls back to accountId when Jira hides the chosen one.",
    )
    jql_timezone: str = Field(
        "UTC",
        description="Time zone of the account's Jira profile, e.g. 'Europe/Berlin': Jira reads JQL dates in it.",
    )
    search_path: str = Field(
        "/rest/api/3/search/jql",
        description="Search endpoint: /rest/api/3/search/jql (current), or the classic /rest/api/3/search.",
    )
    skill_label_prefix: str = Field(
        "skill:",
        description="Label prefix naming a skill a task needs, e.g. 'skill:' for 'skill:python'. Empty turns it off.",
    )
    page_size: int = Field(100, ge=1, le=1000, description="Issues per page of the search.")
    timeout_seconds: float = Field(30.0, gt=0, description="Seconds one request may take; a timeout is retried.")

    @field_validator("site_url")
    @classmethod
    def _site_url(cls, value: str) -> str:
        return _http_base_url(value, "site_url")

    @field_validator("skill_label_prefix")
    @classmethod
    def _prefixes(cls, value: str) -> str:
        return _prefix(value)

    @field_validator("project_keys")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        cleaned = [k.strip().upper() for k in value if k.strip()]
        bad = [k for k in cleaned if not _JIRA_PROJECT_KEY.match(k)]
        if bad:
            raise ValueError(f"project keys are letters and digits starting with a letter (e.g. 'SHOP'); not: {bad}")
        return list(dict.fromkeys(cleaned))

    @field_validator("jql")
    @classmethod
    def _something_to_read(cls, value: str | None, info: ValidationInfo) -> str | None:
        # A field validator, not a model validator: a model validator's error would echo every input, token too.
        value = value.strip() if value and value.strip() else None
        if value is None and not info.data.get("project_keys"):
            raise ValueError("give project_keys (e.g. ['SHOP']) or a jql selecting the issues to read")
        return value

    @field_validator("estimate_field")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() if value and value.strip() else None

    @field_validator("jql_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value.strip())
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"jql_timezone {value!r} is not a time zone name like 'UTC' or 'Europe/Berlin'") from None
        return value.strip()

    @field_validator("search_path")
    @classmethod
    def _path(cls, value: str) -> str:
        value = value.strip()
        if not value.startswith("/rest/"):
            raise ValueError(f"search_path must be a REST path like /rest/api/3/search/jql, got {value!r}")
        return value.rstrip("/")

    def base_jql(self) -> str:
        """The JQL naming what to read, before PPMS's incremental condition."""
        if self.jql:
            return self.jql
        return "project in (" + ", ".join(f'"{key}"' for key in self.project_keys) + ")"

    @property
    def label(self) -> str:
        """How errors and logs name this source: the saved block name, else the site's host."""
        return self._block_document_name or (urlsplit(self.site_url).hostname or self.site_url)


__all__ = ["GitHubSource", "JiraSource"]
