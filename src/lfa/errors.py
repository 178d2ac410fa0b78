"""Errors that reach users. Each carries the fix, so the CLI can print one actionable line."""

from __future__ import annotations


class LfaError(Exception):
    """Base error: ``message`` says what went wrong, ``fix`` says what to do about it."""

    def __init__(self, message: str, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(f"{message} (fix: {fix})" if fix else message)


class ModelMissingError(LfaError):
    """A model file the registry knows is not in the cache."""


class ModelLoadError(LfaError):
    """A model file exists but does not load or has the wrong shape or hash."""


class MediaError(LfaError):
    """An image, video or audio input that cannot be read."""


class ConfigError(LfaError):
    """A configuration value that is invalid."""
