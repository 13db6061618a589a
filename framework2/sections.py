"""The base of every config section and of the tables a section holds: camelCase or snake_case keys, unknown keys
refused by name. Apart from ``framework2.config`` so the models a system defines for its own tables (the PCES
impact policy, stakeholder preferences) can use it without importing the whole configuration."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def snake_case(key: str) -> str:
    """``marketAnalysisInterval`` → ``market_analysis_interval`` (snake_case passes through)."""
    return _CAMEL.sub("_", key).lower()


def camel_case(key: str) -> str:
    """``market_analysis_interval`` → ``marketAnalysisInterval``, the seed's spelling."""
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def unknown_keys_message(unknown: list[str], known: list[str]) -> str:
    """'unknown key(s) X; known keys: a, b' — camelCase, as the example file writes them."""
    listed = ", ".join(camel_case(k) for k in sorted(known))
    return f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; known keys: {listed}"


class Section(BaseModel):
    """A config section: accepts the seed's camelCase keys and snake_case, rejects unknown keys by name.

    Also the base of the models a section holds as tables (the PCES impact policy, components, stakeholder
    preferences), so every table in the file follows the same two rules."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _snake_keys(cls, data: Any) -> Any:
        # The file may say marketAnalysisInterval while the environment says MARKET_ANALYSIS_INTERVAL;
        # sources arrive merged lowest-priority first, so a later spelling of the same key wins.
        if not isinstance(data, dict):
            return data
        unknown = [str(k) for k in data if not isinstance(k, str) or snake_case(k) not in cls.model_fields]
        if unknown:
            # Pydantic's "extra inputs are not permitted" names the key but not what was meant.
            raise ValueError(unknown_keys_message(unknown, list(cls.model_fields)))
        merged: dict[str, Any] = {}
        for key, value in data.items():
            key = snake_case(key)
            earlier = merged.get(key)
            # A table given in both spellings (file camelCase, environment snake_case): keep both tables' keys.
            merged[key] = {**earlier, **value} if isinstance(earlier, dict) and isinstance(value, dict) else value
        return merged
