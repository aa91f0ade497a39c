"""S3Uri, key and bucket validation, and the local object store."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opensage.errors import NotFoundError, ValidationError
from opensage.storage import BucketNotEmptyError, LocalObjectStorage, S3Uri
from opensage.storage.base import validate_bucket, validate_key


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


# the local store --------------------------------------------------------------------------


def test_round_trip(storage: LocalObjectStorage, tmp_path: Path) -> None:
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


def test_put_file_and_overwrite(storage: LocalObjectStorage, tmp_path: Path) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(b"\x00" * 3000)
    assert storage.put_file(uri("m/model.bin"), source).size == 3000
    storage.put_bytes(uri("m/model.bin"), b"new")
    assert storage.get_bytes(uri("m/model.bin")) == b"new"


def test_buckets(tmp_path: Path) -> None:
    storage = LocalObjectStorage(tmp_path / "storage")
    assert storage.list_buckets() == []
    assert not storage.bucket_exists("zeta")
    storage.create_bucket("zeta")
    storage.create_bucket("alpha")
    storage.create_bucket("alpha")  # idempotent
    storage.put_bytes(uri("k", "alpha"), b"x")  # creates the temp folder
    assert storage.list_buckets() == ["alpha", "zeta"]
    assert storage.bucket_exists("zeta")


def test_only_an_empty_bucket_is_deleted(tmp_path: Path) -> None:
    storage = LocalObjectStorage(tmp_path / "storage")
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


def test_list_is_sorted_and_prefix_exact(storage: LocalObjectStorage) -> None:
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


def test_atomic_write_leaves_no_temp_files(storage: LocalObjectStorage, tmp_path: Path) -> None:
    for i in range(5):
        storage.put_bytes(uri(f"k/{i}"), b"x" * i)
    source = tmp_path / "src"
    source.write_bytes(b"data")
    storage.put_file(uri("k/file"), source)
    assert list((storage.root / ".tmp").iterdir()) == []
    assert storage.list_buckets() == ["bkt"]


def test_failed_write_leaves_no_temp_file_and_no_object(
    storage: LocalObjectStorage, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError):
        storage.put_file(uri("k/missing"), tmp_path / "does-not-exist")
    assert list((storage.root / ".tmp").iterdir()) == []
    assert storage.head(uri("k/missing")) is None


def test_missing_bucket_and_key_raise_not_found(storage: LocalObjectStorage) -> None:
    with pytest.raises(NotFoundError, match="bucket does not exist"):
        storage.get_bytes(uri("k", "nobucket"))
    with pytest.raises(NotFoundError, match="bucket does not exist"):
        storage.put_bytes(uri("k", "nobucket"), b"x")
    with pytest.raises(NotFoundError, match="bucket does not exist"):
        storage.list(uri("", "nobucket"))
    with pytest.raises(NotFoundError, match="key does not exist"):
        storage.get_bytes(uri("missing"))
    with pytest.raises(NotFoundError, match="key does not exist"):
        storage.download(uri("missing"), storage.root.parent / "x")
    assert storage.head(uri("k", "nobucket")) is None
    assert storage.head(uri("missing")) is None


def test_prefix_is_not_an_object(storage: LocalObjectStorage) -> None:
    storage.put_bytes(uri("dir/file"), b"x")
    assert storage.head(uri("dir")) is None
    with pytest.raises(NotFoundError):
        storage.get_bytes(uri("dir"))
    with pytest.raises(ValidationError, match="prefix of that name"):
        storage.put_bytes(uri("dir"), b"y")


def test_delete_of_missing_object_is_a_no_op(storage: LocalObjectStorage) -> None:
    storage.delete(uri("never/was"))


@pytest.mark.parametrize("key", ["../escape", "a/../../b", "/etc/passwd", ""])
def test_storage_refuses_bad_keys(storage: LocalObjectStorage, key: str) -> None:
    with pytest.raises(ValidationError):
        storage.put_bytes(uri(key), b"x")
    with pytest.raises(ValidationError):
        storage.head(uri(key))


def test_object_below_an_object_key_is_refused(storage: LocalObjectStorage) -> None:
    storage.put_bytes(uri("a"), b"x")
    with pytest.raises(ValidationError, match="part of its key is an object"):
        storage.put_bytes(uri("a/b/c"), b"y")


def test_object_directly_below_an_object_key_is_a_validation_error(
    storage: LocalObjectStorage,
) -> None:
    storage.put_bytes(uri("a"), b"x")
    with pytest.raises(ValidationError):
        storage.put_bytes(uri("a/b"), b"y")


def test_deleting_the_last_object_under_a_prefix_frees_the_name(
    storage: LocalObjectStorage,
) -> None:
    storage.put_bytes(uri("d/x"), b"x")
    storage.delete(uri("d/x"))
    storage.put_bytes(uri("d"), b"y")
    assert storage.get_bytes(uri("d")) == b"y"


@pytest.mark.parametrize("operation", ["put", "head", "get"])
def test_overlong_key_segment_is_a_validation_error(
    storage: LocalObjectStorage, operation: str
) -> None:
    long_key = uri("x" * 300)
    call = {
        "put": lambda: storage.put_bytes(long_key, b"x"),
        "head": lambda: storage.head(long_key),
        "get": lambda: storage.get_bytes(long_key),
    }[operation]
    with pytest.raises(ValidationError):
        call()


def test_folder_marker_does_not_shadow_its_prefix(storage: LocalObjectStorage) -> None:
    with contextlib.suppress(ValidationError):  # refusing folder markers is acceptable too
        storage.put_bytes(uri("data/"), b"")
    storage.put_bytes(uri("data/x"), b"1")
    assert storage.get_bytes(uri("data/x")) == b"1"
