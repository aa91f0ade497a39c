"""ARNs (spec 4.3) and pagination tokens."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opensage.control.naming import arn, decode_token, encode_token
from opensage.errors import ValidationError


def test_arn_lowercases_the_name() -> None:
    assert arn("us-east-1", "123456789012", "training-job", "My-Job") == (
        "arn:aws:sagemaker:us-east-1:123456789012:training-job/my-job"
    )


@given(offset=st.integers(min_value=0, max_value=2**62))
def test_tokens_round_trip(offset: int) -> None:
    assert decode_token(encode_token(offset)) == offset


def test_missing_token_is_offset_zero() -> None:
    assert decode_token(None) == 0
    assert decode_token("") == 0


@pytest.mark.parametrize(
    "token",
    [
        "garbage!",
        "e30=",  # {}
        "W10=",  # []
        "eyJvZmZzZXQiOiAtMX0=",  # {"offset": -1}
        "eyJvZmZzZXQiOiAiMSJ9",  # {"offset": "1"}
        "eyJvZmZzZXQiOiAxLjV9",  # {"offset": 1.5}
    ],
)
def test_bad_tokens_are_validation_errors(token: str) -> None:
    with pytest.raises(ValidationError, match="Invalid pagination token"):
        decode_token(token)


@given(token=st.text(max_size=40))
@settings(max_examples=300, deadline=None)
def test_any_token_decodes_or_is_a_validation_error(token: str) -> None:
    try:
        offset = decode_token(token)
    except ValidationError:
        return
    assert isinstance(offset, int)
    assert offset >= 0
