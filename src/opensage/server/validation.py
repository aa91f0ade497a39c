"""Request validation against botocore's own service models (no hand-copied shapes).

botocore's client-side validator checks types and minimums only; SageMaker's service also checks
maximums, patterns and enums and answers in the AWS-wide style:
`1 validation error detected: Value 'x' at 'trainingJobName' failed to satisfy constraint: ...`.
Validation also normalises: timestamps become epoch floats and unknown members are dropped.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from datetime import UTC, datetime
from typing import Any

from botocore.model import Shape

from opensage.errors import ValidationError

_MAX_REPORTED = 10


def validate(shape: Shape | None, value: Any) -> dict[str, Any]:
    if shape is None:
        return {}
    errors: list[str] = []
    cleaned = _check(shape, value, "", errors)
    if errors:
        count = len(errors)
        noun = "error" if count == 1 else "errors"
        raise ValidationError(
            f"{count} validation {noun} detected: " + "; ".join(errors[:_MAX_REPORTED])
        )
    return dict(cleaned)


def _at(path: str, name: str) -> str:
    member = name[:1].lower() + name[1:]
    return f"{path}.{member}" if path else member


def _show(value: Any) -> str:
    return "null" if value is None else f"'{value}'"


def _fail(errors: list[str], value: Any, path: str, constraint: str) -> None:
    errors.append(
        f"Value {_show(value)} at '{path}' failed to satisfy constraint: Member must {constraint}"
    )


@functools.lru_cache(maxsize=4096)
def _pattern(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None  # a Java-only construct (\p{...}): left to the service's other checks


def _check(shape: Shape, value: Any, path: str, errors: list[str]) -> Any:
    kind = shape.type_name
    checker = _CHECKERS.get(kind)
    return checker(shape, value, path, errors) if checker else value


def _structure(shape: Shape, value: Any, path: str, errors: list[str]) -> Any:
    if not isinstance(value, dict):
        _fail(errors, value, path or "body", "be a structure")
        return {}
    members = shape.members
    out = {}
    for name in shape.required_members:
        if value.get(name) is None:
            _fail(errors, None, _at(path, name), "not be null")
    for name, member_value in value.items():
        if name in members and member_value is not None:
            out[name] = _check(members[name], member_value, _at(path, name), errors)
    return out


def _string(shape: Shape, value: Any, path: str, errors: list[str]) -> Any:
    if not isinstance(value, str):
        _fail(errors, value, path, "be a string")
        return value
    meta = shape.metadata
    if "min" in meta and len(value) < meta["min"]:
        _fail(errors, value, path, f"have length greater than or equal to {meta['min']}")
    if "max" in meta and len(value) > meta["max"]:
        _fail(errors, value, path, f"have length less than or equal to {meta['max']}")
    enum = shape.enum
    if enum and value not in enum:
        _fail(errors, value, path, f"satisfy enum value set: [{', '.join(enum)}]")
    pattern = meta.get("pattern")
    compiled = _pattern(pattern) if pattern else None
    if compiled is not None and not compiled.fullmatch(value):
        _fail(errors, value, path, f"satisfy regular expression pattern: {pattern}")
    return value


def _number(shape: Shape, value: Any, path: str, errors: list[str]) -> Any:
    integral = shape.type_name in ("integer", "long")
    allowed = (int,) if integral else (int, float)
    if isinstance(value, bool) or not isinstance(value, allowed):
        _fail(errors, value, path, "be an integer" if integral else "be a number")
        return value
    meta = shape.metadata
    if "min" in meta and value < meta["min"]:
        _fail(errors, value, path, f"have value greater than or equal to {meta['min']}")
    if "max" in meta and value > meta["max"]:
        _fail(errors, value, path, f"have value less than or equal to {meta['max']}")
    return value


def _boolean(shape: Shape, value: Any, path: str, errors: list[str]) -> Any:
    if not isinstance(value, bool):
        _fail(errors, value, path, "be a boolean")
    return value


def _timestamp(shape: Shape, value: Any, path: str, errors: list[str]) -> Any:
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)  # AWS reads offset-less times as UTC
            return parsed.timestamp()
    except (ValueError, OverflowError):
        pass
    _fail(errors, value, path, "be a timestamp")
    return value


def _blob(shape: Shape, value: Any, path: str, errors: list[str]) -> Any:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, TypeError, ValueError):
        _fail(errors, value, path, "be base64-encoded binary data")
    return value


def _list(shape: Shape, value: Any, path: str, errors: list[str]) -> Any:
    if not isinstance(value, list):
        _fail(errors, value, path, "be a list")
        return value
    _length(shape, value, path, errors)
    member = shape.member
    return [_check(member, v, f"{path}.{i + 1}.member", errors) for i, v in enumerate(value)]


def _map(shape: Shape, value: Any, path: str, errors: list[str]) -> Any:
    if not isinstance(value, dict):
        _fail(errors, value, path, "be a map")
        return value
    _length(shape, value, path, errors)
    key_shape, value_shape = shape.key, shape.value
    out = {}
    for k, v in value.items():
        _check(key_shape, k, f"{path}.key", errors)
        if v is None:
            _fail(errors, None, f"{path}.{k}", "not be null")
            continue
        out[k] = _check(value_shape, v, f"{path}.{k}", errors)
    return out


def _length(shape: Shape, value: list[Any] | dict[str, Any], path: str, errors: list[str]) -> None:
    meta = shape.metadata
    if "min" in meta and len(value) < meta["min"]:
        _fail(errors, value, path, f"have length greater than or equal to {meta['min']}")
    if "max" in meta and len(value) > meta["max"]:
        _fail(errors, value, path, f"have length less than or equal to {meta['max']}")


_CHECKERS = {
    "structure": _structure,
    "string": _string,
    "integer": _number,
    "long": _number,
    "float": _number,
    "double": _number,
    "boolean": _boolean,
    "timestamp": _timestamp,
    "blob": _blob,
    "list": _list,
    "map": _map,
}
