"""The SDK's algorithm estimators against the real server, as SageMaker SDK code uses them:
`record_set`, `fit`, `deploy`, `predict` with RecordIO-protobuf both ways."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import make_blobs

from opensage.sdk import KMeans, LinearLearner, Session
from tests.integration.conftest import ROLE, Clients
from tests.integration.hosting import wait_no_model_servers


def test_kmeans_and_linear_learner_from_record_sets(server: Clients) -> None:
    assert server.home is not None
    session = Session(endpoint_url=server.endpoint)
    x, groups = make_blobs(n_samples=200, centers=3, n_features=4, random_state=0)
    x = x.astype(np.float32)

    kmeans = KMeans(role=ROLE, instance_count=1, instance_type="ml.m5.large", k=3,
                    sagemaker_session=session, base_job_name="sdk-kmeans")  # fmt: skip
    kmeans.fit(kmeans.record_set(x), logs=False)
    assert kmeans.describe()["HyperParameters"]["feature_dim"] == "4"
    predictor = kmeans.deploy(1, "ml.m5.large", endpoint_name="sdk-kmeans")
    records = predictor.predict(x[:6])
    clusters = [r.label["closest_cluster"].float32_tensor.values[0] for r in records]
    distances = [r.label["distance_to_cluster"].float32_tensor.values[0] for r in records]
    assert len(clusters) == 6
    assert all(d >= 0 for d in distances)
    # Points of one blob share a cluster, points of different blobs do not.
    assert len({(g, c) for g, c in zip(groups[:6], clusters, strict=True)}) == len(set(groups[:6]))
    assert len(set(clusters)) == len(set(groups[:6]))
    predictor.delete_endpoint()

    learner = LinearLearner(role=ROLE, instance_count=1, instance_type="ml.m5.large",
                            predictor_type="binary_classifier", epochs=3,
                            sagemaker_session=session, base_job_name="sdk-ll")  # fmt: skip
    labels = (groups == 0).astype(np.float32)
    learner.fit(learner.record_set(x, labels), logs=False)
    predictor = learner.deploy(1, "ml.m5.large", endpoint_name="sdk-ll")
    records = predictor.predict(x[:20])
    predicted = [r.label["predicted_label"].float32_tensor.values[0] for r in records]
    assert np.mean(np.asarray(predicted) == labels[:20]) >= 0.9
    predictor.delete_endpoint()
    wait_no_model_servers(server.home)
