"""A path-style S3 REST subset over the storage port: buckets (create, head, list, delete),
objects (put, get with a range, head, delete, copy), DeleteObjects, ListObjects v1 and v2 (prefix,
delimiter, continuation, URL encoding) and multipart uploads: what boto3's `s3` client and its
transfer manager, `aws s3 cp|sync|ls` and the SageMaker SDK use. Every bucket name and key is
validated before it reaches the storage port, which checks again that no path leaves its root."""

from __future__ import annotations

import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from opensage.errors import NotFoundError, OpenSageError, ValidationError
from opensage.server.s3_multipart import (
    EntityTooSmallError,
    InvalidPartError,
    InvalidPartOrderError,
    MultipartUploads,
    NoSuchUploadError,
)
from opensage.storage import BucketNotEmptyError, ObjectStorage, S3Uri
from opensage.storage.base import validate_bucket, validate_key

_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"


def _xml(body: str, status: int = 200) -> Response:
    return Response(
        f'<?xml version="1.0" encoding="UTF-8"?>\n{body}',
        status_code=status,
        media_type="application/xml",
        headers={"x-amz-request-id": uuid.uuid4().hex},
    )


def _error(code: str, message: str, status: int) -> Response:
    return _xml(f"<Error><Code>{code}</Code><Message>{escape(message)}</Message></Error>", status)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class InvalidRangeError(ValidationError):
    """A Range header past the object's end: S3's 416 InvalidRange."""


