"""ARNs and pagination tokens, shared by every resource kind."""

from __future__ import annotations

import base64
import binascii
import json

from opensage.errors import ValidationError


def arn(region: str, account: str, resource_type: str, name: str) -> str:
    """SageMaker lowercases the name inside ARNs, so names are unique regardless of case."""
    return f"arn:aws:sagemaker:{region}:{account}:{resource_type}/{name.lower()}"


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise ValidationError("Invalid pagination token: pass the NextToken of a response") from exc
    if type(offset) is not int or offset < 0:
        raise ValidationError("Invalid pagination token: pass the NextToken of a response")
    return offset
