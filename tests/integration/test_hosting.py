"""Models, endpoint configs, endpoints and InvokeEndpoint through the real boto3 clients."""

from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, WaiterError

from opensage.app import EmbeddedServer
from tests.integration.conftest import (
    ROLE,
    RUNTIMES,
    XGBOOST_IMAGE,
    Clients,
    has_bwrap,
    make_clients,
    settings_for,
    wait_for,
)
from tests.integration.hosting import (
    ROW,
    delete,
    deploy,
    instance_dirs,
    model_server_pids,
    script_container,
    script_model,
    upload,
    variant,
    wait_in_service,
    wait_no_model_servers,
    xgboost_model,
)


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]


def invoke(clients: Clients, endpoint: str, body: bytes = ROW, **extra: Any) -> dict[str, Any]:
    extra.setdefault("ContentType", "text/csv")
    response = clients.runtime_client.invoke_endpoint(EndpointName=endpoint, Body=body, **extra)
    response["Body"] = response["Body"].read()
    return dict(response)


def scores(response: dict[str, Any]) -> list[float]:
    return [float(v) for v in response["Body"].decode().split()]


# Models and endpoint configs ------------------------------------------------------------------


def test_model_operations(server: Clients) -> None:
    sm = server.sagemaker
    xgboost_model(server, "crud-model")
    desc = sm.describe_model(ModelName="crud-model")
    assert desc["ModelArn"] == "arn:aws:sagemaker:us-east-1:123456789012:model/crud-model"
    assert desc["PrimaryContainer"]["Image"] == XGBOOST_IMAGE
    assert desc["ExecutionRoleArn"] == ROLE
    assert "crud-model" in [m["ModelName"] for m in sm.list_models()["Models"]]
    assert sm.list_models(NameContains="crud-mo")["Models"][0]["ModelName"] == "crud-model"

    with pytest.raises(ClientError) as exc:
        xgboost_model(server, "crud-model")
    code, message = error_of(exc)
    assert code == "ValidationException"
    assert 'Cannot create already existing model "arn:aws:sagemaker' in message

    with pytest.raises(ClientError) as exc:
        sm.create_model(
            ModelName="two-ways",
            PrimaryContainer={"Image": XGBOOST_IMAGE},
            Containers=[{"Image": XGBOOST_IMAGE}],
            ExecutionRoleArn=ROLE,
        )
    assert "Exactly one of PrimaryContainer and Containers" in error_of(exc)[1]
    with pytest.raises(ClientError) as exc:
        sm.create_model(ModelName="nope", PrimaryContainer={"Image": "unknown-repo:1"})
    assert "not in opensage's image store" in error_of(exc)[1]

    sm.delete_model(ModelName="crud-model")
    for call in (sm.describe_model, sm.delete_model):
        with pytest.raises(ClientError) as exc:
            call(ModelName="crud-model")
        assert error_of(exc) == (
            "ValidationException",
            'Could not find model "arn:aws:sagemaker:us-east-1:123456789012:model/crud-model".',
        )


def test_endpoint_config_operations(server: Clients) -> None:
    sm = server.sagemaker
    xgboost_model(server, "cfg-model")
    sm.create_endpoint_config(EndpointConfigName="cfg", ProductionVariants=[variant("cfg-model")])
    desc = sm.describe_endpoint_config(EndpointConfigName="cfg")
    assert desc["ProductionVariants"][0]["InitialVariantWeight"] == 1.0
    assert desc["EndpointConfigArn"].endswith(":endpoint-config/cfg")
    listed = sm.list_endpoint_configs(NameContains="cfg")["EndpointConfigs"]
    assert [c["EndpointConfigName"] for c in listed] == ["cfg"]
    with pytest.raises(ClientError) as exc:
        sm.create_endpoint_config(
            EndpointConfigName="cfg", ProductionVariants=[variant("cfg-model")]
        )
    assert "Cannot create already existing endpoint configuration" in error_of(exc)[1]
    with pytest.raises(ClientError) as exc:
        sm.create_endpoint_config(
            EndpointConfigName="cfg-missing", ProductionVariants=[variant("no-such-model")]
        )
    assert (
        'Could not find model "arn:aws:sagemaker:us-east-1:123456789012:model/no-such-model"'
        in (error_of(exc)[1])
    )
    with pytest.raises(ClientError) as exc:
        sm.create_endpoint_config(
            EndpointConfigName="cfg-dup",
            ProductionVariants=[variant("cfg-model", "A"), variant("cfg-model", "A")],
        )
    assert "unique" in error_of(exc)[1]
    sm.delete_endpoint_config(EndpointConfigName="cfg")
    with pytest.raises(ClientError) as exc:
        sm.describe_endpoint_config(EndpointConfigName="cfg")
    assert "Could not find endpoint configuration" in error_of(exc)[1]


