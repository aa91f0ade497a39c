"""The image store: the three archive forms, digests, layers applied safely, names and removal."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opensage.images import ImageError, ImageNotFound, ImageStore, load
from opensage.images.layers import LayerError, apply_layer
from tests.images.builder import (
    Entry,
    Image,
    build_layout,
    digest,
    docker_save,
    layer_tar,
    oci_archive,
)


def _image() -> Image:
    base = [
        Entry("etc", folder=True),
        Entry("etc/greeting", b"hello\n"),
        Entry("etc/old", b"gone soon\n"),
        Entry("app", folder=True),
        Entry("app/a", b"a"),
        Entry("app/b", b"b"),
        Entry("bin", folder=True),
        Entry("bin/run", b"#!/bin/sh\necho run\n", 0o755),
    ]
    top = [
        Entry("etc/.wh.old"),
        Entry("app/c", b"c"),
        Entry("app/.wh..wh..opq"),  # after app/c: c must survive, a and b must not
        Entry("etc/link", symlink="greeting"),
        Entry("etc/abs", symlink="/etc/greeting"),
        Entry("etc/hard", hardlink="etc/greeting"),
    ]
    return Image([base, top], {"Entrypoint": ["/bin/run"], "Env": ["A=1"], "WorkingDir": "/app"})


def test_the_three_forms_give_the_same_image(tmp_path: Path) -> None:
    image = _image()
    layout = tmp_path / "layout"
    build_layout(layout, image, "demo/app:1")
    oci_archive(layout, tmp_path / "image.oci.tar")
    docker_save(tmp_path / "image.docker.tar", image, ["demo/app:2"])
    ids = set()
    for number, source in enumerate([layout, tmp_path / "image.oci.tar"]):
        store = ImageStore(tmp_path / f"store{number}")
        [loaded] = load(store, source)
        assert loaded.names == ("demo/app:1",)
        ids.add(loaded.id)
    store = ImageStore(tmp_path / "store-docker")
    [loaded] = load(store, tmp_path / "image.docker.tar")
    assert loaded.names == ("demo/app:2",)
    ids.add(loaded.id)
    assert len(ids) == 1
    assert loaded.entrypoint == ["/bin/run"]
    assert loaded.env["A"] == "1"
    assert loaded.working_dir == "/app"
    root = store.root_of(loaded)
    assert (root / "etc/greeting").read_text() == "hello\n"
    assert not (root / "etc/old").exists()
    assert sorted(p.name for p in (root / "app").iterdir()) == ["c"]
    assert os.readlink(root / "etc/link") == "greeting"
    assert (root / "etc/hard").read_text() == "hello\n"
    assert os.access(root / "bin/run", os.X_OK)
    assert (root / "opt/ml").is_dir()  # the runtime's mount points exist in a read-only root
    assert store.root_of(loaded) == root  # cached


def test_names_resolve_with_any_host_and_the_latest_tag(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    build_layout(layout, _image(), "my-algo:latest")
    store = ImageStore(tmp_path / "store")
    [image] = load(store, layout)
    for reference in (
        "my-algo",
        "my-algo:latest",
        "localhost:8080/my-algo:latest",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-algo:latest",
        f"my-algo@{image.manifest_digest}",
    ):
        assert store.resolve(reference).id == image.id, reference
    with pytest.raises(ImageNotFound, match="my-algo:2"):
        store.resolve("my-algo:2")


def test_a_bare_tag_needs_a_name(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    build_layout(layout, _image(), "latest")
    store = ImageStore(tmp_path / "store")
    with pytest.raises(ImageError, match="--name"):
        load(store, layout)
    [image] = load(store, layout, name="named/by-hand:3")
    assert image.names == ("named/by-hand:3",)


def test_shared_layers_are_stored_once_and_removal_collects_garbage(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    first = _image()
    second = Image([first.layers[0], [Entry("extra", b"x")]], {"Cmd": ["x"]})
    build_layout(tmp_path / "one", first, "one:1")
    build_layout(tmp_path / "two", second, "two:1")
    [one] = load(store, tmp_path / "one")
    [two] = load(store, tmp_path / "two")
    assert one.layers[0]["digest"] == two.layers[0]["digest"]
    blobs = {p.name for p in store.blobs.iterdir()}
    assert len(blobs) == 2 * 2 + 3  # two manifests and configs, three distinct layers
    store.root_of(one)
    removed = store.remove("one:1")
    assert one.layers[1]["digest"] in removed
    assert two.layers[0]["digest"] not in removed  # still used by two:1
    assert not (store.roots / one.id.removeprefix("sha256:")).exists()
    assert [image.names for image in store.images()] == [("two:1",)]
    with pytest.raises(ImageNotFound):
        store.remove("one:1")


def test_a_blob_that_does_not_match_its_digest_is_refused(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    build_layout(layout, _image(), "bad:1")
    manifest = json.loads(_manifest_bytes(layout))
    layer = layout / "blobs/sha256" / manifest["layers"][0]["digest"].removeprefix("sha256:")
    layer.write_bytes(gzip.compress(layer_tar([Entry("tampered", b"x")])))
    store = ImageStore(tmp_path / "store")
    with pytest.raises(ImageError, match="does not match its digest"):
        load(store, layout)
    assert store.images() == []


def test_a_docker_layer_that_does_not_match_the_config_is_refused(tmp_path: Path) -> None:
    image = _image()
    docker_save(tmp_path / "good.tar", image, ["x:1"])
    tampered = Image([image.layers[0], [Entry("other", b"!")]], image.config)
    # the archive of `tampered`, but with `image`'s config: layer 2 no longer matches diff_ids
    with tarfile.open(tmp_path / "good.tar") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    manifest = json.loads(members["manifest.json"])
    members[manifest[0]["Layers"][1]] = tampered.layer_tars()[1]
    with tarfile.open(tmp_path / "bad.tar", "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    store = ImageStore(tmp_path / "store")
    with pytest.raises(ImageError, match="diff_id"):
        load(store, tmp_path / "bad.tar")


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([Entry("../escape", b"x")], "climbs out"),
        ([Entry("a/../../escape", b"x")], "climbs out"),
        ([Entry("/etc/escape", b"x")], "absolute"),
        ([Entry("out", symlink="../../.."), Entry("out/escape", b"x")], "outside the root"),
        ([Entry("d", folder=True), Entry("d/out", symlink="../../x")], "outside the root"),
        ([Entry("h", hardlink="../../etc/passwd")], "climbs out"),
    ],
)
def test_a_layer_escaping_the_root_is_refused(
    tmp_path: Path, entries: list[Entry], message: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = outside / "a" / "b" / "root"
    root.mkdir(parents=True)
    image = Image([entries])
    build_layout(tmp_path / "layout", image, "evil:1")
    store = ImageStore(tmp_path / "store")
    [loaded] = load(store, tmp_path / "layout")
    with pytest.raises(ImageError, match=message):
        store.root_of(loaded)
    with pytest.raises(LayerError, match=message):
        apply_layer(root, io.BytesIO(layer_tar(entries)))
    assert [
        p for p in outside.rglob("*") if not (p.is_relative_to(root) or root.is_relative_to(p))
    ] == []
    assert not (store.roots / loaded.id.removeprefix("sha256:")).exists()


def test_absolute_links_resolve_inside_the_root(tmp_path: Path) -> None:
    """An absolute link means the root's path, as inside the container: writing through it
    lands in the root, never in the host's folder of that name."""
    root = tmp_path / "root"
    root.mkdir()
    entries = [Entry("etc", folder=True), Entry("lib", symlink="/usr/lib"),
               Entry("usr/lib", folder=True), Entry("lib/libx.so", b"x")]  # fmt: skip
    apply_layer(root, io.BytesIO(layer_tar(entries)))
    assert (root / "usr/lib/libx.so").read_bytes() == b"x"


_NAME = st.lists(st.sampled_from(["a", "b", "..", ".", "", "/", "c.txt"]), min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(paths=st.lists(_NAME.map("/".join), min_size=1, max_size=5),
       links=st.lists(st.tuples(st.sampled_from(["a", "b", "a/l"]),
                                _NAME.map("/".join)), max_size=3))  # fmt: skip
def test_no_layer_writes_outside_the_root(
    tmp_path_factory: pytest.TempPathFactory, paths: list[str], links: list[tuple[str, str]]
) -> None:
    base = tmp_path_factory.mktemp("fuzz")
    root = base / "root"
    root.mkdir()
    entries = [Entry(name, symlink=target or ".") for name, target in links]
    entries += [Entry(path, b"x") for path in paths if path.strip("/.")]
    with contextlib.suppress(LayerError):
        apply_layer(root, io.BytesIO(layer_tar(entries)))
    assert {p.name for p in base.iterdir()} == {"root"}


def _manifest_bytes(layout: Path) -> bytes:
    index = json.loads((layout / "index.json").read_text())
    name = index["manifests"][0]["digest"]
    data = (layout / "blobs/sha256" / name.removeprefix("sha256:")).read_bytes()
    assert digest(data) == name
    return data
