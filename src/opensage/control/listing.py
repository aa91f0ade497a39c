"""The List* operations' shared shape: name/status/time filters, sort, NextToken pagination."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opensage.control.naming import decode_token, encode_token
from opensage.store import Resource, Store
from opensage.store.repository import ListQuery

_SORT_COLUMNS = {"Name": "name", "Status": "status", "CreationTime": "created_at"}


def page(
    store: Store,
    kind: str,
    request: dict[str, Any],
    summarize: Callable[[Resource], dict[str, Any]],
    key: str,
    *,
    default_descending: bool = False,
) -> dict[str, Any]:
    """One page of `kind` as SageMaker lists it: `{key: [...], "NextToken"?: ...}`."""
    offset = decode_token(request.get("NextToken"))
    limit = request.get("MaxResults", 10)
    order = request.get("SortOrder")
    descending = default_descending if order is None else order == "Descending"
    query = ListQuery(
        kind=kind,
        name_contains=request.get("NameContains"),
        status=request.get("StatusEquals"),
        created_after=request.get("CreationTimeAfter"),
        created_before=request.get("CreationTimeBefore"),
        modified_after=request.get("LastModifiedTimeAfter"),
        modified_before=request.get("LastModifiedTimeBefore"),
        sort_by=_SORT_COLUMNS.get(request.get("SortBy", ""), "created_at"),
        descending=descending,
        offset=offset,
        limit=limit + 1,
    )
    found = store.query(query)
    out: dict[str, Any] = {key: [summarize(resource) for resource in found[:limit]]}
    if len(found) > limit:
        out["NextToken"] = encode_token(offset + limit)
    return out
