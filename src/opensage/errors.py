"""One error hierarchy for the whole platform, mapped once to AWS error codes at the edge.

    OpenSageError                      (InternalFailure, 500)
    ├── ValidationError                (ValidationException, 400)
    │   └── NotFoundError              (ValidationException, 400: SageMaker's Describe* says so)
    ├── ResourceNotFoundError          (ResourceNotFound, 400)
    ├── ResourceInUseError             (ResourceInUse, 400)
    ├── ResourceLimitExceededError     (ResourceLimitExceeded, 400)
    ├── UnknownOperationError          (UnknownOperationException, 400)
    ├── UnsupportedOperationError      (UnsupportedOperation, 400: a real operation not built yet)
    ├── SerializationError             (SerializationException, 400: a body that is not JSON)
    └── LogsResourceNotFoundError      (ResourceNotFoundException, 400: CloudWatch Logs' spelling)

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


class UnsupportedOperationError(OpenSageError):
    code = "UnsupportedOperation"
    http_status = 400


class SerializationError(OpenSageError):
    code = "SerializationException"
    http_status = 400
