"""The opensage SDK: the SageMaker Python SDK's shapes (Session, Estimator), built on boto3.

It talks to a server only through boto3 clients, so the same code runs against real SageMaker.
"""

from opensage.sdk.estimator import Estimator, TrainingInput, UnexpectedStatusError
from opensage.sdk.session import Session

__all__ = ["Estimator", "Session", "TrainingInput", "UnexpectedStatusError"]
