"""The SDK's Model.deploy / Predictor against the real server, with each serializer."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from opensage.sdk import Model, Session
from opensage.sdk.deserializers import CSVDeserializer, JSONDeserializer, NumpyDeserializer
from opensage.sdk.serializers import CSVSerializer, JSONSerializer, NumpySerializer
from tests.integration.conftest import XGBOOST_IMAGE, Clients
from tests.integration.hosting import booster_bytes, tar_gz, upload, wait_no_model_servers


def test_model_deploy_and_predict(server: Clients, tmp_path: Path) -> None:
    assert server.home is not None
    session = Session(endpoint_url=server.endpoint)
    url = upload(server, "sdk/model.tar.gz", tar_gz({"xgboost-model": booster_bytes()}))
    rows = np.array([[1.5, 0.1, 0.2, 0.3, 0.4], [-1.5, 0.1, 0.2, 0.3, 0.4]])

    model = Model(image_uri=XGBOOST_IMAGE, model_data=url, sagemaker_session=session)
    predictor = model.deploy(1, "ml.m5.large", CSVSerializer(), CSVDeserializer(),
                             endpoint_name="sdk-xgb")  # fmt: skip
    high, low = (float(r[0]) for r in predictor.predict(rows))
    assert high > 0.5 > low
    predictor.serializer, predictor.deserializer = CSVSerializer(), JSONDeserializer()
    assert [p["score"] > 0.5 for p in predictor.predict(rows)["predictions"]] == [True, False]
    predictor.delete_endpoint()
    predictor.delete_model()
    names = [m["ModelName"] for m in server.sagemaker.list_models()["Models"]]
    assert model.name not in names

    script = tmp_path / "serve.py"
    script.write_text(
        textwrap.dedent("""
        import numpy as np

        def model_fn(model_dir):
            return lambda x: np.asarray(x) * 2
        """)
    )
    scripted = Model(image_uri="opensage/python:3", entry_point=str(script),
                     sagemaker_session=session)  # fmt: skip
    predictor = scripted.deploy(1, "ml.m5.large", NumpySerializer(), NumpyDeserializer(),
                                endpoint_name="sdk-npy")  # fmt: skip
    assert predictor.predict(np.arange(6.0).reshape(2, 3)).tolist() == [[0, 2, 4], [6, 8, 10]]
    predictor.serializer, predictor.deserializer = JSONSerializer(), JSONDeserializer()
    assert predictor.predict([1, 2]) == [2, 4]
    predictor.delete_endpoint()
    wait_no_model_servers(server.home)