# Endpoints -----------------------------------------------------------------------------------


def test_endpoint_lifecycle_and_invocation(server: Clients) -> None:
    assert server.home is not None
    sm = server.sagemaker
    xgboost_model(server, "life-model")
    config = deploy(server, "life", [variant("life-model")], wait=False)
    assert sm.describe_endpoint(EndpointName="life")["EndpointStatus"] in ("Creating", "InService")
    wait_in_service(server, "life")
    desc = sm.describe_endpoint(EndpointName="life")
    assert desc["EndpointConfigName"] == config
    (summary,) = desc["ProductionVariants"]
    assert summary["VariantName"] == "AllTraffic"
    assert summary["CurrentInstanceCount"] == summary["DesiredInstanceCount"] == 1
    assert summary["CurrentWeight"] == 1.0
    assert summary["DeployedImages"][0]["SpecifiedImage"] == XGBOOST_IMAGE
    listed = sm.list_endpoints(NameContains="life")["Endpoints"]
    assert [(e["EndpointName"], e["EndpointStatus"]) for e in listed] == [("life", "InService")]

    response = invoke(server, "life", Accept="text/csv")
    assert response["InvokedProductionVariant"] == "AllTraffic"
    assert response["ContentType"].startswith("text/csv")
    high, low = scores(response)
    assert high > 0.5 > low
    as_json = json.loads(invoke(server, "life", Accept="application/json")["Body"])
    assert [round(p["score"], 5) for p in as_json["predictions"]] == [round(high, 5), round(low, 5)]

    with pytest.raises(ClientError) as exc:
        sm.create_endpoint(EndpointName="LIFE", EndpointConfigName=config)
    assert "Cannot create already existing endpoint" in error_of(exc)[1]

    # Deleting the model does not disturb the running endpoint.
    sm.delete_model(ModelName="life-model")
    assert scores(invoke(server, "life"))[0] > 0.5

    assert model_server_pids(server.home)
    delete(server, "life")
    with pytest.raises(ClientError) as exc:
        sm.describe_endpoint(EndpointName="life")
    assert error_of(exc)[1] == (
        'Could not find endpoint "arn:aws:sagemaker:us-east-1:123456789012:endpoint/life".'
    )
    wait_no_model_servers(server.home)
    assert instance_dirs(server.home) == []


def test_missing_endpoint_and_bad_input(server: Clients) -> None:
    rt = server.runtime_client
    with pytest.raises(ClientError) as exc:
        rt.invoke_endpoint(EndpointName="ghost", Body=ROW, ContentType="text/csv")
    assert error_of(exc) == ("ValidationError", "Endpoint ghost of account 123456789012 not found.")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

    xgboost_model(server, "bad-model")
    deploy(server, "bad", [variant("bad-model")])
    with pytest.raises(ClientError) as exc:
        rt.invoke_endpoint(EndpointName="bad", Body=b"x" * (6 * 1024 * 1024 + 1))
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert error_of(exc)[0] == "ValidationError"

    with pytest.raises(ClientError) as exc:
        invoke(server, "bad", ContentType="image/png")
    code, message = error_of(exc)
    assert code == "ModelError"
    assert exc.value.response["OriginalStatusCode"] == 415
    assert message.startswith("Received client error (415) from primary with message")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 424

    with pytest.raises(ClientError) as exc:
        invoke(server, "bad", body=b"1,2\n")  # 2 features, the model has 5
    assert exc.value.response["OriginalStatusCode"] == 415
    assert "Feature size" in exc.value.response["OriginalMessage"]

    with pytest.raises(ClientError) as exc:
        invoke(server, "bad", TargetVariant="Nope")
    assert error_of(exc)[0] == "ValidationError"
    assert "Nope" in error_of(exc)[1]

    # The endpoint keeps serving afterwards.
    assert scores(invoke(server, "bad"))[0] > 0.5
    delete(server, "bad")


