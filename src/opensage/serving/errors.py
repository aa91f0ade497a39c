"""The errors a handler raises to choose the HTTP answer.

`InferenceError` has the shape of the SageMaker Inference Toolkit's `BaseInferenceToolkitError`
(an integer `status_code` and a `message`), so the server maps both the same way and a user
script may raise either. `UnsupportedFormatError` deliberately is *not* one of them: the toolkit
lets it fall through to the generic 500 (message plus traceback), and scripts rely on that.
"""

from __future__ import annotations

from collections.abc import Iterable


class InferenceError(Exception):
    """Answer the request with `status_code` and `message` as the body."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(status_code, message)
        self.status_code = status_code
        self.message = message

    def __str__(self) -> str:
        return self.message


class UnsupportedFormatError(Exception):
    """A default decoder or encoder got a content type it does not know (toolkit: HTTP 500)."""

    def __init__(self, content_type: str | None, supported: Iterable[str], what: str) -> None:
        listed = ", ".join(supported)
        super().__init__(
            f"Content type {content_type} is not supported by the default {what}; the defaults "
            f"support {listed}. Implement {what} in the inference script to handle other types."
        )
        self.content_type = content_type


def status_of(exc: BaseException) -> tuple[int, str] | None:
    """`(status, message)` for an exception of the toolkit's error shape, else None.

    Duck-typed so that errors from the real `sagemaker_inference` package, raised by a script
    written for SageMaker, keep their status too.
    """
    status = getattr(exc, "status_code", None)
    message = getattr(exc, "message", None)
    if isinstance(status, int) and not isinstance(status, bool) and 100 <= status <= 599:
        return status, message if isinstance(message, str) else str(exc)
    return None
