"""The Competitor Feed block: where one competitor's price list is fetched from and how to read it."""

from __future__ import annotations

from typing import ClassVar, Literal
from urllib.parse import urlsplit

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator

#: Our offer fields a feed can map; ``sku`` and ``price`` must be present in every feed.
OFFER_FIELDS = ("sku", "price", "in_stock", "observed_at")
REQUIRED_OFFER_FIELDS = ("sku", "price")
ALLOWED_SCHEMES = ("http", "https")


class CompetitorFeed(Block):
    """A competitor's offer feed (JSON or CSV over HTTP) that PPIS collects every hour.

    Attributes:
        competitor: Display name of the competitor, used in reports and quarantine reasons.
        url: http(s) URL of the feed.
        format: "json" or "csv".
        records_path: Dotted path to the list of offers inside a JSON document; empty when the
            document itself is the list.
        field_mapping: Our field -> the feed's field name, for fields named differently.
        auth_header: Header the token is sent in.
        auth_token: Value of that header, e.g. "Bearer abc123"; stored as a secret.
        timeout_seconds: How long one request may take before it counts as a (retried) timeout.
    """

    _block_type_name: ClassVar[str] = "Competitor Feed"
    _block_type_slug: ClassVar[str] = "competitor-feed"
    _description: ClassVar[str] = (
        "A competitor's price feed (JSON or CSV over HTTP) collected by PPIS, the pricing "
        "intelligence system: where it is, how to authenticate, and how its fields map to ours."
    )
    _code_example: ClassVar[str] = """
    ```python
    from framework2.blocks import CompetitorFeed

    CompetitorFeed(
        competitor="Acme",
        url="https://feeds.acme.example/prices.json",
        records_path="data.offers",
        field_mapping={"sku": "article", "price": "amount", "in_stock": "available"},
        auth_token="Bearer <token>",
    ).save("acme")

    feed = CompetitorFeed.load("acme")
    ```

    Our fields are `sku`, `price`, `in_stock` and `observed_at`. A field left out of the mapping is
    looked up under our own name. A feed without `in_stock` counts every offer as in stock; one
    without `observed_at` is stamped with the time it was fetched. Add the feed's name to
    `ppis.feeds` in framework2.toml, and its host to `ppis.feed_host_allowlist` if that list is set.
    """

    competitor: str = Field(..., min_length=1, description="Competitor name shown in reports.")
    url: str = Field(..., description="http:// or https:// URL of the feed.")
    format: Literal["json", "csv"] = Field("json", description="Document format of the feed.")
    records_path: str | None = Field(
        None,
        description="Dotted path to the list of offers in a JSON document, e.g. 'data.offers'. "
        "Leave empty when the document is the list itself.",
    )
    field_mapping: dict[str, str] = Field(
        default_factory=dict,
        description="Our field -> the feed's field name. Our fields: sku, price, in_stock, observed_at. "
        "Unmapped fields are looked up under our name.",
    )
    auth_header: str = Field(
        "Authorization",
        # An HTTP header name is a "token": anything else would fail only at fetch time.
        pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$",
        description="Header the token is sent in, e.g. 'Authorization' or 'X-Api-Key'.",
    )
    auth_token: SecretStr | None = Field(
        None, description="Header value, e.g. 'Bearer abc123'. Stored as a secret, never logged."
    )
    timeout_seconds: float = Field(10, gt=0, description="Seconds one request may take; a timeout is retried.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme.lower() not in ALLOWED_SCHEMES or not parts.hostname:
            got = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
            raise ValueError(f"feed url must be an http:// or https:// URL with a host name ({got})")
        return value

    @field_validator("records_path")
    @classmethod
    def _blank_path_is_none(cls, value: str | None) -> str | None:
        # The UI form submits an empty string for a cleared field; treat it as "the document is the list".
        if value is None or not value.strip():
            return None
        if any(not part for part in value.strip().split(".")):
            raise ValueError(f"records_path {value!r} has an empty segment; write it like 'data.offers'")
        return value.strip()

    @field_validator("field_mapping")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(OFFER_FIELDS))
        if unknown:
            raise ValueError(
                f"field_mapping has unknown key(s) {', '.join(unknown)}; keys are our fields "
                f"({', '.join(OFFER_FIELDS)}) and values the feed's field names"
            )
        blank = sorted(k for k, v in value.items() if not v.strip())
        if blank:
            raise ValueError(f"field_mapping gives no feed field name for {', '.join(blank)}")
        return {k: v.strip() for k, v in value.items()}

    def source_field(self, field: str) -> str:
        """The feed's name for our ``field`` (our own name when unmapped)."""
        return self.field_mapping.get(field, field)

    @property
    def label(self) -> str:
        """How errors and logs name this feed: the saved block name, else the competitor."""
        return self._block_document_name or self.competitor