def test_user_script_and_pipeline(server: Clients) -> None:
    sm = server.sagemaker
    script_model(
        server,
        "script-model",
        """
        import json

        def model_fn(model_dir):
            return {"offset": 10}

        def input_fn(body, content_type):
            assert content_type == "application/json", content_type
            return json.loads(body)["values"]

        def predict_fn(data, model):
            if data == ["boom"]:
                raise RuntimeError("the model cannot take boom")
            return [v + model["offset"] for v in data]

        def output_fn(prediction, accept):
            return json.dumps({"results": prediction}), "application/json"
        """,
    )
    deploy(server, "script", [variant("script-model")])
    response = invoke(
        server, "script", json.dumps({"values": [1, 2]}).encode(), ContentType="application/json"
    )
    assert json.loads(response["Body"]) == {"results": [11, 12]}
    assert response["ContentType"] == "application/json"
    with pytest.raises(ClientError) as exc:
        invoke(server, "script", b'{"values": ["boom"]}', ContentType="application/json")
    assert exc.value.response["OriginalStatusCode"] == 500
    assert "the model cannot take boom" in exc.value.response["OriginalMessage"]
    assert json.loads(
        invoke(server, "script", b'{"values": [0]}', ContentType="application/json")["Body"]
    ) == {"results": [10]}
    delete(server, "script")

    first = script_container(
        server,
        "pipe-first",
        """
        import json

        def model_fn(model_dir):
            return None

        def transform_fn(model, body, content_type, accept):
            rows = [[float(v) for v in line.split(",")] for line in body.strip().splitlines()]
            doubled = [[2 * v for v in row] for row in rows]
            return json.dumps({"doubled": doubled}), "application/json"
        """,
    )
    second = script_container(
        server,
        "pipe-second",
        """
        import json

        def model_fn(model_dir):
            return None

        def transform_fn(model, body, content_type, accept):
            rows = json.loads(body)["doubled"]
            return ",".join(str(sum(row)) for row in rows), "text/csv"
        """,
    )
    sm.create_model(ModelName="pipe-model", Containers=[first, second], ExecutionRoleArn=ROLE)
    deploy(server, "pipe", [variant("pipe-model")])
    response = invoke(server, "pipe", b"1,2\n3,4\n", Accept="text/csv")
    assert response["Body"] == b"6.0,14.0"
    assert response["ContentType"] == "text/csv"
    delete(server, "pipe")


def test_failed_endpoints_say_why(server: Clients) -> None:
    sm = server.sagemaker
    sm.create_model(
        ModelName="no-data",
        PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": "s3://data/none/model.tar.gz"},
        ExecutionRoleArn=ROLE,
    )
    deploy(server, "no-data", [variant("no-data")], wait=False)
    with pytest.raises(WaiterError):
        wait_in_service(server, "no-data")
    desc = sm.describe_endpoint(EndpointName="no-data")
    assert desc["EndpointStatus"] == "Failed"
    assert "Could not find model data at s3://data/none/model.tar.gz" in desc["FailureReason"]
    with pytest.raises(ClientError) as exc:
        invoke(server, "no-data")
    assert error_of(exc)[0] == "ValidationError"
    delete(server, "no-data")

    script_model(
        server,
        "broken-model",
        """
        def model_fn(model_dir):
            raise ValueError("weights are corrupt")
        """,
    )
    deploy(server, "broken", [variant("broken-model")], wait=False)
    with pytest.raises(WaiterError):
        wait_in_service(server, "broken")
    desc = sm.describe_endpoint(EndpointName="broken")
    assert desc["EndpointStatus"] == "Failed"
    assert "did not pass the ping health check" in desc["FailureReason"] or (
        "stopped" in desc["FailureReason"]
    )
    assert "weights are corrupt" in desc["FailureReason"]
    delete(server, "broken")
    # The instance's output stays readable through CloudWatch Logs, as on SageMaker.
    group = "/aws/sagemaker/Endpoints/broken"
    (stream,) = server.logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert stream["logStreamName"].startswith("AllTraffic/i-")
    events = server.logs.get_log_events(
        logGroupName=group, logStreamName=stream["logStreamName"], startFromHead=True
    )["events"]
    assert any("weights are corrupt" in e["message"] for e in events)


# Traffic ---------------------------------------------------------------------------------------


