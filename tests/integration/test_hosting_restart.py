"""Endpoints survive a server restart; their model-server processes do not outlive the server."""

from __future__ import annotations

from pathlib import Path

from botocore.exceptions import ClientError

from tests.integration.conftest import ServerProcess, wait_for
from tests.integration.hosting import (
    ROW,
    delete,
    deploy,
    model_server_pids,
    variant,
    wait_no_model_servers,
    xgboost_model,
)


def predicts(clients: object) -> bool:
    try:
        response = clients.runtime_client.invoke_endpoint(  # type: ignore[attr-defined]
            EndpointName="durable", Body=ROW, ContentType="text/csv"
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ServiceUnavailable":
            raise
        return False
    return float(response["Body"].read().split()[0]) > 0.5


def test_restart_brings_endpoints_back_and_leaves_no_process(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    try:
        clients = server.start()
        clients.s3.create_bucket(Bucket="data")
        xgboost_model(clients, "durable-model")
        deploy(clients, "durable", [variant("durable-model", count=2)])
        assert predicts(clients)
        assert len(model_server_pids(tmp_path)) == 2

        server.stop()  # graceful: the instances stop with the server
        wait_no_model_servers(tmp_path)

        clients = server.start()
        desc = clients.sagemaker.describe_endpoint(EndpointName="durable")
        assert desc["EndpointStatus"] == "InService"
        wait_for(lambda: predicts(clients), 60, 0.1, "the endpoint to serve again")

        server.kill()  # not graceful: the tethered instances notice and stop by themselves
        wait_no_model_servers(tmp_path)

        clients = server.start()
        wait_for(lambda: predicts(clients), 60, 0.1, "the endpoint to serve after a crash")
        delete(clients, "durable")
        wait_no_model_servers(tmp_path)
        server.stop()
    finally:
        server.ensure_stopped()
