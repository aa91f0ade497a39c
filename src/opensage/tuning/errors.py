"""The tuning package's one error: a configuration the strategies cannot run.

It is both a `ValidationError` (so the API edge renders it as a ValidationException with its
message, no translation needed) and a `ValueError` (so pure callers and tests can treat it as the
bad argument it is).
"""

from __future__ import annotations

from opensage.errors import ValidationError


class TuningConfigError(ValidationError, ValueError):
    """A tuning job setting that breaks a rule of spec §5.2; the message names the setting."""


class SpaceError(TuningConfigError):
    """A ParameterRanges entry that is malformed or invalid; the message names the parameter."""
