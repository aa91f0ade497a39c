"""The image registry (OCI distribution API) on the server's port: pushed as `docker push` and
`skopeo copy` push, pulled back byte for byte, and the pushed image runs a training job."""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from opensage.app import EmbeddedServer
from opensage.images import ImageStore, load
from tests.images.builder import Entry, Image, build_layout, docker_save, shell_files
from tests.integration.conftest import (
    ROLE,
    Clients,
    log_messages,
    make_clients,
    needs_bwrap,
    settings_for,
    wait_final,
)

TRAIN = b'#!/bin/bash\necho "pushed image says $1"\necho done > /opt/ml/model/out.txt\n'


class Registry:
    """A minimal registry client over http.client, speaking the calls a push makes."""

    def __init__(self, endpoint: str) -> None:
        self.netloc = urlsplit(endpoint).netloc

    def call(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.netloc, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            data = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        finally:
            conn.close()

    def push_blob(self, name: str, data: bytes, chunk: int = 0) -> str:
        """Chunked (PATCH, PATCH, PUT) when `chunk`, else monolithic (POST ?digest=)."""
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        status, _, _ = self.call("HEAD", f"/v2/{name}/blobs/{digest}")
        if status == 200:
            return digest
        if not chunk:
            status, headers, body = self.call(
                "POST", f"/v2/{name}/blobs/uploads/?digest={digest}", data
            )
            assert status == 201, body
            return digest
        status, headers, body = self.call("POST", f"/v2/{name}/blobs/uploads/")
        assert status == 202, body
        location = headers["location"]
        for start in range(0, len(data), chunk):
            part = data[start : start + chunk]
            content_range = f"{start}-{start + len(part) - 1}"
            status, headers, body = self.call(
                "PATCH", location, part, {"Content-Range": content_range}
            )
            assert status == 202, body
            assert headers["range"] == f"0-{start + len(part) - 1}"
        status, headers, body = self.call("PUT", f"{location}?digest={digest}")
        assert status == 201, body
        assert headers["docker-content-digest"] == digest
        return digest

    def push_layout(self, name: str, tag: str, layout: Path, chunk: int = 0) -> str:
        index = json.loads((layout / "index.json").read_text())
        manifest_digest = index["manifests"][0]["digest"]
        manifest = _blob(layout, manifest_digest)
        document = json.loads(manifest)
        for descriptor in [document["config"], *document["layers"]]:
            self.push_blob(name, _blob(layout, descriptor["digest"]), chunk)
        status, headers, body = self.call(
            "PUT",
            f"/v2/{name}/manifests/{tag}",
            manifest,
            {"Content-Type": document["mediaType"]},
        )
        assert status == 201, body
        assert headers["docker-content-digest"] == manifest_digest
        return str(manifest_digest)


def _blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs/sha256" / digest.removeprefix("sha256:")).read_bytes()


def _image(word: str = "hello") -> Image:
    return Image(
        [[Entry("app", folder=True), Entry("app/word", word.encode() * 5000)],
         [Entry("app/more", b"x" * 70_000)]],
        {"Entrypoint": ["/app/run"]},
    )  # fmt: skip


@pytest.fixture(scope="module")
def registry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clients]:
    home = tmp_path_factory.mktemp("opensage-home-registry")
    embedded = EmbeddedServer(settings_for(home, "process")).start()
    yield make_clients(embedded.endpoint_url, "process", home)
    embedded.stop()


@pytest.fixture
def registry(registry_server: Clients) -> Registry:
    return Registry(registry_server.sagemaker.meta.endpoint_url)


def _store(clients: Clients) -> ImageStore:
    assert clients.home is not None
    return ImageStore(clients.home / "images")


