"""S3Uri, key and bucket validation, and the object stores.

The contract tests run on the local folder store and on S3ObjectStorage against moto's S3
server (a process of its own, see tests/backends.py): both must answer alike.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opensage.errors import NotFoundError, ValidationError
from opensage.settings import Settings
from opensage.storage import (
    BucketNotEmptyError,
    LocalObjectStorage,
    ObjectStorage,
    S3ObjectStorage,
    S3Uri,
    from_url,
)
from opensage.storage import s3 as s3_module
from opensage.storage.base import validate_bucket, validate_key
from tests.backends import MotoServer, moto_missing


def uri(key: str, bucket: str = "bkt") -> S3Uri:
    return S3Uri(bucket, key)


# S3Uri ------------------------------------------------------------------------------------


def test_parse_splits_bucket_and_key() -> None:
    parsed = S3Uri.parse("s3://data/train/part-0.csv")
    assert (parsed.bucket, parsed.key) == ("data", "train/part-0.csv")
    assert str(parsed) == "s3://data/train/part-0.csv"


def test_parse_allows_bucket_only_and_prefixes() -> None:
    assert S3Uri.parse("s3://data").key == ""
    assert S3Uri.parse("s3://data/").key == ""
    assert S3Uri.parse("s3://data/train/").key == "train/"


@pytest.mark.parametrize(
    "text",
    [
        "https://data/key",
        "data/key",
        "s3://",
        "s3://Data/key",
        "s3://data/../etc/passwd",
        "s3://data//key",
        "s3://data/a/./b",
    ],
)
def test_parse_rejects_bad_uris(text: str) -> None:
    with pytest.raises(ValidationError):
        S3Uri.parse(text)


def test_join_strips_slashes_and_skips_empty_parts() -> None:
    base = S3Uri.parse("s3://out/jobs/")
    assert str(base.join("my-job", "output", "model.tar.gz")) == (
        "s3://out/jobs/my-job/output/model.tar.gz"
    )
    assert str(S3Uri.parse("s3://out").join("a/", "/b")) == "s3://out/a/b"
    assert S3Uri.parse("s3://out/x").join("").key == "x"


def test_join_refuses_escaping_parts() -> None:
    with pytest.raises(ValidationError):
        S3Uri.parse("s3://out/jobs").join("..", "secret")


# bucket and key rules ---------------------------------------------------------------------


@pytest.mark.parametrize("bucket", ["abc", "my-bucket", "my.bucket.1", "0bucket9", "a" * 63])
def test_valid_bucket_names(bucket: str) -> None:
    validate_bucket(bucket)


@pytest.mark.parametrize(
    "bucket",
    ["ab", "a" * 64, "My-Bucket", "-bucket", "bucket-", ".bucket", "bucket.", "a..b", "a_b",
     ".tmp", "", "a/b"],
)  # fmt: skip
def test_invalid_bucket_names(bucket: str) -> None:
    with pytest.raises(ValidationError, match="Invalid bucket name"):
        validate_bucket(bucket)


@pytest.mark.parametrize(
    "key",
    ["..", ".", "../x", "a/../b", "a/./b", "a//b", "/abs", "a\x00b", "a/..", "./a", "x/../"],
)
def test_invalid_keys(key: str) -> None:
    with pytest.raises(ValidationError):
        validate_key(key)


def test_empty_key_only_allowed_as_prefix() -> None:
    validate_key("", allow_empty=True)
    with pytest.raises(ValidationError, match="must not be empty"):
        validate_key("")


def test_key_length_counts_bytes() -> None:
    validate_key(("é" * 127 + "/") * 4 + "éé")  # 1024 bytes in segments of at most 255
    with pytest.raises(ValidationError, match="1024 bytes"):
        validate_key("é" * 512 + "x")


@pytest.mark.parametrize("key", ["a", "a/b/c.csv", "train/", "...", "a..b/c", "sp ace/é/\u2603"])
def test_valid_keys(key: str) -> None:
    validate_key(key)


_SEGMENT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
    min_size=1,
    max_size=12,
)
_KEYS = st.lists(st.one_of(_SEGMENT, st.sampled_from(["", ".", "..", "..."])), min_size=1).map(
    "/".join
)


@given(key=st.one_of(_KEYS, st.text(max_size=40)))
@settings(max_examples=300, deadline=None)
def test_accepted_keys_never_escape_the_root(key: str) -> None:
    try:
        validate_key(key)
    except ValidationError:
        segments = key.split("/")
        if key.endswith("/"):
            segments = segments[:-1]
        assert (
            not key
            or key.startswith("/")
            or "\x00" in key
            or len(key.encode()) > 1024
            or any(s in ("", ".", "..") for s in segments)
        )
        return
    assert not key.startswith("/")
    assert "\x00" not in key
    assert ".." not in key.rstrip("/").split("/")
    root = Path("/srv/opensage/storage")
    path = LocalObjectStorage(root)._path(uri(key))  # its own escape check must not fire
    normalised = Path(os.path.normpath(path))
    assert normalised.is_relative_to(root / "bkt")
    assert normalised != root / "bkt"


@given(key=_KEYS)
@settings(max_examples=150, deadline=None)
def test_accepted_keys_round_trip_through_the_store(key: str) -> None:
    try:
        validate_key(key)
    except ValidationError:
        return
    if key.endswith("/"):
        return  # a prefix, not an object name
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "storage"
        storage = LocalObjectStorage(root)
        storage.create_bucket("bkt")
        storage.put_bytes(uri(key), b"payload")
        assert storage.get_bytes(uri(key)) == b"payload"
        assert [i.uri.key for i in storage.list(uri(""))] == [key]
        stored = [p for p in root.rglob("*") if p.is_file()]
        assert len(stored) == 1
        assert stored[0].resolve().is_relative_to((root / "bkt").resolve())


# the stores -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    reason = moto_missing()
    if reason:
        pytest.skip(reason)
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["local", "s3"])
def empty(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStorage:
    """A store with no bucket: the folder store, or S3 on a moto with nothing in it."""
    if request.param == "local":
        return LocalObjectStorage(tmp_path / "storage")
    moto: MotoServer = request.getfixturevalue("moto")
    moto.reset()
    return from_url(moto.storage_url, tmp_path / "unused")


@pytest.fixture
def storage(empty: ObjectStorage) -> ObjectStorage:
    empty.create_bucket("bkt")
    return empty


@pytest.fixture
def local(tmp_path: Path) -> LocalObjectStorage:
    folder = LocalObjectStorage(tmp_path / "storage")
    folder.create_bucket("bkt")
    return folder


def test_round_trip(storage: ObjectStorage, tmp_path: Path) -> None:
    info = storage.put_bytes(uri("train/part-0.csv"), b"1,2,3\n")
    assert info.size == 6
    assert info.etag.startswith('"')
    assert info.etag.endswith('"')
    assert storage.get_bytes(uri("train/part-0.csv")) == b"1,2,3\n"
    head = storage.head(uri("train/part-0.csv"))
    assert head is not None
    assert (head.size, head.etag) == (6, info.etag)
    dest = tmp_path / "out" / "nested" / "copy.csv"
    storage.download(uri("train/part-0.csv"), dest)
    assert dest.read_bytes() == b"1,2,3\n"
    storage.delete(uri("train/part-0.csv"))
    assert storage.head(uri("train/part-0.csv")) is None
    assert storage.list(uri("")) == []


def test_put_file_and_overwrite(storage: ObjectStorage, tmp_path: Path) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(b"\x00" * 3000)
    assert storage.put_file(uri("m/model.bin"), source).size == 3000
    storage.put_bytes(uri("m/model.bin"), b"new")
    assert storage.get_bytes(uri("m/model.bin")) == b"new"


def test_buckets(empty: ObjectStorage) -> None:
    storage = empty
    assert storage.list_buckets() == []
    assert not storage.bucket_exists("zeta")
    storage.create_bucket("zeta")
    storage.create_bucket("alpha")
    storage.create_bucket("alpha")  # idempotent
    storage.put_bytes(uri("k", "alpha"), b"x")  # creates the temp folder
    assert storage.list_buckets() == ["alpha", "zeta"]
    assert storage.bucket_exists("zeta")


def test_only_an_empty_bucket_is_deleted(empty: ObjectStorage) -> None:
    storage = empty
    storage.create_bucket("full")
    storage.put_bytes(uri("a/b", "full"), b"x")
    with pytest.raises(BucketNotEmptyError):
        storage.delete_bucket("full")
    assert storage.get_bytes(uri("a/b", "full")) == b"x"
    storage.delete(uri("a/b", "full"))
    storage.delete_bucket("full")
    assert not storage.bucket_exists("full")
    with pytest.raises(NotFoundError):
        storage.delete_bucket("full")


def test_list_is_sorted_and_prefix_exact(storage: ObjectStorage) -> None:
    for key in ["train2/c", "train/b", "train/a", "trainx", "other/train/a", "train/sub/z"]:
        storage.put_bytes(uri(key), key.encode())
    keys = lambda prefix: [i.uri.key for i in storage.list(uri(prefix))]  # noqa: E731
    assert keys("train/") == ["train/a", "train/b", "train/sub/z"]
    assert keys("train/a") == ["train/a"]
    assert keys("train") == ["train/a", "train/b", "train/sub/z", "train2/c", "trainx"]
    assert keys("train/sub/") == ["train/sub/z"]
    assert keys("nothing/") == []
    assert keys("") == sorted(keys(""))
    assert len(keys("")) == 6
    info = storage.list(uri("train/a"))[0]
    assert info.uri == uri("train/a")
    assert info.size == len(b"train/a")


def test_atomic_write_leaves_no_temp_files(local: LocalObjectStorage, tmp_path: Path) -> None:
    storage = local
    for i in range(5):
        storage.put_bytes(uri(f"k/{i}"), b"x" * i)
    source = tmp_path / "src"
    source.write_bytes(b"data")
    storage.put_file(uri("k/file"), source)
    assert list((storage.root / ".tmp").iterdir()) == []
    assert storage.list_buckets() == ["bkt"]


def test_failed_write_leaves_no_temp_file_and_no_object(
    local: LocalObjectStorage, tmp_path: Path
) -> None:
    storage = local
    with pytest.raises(FileNotFoundError):
        storage.put_file(uri("k/missing"), tmp_path / "does-not-exist")
    assert list((storage.root / ".tmp").iterdir()) == []
    assert storage.head(uri("k/missing")) is None


def test_a_missing_source_file_writes_nothing(storage: ObjectStorage, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        storage.put_file(uri("k/missing"), tmp_path / "does-not-exist")
    assert storage.head(uri("k/missing")) is None


def test_missing_bucket_and_key_raise_not_found(storage: ObjectStorage, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="bucket does not exist"):
        storage.get_bytes(uri("k", "nobucket"))
    with pytest.raises(NotFoundError, match="bucket does not exist"):
        storage.put_bytes(uri("k", "nobucket"), b"x")
    with pytest.raises(NotFoundError, match="bucket does not exist"):
        storage.list(uri("", "nobucket"))
    with pytest.raises(NotFoundError, match="key does not exist"):
        storage.get_bytes(uri("missing"))
    with pytest.raises(NotFoundError, match="key does not exist"):
        storage.download(uri("missing"), tmp_path / "x")
    with pytest.raises(NotFoundError, match="key does not exist"):
        storage.open(uri("missing"))
    with pytest.raises(NotFoundError, match="bucket does not exist"):
        storage.delete_bucket("nobucket")
    assert storage.head(uri("k", "nobucket")) is None
    assert storage.head(uri("missing")) is None
    assert not (tmp_path / "x").exists()
    assert not storage.bucket_exists("nobucket")


def test_prefix_is_not_an_object(storage: ObjectStorage) -> None:
    storage.put_bytes(uri("dir/file"), b"x")
    assert storage.head(uri("dir")) is None
    assert storage.head(uri("dir/")) is None
    with pytest.raises(NotFoundError):
        storage.get_bytes(uri("dir"))


def test_a_folder_cannot_also_be_an_object(local: LocalObjectStorage) -> None:
    """S3 allows `dir` beside `dir/file`; folders cannot."""
    storage = local
    storage.put_bytes(uri("dir/file"), b"x")
    with pytest.raises(ValidationError, match="prefix of that name"):
        storage.put_bytes(uri("dir"), b"y")


def test_delete_of_missing_object_is_a_no_op(storage: ObjectStorage) -> None:
    storage.delete(uri("never/was"))
    storage.delete(uri("never/was", "nobucket"))


@pytest.mark.parametrize("key", ["../escape", "a/../../b", "/etc/passwd", ""])
def test_storage_refuses_bad_keys(storage: ObjectStorage, key: str) -> None:
    with pytest.raises(ValidationError):
        storage.put_bytes(uri(key), b"x")
    with pytest.raises(ValidationError):
        storage.head(uri(key))


def test_object_below_an_object_key_is_refused(local: LocalObjectStorage) -> None:
    storage = local
    storage.put_bytes(uri("a"), b"x")
    with pytest.raises(ValidationError, match="part of its key is an object"):
        storage.put_bytes(uri("a/b/c"), b"y")


def test_object_directly_below_an_object_key_is_a_validation_error(
    local: LocalObjectStorage,
) -> None:
    storage = local
    storage.put_bytes(uri("a"), b"x")
    with pytest.raises(ValidationError):
        storage.put_bytes(uri("a/b"), b"y")


def test_deleting_the_last_object_under_a_prefix_frees_the_name(
    storage: ObjectStorage,
) -> None:
    storage.put_bytes(uri("d/x"), b"x")
    storage.delete(uri("d/x"))
    storage.put_bytes(uri("d"), b"y")
    assert storage.get_bytes(uri("d")) == b"y"


@pytest.mark.parametrize("operation", ["put", "head", "get"])
def test_overlong_key_segment_is_a_validation_error(storage: ObjectStorage, operation: str) -> None:
    long_key = uri("x" * 300)
    call = {
        "put": lambda: storage.put_bytes(long_key, b"x"),
        "head": lambda: storage.head(long_key),
        "get": lambda: storage.get_bytes(long_key),
    }[operation]
    with pytest.raises(ValidationError):
        call()


def test_folder_marker_does_not_shadow_its_prefix(storage: ObjectStorage) -> None:
    with contextlib.suppress(ValidationError):  # refusing folder markers is acceptable too
        storage.put_bytes(uri("data/"), b"")
    storage.put_bytes(uri("data/x"), b"1")
    assert storage.get_bytes(uri("data/x")) == b"1"


def test_open_streams_and_seeks(storage: ObjectStorage) -> None:
    data = bytes(range(256)) * 20_000  # 5 MB: several reads of the underlying body
    storage.put_bytes(uri("big"), data)
    with storage.open(uri("big")) as stream:
        assert stream.read(10) == data[:10]
        stream.seek(1_000_000)
        assert stream.tell() == 1_000_000
        assert stream.read(5) == data[1_000_000:1_000_005]
        stream.seek(-3, io.SEEK_END)
        assert stream.read() == data[-3:]
        assert stream.read(1) == b""
        stream.seek(0)
        assert stream.read() == data


def test_open_of_an_empty_object(storage: ObjectStorage) -> None:
    storage.put_bytes(uri("empty"), b"")
    with storage.open(uri("empty")) as stream:
        assert stream.read() == b""
    assert storage.get_bytes(uri("empty")) == b""


def test_download_replaces_and_creates_folders(storage: ObjectStorage, tmp_path: Path) -> None:
    storage.put_bytes(uri("a/b"), b"new")
    dest = tmp_path / "deep" / "er" / "b"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"old content")
    storage.download(uri("a/b"), dest)
    assert dest.read_bytes() == b"new"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["b"]  # no temporary file left


def test_list_pages_through_many_keys(storage: ObjectStorage) -> None:
    keys = [f"many/{i:05d}" for i in range(1_100)]  # more than one S3 page of 1,000
    for key in keys:
        storage.put_bytes(uri(key), b"x")
    assert [i.uri.key for i in storage.list(uri("many/"))] == keys


def test_head_and_list_agree_on_size_and_etag(storage: ObjectStorage) -> None:
    put = storage.put_bytes(uri("k"), b"12345")
    head = storage.head(uri("k"))
    listed = storage.list(uri("k"))
    assert head is not None
    assert (head.size, head.etag) == (5, put.etag)
    assert [(i.size, i.etag) for i in listed] == [(5, put.etag)]


# S3ObjectStorage only ---------------------------------------------------------------------------


def test_s3_reads_fail_when_the_object_changes_mid_read(moto: MotoServer, tmp_path: Path) -> None:
    moto.reset()
    storage = from_url(moto.storage_url, tmp_path)
    storage.create_bucket("bkt")
    storage.put_bytes(uri("k"), b"a" * 3_000_000)
    stream = storage.open(uri("k"))
    stream.seek(2_000_000)  # the next read is a ranged GET that asks for the first version
    storage.put_bytes(uri("k"), b"b" * 3_000_000)
    with pytest.raises(s3_module.StorageError, match="PreconditionFailed"):
        stream.read(10)
    stream.close()


def test_s3_large_files_upload_in_parts(
    moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_module, "_SINGLE_PUT_LIMIT", 1 << 20)
    moto.reset()
    storage = from_url(moto.storage_url, tmp_path)
    storage.create_bucket("bkt")
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(9 << 20))  # over boto3's 8 MB multipart threshold
    info = storage.put_file(uri("big.bin"), source)
    assert info.size == 9 << 20
    assert storage.get_bytes(uri("big.bin")) == source.read_bytes()
    with pytest.raises(NotFoundError, match="bucket does not exist"):
        storage.put_file(uri("big.bin", "nobucket"), source)


def test_s3_bad_keys_never_reach_the_service(tmp_path: Path) -> None:
    """Nothing listens on this endpoint: validation must refuse before any request."""
    storage = from_url("s3+http://k:s@127.0.0.1:9", tmp_path)
    for call in (
        lambda: storage.put_bytes(uri("../x"), b"x"),
        lambda: storage.get_bytes(uri("a//b")),
        lambda: storage.head(uri("")),
        lambda: storage.list(uri("/abs")),
        lambda: storage.create_bucket("Bad_Bucket"),
        lambda: storage.put_bytes(uri("folder/"), b""),
    ):
        with pytest.raises(ValidationError):
            call()


# storage URLs -----------------------------------------------------------------------------------


def test_no_url_is_the_folder_store(tmp_path: Path) -> None:
    storage = from_url(None, tmp_path / "storage")
    assert isinstance(storage, LocalObjectStorage)
    assert storage.root == tmp_path / "storage"


@pytest.mark.parametrize(
    ("url", "endpoint", "region", "key"),
    [
        ("s3+http://minio.local:9000", "http://minio.local:9000", "us-east-1", None),
        ("s3+https://s3.example.test", "https://s3.example.test", "us-east-1", None),
        ("s3+http://ak:sk%2F1@127.0.0.1:9000?region=eu-west-1", "http://127.0.0.1:9000",
         "eu-west-1", "ak"),
    ],
)  # fmt: skip
def test_s3_compatible_urls(
    url: str, endpoint: str, region: str, key: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    storage = from_url(url, Path("/unused"))
    assert isinstance(storage, S3ObjectStorage)
    assert storage.client.meta.endpoint_url == endpoint
    assert storage.client.meta.region_name == region
    if key:
        credentials = storage.client._request_signer._credentials
        assert (credentials.access_key, credentials.secret_key) == ("ak", "sk/1")


def test_plain_s3_url_is_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    storage = from_url("s3://", Path("/unused"))
    assert isinstance(storage, S3ObjectStorage)
    assert "amazonaws.com" in storage.client.meta.endpoint_url
    assert storage.client.meta.region_name == "eu-central-1"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("gs://bucket", "Unsupported storage URL"),
        ("s3://bucket", "takes no bucket"),
        ("s3+http://", "expected s3\\+http://HOST"),
        ("s3+http://host:port", "bad port"),
        ("s3+http://host/bucket", "expected s3\\+http://HOST"),
        ("s3+http://host?colour=red", "unknown option"),
        ("s3+http://key@host", "both KEY:SECRET@ or neither"),
    ],
)
def test_bad_storage_urls_are_refused_clearly(url: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        from_url(url, Path("/unused"))


def test_the_storage_setting_comes_from_the_environment() -> None:
    assert Settings.from_env({"OPENSAGE_STORAGE_URL": "s3+http://h:9000"}).storage == (
        "s3+http://h:9000"
    )
    assert Settings.from_env({"OPENSAGE_STORAGE_URL": ""}).storage is None
    assert Settings.from_env({}).storage is None