def test_weighted_traffic_and_updates_drop_nothing(server: Clients) -> None:
    xgboost_model(server, "blue-model", seed=0)
    xgboost_model(server, "green-model", seed=1)
    deploy(server, "split", [variant("blue-model", "Blue", weight=4.0),
                             variant("green-model", "Green", weight=1.0)])  # fmt: skip
    calls = 2000
    seen = Counter(invoke(server, "split")["InvokedProductionVariant"] for _ in range(calls))
    # 80/20 within five standard deviations of the binomial count (sd = sqrt(n p q) ≈ 18).
    assert abs(seen["Blue"] - 0.8 * calls) < 90, seen
    targeted = {invoke(server, "split", TargetVariant="Green")["InvokedProductionVariant"]
                for _ in range(20)}  # fmt: skip
    assert targeted == {"Green"}

    failures: list[BaseException] = []
    answered: list[str] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                answered.append(invoke(server, "split")["InvokedProductionVariant"])
            except BaseException as exc:
                failures.append(exc)

    worker = threading.Thread(target=load)
    worker.start()
    try:
        server.sagemaker.update_endpoint_weights_and_capacities(
            EndpointName="split",
            DesiredWeightsAndCapacities=[{"VariantName": "Blue", "DesiredWeight": 0.0}],
        )
        wait_in_service(server, "split")
        desc = server.sagemaker.describe_endpoint(EndpointName="split")
        weights = {v["VariantName"]: v["CurrentWeight"] for v in desc["ProductionVariants"]}
        assert weights == {"Blue": 0.0, "Green": 1.0}
        before = len(answered)
        wait_for(lambda: len(answered) > before + 50, what="requests after the weight change")
        assert set(answered[before + 1 :]) == {"Green"}

        # UpdateEndpoint to a new config: blue/green, requests keep flowing throughout.
        xgboost_model(server, "next-model", seed=2)
        server.sagemaker.create_endpoint_config(
            EndpointConfigName="split-next", ProductionVariants=[variant("next-model", "Next")]
        )
        server.sagemaker.update_endpoint(EndpointName="split", EndpointConfigName="split-next")
        updating = server.sagemaker.describe_endpoint(EndpointName="split")
        assert updating["EndpointStatus"] in ("Updating", "InService")
        wait_in_service(server, "split")
        desc = server.sagemaker.describe_endpoint(EndpointName="split")
        assert desc["EndpointConfigName"] == "split-next"
        assert "PendingDeploymentSummary" not in desc
        before = len(answered)
        wait_for(lambda: len(answered) > before + 50, what="requests after the update")
    finally:
        stop.set()
        worker.join(60)
    assert failures == []
    assert answered[-1] == "Next"
    delete(server, "split")


def test_killed_instance_is_replaced(server: Clients) -> None:
    assert server.home is not None
    xgboost_model(server, "sturdy-model")
    deploy(server, "sturdy", [variant("sturdy-model", count=2)])
    pids = model_server_pids(server.home)
    assert len(pids) == 2
    before = {p.name for p in instance_dirs(server.home)}
    os.kill(pids[0], signal.SIGKILL)
    # Every request is answered while one instance is down.
    for _ in range(30):
        assert scores(invoke(server, "sturdy"))[0] > 0.5
    assert (
        server.sagemaker.describe_endpoint(EndpointName="sturdy")["EndpointStatus"] == "InService"
    )

    def replaced() -> bool:
        now = {p.name for p in instance_dirs(server.home or server.home)}
        desc = server.sagemaker.describe_endpoint(EndpointName="sturdy")
        return len(now - before) == 1 and desc["ProductionVariants"][0]["CurrentInstanceCount"] == 2

    wait_for(replaced, 60, what="the killed instance to be replaced")
    delete(server, "sturdy")
    wait_no_model_servers(server.home)


def test_metrics_are_counted(server: Clients) -> None:
    xgboost_model(server, "counted-model")
    deploy(server, "counted", [variant("counted-model")])
    for _ in range(3):
        invoke(server, "counted")
    with pytest.raises(ClientError):
        invoke(server, "counted", ContentType="image/png")
    with urllib.request.urlopen(f"{server.endpoint}/metrics") as response:
        text = response.read().decode()
    labels = '{endpoint="counted",variant="AllTraffic"}'
    assert f"opensage_endpoint_invocations_total{labels} 4" in text
    assert f"opensage_endpoint_invocation_4xx_errors_total{labels} 1" in text
    assert f"opensage_endpoint_model_latency_microseconds_count{labels} 4" in text

    # The same figures, stored with time, through the real boto3 CloudWatch client.
    now = time.time()
    dimensions = [
        {"Name": "EndpointName", "Value": "counted"},
        {"Name": "VariantName", "Value": "AllTraffic"},
    ]

    def statistics(metric: str) -> list[dict[str, Any]]:
        return list(
            server.cloudwatch.get_metric_statistics(
                Namespace="AWS/SageMaker",
                MetricName=metric,
                Dimensions=dimensions,
                StartTime=now - 600,
                EndTime=now + 600,
                Period=3600,
                Statistics=["Sum", "SampleCount", "Average", "Maximum"],
            )["Datapoints"]
        )

    def all_four_stored() -> list[dict[str, Any]] | None:
        found = statistics("Invocations")
        return found if found and found[0]["Sum"] == 4 else None

    (invocations,) = wait_for(all_four_stored, what="the four invocations to be stored")
    assert invocations["SampleCount"] == 4.0
    (errors,) = statistics("Invocation4XXErrors")
    assert (errors["Sum"], errors["Average"], errors["Maximum"]) == (1.0, 0.25, 1.0)
    (latency,) = statistics("ModelLatency")
    assert latency["Unit"] == "Microseconds"
    assert 0 < latency["Average"] <= latency["Maximum"]
    listed = server.cloudwatch.list_metrics(Namespace="AWS/SageMaker", Dimensions=dimensions[:1])
    assert {m["MetricName"] for m in listed["Metrics"]} >= {"Invocations", "ModelLatency"}
    delete(server, "counted")


