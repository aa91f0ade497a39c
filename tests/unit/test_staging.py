"""Staging channels in (spec 1.6), packing artifacts (1.9) and checkpoint sync (1.11)."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest

from opensage.control.staging import (
    StagingError,
    channel_objects,
    download_channel,
    download_prefix,
    pack,
    sync_up,
)
from opensage.errors import ValidationError
from opensage.storage import LocalObjectStorage, S3Uri


def put(storage: LocalObjectStorage, *keys: str, bucket: str = "bkt") -> None:
    for key in keys:
        storage.put_bytes(S3Uri(bucket, key), key.encode())


def prefix_source(uri: str) -> dict[str, str]:
    return {"S3DataType": "S3Prefix", "S3Uri": uri}


def manifest_source(storage: LocalObjectStorage, manifest: object) -> dict[str, str]:
    storage.put_bytes(S3Uri("bkt", "manifests/m.json"), json.dumps(manifest).encode())
    return {"S3DataType": "ManifestFile", "S3Uri": "s3://bkt/manifests/m.json"}


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def keys(storage: LocalObjectStorage, prefix: str = "") -> list[str]:
    return [i.uri.key for i in storage.list(S3Uri("bkt", prefix))]


# channel placement --------------------------------------------------------------------------


def test_single_object_lands_as_its_basename(storage: LocalObjectStorage, tmp_path: Path) -> None:
    put(storage, "data/train/part-0.csv", "data/train/part-1.csv")
    source = prefix_source("s3://bkt/data/train/part-0.csv")
    assert channel_objects(storage, source) == [
        (S3Uri("bkt", "data/train/part-0.csv"), "part-0.csv")
    ]
    folder = tmp_path / "channel"
    assert download_channel(storage, source, folder) == 1
    assert tree(folder) == {"part-0.csv": b"data/train/part-0.csv"}


def test_prefix_maps_keys_relative_to_it(storage: LocalObjectStorage, tmp_path: Path) -> None:
    put(storage, "data/train/a.csv", "data/train/sub/b.csv", "data/test/c.csv")
    folder = tmp_path / "train"
    assert download_channel(storage, prefix_source("s3://bkt/data/train/"), folder) == 2
    assert tree(folder) == {"a.csv": b"data/train/a.csv", "sub/b.csv": b"data/train/sub/b.csv"}


def test_prefix_without_slash_matches_like_s3(storage: LocalObjectStorage) -> None:
    put(storage, "data/train/a.csv", "data/train2/b.csv")
    found = channel_objects(storage, prefix_source("s3://bkt/data/train"))
    assert found == [
        (S3Uri("bkt", "data/train/a.csv"), "a.csv"),
        (S3Uri("bkt", "data/train2/b.csv"), "2/b.csv"),
    ]


def test_whole_bucket(storage: LocalObjectStorage) -> None:
    put(storage, "a.csv", "x/b.csv")
    assert [rel for _, rel in channel_objects(storage, prefix_source("s3://bkt"))] == [
        "a.csv",
        "x/b.csv",
    ]


def test_empty_prefix_is_a_client_error(storage: LocalObjectStorage) -> None:
    put(storage, "data/other/a.csv")
    with pytest.raises(
        StagingError,
        match=r'^ClientError: No S3 objects found under S3 URL "s3://bkt/data/train/"$',
    ):
        channel_objects(storage, prefix_source("s3://bkt/data/train/"))


def test_missing_bucket_is_a_client_error(storage: LocalObjectStorage) -> None:
    with pytest.raises(
        StagingError, match=r"^ClientError: The bucket of s3://nobucket/x does not exist"
    ):
        channel_objects(storage, prefix_source("s3://nobucket/x"))


def test_manifest_entries_use_relative_paths(storage: LocalObjectStorage, tmp_path: Path) -> None:
    put(storage, "data/matrix_0.pbr", "data/sub/matrix_1.pbr", "data/unlisted.pbr")
    source = manifest_source(
        storage, [{"prefix": "s3://bkt/data/"}, "matrix_0.pbr", "sub/matrix_1.pbr"]
    )
    assert channel_objects(storage, source) == [
        (S3Uri("bkt", "data/matrix_0.pbr"), "matrix_0.pbr"),
        (S3Uri("bkt", "data/sub/matrix_1.pbr"), "sub/matrix_1.pbr"),
    ]
    folder = tmp_path / "train"
    assert download_channel(storage, source, folder) == 2
    assert tree(folder) == {
        "matrix_0.pbr": b"data/matrix_0.pbr",
        "sub/matrix_1.pbr": b"data/sub/matrix_1.pbr",
    }


def test_manifest_prefix_without_trailing_slash_and_bucket_root(
    storage: LocalObjectStorage,
) -> None:
    put(storage, "data/a", "b")
    source = manifest_source(storage, [{"prefix": "s3://bkt/data"}, "a"])
    assert channel_objects(storage, source) == [(S3Uri("bkt", "data/a"), "a")]
    source = manifest_source(storage, [{"prefix": "s3://bkt/"}, "b"])
    assert channel_objects(storage, source) == [(S3Uri("bkt", "b"), "b")]


@pytest.mark.parametrize(
    "manifest",
    [{"prefix": "s3://bkt/"}, [], ["a"], [{"nope": 1}, "a"], "text", 5, [{"prefix": "http://x/"}]],
)
def test_malformed_manifest_is_a_client_error(
    storage: LocalObjectStorage, manifest: object
) -> None:
    source = manifest_source(storage, manifest)
    with pytest.raises(StagingError, match=r"^ClientError: "):
        channel_objects(storage, source)


def test_manifest_that_is_not_json_or_missing(storage: LocalObjectStorage) -> None:
    storage.put_bytes(S3Uri("bkt", "m.json"), b"{not json")
    with pytest.raises(StagingError, match=r"^ClientError: Manifest s3://bkt/m\.json must be"):
        channel_objects(storage, {"S3DataType": "ManifestFile", "S3Uri": "s3://bkt/m.json"})
    with pytest.raises(StagingError, match=r"^ClientError: Cannot read manifest"):
        channel_objects(storage, {"S3DataType": "ManifestFile", "S3Uri": "s3://bkt/missing"})


def test_manifest_entry_that_does_not_exist_fails_on_download(
    storage: LocalObjectStorage, tmp_path: Path
) -> None:
    source = manifest_source(storage, [{"prefix": "s3://bkt/data/"}, "missing.csv"])
    with pytest.raises(
        StagingError, match=r"^ClientError: Cannot download s3://bkt/data/missing\.csv"
    ):
        download_channel(storage, source, tmp_path / "train")


def test_manifest_entry_escaping_the_channel_at_bucket_root(
    storage: LocalObjectStorage, tmp_path: Path
) -> None:
    source = manifest_source(storage, [{"prefix": "s3://bkt/"}, "../../outside"])
    with pytest.raises(StagingError, match=r"^ClientError: "):
        download_channel(storage, source, tmp_path / "train")
    assert not (tmp_path / "outside").exists()


def test_manifest_entry_with_dot_dot_under_a_prefix_is_a_client_error(
    storage: LocalObjectStorage, tmp_path: Path
) -> None:
    source = manifest_source(storage, [{"prefix": "s3://bkt/data/"}, "../escape.csv"])
    with pytest.raises(StagingError, match=r"^ClientError: "):
        download_channel(storage, source, tmp_path / "train")


@pytest.mark.parametrize("prefix", [5, None, ["s3://bkt/"]])
def test_manifest_prefix_of_the_wrong_type_is_a_client_error(
    storage: LocalObjectStorage, prefix: object
) -> None:
    source = manifest_source(storage, [{"prefix": prefix}, "a"])
    with pytest.raises(StagingError, match=r"^ClientError: "):
        channel_objects(storage, source)


def test_bad_s3_uri_in_the_source(storage: LocalObjectStorage) -> None:
    with pytest.raises(ValidationError):
        channel_objects(storage, prefix_source("s3://bkt/../x"))


def test_download_prefix_skips_missing_bucket(storage: LocalObjectStorage, tmp_path: Path) -> None:
    download_prefix(storage, S3Uri("nobucket", "ckpt/"), tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists()
    put(storage, "ckpt/a", "ckpt/b/c")
    download_prefix(storage, S3Uri("bkt", "ckpt/"), tmp_path / "ckpt")
    assert tree(tmp_path / "ckpt") == {"a": b"ckpt/a", "b/c": b"ckpt/b/c"}


# pack ---------------------------------------------------------------------------------------


def test_pack_puts_entries_at_the_archive_root(tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "xgboost-model").write_bytes(b"booster")
    (model / "sub" / "meta.json").write_text("{}")
    outside = tmp_path / "outside.txt"
    outside.write_text("linked")
    os.symlink(outside, model / "link.txt")
    archive = tmp_path / "model.tar.gz"
    pack(model, archive)
    with tarfile.open(archive, "r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {"link.txt", "sub", "sub/meta.json", "xgboost-model"}
        assert members["link.txt"].isfile()  # dereferenced
        link = tar.extractfile("link.txt")
        assert link is not None
        assert link.read() == b"linked"
        model_file = tar.extractfile("xgboost-model")
        assert model_file is not None
        assert model_file.read() == b"booster"


def test_pack_of_an_empty_or_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "empty", tmp_path / "missing"):
        archive = tmp_path / f"{folder.name}.tar.gz"
        pack(folder, archive)
        with tarfile.open(archive, "r:gz") as tar:
            assert tar.getmembers() == []


# sync_up ------------------------------------------------------------------------------------


def test_sync_up_uploads_new_and_changed_and_deletes_removed(
    storage: LocalObjectStorage, tmp_path: Path
) -> None:
    folder = tmp_path / "checkpoints"
    (folder / "sub").mkdir(parents=True)
    (folder / "a").write_bytes(b"1")
    (folder / "sub" / "b").write_bytes(b"2")
    prefix = S3Uri("ckpt-bucket", "run/ckpt")
    sync_up(storage, folder, prefix)  # creates the bucket
    assert [i.uri.key for i in storage.list(S3Uri("ckpt-bucket", ""))] == [
        "run/ckpt/a",
        "run/ckpt/sub/b",
    ]

    (folder / "a").write_bytes(b"longer")
    (folder / "c").write_bytes(b"3")
    (folder / "sub" / "b").unlink()
    sync_up(storage, folder, prefix)
    assert [i.uri.key for i in storage.list(S3Uri("ckpt-bucket", ""))] == [
        "run/ckpt/a",
        "run/ckpt/c",
    ]
    assert storage.get_bytes(prefix.join("a")) == b"longer"


def test_sync_up_skips_unchanged_files(storage: LocalObjectStorage, tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "a").write_bytes(b"1")
    prefix = S3Uri("bkt", "ckpt/")
    sync_up(storage, folder, prefix)
    first = storage.head(prefix.join("a"))
    sync_up(storage, folder, prefix)
    assert storage.head(prefix.join("a")) == first


def test_sync_up_reuploads_a_same_size_file_modified_later(
    storage: LocalObjectStorage, tmp_path: Path
) -> None:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "a").write_bytes(b"1")
    prefix = S3Uri("bkt", "ckpt")
    sync_up(storage, folder, prefix)
    remote = storage.head(prefix.join("a"))
    assert remote is not None
    (folder / "a").write_bytes(b"2")
    later = remote.last_modified + 10
    os.utime(folder / "a", (later, later))
    sync_up(storage, folder, prefix)
    assert storage.get_bytes(prefix.join("a")) == b"2"


def test_sync_up_leaves_other_prefixes_alone(storage: LocalObjectStorage, tmp_path: Path) -> None:
    put(storage, "other/x", "ckpt/old")
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "new").write_bytes(b"n")
    sync_up(storage, folder, S3Uri("bkt", "ckpt/"))
    assert keys(storage) == ["ckpt/new", "other/x"]


@pytest.mark.parametrize("prefix", ["ckpt", "ckpt/"])
def test_sync_up_does_not_delete_sibling_prefixes(
    storage: LocalObjectStorage, tmp_path: Path, prefix: str
) -> None:
    put(storage, "ckpt2/keep", "ckpt-old/keep", "ckpt/stale")
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "new").write_bytes(b"n")
    sync_up(storage, folder, S3Uri("bkt", prefix))
    assert keys(storage) == ["ckpt-old/keep", "ckpt/new", "ckpt2/keep"]
