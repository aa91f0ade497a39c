"""The SDK's algorithm estimators and record (de)serializers, without a server."""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.sparse as sp

from opensage.formats.tensors import encode_label_records
from opensage.sdk.algorithms import (
    KNN,
    LDA,
    NTM,
    PCA,
    FactorizationMachines,
    IPInsights,
    KMeans,
    LinearLearner,
    Object2Vec,
    RandomCutForest,
    serialize_hyperparameter,
)
from opensage.sdk.amazon import RecordSet, read_records
from opensage.sdk.deserializers import RecordDeserializer
from opensage.sdk.serializers import RecordSerializer


def test_hyperparameters_are_serialised_as_the_sagemaker_sdk_does() -> None:
    assert serialize_hyperparameter(True) == "True"
    assert serialize_hyperparameter(["msd", "ssd"]) == '["msd", "ssd"]'
    assert serialize_hyperparameter(0.5) == "0.5"
    km = KMeans(k=3, max_iterations=50, center_factor=4, eval_metrics=["ssd"], tol=None)
    assert km.hyperparameters == {
        "k": "3",
        "local_lloyd_max_iter": "50",
        "extra_center_factor": "4",
        "eval_metrics": '["ssd"]',
    }
    assert km.image_uri.endswith(".amazonaws.com/kmeans:1")
    assert LinearLearner(predictor_type="regressor").image_uri.endswith("/linear-learner:1")


def test_mini_batch_size_follows_the_sdk_rules() -> None:
    train = RecordSet("s3://b/m", num_records=3000, feature_dim=4)
    small = RecordSet("s3://b/m", num_records=40, feature_dim=4)
    assert LinearLearner(instance_count=2)._mini_batch_size(train) == 1000
    assert LinearLearner(instance_count=2)._mini_batch_size(small) == 20
    assert PCA()._mini_batch_size(train) == 500
    assert KMeans()._mini_batch_size(small) == 5000
    assert KNN()._mini_batch_size(small) == 5000


def test_the_sparse_and_anomaly_estimators_follow_the_sdk() -> None:
    train = RecordSet("s3://b/m", num_records=3000, feature_dim=4)
    fm = FactorizationMachines(num_factors=8, predictor_type="regressor")
    assert fm.image_uri.endswith("/factorization-machines:1")
    channels = fm._prepare_for_training(train)
    assert fm.hyperparameters == {
        "num_factors": "8",
        "predictor_type": "regressor",
        "feature_dim": "4",
    }
    assert set(channels) == {"train"}

    rcf = RandomCutForest(num_trees=50, eval_metrics=["accuracy", "precision_recall_fscore"])
    assert rcf.image_uri.endswith("/randomcutforest:1")
    rcf._prepare_for_training(train)
    assert rcf.hyperparameters["mini_batch_size"] == "1000"
    assert rcf.hyperparameters["eval_metrics"] == '["accuracy", "precision_recall_fscore"]'
    with pytest.raises(ValueError, match="fixed mini_batch_size of 1000"):
        rcf._prepare_for_training(train, mini_batch_size=500)

    ipi = IPInsights(num_entity_vectors=100, vector_dim=8)
    assert ipi.image_uri.endswith("/ipinsights:1")
    with pytest.raises(NotImplementedError, match="does not support RecordIO"):
        ipi.record_set(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="mini_batch_size"):
        ipi.fit("s3://b/ipi/train.csv", mini_batch_size=0, wait=False)


def test_record_serializer_writes_dense_and_sparse_rows() -> None:
    x = np.array([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]], dtype=np.float32)
    dense = read_records(io.BytesIO(RecordSerializer().serialize(x)))
    assert [list(r.features["values"].float32_tensor.values) for r in dense] == x.tolist()
    one = read_records(io.BytesIO(RecordSerializer().serialize(x[0])))
    assert len(one) == 1
    sparse = read_records(io.BytesIO(RecordSerializer().serialize(sp.csr_matrix(x))))
    assert list(sparse[1].features["values"].float32_tensor.keys) == [1]
    assert list(sparse[1].features["values"].float32_tensor.shape) == [3]


def test_record_deserializer_gives_the_label_maps() -> None:
    body = encode_label_records([{"closest_cluster": 1.0, "distance_to_cluster": 0.5}])
    records = RecordDeserializer().deserialize(io.BytesIO(body), RecordSerializer.CONTENT_TYPE)
    assert records[0].label["closest_cluster"].float32_tensor.values[0] == 1.0
    assert records[0].label["distance_to_cluster"].float32_tensor.values[0] == 0.5


def test_lda_needs_mini_batch_size_and_one_instance() -> None:
    train = RecordSet("s3://b/m", num_records=300, feature_dim=25)
    estimator = LDA(num_topics=5, alpha0=0.5, max_restarts=None)
    assert estimator.image_uri.endswith(".amazonaws.com/lda:1")
    with pytest.raises(ValueError, match="mini_batch_size must be set"):
        estimator._prepare_for_training(train)
    with pytest.raises(ValueError, match="mini_batch_size must be set"):
        estimator.fit(train, wait=False)
    channels = estimator._prepare_for_training(train, mini_batch_size=300)
    assert set(channels) == {"train"}
    assert estimator.hyperparameters == {
        "num_topics": "5",
        "alpha0": "0.5",
        "feature_dim": "25",
        "mini_batch_size": "300",
    }
    with pytest.raises(ValueError, match="single instance"):
        LDA(num_topics=5, instance_count=2)