def test_model_data_source_prefix(server: Clients) -> None:
    from tests.integration.hosting import booster_bytes

    upload(server, "prefix-model/xgboost-model", booster_bytes())
    server.sagemaker.create_model(
        ModelName="prefix-model",
        PrimaryContainer={
            "Image": XGBOOST_IMAGE,
            "ModelDataSource": {
                "S3DataSource": {
                    "S3Uri": "s3://data/prefix-model/",
                    "S3DataType": "S3Prefix",
                    "CompressionType": "None",
                }
            },
        },
        ExecutionRoleArn=ROLE,
    )
    deploy(server, "prefixed", [variant("prefix-model")])
    assert scores(invoke(server, "prefixed"))[0] > 0.5
    delete(server, "prefixed")


def test_custom_attributes_and_direct_invocation(server: Clients) -> None:
    echo = script_container(
        server,
        "direct-echo",
        """
        def model_fn(model_dir):
            return None

        def transform_fn(model, body, content_type, accept, context):
            context.set_response_custom_attributes("seen=" + (context.custom_attributes or ""))
            return b"echo:" + (body if isinstance(body, bytes) else body.encode()), "text/plain"
        """,
        ContainerHostname="echo",
    )
    upper = script_container(
        server,
        "direct-upper",
        """
        def model_fn(model_dir):
            return None

        def transform_fn(model, body, content_type, accept):
            return (body if isinstance(body, bytes) else body.encode()).upper(), "text/plain"
        """,
        ContainerHostname="upper",
    )
    server.sagemaker.create_model(
        ModelName="direct-model",
        Containers=[echo, upper],
        InferenceExecutionConfig={"Mode": "Direct"},
        ExecutionRoleArn=ROLE,
    )
    deploy(server, "direct", [variant("direct-model")])
    response = invoke(server, "direct", b"hi", ContentType="text/plain",
                      TargetContainerHostname="echo", CustomAttributes="trace=7")  # fmt: skip
    assert response["Body"] == b"echo:hi"
    assert response["CustomAttributes"] == "seen=trace=7"
    response = invoke(server, "direct", b"hi", ContentType="text/plain",
                      TargetContainerHostname="upper")  # fmt: skip
    assert response["Body"] == b"HI"
    with pytest.raises(ClientError) as exc:
        invoke(server, "direct", b"hi", ContentType="text/plain")
    assert "TargetContainerHostname is required" in error_of(exc)[1]
    with pytest.raises(ClientError) as exc:
        invoke(server, "direct", b"hi", ContentType="text/plain", TargetContainerHostname="nope")
    assert "is not a container of the model" in error_of(exc)[1]
    delete(server, "direct")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_deep_home_serves_through_a_short_socket_alias(
    runtime: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """An OPENSAGE_HOME too deep for a Unix socket address (108 bytes) still serves: the model
    server's socket is reached through a short link in the temporary directory, which goes
    when the instance does."""
    if runtime == "sandbox" and not has_bwrap:
        pytest.skip("bubblewrap is not installed")
    home = tmp_path_factory.mktemp("deep") / ("d" * 60) / ("e" * 60)
    home.mkdir(parents=True)
    embedded = EmbeddedServer(settings_for(home, runtime)).start()
    try:
        clients = make_clients(embedded.endpoint_url, runtime, home)
        clients.s3.create_bucket(Bucket="data")
        xgboost_model(clients, "deep-model")
        deploy(clients, "deep", [variant("deep-model")])
        (instance,) = instance_dirs(home)
        assert len(str(instance / "c0" / "serving.sock")) > 108
        high, low = scores(invoke(clients, "deep"))
        assert high > 0.5 > low
        aliases = [
            link
            for link in (Path(tempfile.gettempdir()) / f"opensage-{os.getuid()}").iterdir()
            if link.is_symlink() and link.resolve() == (instance / "c0").resolve()
        ]
        assert len(aliases) == 1
        delete(clients, "deep")
        wait_no_model_servers(home)
        assert not aliases[0].exists()  # dangling once the instance is gone; cleared next time
    finally:
        embedded.stop()
