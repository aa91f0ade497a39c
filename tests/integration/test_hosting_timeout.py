"""A model that does not answer in time gets SageMaker's timeout ModelError; nothing hangs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from opensage.app import EmbeddedServer
from tests.integration.conftest import Clients, make_clients, settings_for, wait_for
from tests.integration.hosting import delete, deploy, script_model, variant


@pytest.fixture
def impatient(tmp_path: Path) -> Iterator[Clients]:
    """A server whose model timeout is 1 s instead of SageMaker's 60 s."""
    settings = replace(settings_for(tmp_path, "process"), invocation_timeout_seconds=1.0)
    embedded = EmbeddedServer(settings).start()
    clients = make_clients(embedded.endpoint_url, "process", tmp_path)
    clients.s3.create_bucket(Bucket="data")
    yield clients
    embedded.stop()


def test_slow_model_times_out_and_the_endpoint_keeps_serving(impatient: Clients) -> None:
    script_model(
        impatient,
        "slow-model",
        """
        import time

        def model_fn(model_dir):
            return None

        def transform_fn(model, body, content_type, accept):
            if body == b"slow":
                time.sleep(5)
            return b"quick", "text/plain"
        """,
    )
    deploy(impatient, "slow", [variant("slow-model")])
    runtime = impatient.runtime_client
    with pytest.raises(ClientError) as exc:
        runtime.invoke_endpoint(EndpointName="slow", Body=b"slow", ContentType="text/plain")
    error = exc.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["OriginalStatusCode"] == 0
    assert error["Error"]["Message"].startswith(
        "Your invocation timed out while waiting for a response from container primary."
    )

    def answers_again() -> bool:
        # The one prediction thread finishes the slow request first, then serves again.
        try:
            answer = runtime.invoke_endpoint(
                EndpointName="slow", Body=b"fast", ContentType="text/plain"
            )
        except ClientError as exc:
            if exc.response["OriginalStatusCode"] != 0:
                raise
            return False
        return bool(answer["Body"].read() == b"quick")

    wait_for(answers_again, 30, 0.1, "the endpoint to answer again")
    delete(impatient, "slow")