def test_ntm_needs_num_topics_and_sends_encoder_layers_as_json() -> None:
    train = RecordSet("s3://b/m", num_records=300, feature_dim=25)
    estimator = NTM(num_topics=5, encoder_layers=[30, 20], batch_norm=True)
    assert estimator.image_uri.endswith(".amazonaws.com/ntm:1")
    channels = estimator._prepare_for_training(train, mini_batch_size=64)
    assert set(channels) == {"train"}
    assert estimator.hyperparameters == {
        "num_topics": "5",
        "encoder_layers": "[30, 20]",
        "batch_norm": "True",
        "feature_dim": "25",
        "mini_batch_size": "64",
    }
    with pytest.raises(ValueError, match="mini_batch_size"):
        estimator._prepare_for_training(train, mini_batch_size=20000)
    with pytest.raises(ValueError, match="num_topics is required"):
        NTM()
    with pytest.raises(ValueError, match="num_topics"):
        NTM(num_topics=1)


def test_object2vec_needs_epochs_and_enc0_sizes_and_trains_on_json_lines() -> None:
    estimator = Object2Vec(
        epochs=3,
        enc0_max_seq_len=10,
        enc0_vocab_size=50,
        enc_dim=16,
        tied_token_embedding_weight=True,
    )
    assert estimator.image_uri.endswith(".amazonaws.com/object2vec:1")
    estimator._set_mini_batch_size(None)
    assert estimator.hyperparameters == {
        "epochs": "3",
        "enc0_max_seq_len": "10",
        "enc0_vocab_size": "50",
        "enc_dim": "16",
        "tied_token_embedding_weight": "True",
        "mini_batch_size": "32",
    }
    estimator._set_mini_batch_size(64)
    assert estimator.hyperparameters["mini_batch_size"] == "64"
    with pytest.raises(ValueError, match="mini_batch_size"):
        estimator.fit("s3://b/o2v/train/", mini_batch_size=0, wait=False)
    with pytest.raises(NotImplementedError, match="JSON Lines"):
        estimator.record_set(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="enc0_vocab_size is required"):
        Object2Vec(epochs=3, enc0_max_seq_len=10)
    with pytest.raises(ValueError, match="epochs must be in"):
        Object2Vec(epochs=0, enc0_max_seq_len=10, enc0_vocab_size=50)


def test_seq2seq_trains_with_the_generic_estimator_and_its_image_uri() -> None:
    """The SageMaker SDK has no seq2seq estimator: users give `Estimator` the image URI that
    `image_uris.retrieve("seq2seq", region)` returns, ACCOUNT's repository `seq2seq`."""
    from opensage.control.images import resolve
    from opensage.sdk.algorithms import ACCOUNT
    from opensage.sdk.estimator import Estimator

    image = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/seq2seq:1"
    estimator = Estimator(
        image_uri=image,
        instance_type="ml.p3.2xlarge",
        hyperparameters={"rnn_num_hidden": 16, "beam_size": 2},
    )
    hyperparameters = {key: str(value) for key, value in estimator.hyperparameters.items()}
    program = resolve(estimator.image_uri, hyperparameters)
    assert program.algorithm == "seq2seq"
    assert program.command[-3:] == ["-m", "opensage.algorithms.seq2seq", "train"]


def test_blazingtext_resolves_through_image_uris_as_in_the_sdk() -> None:
    from opensage.control.images import resolve
    from opensage.sdk import image_uris

    uri = image_uris.retrieve("blazingtext", "eu-west-1")
    assert uri == "382416733822.dkr.ecr.eu-west-1.amazonaws.com/blazingtext:1"
    assert image_uris.retrieve("blazingtext").endswith("us-east-1.amazonaws.com/blazingtext:1")
    assert resolve(uri, {"mode": "supervised"}).algorithm == "blazingtext"
    with pytest.raises(ValueError, match="Unsupported framework"):
        image_uris.retrieve("no-such-algorithm")


def test_image_classification_trains_with_the_generic_estimator_and_its_image_uri() -> None:
    """The SageMaker SDK trains image classification with `Estimator` and the URI of
    `image_uris.retrieve("image-classification", region)`: ACCOUNT's `image-classification`."""
    from opensage.control.images import resolve
    from opensage.sdk.algorithms import ACCOUNT
    from opensage.sdk.estimator import Estimator

    image = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/image-classification:1"
    estimator = Estimator(
        image_uri=image,
        instance_type="ml.p3.2xlarge",
        hyperparameters={"num_classes": 2, "num_training_samples": 100, "num_layers": 18,
                         "image_shape": "3,32,32", "use_pretrained_model": 0},
    )  # fmt: skip
    hyperparameters = {key: str(value) for key, value in estimator.hyperparameters.items()}
    program = resolve(estimator.image_uri, hyperparameters)
    assert program.algorithm == "image_classification"
    assert program.command[-3:] == ["-m", "opensage.algorithms.image_classification", "train"]


def test_deepar_trains_with_the_generic_estimator_and_image_uris() -> None:
    """The SageMaker SDK has no DeepAR estimator: users give `Estimator` the image URI of
    `image_uris.retrieve("forecasting-deepar", region)`."""
    from opensage.control.images import resolve
    from opensage.sdk import image_uris
    from opensage.sdk.estimator import Estimator

    uri = image_uris.retrieve("forecasting-deepar", "eu-west-1")
    assert uri.endswith(".dkr.ecr.eu-west-1.amazonaws.com/forecasting-deepar:1")
    estimator = Estimator(
        image_uri=uri,
        instance_type="ml.c5.xlarge",
        hyperparameters={"time_freq": "D", "context_length": 7, "prediction_length": 5,
                         "epochs": 2},
    )  # fmt: skip
    hyperparameters = {key: str(value) for key, value in estimator.hyperparameters.items()}
    program = resolve(estimator.image_uri, hyperparameters)
    assert program.algorithm == "deepar"
    assert program.command[-3:] == ["-m", "opensage.algorithms.deepar", "train"]