def decode_aws_chunked(body: bytes) -> bytes:
    """Undo `Content-Encoding: aws-chunked` (size;signature CRLF data CRLF ... 0 CRLF trailers)."""
    out, pos = bytearray(), 0
    while True:
        line_end = body.index(b"\r\n", pos)
        size = int(body[pos:line_end].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        start = line_end + 2
        out += body[start : start + size]
        pos = start + size + 2


class S3Api:
    """Requests are routed by method, by bucket or object, and by the sub-resource in the query
    (`?uploads`, `?uploadId=`, `?delete`, `?location`), as S3 routes them."""

    def __init__(self, storage: ObjectStorage, uploads: Path) -> None:
        self.storage = storage
        self.multipart = MultipartUploads(storage, uploads)

    async def handle(self, request: Request) -> Response:
        # the decoded path from the server, not request.url: a key may hold '?' or '#'
        path = str(request.scope["path"]).lstrip("/")
        bucket, _, key = path.partition("/")
        try:
            if not bucket:
                if request.method != "GET":
                    return _error("MethodNotAllowed", "Only GET lists the buckets", 405)
                return await run_in_threadpool(self._list_buckets)
            validate_bucket(bucket)
            if not key:
                return await self._bucket(request, bucket)
            uri = S3Uri(bucket, key)
            validate_key(key)
            return await self._object(request, uri)
        except NotFoundError as exc:
            code = "NoSuchBucket" if "bucket" in exc.message else "NoSuchKey"
            return _error(code, exc.message, 404)
        except NoSuchUploadError as exc:
            return _error("NoSuchUpload", exc.message, 404)
        except BucketNotEmptyError as exc:
            return _error("BucketNotEmpty", exc.message, 409)
        except InvalidRangeError as exc:
            return _error("InvalidRange", exc.message, 416)
        except (InvalidPartError, InvalidPartOrderError, EntityTooSmallError) as exc:
            code = type(exc).__name__.removesuffix("Error")
            return _error(code, exc.message, 400)
        except MalformedXMLError as exc:
            return _error("MalformedXML", exc.message, 400)
        except ValidationError as exc:
            return _error("InvalidArgument", exc.message, 400)
        except OpenSageError as exc:
            return _error("InternalError", exc.message, 500)

    def _list_buckets(self) -> Response:
        items = "".join(
            f"<Bucket><Name>{b}</Name><CreationDate>{_iso(0)}</CreationDate></Bucket>"
            for b in self.storage.list_buckets()
        )
        return _xml(
            f'<ListAllMyBucketsResult xmlns="{_XMLNS}"><Owner><ID>opensage</ID></Owner>'
            f"<Buckets>{items}</Buckets></ListAllMyBucketsResult>"
        )

    async def _bucket(self, request: Request, bucket: str) -> Response:
        method, query = request.method, request.query_params
        if method == "PUT" and not query:
            await run_in_threadpool(self.storage.create_bucket, bucket)
            return Response(status_code=200, headers={"Location": f"/{bucket}"})
        exists = await run_in_threadpool(self.storage.bucket_exists, bucket)
        if not exists:
            if method == "HEAD":
                return Response(status_code=404)
            return _error("NoSuchBucket", f"The specified bucket does not exist: {bucket}", 404)
        if method == "HEAD":
            return Response(status_code=200)
        if method == "DELETE" and not query:
            await run_in_threadpool(self.storage.delete_bucket, bucket)
            return Response(status_code=204)
        if method == "POST" and "delete" in query:
            body = await request.body()
            return await run_in_threadpool(self._delete_objects, bucket, body)
        if method == "GET" and "location" in query:
            return _xml(f'<LocationConstraint xmlns="{_XMLNS}"/>')
        if method == "GET" and not set(query) - _LIST_PARAMETERS:
            return await run_in_threadpool(self._list_objects, bucket, request)
        what = ", ".join(sorted(query)) or "no sub-resource"
        return _error("NotImplemented", f"{method} on a bucket with {what} is not supported", 501)

    def _delete_objects(self, bucket: str, body: bytes) -> Response:
        root = _parse_xml(body)
        objects = [_child_text(o, "Key") for o in _children(root, "Object")]
        if not 1 <= len(objects) <= 1000:
            raise MalformedXMLError("DeleteObjects takes 1 to 1000 objects")
        quiet = _child_text(root, "Quiet", "false").lower() == "true"
        results = []
        for key in objects:
            try:
                validate_key(key)
                self.storage.delete(S3Uri(bucket, key))
            except ValidationError as exc:
                results.append(
                    f"<Error><Key>{escape(key)}</Key><Code>InvalidArgument</Code>"
                    f"<Message>{escape(exc.message)}</Message></Error>"
                )
                continue
            if not quiet:
                results.append(f"<Deleted><Key>{escape(key)}</Key></Deleted>")
        return _xml(f'<DeleteResult xmlns="{_XMLNS}">{"".join(results)}</DeleteResult>')

    def _list_objects(self, bucket: str, request: Request) -> Response:
        q = request.query_params
        v2 = q.get("list-type") == "2"
        prefix = q.get("prefix", "")
        delimiter = q.get("delimiter", "")
        url_encoded = q.get("encoding-type") == "url"
        try:
            max_keys = min(1000, int(q.get("max-keys", "1000")))
        except ValueError as exc:
            raise ValidationError("max-keys must be an integer") from exc
        if max_keys < 0:
            raise ValidationError("max-keys must not be negative")
        token = q.get("continuation-token")
        after = (token if v2 and token else "") or q.get("start-after" if v2 else "marker", "")
        validate_key(prefix, allow_empty=True)
        contents, prefixes = [], []
        for info in self.storage.list(S3Uri(bucket, prefix)):
            key = info.uri.key
            if key <= after:
                continue
            if delimiter and delimiter in key[len(prefix) :]:
                common = key[: len(prefix) + key[len(prefix) :].index(delimiter) + len(delimiter)]
                if common not in prefixes and common > after:
                    prefixes.append(common)
                continue
            contents.append(info)
        entries = sorted(
            [(i.uri.key, i) for i in contents] + [(p, None) for p in prefixes],
            key=lambda e: e[0],
        )
        page, truncated = entries[:max_keys], len(entries) > max_keys

        def text(value: str) -> str:
            return escape(quote(value, safe="/") if url_encoded else value)

        body = "".join(
            f"<Contents><Key>{text(k)}</Key><LastModified>{_iso(i.last_modified)}"
            f"</LastModified><ETag>{escape(i.etag)}</ETag><Size>{i.size}</Size>"
            "<StorageClass>STANDARD</StorageClass></Contents>"
            if i is not None
            else f"<CommonPrefixes><Prefix>{text(k)}</Prefix></CommonPrefixes>"
            for k, i in page
        )
        last = escape(page[-1][0]) if truncated else ""
        if v2:
            paging = (
                (f"<ContinuationToken>{escape(token)}</ContinuationToken>" if token else "")
                + (f"<NextContinuationToken>{last}</NextContinuationToken>" if truncated else "")
                + (
                    f"<StartAfter>{text(q['start-after'])}</StartAfter>"
                    if "start-after" in q
                    else ""
                )
                + f"<KeyCount>{len(page)}</KeyCount>"
            )
        else:
            paging = f"<Marker>{text(q.get('marker', ''))}</Marker>" + (
                f"<NextMarker>{text(page[-1][0])}</NextMarker>" if truncated else ""
            )
        return _xml(
            f'<ListBucketResult xmlns="{_XMLNS}"><Name>{bucket}</Name>'
            f"<Prefix>{text(prefix)}</Prefix>{paging}"
            + (f"<Delimiter>{text(delimiter)}</Delimiter>" if delimiter else "")
            + ("<EncodingType>url</EncodingType>" if url_encoded else "")
            + f"<MaxKeys>{max_keys}</MaxKeys><IsTruncated>{str(truncated).lower()}</IsTruncated>"
            f"{body}</ListBucketResult>"
        )

    def _read_range(self, uri: S3Uri, start: int, stop: int) -> bytes:
        with self.storage.open(uri) as stream:
            stream.seek(start)
            return stream.read(stop - start)

    async def _object(self, request: Request, uri: S3Uri) -> Response:
        method, query = request.method, request.query_params
        upload_id = query.get("uploadId")
        if method == "PUT" and "partNumber" in query and upload_id is not None:
            number = _part_number(query["partNumber"])
            source = request.headers.get("x-amz-copy-source")
            if source is not None:
                return await run_in_threadpool(
                    self._copy_part, upload_id, uri, number, source, request.headers
                )
            body = await _payload(request)
            etag = await run_in_threadpool(self.multipart.put_part, upload_id, uri, number, body)
            return Response(status_code=200, headers={"ETag": etag})
        if method == "POST" and "uploads" in query:
            upload_id = await run_in_threadpool(self.multipart.create, uri)
            return _xml(
                f'<InitiateMultipartUploadResult xmlns="{_XMLNS}"><Bucket>{uri.bucket}</Bucket>'
                f"<Key>{escape(uri.key)}</Key><UploadId>{upload_id}</UploadId>"
                "</InitiateMultipartUploadResult>"
            )
        if method == "POST" and upload_id is not None:
            body = await request.body()
            return await run_in_threadpool(self._complete, upload_id, uri, body)
        if method == "DELETE" and upload_id is not None:
            await run_in_threadpool(self.multipart.abort, upload_id, uri)
            return Response(status_code=204)
        if query and not set(query) <= _OBJECT_PARAMETERS:
            what = ", ".join(sorted(query))
            return _error(
                "NotImplemented", f"{method} on an object with {what} is not supported", 501
            )
        if method == "PUT":
            source = request.headers.get("x-amz-copy-source")
            if source is not None:
                return await run_in_threadpool(self._copy, uri, source)
            body = await _payload(request)
            info = await run_in_threadpool(self.storage.put_bytes, uri, body)
            return Response(status_code=200, headers={"ETag": info.etag})
        if method in ("GET", "HEAD"):
            return await self._get(request, uri)
        if method == "DELETE":
            await run_in_threadpool(self.storage.delete, uri)
            return Response(status_code=204)
        return _error("MethodNotAllowed", f"{method} is not allowed on an object", 405)

    async def _get(self, request: Request, uri: S3Uri) -> Response:
        method = request.method
        head = await run_in_threadpool(self.storage.head, uri)
        if head is None:
            if method == "HEAD":
                return Response(status_code=404)
            raise NotFoundError(f"The specified key does not exist: {uri.key}")
        headers = {
            "ETag": head.etag,
            "Last-Modified": datetime.fromtimestamp(head.last_modified, UTC).strftime(
                "%a, %d %b %Y %H:%M:%S GMT"
            ),
            "Content-Length": str(head.size),
            "Accept-Ranges": "bytes",
        }
        if method == "HEAD":
            return Response(status_code=200, headers=headers)
        wanted = byte_range(request.headers.get("range"), head.size)
        if wanted is None:
            data = await run_in_threadpool(self.storage.get_bytes, uri)
            return Response(data, headers=headers, media_type="binary/octet-stream")
        start, stop = wanted
        data = await run_in_threadpool(self._read_range, uri, start, stop)
        headers["Content-Length"] = str(len(data))
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{head.size}"
        return Response(data, status_code=206, headers=headers, media_type="binary/octet-stream")

    def _copy(self, target: S3Uri, source_header: str) -> Response:
        source = copy_source(source_header)
        with tempfile.TemporaryDirectory(dir=self._scratch()) as tmp:
            staged = Path(tmp) / "object"
            self.storage.download(source, staged)
            info = self.storage.put_file(target, staged)
        return _xml(
            f'<CopyObjectResult xmlns="{_XMLNS}"><ETag>{escape(info.etag)}</ETag>'
            f"<LastModified>{_iso(info.last_modified)}</LastModified></CopyObjectResult>"
        )

    def _copy_part(
        self, upload_id: str, uri: S3Uri, number: int, source_header: str, headers: Any
    ) -> Response:
        source = copy_source(source_header)
        head = self.storage.head(source)
        if head is None:
            raise NotFoundError(f"The specified key does not exist: {source.key}")
        wanted = byte_range(headers.get("x-amz-copy-source-range"), head.size)
        start, stop = wanted if wanted is not None else (0, head.size)
        data = self._read_range(source, start, stop)
        etag = self.multipart.put_part(upload_id, uri, number, data)
        return _xml(
            f'<CopyPartResult xmlns="{_XMLNS}"><ETag>{escape(etag)}</ETag>'
            f"<LastModified>{_iso(head.last_modified)}</LastModified></CopyPartResult>"
        )

    def _complete(self, upload_id: str, uri: S3Uri, body: bytes) -> Response:
        parts = []
        for part in _children(_parse_xml(body), "Part"):
            parts.append((_part_number(_child_text(part, "PartNumber")), _child_text(part, "ETag")))
        done = self.multipart.complete(upload_id, uri, parts)
        return _xml(
            f'<CompleteMultipartUploadResult xmlns="{_XMLNS}"><Location>/{uri.bucket}/'
            f"{escape(uri.key)}</Location><Bucket>{uri.bucket}</Bucket>"
            f"<Key>{escape(uri.key)}</Key><ETag>{escape(done.etag)}</ETag>"
            "</CompleteMultipartUploadResult>"
        )

    def _scratch(self) -> Path:
        folder = self.multipart.root / ".copies"
        folder.mkdir(parents=True, exist_ok=True)
        return folder


# the query parameters of plain listing and object requests (anything else is a sub-resource)
_LIST_PARAMETERS = {
    "list-type", "prefix", "delimiter", "max-keys", "continuation-token", "start-after",
    "marker", "encoding-type", "fetch-owner",
}  # fmt: skip
_OBJECT_PARAMETERS = {"x-id", "versionId"}


class MalformedXMLError(ValidationError):
    """A request body that is not the XML document the operation takes: S3's MalformedXML."""


def _parse_xml(body: bytes) -> ElementTree.Element:
    if len(body) > 2 * 1024 * 1024:
        raise MalformedXMLError("The XML body is over 2 MiB")
    try:
        return ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise MalformedXMLError(f"The XML you provided was not well-formed: {exc}") from exc


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _children(element: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    return [child for child in element if _local(child.tag) == name]


def _child_text(element: ElementTree.Element, name: str, default: str | None = None) -> str:
    for child in _children(element, name):
        return child.text or ""
    if default is None:
        raise MalformedXMLError(f"<{_local(element.tag)}> has no <{name}>")
    return default


def _part_number(text: str) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise ValidationError(f"Part number must be an integer: {text!r}") from exc


async def _payload(request: Request) -> bytes:
    body = await request.body()
    encoding = request.headers.get("content-encoding", "")
    sha = request.headers.get("x-amz-content-sha256", "")
    if "aws-chunked" in encoding or sha.startswith("STREAMING-"):
        body = decode_aws_chunked(body)
    return body


def copy_source(header: str) -> S3Uri:
    """`x-amz-copy-source`: `[/]bucket/key[?versionId=...]`, URL-encoded."""
    path = unquote(header.partition("?")[0]).lstrip("/")
    bucket, _, key = path.partition("/")
    validate_bucket(bucket)
    validate_key(key)
    return S3Uri(bucket, key)


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The [start, stop) of a single `Range: bytes=...` header, as S3 reads it (boto3's
    multipart downloads send one per part); None for no range or several (the whole object).
    An unsatisfiable one is S3's InvalidRange."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header.removeprefix("bytes=").strip().partition("-")
    try:
        if not first:  # the last N bytes
            start, stop = max(0, size - int(last)), size
        else:
            start, stop = int(first), min(size, int(last) + 1) if last else size
    except ValueError:
        return None
    if start >= size or start >= stop:
        raise InvalidRangeError(f"The requested range {header} is not satisfiable (size {size}).")
    return start, stop
