"""Errors a user can cause, each with a message saying what was wrong and a hint saying what to do."""

from __future__ import annotations


class Framework2Error(Exception):
    """A problem the user can fix: bad config, bad data, an unreachable service."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(Framework2Error):
    """The configuration file or environment is invalid."""


class StoreError(Framework2Error):
    """The store cannot be reached or its schema is not usable."""


class FeedError(Framework2Error):
    """A competitor feed could not be collected or parsed."""


class DataError(Framework2Error):
    """Input data is unusable as a whole (single bad rows go to quarantine instead)."""
