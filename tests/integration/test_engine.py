"""Container images on a Docker or Podman engine (`OPENSAGE_IMAGE_RUNTIME`): the same stored
images and the same contract as under bubblewrap. These run only where an engine answers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from opensage.app import EmbeddedServer
from opensage.images import ImageStore, load
from opensage.runtime.engine import ENGINES, engine_answers
from tests.images.builder import Entry, Image, build_layout, shell_files
from tests.integration.conftest import Clients, log_messages, make_clients, settings_for
from tests.integration.test_byoc import SHELL_IMAGE, TRAIN_SH, _model_files, _train

ENGINE_PARAMS = [
    pytest.param(
        engine,
        marks=pytest.mark.skipif(
            not engine_answers(engine), reason=f"no {engine} engine answers here (`{engine} info`)"
        ),
    )
    for engine in ENGINES
]


@pytest.fixture(scope="module", params=ENGINE_PARAMS)
def engine_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[Clients]:  # fmt: skip
    home = tmp_path_factory.mktemp(f"opensage-home-{request.param}")
    layout = home.parent / f"shell-layout-{request.param}"
    image = Image(
        [shell_files(), [Entry("app", folder=True), Entry("app/train.sh", TRAIN_SH, 0o755)]],
        {"Entrypoint": ["/bin/bash", "/app/train.sh"], "WorkingDir": "/app"},
    )
    build_layout(Path(layout), image, SHELL_IMAGE)
    load(ImageStore(home / "images"), Path(layout))
    settings = replace(settings_for(home, "process"), image_runtime=request.param)
    embedded = EmbeddedServer(settings).start()
    clients = make_clients(embedded.endpoint_url, "process", home)
    clients.s3.create_bucket(Bucket="byoc")
    clients.s3.put_object(Bucket="byoc", Key="train/data.csv", Body=b"a,1\n")
    yield clients
    embedded.stop()


def test_an_image_trains_on_the_engine(engine_server: Clients) -> None:
    desc = _train(engine_server, "engine-shell", SHELL_IMAGE)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    log = "\n".join(log_messages(engine_server, "engine-shell"))
    assert "argv: train" in log
    assert "cwd: /app" in log
    assert _model_files(engine_server, desc) == {"model.txt": b"model from a,1\n"}
    failed = _train(engine_server, "engine-fail", SHELL_IMAGE, HyperParameters={"fail": "1"})
    assert failed["FailureReason"] == "AlgorithmError: bad data: line 1 has 3 columns, expected 2"
