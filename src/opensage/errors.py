"""One error hierarchy for the whole platform, mapped once to AWS error codes at the edge.

    OpenSageError                      (InternalFailure, 500)
    ├── ValidationError                (ValidationException, 400)
    │   ├── NotFoundError              (ValidationException, 400: SageMaker's Describe* says so)
    │   └── PayloadTooLargeError       (ValidationException, 413: an invocation body over 6 MB)
    ├── ResourceNotFoundError          (ResourceNotFound, 400)
    ├── ResourceInUseError             (ResourceInUse, 400)
    ├── ResourceLimitExceededError     (ResourceLimitExceeded, 400)
    ├── UnknownOperationError          (UnknownOperationException, 400)
    ├── UnsupportedOperationError      (UnsupportedOperation, 400: a real operation not built yet)
    ├── SerializationError             (SerializationException, 400: a body that is not JSON)
    ├── LogsResourceNotFoundError      (ResourceNotFoundException, 400: CloudWatch Logs' spelling)
    ├── ObjectNotFoundError            (ObjectNotFoundException, 400: Application Auto Scaling's)
    ├── LimitExceededError             (LimitExceededException, 400: Application Auto Scaling's)
    ├── InvalidNextTokenError          (InvalidNextTokenException, 400: Application Auto Scaling's)
    ├── ServiceUnavailableError        (ServiceUnavailable, 503: no healthy instance; clients retry)
    └── ModelError                     (ModelError, 424: a container answered with an error)

Adapters translate foreign exceptions into these at their edge (`raise X(...) from exc`), so the
server renders every failure with the same `{"__type", "message"}` shape.
"""

from __future__ import annotations


class OpenSageError(Exception):
    code = "InternalFailure"
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(OpenSageError):
    code = "ValidationException"
    http_status = 400


class NotFoundError(ValidationError):
    """A missing resource, reported as SageMaker does: ValidationException, not a 404."""


class ResourceNotFoundError(OpenSageError):
    code = "ResourceNotFound"
    http_status = 400


class ResourceInUseError(OpenSageError):
    code = "ResourceInUse"
    http_status = 400


class ResourceLimitExceededError(OpenSageError):
    code = "ResourceLimitExceeded"
    http_status = 400


class UnknownOperationError(OpenSageError):
    code = "UnknownOperationException"
    http_status = 400


class LogsResourceNotFoundError(OpenSageError):
    code = "ResourceNotFoundException"
    http_status = 400


class ObjectNotFoundError(OpenSageError):
    """Application Auto Scaling's "no such scalable target or scaling policy"."""

    code = "ObjectNotFoundException"
    http_status = 400


class LimitExceededError(OpenSageError):
    """Application Auto Scaling's quota error (e.g. more than 50 scaling policies per target)."""

    code = "LimitExceededException"
    http_status = 400


class InvalidNextTokenError(OpenSageError):
    """Application Auto Scaling's answer to a NextToken it did not hand out."""

    code = "InvalidNextTokenException"
    http_status = 400


class UnsupportedOperationError(OpenSageError):
    code = "UnsupportedOperation"
    http_status = 400


class SerializationError(OpenSageError):
    code = "SerializationException"
    http_status = 400


class ServiceUnavailableError(OpenSageError):
    """No healthy instance can take the request now; AWS clients retry this one."""

    code = "ServiceUnavailable"
    http_status = 503


class ModelError(OpenSageError):
    """A container answered an invocation with an error status, or not in time."""

    code = "ModelError"
    http_status = 424

    def __init__(
        self, message: str, original_status: int, original_message: str, log_stream_arn: str
    ) -> None:
        super().__init__(message)
        self.original_status = original_status
        self.original_message = original_message
        self.log_stream_arn = log_stream_arn


class PayloadTooLargeError(ValidationError):
    """A request body over the runtime's 6 MB limit: SageMaker answers HTTP 413."""

    http_status = 413
