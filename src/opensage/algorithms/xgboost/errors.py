"""The one error kind a user can fix (SageMaker's `ClientError`).

Everything raised as `UserError` becomes `ClientError: <message>` in the failure file; anything
else is a bug or an environment problem and becomes `AlgorithmError: ...`.
"""


class UserError(Exception):
    """A problem in the job's inputs (hyperparameters, channels, data) that the user can fix."""
