"""What the SDK raises, and its defaults, shared by estimators and models."""

from __future__ import annotations

DEFAULT_ROLE = "arn:aws:iam::123456789012:role/opensage"


class UnexpectedStatusError(RuntimeError):
    """A job or endpoint ended in an unexpected status (the SDK's UnexpectedStatusException)."""

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.status = status
