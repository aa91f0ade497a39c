"""A path-style S3 REST subset over the storage port: enough for boto3's put/get/list and the
SDKs' `upload_data`. (Multipart, copy and ranges come with the S3 API issue.)"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from opensage.errors import NotFoundError, OpenSageError, ValidationError
from opensage.storage import ObjectStorage, S3Uri
from opensage.storage.base import validate_bucket

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
    def __init__(self, storage: ObjectStorage) -> None:
        self.storage = storage

    async def handle(self, request: Request) -> Response:
        path = request.url.path.lstrip("/")
        bucket, _, key = path.partition("/")
        try:
            if not bucket:
                return await run_in_threadpool(self._list_buckets)
            validate_bucket(bucket)
            if not key:
                return await self._bucket(request, bucket)
            return await self._object(request, S3Uri(bucket, key))
        except NotFoundError as exc:
            code = "NoSuchBucket" if "bucket" in exc.message else "NoSuchKey"
            return _error(code, exc.message, 404)
        except InvalidRangeError as exc:
            return _error("InvalidRange", exc.message, 416)
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
        method = request.method
        if method == "PUT":
            await run_in_threadpool(self.storage.create_bucket, bucket)
            return Response(status_code=200, headers={"Location": f"/{bucket}"})
        exists = await run_in_threadpool(self.storage.bucket_exists, bucket)
        if not exists:
            if method == "HEAD":
                return Response(status_code=404)
            return _error("NoSuchBucket", f"The specified bucket does not exist: {bucket}", 404)
        if method == "HEAD":
            return Response(status_code=200)
        if method == "GET":
            return await run_in_threadpool(self._list_objects, bucket, request)
        return _error("NotImplemented", f"{method} on a bucket is not supported yet", 501)

    def _list_objects(self, bucket: str, request: Request) -> Response:
        q = request.query_params
        prefix = q.get("prefix", "")
        delimiter = q.get("delimiter", "")
        max_keys = int(q.get("max-keys", "1000"))
        after = q.get("continuation-token") or q.get("start-after") or ""
        contents, prefixes = [], []
        for info in self.storage.list(S3Uri(bucket, prefix)):
            key = info.uri.key
            if key <= after:
                continue
            if delimiter and delimiter in key[len(prefix) :]:
                common = key[: len(prefix) + key[len(prefix) :].index(delimiter) + 1]
                if common not in prefixes and common > after:
                    prefixes.append(common)
                continue
            contents.append(info)
        entries = sorted(
            [(i.uri.key, i) for i in contents] + [(p, None) for p in prefixes],
            key=lambda e: e[0],
        )
        page, truncated = entries[:max_keys], len(entries) > max_keys
        body = "".join(
            f"<Contents><Key>{escape(k)}</Key><LastModified>{_iso(i.last_modified)}"
            f"</LastModified><ETag>{escape(i.etag)}</ETag><Size>{i.size}</Size>"
            "<StorageClass>STANDARD</StorageClass></Contents>"
            if i is not None
            else f"<CommonPrefixes><Prefix>{escape(k)}</Prefix></CommonPrefixes>"
            for k, i in page
        )
        token = (
            f"<NextContinuationToken>{escape(page[-1][0])}</NextContinuationToken>"
            if truncated
            else ""
        )
        return _xml(
            f'<ListBucketResult xmlns="{_XMLNS}"><Name>{bucket}</Name>'
            f"<Prefix>{escape(prefix)}</Prefix><KeyCount>{len(page)}</KeyCount>"
            f"<MaxKeys>{max_keys}</MaxKeys><IsTruncated>{str(truncated).lower()}</IsTruncated>"
            f"{token}{body}</ListBucketResult>"
        )

    def _read_range(self, uri: S3Uri, start: int, stop: int) -> bytes:
        with self.storage.open(uri) as stream:
            stream.seek(start)
            return stream.read(stop - start)

    async def _object(self, request: Request, uri: S3Uri) -> Response:
        method = request.method
        if method == "PUT":
            body = await request.body()
            encoding = request.headers.get("content-encoding", "")
            sha = request.headers.get("x-amz-content-sha256", "")
            if "aws-chunked" in encoding or sha.startswith("STREAMING-"):
                body = decode_aws_chunked(body)
            info = await run_in_threadpool(self.storage.put_bytes, uri, body)
            return Response(status_code=200, headers={"ETag": info.etag})
        if method in ("GET", "HEAD"):
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
            }
            headers["Accept-Ranges"] = "bytes"
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
            return Response(
                data, status_code=206, headers=headers, media_type="binary/octet-stream"
            )
        if method == "DELETE":
            await run_in_threadpool(self.storage.delete, uri)
            return Response(status_code=204)
        return _error("NotImplemented", f"{method} on an object is not supported yet", 501)


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
