"""Hostile bucket names and keys, sent raw (no client normalises them first): whatever the
request, the server answers it without a 5xx and never writes a file outside the storage root
(or the multipart staging folder), nor a file whose path is not a valid bucket and key."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opensage.app import EmbeddedServer
from opensage.errors import ValidationError
from opensage.storage import S3Uri
from opensage.storage.base import validate_bucket, validate_key
from tests.integration.conftest import Clients, make_clients, settings_for, storage_for

SEGMENTS = [
    "..", ".", "", "a", "etc", "passwd", "\x00", "%00", "%2e%2e", "%2E%2e", "%2F", "..%2F..",
    "\\..\\", "~", "nul\x00x", "x" * 256, "é" * 130, "con", "a b", "?", "#", "%", ";", "\n",
]  # fmt: skip
BUCKETS = ["data", "..", ".", "%2e%2e", "a" * 64, "UPPER", "ok-bucket", "a..b", "-x-", "da"]

segment = st.one_of(st.sampled_from(SEGMENTS), st.text(max_size=12))
keys = st.lists(segment, min_size=1, max_size=8).map("/".join)
requests = st.tuples(
    st.sampled_from(["PUT", "GET", "HEAD", "DELETE", "POST-uploads", "PUT-copy"]),
    st.sampled_from(BUCKETS),
    keys,
    keys,
    st.booleans(),
)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Clients, Path]]:
    root = tmp_path_factory.mktemp("hostile")
    home = root / "home"
    embedded = EmbeddedServer(settings_for(home, "process")).start()
    clients = make_clients(embedded.endpoint_url, "process", home)
    clients.s3.create_bucket(Bucket="data")
    clients.s3.put_object(Bucket="data", Key="inside/ok.txt", Body=b"ok")
    (root / "outside.txt").write_text("untouched")
    yield clients, root
    embedded.stop()


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def allowed(path: Path, home: Path) -> bool:
    """A file the S3 subset may have written: a stored object under a valid bucket and key, or
    a multipart upload's staging file."""
    if path.is_relative_to(home / "uploads"):
        return True
    if path.name.startswith("opensage.db"):
        return path.parent == home
    if not path.is_relative_to(home / "storage"):
        return False
    bucket, *rest = path.relative_to(home / "storage").parts
    try:
        validate_bucket(bucket)
        validate_key("/".join(rest))
    except ValidationError:
        return False
    return True


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(requests)
def test_hostile_names_never_touch_a_file_outside_the_root(
    hostile: tuple[Clients, Path], request: tuple[str, str, str, str, bool]
) -> None:
    clients, root = hostile
    home = root / "home"
    method, bucket, key, source, encode_all = request
    before = files_under(root)
    path = "/" + bucket + "/" + key
    # quote control characters and spaces always (http.client refuses them raw); keep '%' so
    # pre-encoded dots and slashes reach the server as the attacker wrote them, unless asked
    raw = quote(path, safe="/" if encode_all else "/%")
    headers = {"Content-Length": "1"}
    body = b"x"
    if method == "POST-uploads":
        method, raw = "POST", raw + "?uploads"
    elif method == "PUT-copy":
        method, body = "PUT", b""
        headers = {"Content-Length": "0", "x-amz-copy-source": quote(source, safe="/%")}
    elif method != "PUT":
        headers, body = {}, b""
    netloc = urlsplit(clients.endpoint).netloc
    connection = http.client.HTTPConnection(netloc, timeout=30)
    try:
        connection.request(method, raw, body=body or None, headers=headers)
        status = connection.getresponse().status
    finally:
        connection.close()

    assert status < 500, (method, raw, status)
    new = files_under(root) - before
    assert all(allowed(p, home) for p in new), sorted(map(str, new))
    assert (root / "outside.txt").read_text() == "untouched"
    assert storage_for(home).get_bytes(S3Uri("data", "inside/ok.txt")) == b"ok"
