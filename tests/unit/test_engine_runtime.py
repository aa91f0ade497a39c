"""The container-engine image runtime's command lines, and the archive it hands the engine."""

from __future__ import annotations

import sys
from pathlib import Path

from opensage.images import ImageStore, load
from opensage.runtime.base import ContainerSpec
from opensage.runtime.engine import EngineRuntime, write_docker_save
from tests.images.builder import Entry, Image, build_layout


def _spec(tmp_path: Path, **extra: object) -> ContainerSpec:
    return ContainerSpec(
        job_dir=tmp_path / "job",
        run_dir=tmp_path / "run",
        command=["/bin/app", "train", "--fast"],
        env={"A": "1", "B": "two words"},
        workdir="/work",
        image_id="sha256:" + "a" * 64,
        **extra,  # type: ignore[arg-type]
    )


def test_a_training_container(tmp_path: Path) -> None:
    argv, _ = EngineRuntime("docker").wrap(_spec(tmp_path, network_isolation=True, user="app"))
    assert argv[:3] == ["docker", "run", "--rm"]
    assert argv[argv.index("--volume") + 1] == f"{tmp_path / 'job'}:/opt/ml"
    assert argv[argv.index("--workdir") + 1] == "/work"
    assert argv[argv.index("--entrypoint") + 1] == "/bin/app"
    assert argv[argv.index("--user") + 1] == "app"
    assert argv[argv.index("--network") + 1] == "none"
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--env"] == ["A=1", "B=two words"]
    assert argv[-3:] == ["sha256:" + "a" * 64, "train", "--fast"]


def test_a_model_server_is_published_on_loopback_and_bridged(tmp_path: Path) -> None:
    argv, _ = EngineRuntime("podman").wrap(_spec(tmp_path, serve_port=8080))
    separator = argv.index("--")
    proxy, run = argv[:separator], argv[separator + 1 :]
    assert proxy[:5] == [sys.executable, "-m", "opensage.runtime.netproxy", "--engine", "podman"]
    assert proxy[5] == run[run.index("--name") + 1]  # asks the engine about this container
    assert proxy[6:] == [str(tmp_path / "job" / "serving.sock"), "8080"]
    assert run[run.index("--publish") + 1] == "127.0.0.1::8080"
    assert "--network" not in run


def test_the_archive_for_the_engine_is_the_stored_image(tmp_path: Path) -> None:
    """A docker save archive written from the store loads back as the same image."""
    store = ImageStore(tmp_path / "store")
    image = Image([[Entry("a", b"1")], [Entry("b", b"2")]], {"Cmd": ["x"]})
    build_layout(tmp_path / "layout", image, "engine/app:1")
    [stored] = load(store, tmp_path / "layout")
    digests = [stored.manifest["config"]["digest"], *(d["digest"] for d in stored.layers)]
    blobs = {d: str(store.blob_path(d)) for d in digests}
    with (tmp_path / "saved.tar").open("wb") as out:
        write_docker_save(out, blobs, digests[0], digests[1:], "engine/app:exported")
    [again] = load(ImageStore(tmp_path / "other"), tmp_path / "saved.tar")
    assert again.id == stored.id
    assert again.names == ("engine/app:exported",)
