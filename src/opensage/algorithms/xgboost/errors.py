"""The one error kind a user can fix (SageMaker's `ClientError`): the contract's `UserError`."""

from opensage.algorithms.base import UserError

__all__ = ["UserError"]