def test_version_check_and_unknowns(registry: Registry) -> None:
    status, headers, body = registry.call("GET", "/v2/")
    assert status == 200
    assert headers["docker-distribution-api-version"] == "registry/2.0"
    status, _, body = registry.call("GET", "/v2/nobody/manifests/1")
    assert status == 404
    assert json.loads(body)["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    status, _, body = registry.call("HEAD", f"/v2/nobody/blobs/sha256:{'0' * 64}")
    assert status == 404
    status, _, body = registry.call("GET", "/v2/Bad..Name/tags/list")
    assert json.loads(body)["errors"][0]["code"] == "NAME_INVALID"


@pytest.mark.parametrize("chunk", [0, 30_000], ids=["monolithic", "chunked"])
def test_push_then_pull_gives_the_same_bytes_and_image(
    registry: Registry, registry_server: Clients, tmp_path: Path, chunk: int
) -> None:
    layout = tmp_path / "layout"
    image = _image(f"push-{chunk}")
    build_layout(layout, image, None)
    digest = registry.push_layout(f"team/app{chunk}", "v1", layout, chunk)
    status, headers, manifest = registry.call("GET", f"/v2/team/app{chunk}/manifests/v1")
    assert status == 200
    assert headers["docker-content-digest"] == digest
    assert headers["content-type"].startswith("application/vnd.oci.image.manifest.v1+json")
    assert manifest == _blob(layout, digest)
    for descriptor in json.loads(manifest)["layers"]:
        status, _, data = registry.call("GET", f"/v2/team/app{chunk}/blobs/{descriptor['digest']}")
        assert status == 200
        assert data == _blob(layout, descriptor["digest"])
    status, _, by_digest = registry.call("GET", f"/v2/team/app{chunk}/manifests/{digest}")
    assert by_digest == manifest
    status, _, tags = registry.call("GET", f"/v2/team/app{chunk}/tags/list")
    assert json.loads(tags) == {"name": f"team/app{chunk}", "tags": ["v1"]}
    status, _, catalog = registry.call("GET", "/v2/_catalog")
    assert f"team/app{chunk}" in json.loads(catalog)["repositories"]

    # the same image from a docker save archive has the same image id
    docker_save(tmp_path / "saved.tar", image, ["saved/app:1"])
    other = ImageStore(tmp_path / "other-store")
    [saved] = load(other, tmp_path / "saved.tar")
    pushed = _store(registry_server).resolve(f"localhost:5000/team/app{chunk}:v1")
    assert pushed.id == saved.id


def test_a_blob_that_does_not_match_its_digest_is_refused(registry: Registry) -> None:
    data = b"the real bytes"
    wrong = f"sha256:{hashlib.sha256(b'other bytes').hexdigest()}"
    status, _, body = registry.call("POST", f"/v2/bad/blobs/uploads/?digest={wrong}", data)
    assert status == 400
    assert json.loads(body)["errors"][0]["code"] == "DIGEST_INVALID"
    status, _, _ = registry.call("HEAD", f"/v2/bad/blobs/{wrong}")
    assert status == 404
    right = f"sha256:{hashlib.sha256(data).hexdigest()}"
    status, _, _ = registry.call("HEAD", f"/v2/bad/blobs/{right}")
    assert status == 404  # nothing of the refused upload was kept


def test_a_manifest_needs_its_blobs_and_chunks_come_in_order(
    registry: Registry, tmp_path: Path
) -> None:
    layout = tmp_path / "layout"
    build_layout(layout, _image("orphan"), None)
    index = json.loads((layout / "index.json").read_text())
    manifest = _blob(layout, index["manifests"][0]["digest"])
    status, _, body = registry.call("PUT", "/v2/orphan/manifests/1", manifest)
    assert status == 400
    assert json.loads(body)["errors"][0]["code"] == "BLOB_UNKNOWN"
    status, headers, _ = registry.call("POST", "/v2/orphan/blobs/uploads/")
    status, _, body = registry.call("PATCH", headers["location"], b"abc", {"Content-Range": "5-7"})
    assert status == 416


def test_cross_repository_mount(registry: Registry) -> None:
    digest = registry.push_blob("source/repo", b"shared layer bytes")
    status, headers, _ = registry.call(
        "POST", f"/v2/target/repo/blobs/uploads/?mount={digest}&from=source/repo"
    )
    assert status == 201
    assert headers["docker-content-digest"] == digest


@needs_bwrap
def test_a_pushed_image_trains(
    registry: Registry, registry_server: Clients, tmp_path: Path
) -> None:
    layout = tmp_path / "layout"
    files = [*shell_files(), Entry("app", folder=True), Entry("app/run", TRAIN, 0o755)]
    build_layout(layout, Image([files], {"Entrypoint": ["/bin/bash", "/app/run"]}), None)
    registry.push_layout("pushed/shell", "1", layout, chunk=1 << 20)
    image = f"{registry.netloc}/pushed/shell:1"
    request: dict[str, Any] = {
        "TrainingJobName": "pushed-image",
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": "s3://registry-out/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 120},
    }
    registry_server.s3.create_bucket(Bucket="registry-out")
    registry_server.sagemaker.create_training_job(**request)
    desc = wait_final(registry_server, "pushed-image")
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert "pushed image says train" in "\n".join(log_messages(registry_server, "pushed-image"))


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")
def test_skopeo_copies_an_oci_layout_in(
    registry: Registry, registry_server: Clients, tmp_path: Path
) -> None:
    layout = tmp_path / "layout"
    image = _image("skopeo")
    image.gzip_layers = False
    build_layout(layout, image, "latest")
    done = subprocess.run(
        ["skopeo", "copy", "--dest-tls-verify=false", "--insecure-policy",
         f"oci:{layout}:latest", f"docker://{registry.netloc}/skopeo/app:2"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    store = _store(registry_server)
    pushed = store.resolve("skopeo/app:2")
    other = ImageStore(tmp_path / "other")
    [loaded] = load(other, layout, "x/y:1")
    assert pushed.id == loaded.id  # skopeo may rewrite the manifest; the image id is the image
