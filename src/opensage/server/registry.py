"""The image registry: the OCI distribution API subset `docker push`, `podman push` and
`skopeo copy` use, over the image store. opensage's ECR.

    GET    /v2/                                   API version check
    HEAD   /v2/<name>/blobs/<digest>              does a blob exist (GET: the blob)
    POST   /v2/<name>/blobs/uploads/              start an upload; `?digest=` monolithic;
                                                  `?mount=&from=` cross-repository mount
    PATCH  /v2/<name>/blobs/uploads/<id>          append a chunk (Content-Range checked)
    PUT    /v2/<name>/blobs/uploads/<id>?digest=  last chunk (optional), then verify and store
    GET    /v2/<name>/blobs/uploads/<id>          upload status; DELETE cancels
    HEAD   /v2/<name>/manifests/<tag or digest>   (GET: the manifest; PUT: store, tag; DELETE)
    GET    /v2/<name>/tags/list, /v2/_catalog     listings (`n` and `last` paginate)

Blobs are stored as content-addressed files, so a push whose bytes do not match the digest it
names is refused (DIGEST_INVALID) and nothing is kept; a manifest is accepted only when every blob
it refers to is stored. Repositories are flat names over the one store: `<host>/<name>:<tag>`
pushed here is the image `<name>:<tag>` to CreateTrainingJob and CreateModel. Pulls from other
registries are never made. The registry has no authentication yet: with the server's auth on it
answers 401 UNAUTHORIZED to everything, saying so.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from opensage.images import ImageError, ImageNotFound, ImageStore
from opensage.images.reference import DIGEST, valid_repository, valid_tag

API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}
_PATH = re.compile(
    r"^/v2/(?P<name>.+?)/(?:"
    r"(?P<blobs>blobs)/(?P<digest>[^/]+)"
    r"|(?P<uploads>blobs/uploads)/(?P<upload>[^/]*)"
    r"|(?P<manifests>manifests)/(?P<reference>[^/]+)"
    r"|(?P<tags>tags/list))$"
)
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


class RegistryError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def is_registry(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


def _error(exc: RegistryError) -> Response:
    body = {"errors": [{"code": exc.code, "message": exc.message, "detail": None}]}
    return JSONResponse(body, exc.status, headers=API_VERSION)


class RegistryApi:
    def __init__(self, store: ImageStore, auth_configured: bool = False) -> None:
        self.store = store
        self.auth_configured = auth_configured

    async def handle(self, request: Request) -> Response:
        try:
            return await self._route(request)
        except RegistryError as exc:
            return _error(exc)
        except ImageNotFound as exc:
            return _error(RegistryError(404, "MANIFEST_UNKNOWN", str(exc)))
        except ImageError as exc:
            return _error(RegistryError(400, "MANIFEST_INVALID", str(exc)))

    async def _route(self, request: Request) -> Response:
        if self.auth_configured:
            raise RegistryError(
                401, "UNAUTHORIZED", "opensage's registry does not support authentication yet"
            )
        path, method = request.url.path, request.method
        if path in ("/v2", "/v2/"):
            return JSONResponse({}, headers=API_VERSION)
        if path == "/v2/_catalog" and method == "GET":
            return self._catalog(request)
        match = _PATH.match(path)
        if match is None:
            raise RegistryError(404, "NAME_UNKNOWN", f"no registry route for {method} {path}")
        name = match.group("name")
        if not valid_repository(name):
            raise RegistryError(400, "NAME_INVALID", f"invalid repository name '{name}'")
        if match.group("uploads"):
            return await self._uploads(request, name, match.group("upload"))
        if match.group("blobs"):
            return self._blob(request, match.group("digest"))
        if match.group("manifests"):
            return await self._manifests(request, name, match.group("reference"))
        if method != "GET":
            raise RegistryError(405, "UNSUPPORTED", f"{method} is not allowed on tags/list")
        tags = self.store.tags(name)
        if not tags:
            raise RegistryError(404, "NAME_UNKNOWN", f"repository {name} is not in the registry")
        return JSONResponse({"name": name, "tags": _page(tags, request)}, headers=API_VERSION)

    # blobs -------------------------------------------------------------------------------

    def _blob(self, request: Request, digest: str) -> Response:
        if request.method not in ("GET", "HEAD"):
            raise RegistryError(405, "UNSUPPORTED", "blobs are deleted with their images")
        path = self._stored(digest)
        headers = {**API_VERSION, "Docker-Content-Digest": digest}
        if request.method == "HEAD":
            headers["Content-Length"] = str(path.stat().st_size)
            return Response(status_code=200, headers=headers, media_type="application/octet-stream")
        return FileResponse(path, headers=headers, media_type="application/octet-stream")

    def _stored(self, digest: str) -> Path:
        if not DIGEST.match(digest):
            raise RegistryError(400, "DIGEST_INVALID", f"'{digest}' is not a sha256 digest")
        path = self.store.blob_path(digest)
        if not path.is_file():
            raise RegistryError(404, "BLOB_UNKNOWN", f"blob {digest} is not in the registry")
        return path

    async def _uploads(self, request: Request, name: str, upload: str) -> Response:
        method, query = request.method, request.query_params
        if method == "POST" and not upload:
            mount = query.get("mount")
            if mount and DIGEST.match(mount) and self.store.has_blob(mount):
                return _created(name, mount)
            upload = secrets.token_hex(16)
            path = self._upload_path(upload, create=True)
            digest = query.get("digest")
            if digest is not None:  # monolithic: the whole blob in this request
                await _append(path, request)
                return await self._finish(name, upload, digest)
            return _accepted(name, upload, 0)
        if not _UPLOAD_ID.match(upload):
            raise RegistryError(404, "BLOB_UPLOAD_UNKNOWN", f"no upload '{upload}'")
        path = self._upload_path(upload)
        if method == "PATCH":
            size = path.stat().st_size
            content_range = request.headers.get("content-range")
            if content_range:
                start = int(content_range.split("-")[0].removeprefix("bytes=") or 0)
                if start != size:
                    raise RegistryError(
                        416, "BLOB_UPLOAD_INVALID", f"chunk starts at {start}, expected {size}"
                    )
            size = await _append(path, request)
            return _accepted(name, upload, size)
        if method == "PUT":
            digest = query.get("digest")
            if digest is None:
                raise RegistryError(400, "DIGEST_INVALID", "PUT needs ?digest= to finish")
            await _append(path, request)
            return await self._finish(name, upload, digest)
        if method == "GET":
            return _accepted(name, upload, path.stat().st_size, status=204)
        if method == "DELETE":
            path.unlink(missing_ok=True)
            return Response(status_code=204, headers=API_VERSION)
        raise RegistryError(405, "UNSUPPORTED", f"{method} is not allowed on uploads")

    def _upload_path(self, upload: str, create: bool = False) -> Path:
        folder = self.store.uploads
        path = folder / f"registry-{upload}"
        if create:
            folder.mkdir(parents=True, exist_ok=True)
            path.touch()
        elif not path.is_file():
            raise RegistryError(404, "BLOB_UPLOAD_UNKNOWN", f"no upload '{upload}'")
        return path

    async def _finish(self, name: str, upload: str, digest: str) -> Response:
        if not DIGEST.match(digest):
            raise RegistryError(400, "DIGEST_INVALID", f"'{digest}' is not a sha256 digest")
        path = self._upload_path(upload)
        try:
            await run_in_threadpool(self._adopt, path, digest)
        except ImageError as exc:
            raise RegistryError(400, "DIGEST_INVALID", str(exc)) from None
        finally:
            path.unlink(missing_ok=True)
        return _created(name, digest)

    def _adopt(self, path: Path, digest: str) -> None:
        hashed = hashlib.sha256()
        with path.open("rb") as stream:
            while chunk := stream.read(1 << 20):
                hashed.update(chunk)
        self.store.adopt(path, f"sha256:{hashed.hexdigest()}", digest)

    # manifests ----------------------------------------------------------------------------

    async def _manifests(self, request: Request, name: str, reference: str) -> Response:
        by_digest = bool(DIGEST.match(reference))
        if not by_digest and not valid_tag(reference):
            raise RegistryError(400, "TAG_INVALID", f"invalid tag '{reference}'")
        method = request.method
        if method == "PUT":
            data = await request.body()
            names = [] if by_digest else [f"{name}:{reference}"]
            expected = reference if by_digest else None
            try:
                digest = await run_in_threadpool(self.store.put_manifest, data, names, expected)
            except ImageError as exc:
                code = "BLOB_UNKNOWN" if "not stored" in str(exc) else "MANIFEST_INVALID"
                raise RegistryError(400, code, str(exc)) from None
            headers = {**API_VERSION, "Docker-Content-Digest": digest,
                       "Location": f"/v2/{name}/manifests/{digest}"}  # fmt: skip
            return Response(status_code=201, headers=headers)
        found = reference if by_digest else self.store.digest_of(f"{name}:{reference}")
        if found is None or not self.store.has_blob(found):
            raise RegistryError(
                404, "MANIFEST_UNKNOWN", f"{name}:{reference} is not in the registry"
            )
        digest = found
        if method == "DELETE":
            target = f"{name}@{digest}" if by_digest else f"{name}:{reference}"
            await run_in_threadpool(self.store.remove, target)
            return Response(status_code=202, headers=API_VERSION)
        if method not in ("GET", "HEAD"):
            raise RegistryError(405, "UNSUPPORTED", f"{method} is not allowed on manifests")
        data, media_type = self.store.manifest(digest)
        headers = {**API_VERSION, "Docker-Content-Digest": digest,
                   "Content-Length": str(len(data))}  # fmt: skip
        return Response(
            b"" if method == "HEAD" else data, 200, headers=headers, media_type=media_type
        )

    def _catalog(self, request: Request) -> Response:
        return JSONResponse(
            {"repositories": _page(self.store.repositories(), request)}, headers=API_VERSION
        )


def _page(items: list[str], request: Request) -> list[str]:
    last = request.query_params.get("last")
    if last:
        items = [item for item in items if item > last]
    with contextlib.suppress(KeyError, ValueError):
        items = items[: int(request.query_params["n"])]
    return items


async def _append(path: Path, request: Request) -> int:
    with path.open("ab") as out:
        async for chunk in request.stream():
            if chunk:
                out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
        return out.tell()


def _accepted(name: str, upload: str, size: int, status: int = 202) -> Response:
    headers = {
        **API_VERSION,
        "Location": f"/v2/{name}/blobs/uploads/{upload}",
        "Docker-Upload-UUID": upload,
        "Range": f"0-{max(size - 1, 0)}",
        "Content-Length": "0",
    }
    return Response(status_code=status, headers=headers)


def _created(name: str, digest: str) -> Response:
    headers = {**API_VERSION, "Location": f"/v2/{name}/blobs/{digest}",
               "Docker-Content-Digest": digest, "Content-Length": "0"}  # fmt: skip
    return Response(status_code=201, headers=headers)
