"""AddTags / ListTags / DeleteTags over any resource, addressed by ARN."""

from __future__ import annotations

from typing import Any

from opensage.control.naming import decode_token, encode_token
from opensage.errors import OpenSageError, ResourceNotFoundError
from opensage.store import Resource, Store


def insert_tagged(
    store: Store, resource: Resource, request: dict[str, Any], duplicate: OpenSageError
) -> None:
    """Store a new resource with the request's `Tags`; `duplicate` if the name is taken."""
    if not store.insert(resource):
        raise duplicate
    tags = {t["Key"]: t["Value"] for t in request.get("Tags", [])}
    if tags:
        store.put_tags(resource.arn, tags)


class TagService:
    def __init__(self, store: Store) -> None:
        self.store = store

    def _require(self, arn: str) -> str:
        if self.store.get_by_arn(arn) is None:
            raise ResourceNotFoundError(f"Could not find resource with ARN {arn}")
        return arn

    def add(self, request: dict[str, Any]) -> dict[str, Any]:
        arn = self._require(request["ResourceArn"])
        self.store.put_tags(arn, {t["Key"]: t["Value"] for t in request["Tags"]})
        return {"Tags": request["Tags"]}

    def list(self, request: dict[str, Any]) -> dict[str, Any]:
        arn = self._require(request["ResourceArn"])
        offset = decode_token(request.get("NextToken"))
        limit = request.get("MaxResults", 50)
        items = list(self.store.list_tags(arn).items())
        page = [{"Key": k, "Value": v} for k, v in items[offset : offset + limit]]
        out: dict[str, Any] = {"Tags": page}
        if offset + limit < len(items):
            out["NextToken"] = encode_token(offset + limit)
        return out

    def delete(self, request: dict[str, Any]) -> dict[str, Any]:
        arn = self._require(request["ResourceArn"])
        self.store.delete_tags(arn, request["TagKeys"])
        return {}
