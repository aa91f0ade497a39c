"""The SDK picks up jobs it did not start (`attach` for estimators and transformers, `logs()`),
and makes endpoints over several weighted variants (`production_variant`,
`Session.endpoint_from_production_variants`), against the real server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from opensage.sdk import Estimator, Session, Transformer, UnexpectedStatusError
from opensage.sdk.deserializers import JSONDeserializer
from opensage.sdk.endpoints import production_variant
from opensage.sdk.predictor import Predictor
from opensage.sdk.serializers import JSONSerializer
from tests.integration.conftest import Clients
from tests.integration.hosting import SCALE_MODEL_PY, wait_no_model_servers


@pytest.fixture(scope="module")
def session(process_server: Clients) -> Iterator[Session]:
    process_server.s3.create_bucket(Bucket="data")
    yield Session(endpoint_url=process_server.endpoint)
    assert process_server.home is not None
    wait_no_model_servers(process_server.home)


def trained(session: Session, code: Path, scale: float, job_name: str) -> Estimator:
    (code / "train.py").write_text(SCALE_MODEL_PY)
    estimator = Estimator(
        entry_point="train.py",
        source_dir=str(code),
        hyperparameters={"scale": scale},
        output_path="s3://data/attach",
        sagemaker_session=session,
    )
    estimator.fit(job_name=job_name, logs=False)
    return estimator


def test_attached_script_estimator_deploys_with_the_jobs_code(
    session: Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = trained(session, tmp_path, 3.0, "attach-script")
    sent = original._training_request("attach-script", None)
    (tmp_path / "train.py").unlink()  # the attached estimator needs only the job's upload

    attached = Estimator.attach("attach-script", sagemaker_session=session)
    assert attached.latest_training_job == "attach-script"
    assert attached.model_data == original.model_data
    assert attached.entry_point == "train.py"
    assert attached.source_dir == "s3://data/attach/attach-script/source/sourcedir.tar.gz"
    assert attached.hyperparameters == {"scale": 3.0}  # JSON-decoded, the sagemaker_* left out
    assert attached._training_request("attach-script", None) == sent

    capsys.readouterr()
    attached.logs()
    assert "training with scale 3.0" in capsys.readouterr().out

    predictor = attached.deploy(1, "ml.m5.large", JSONSerializer(), JSONDeserializer(),
                                endpoint_name="attach-script")  # fmt: skip
    try:
        assert predictor.predict([[1.0, 2.0]]) == [[3.0, 6.0]]
    finally:
        predictor.delete_endpoint()
        predictor.delete_model()


def test_attach_raises_for_a_job_that_failed(session: Session, tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("raise SystemExit('no data')\n")
    estimator = Estimator(entry_point="train.py", source_dir=str(tmp_path),
                          output_path="s3://data/attach", sagemaker_session=session)  # fmt: skip
    with pytest.raises(UnexpectedStatusError):
        estimator.fit(job_name="attach-failing", logs=False)
    with pytest.raises(UnexpectedStatusError, match="attach-failing: Failed") as info:
        Estimator.attach("attach-failing", sagemaker_session=session)
    assert "no data" in str(info.value)


def test_attached_transformer_follows_the_job(session: Session, tmp_path: Path) -> None:
    estimator = trained(session, tmp_path, 2.0, "attach-transform")
    session.s3_client.put_object(Bucket="data", Key="attach/in/rows.json", Body=b"[1, 2]")
    started = estimator.transformer(1, "ml.m5.large", accept="application/json",
                                    output_path="s3://data/attach/out")  # fmt: skip
    started.transform("s3://data/attach/in/", content_type="application/json", wait=False)
    assert started.latest_transform_job is not None
    name = started.latest_transform_job.job_name

    attached = Transformer.attach(name, sagemaker_session=session)
    assert attached.model_name == "attach-transform"
    assert attached.output_path == "s3://data/attach/out"
    assert attached.accept == "application/json"
    assert attached.wait(logs=False)["TransformJobStatus"] == "Completed"
    out = session.s3_client.get_object(Bucket="data", Key="attach/out/rows.json.out")
    assert json.loads(out["Body"].read()) == [2.0, 4.0]


def test_endpoint_over_weighted_variants(session: Session, tmp_path: Path) -> None:
    models = []
    for scale in (2.0, 10.0):
        code = tmp_path / f"scale-{scale:g}"
        code.mkdir()
        model = trained(session, code, scale, f"attach-variant-{scale:g}").create_model()
        model.name = f"variant-model-{scale:g}"
        models.append(model.create())
    assert production_variant(models[0], "ml.m5.large") == {
        "VariantName": "AllTraffic",
        "ModelName": models[0],
        "InitialVariantWeight": 1,
        "InstanceType": "ml.m5.large",
        "InitialInstanceCount": 1,
    }
    variants = [
        production_variant(models[0], "ml.m5.large", 1, variant_name="Small", initial_weight=3),
        production_variant(models[1], "ml.m5.large", 1, variant_name="Large", initial_weight=1),
    ]
    name = session.endpoint_from_production_variants("attach-ab", variants)
    predictor = Predictor(name, session, JSONSerializer(), JSONDeserializer())
    try:
        desc = session.sagemaker_client.describe_endpoint(EndpointName=name)
        weights = {v["VariantName"]: v["CurrentWeight"] for v in desc["ProductionVariants"]}
        assert weights == {"Small": 3.0, "Large": 1.0}
        runtime = session.sagemaker_runtime_client
        for variant, scale in (("Small", 2.0), ("Large", 10.0)):
            answer = runtime.invoke_endpoint(
                EndpointName=name,
                TargetVariant=variant,
                ContentType="application/json",
                Body=b"[1]",
            )
            assert answer["InvokedProductionVariant"] == variant
            assert np.allclose(json.loads(answer["Body"].read()), [scale])
        served = {tuple(predictor.predict([1.0])) for _ in range(40)}
        assert served == {(2.0,), (10.0,)}  # 40 draws at 3:1 miss a variant with p < 1e-4
    finally:
        predictor.delete_endpoint()
        for model in models:
            session.sagemaker_client.delete_model(ModelName=model)
