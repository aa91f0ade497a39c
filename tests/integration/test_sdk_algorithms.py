"""The SDK's algorithm estimators against the real server, as SageMaker SDK code uses them:
`record_set`, `fit`, `deploy`, `predict` with RecordIO-protobuf both ways."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import make_blobs

from opensage.sdk import IPInsights, KMeans, LinearLearner, RandomCutForest, Session
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


def test_random_cut_forest_and_ip_insights_through_the_sdk(server: Clients) -> None:
    """RandomCutForest from a record set (mini_batch_size fixed at 1000), scoring a far point
    above the crowd; IPInsights from CSV in S3, its predictor sending CSV and reading JSON."""
    assert server.home is not None
    session = Session(endpoint_url=server.endpoint)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3)).astype(np.float32)

    forest = RandomCutForest(role=ROLE, instance_count=1, instance_type="ml.m5.large",
                             num_trees=50, num_samples_per_tree=64, sagemaker_session=session,
                             base_job_name="sdk-rcf")  # fmt: skip
    forest.fit(forest.record_set(x), logs=False)
    hyperparameters = forest.describe()["HyperParameters"]
    assert (hyperparameters["mini_batch_size"], hyperparameters["feature_dim"]) == ("1000", "3")
    predictor = forest.deploy(1, "ml.m5.large", endpoint_name="sdk-rcf")
    far = np.array([[8.0, -8.0, 8.0]], dtype=np.float32)
    records = predictor.predict(np.vstack([x[:5], far]))
    scores = [r.label["score"].float32_tensor.values[0] for r in records]
    assert len(scores) == 6
    assert scores[-1] > max(scores[:-1])
    predictor.delete_endpoint()

    users = [f"user{u}" for u in range(20)]
    rows = [f"{user},10.{u}.{i % 4}.{i}" for u, user in enumerate(users) for i in range(10)]
    server.s3.put_object(
        Bucket="data", Key="sdk-ipi/train.csv", Body=("\n".join(rows) + "\n").encode()
    )
    insights = IPInsights(role=ROLE, instance_count=1, instance_type="ml.m5.large",
                          num_entity_vectors=64, vector_dim=8, epochs=2,
                          sagemaker_session=session, base_job_name="sdk-ipi")  # fmt: skip
    insights.fit({"train": "s3://data/sdk-ipi/train.csv"}, mini_batch_size=50, logs=False)
    assert insights.describe()["HyperParameters"]["mini_batch_size"] == "50"
    predictor = insights.deploy(1, "ml.m5.large", endpoint_name="sdk-ipi")
    answer = predictor.predict([["user1", "10.1.0.4"], ["user2", "192.168.7.9"]])
    assert [sorted(p) for p in answer["predictions"]] == [["dot_product"], ["dot_product"]]
    predictor.delete_endpoint()
    wait_no_model_servers(server.home)
