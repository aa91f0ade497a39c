"""Estimators of the 1P built-in algorithms, shaped like the SageMaker SDK v2's `KMeans`,
`LinearLearner`, `PCA`, `KNN`, `FactorizationMachines`, `RandomCutForest`, `IPInsights`,
`LDA`, `NTM` and `Object2Vec` (`sagemaker.amazon.*`).

They take the algorithm's hyperparameters as keyword arguments under the SDK's attribute names,
train on `RecordSet`s from `record_set`, set `feature_dim` and `mini_batch_size` the way the SDK
does, and deploy predictors that speak RecordIO-protobuf:

>>> km = KMeans(role=ROLE, instance_count=1, instance_type="ml.m5.large", k=10)  # doctest: +SKIP
>>> km.fit(km.record_set(train_x))                                               # doctest: +SKIP
>>> km.deploy(1, "ml.m5.large").predict(test_x[:5])                                # doctest: +SKIP
[label { key: "closest_cluster" ... }, ...]

Hyperparameters are serialised as the SDK's `Hyperparameter.serialize_all` does: a bool as
`"True"`/`"False"`, a list as JSON, anything else with `str`, and `None` left out.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from opensage.sdk.amazon import RecordSet
from opensage.sdk.deserializers import BaseDeserializer, JSONDeserializer, RecordDeserializer
from opensage.sdk.errors import DEFAULT_ROLE
from opensage.sdk.estimator import Estimator, TrainingInput
from opensage.sdk.predictor import Predictor
from opensage.sdk.serializers import (
    BaseSerializer,
    CSVSerializer,
    JSONSerializer,
    RecordSerializer,
)

ACCOUNT = "382416733822"
"""The account the SDK's `image_uris` names for the 1P algorithms in us-east-1; opensage
recognises the image by its repository alone."""


def serialize_hyperparameter(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, list | tuple):
        return json.dumps(list(value))
    return str(value)


class AmazonAlgorithmEstimatorBase(Estimator):
    """An estimator for one built-in: `repo_name` picks the image, `renamed` maps the SDK's
    attribute names to the wire names where they differ."""

    repo_name: ClassVar[str] = ""
    renamed: ClassVar[dict[str, str]] = {}
    default_mini_batch_size: ClassVar[int | None] = None

    def __init__(
        self,
        role: str = DEFAULT_ROLE,
        instance_count: int = 1,
        instance_type: str = "ml.m5.large",
        **kwargs: Any,
    ) -> None:
        estimator_args = {
            key: kwargs.pop(key) for key in list(kwargs) if key in ESTIMATOR_ARGUMENTS
        }
        region = "us-east-1"
        image = f"{ACCOUNT}.dkr.ecr.{region}.amazonaws.com/{self.repo_name}:1"
        super().__init__(
            image_uri=image,
            role=role,
            instance_count=instance_count,
            instance_type=instance_type,
            **estimator_args,
        )
        self.hyperparameters = {
            self.renamed.get(key, key): serialize_hyperparameter(value)
            for key, value in kwargs.items()
            if value is not None
        }

    def fit(  # type: ignore[override]
        self,
        records: RecordSet | list[RecordSet],
        mini_batch_size: int | None = None,
        wait: bool = True,
        logs: bool = True,
        job_name: str | None = None,
    ) -> None:
        """Train on record sets (`record_set(...)`), one channel each."""
        channels = self._prepare_for_training(records, mini_batch_size)
        super().fit(dict(channels), wait=wait, logs=logs, job_name=job_name)

    def _prepare_for_training(
        self, records: RecordSet | list[RecordSet], mini_batch_size: int | None = None
    ) -> dict[str, TrainingInput]:
        """`feature_dim` and `mini_batch_size` from the training set, and a channel per record
        set (the HyperparameterTuner calls it too, as the SDK's does)."""
        sets = records if isinstance(records, list) else [records]
        train = next((r for r in sets if r.channel == "train"), sets[0])
        self.hyperparameters["feature_dim"] = str(train.feature_dim)
        size = mini_batch_size or self._mini_batch_size(train)
        if size is not None:
            self.hyperparameters["mini_batch_size"] = str(size)
        return {r.channel: r.records_s3_input() for r in sets}

    def _mini_batch_size(self, train: RecordSet) -> int | None:
        return self.default_mini_batch_size

    def deploy(  # type: ignore[override]
        self,
        initial_instance_count: int = 1,
        instance_type: str = "ml.m5.large",
        serializer: BaseSerializer | None = None,
        deserializer: BaseDeserializer | None = None,
        endpoint_name: str | None = None,
        wait: bool = True,
        **kwargs: Any,
    ) -> Predictor:
        """An endpoint answering RecordIO-protobuf, as the SDK's algorithm predictors do."""
        return super().deploy(
            initial_instance_count,
            instance_type,
            serializer or RecordSerializer(),
            deserializer or RecordDeserializer(),
            endpoint_name,
            wait,
            **kwargs,
        )


ESTIMATOR_ARGUMENTS = frozenset(
    {
        "output_path",
        "sagemaker_session",
        "max_run",
        "volume_size",
        "input_mode",
        "environment",
        "base_job_name",
        "enable_network_isolation",
        "checkpoint_s3_uri",
        "tags",
    }
)


def _per_instance(train: RecordSet, instances: int, cap: int) -> int:
    return min(cap, max(1, train.num_records // max(1, instances)))


class LinearLearner(AmazonAlgorithmEstimatorBase):
    """`predictor_type` is required: `binary_classifier`, `multiclass_classifier` or
    `regressor`."""

    repo_name = "linear-learner"

    def _mini_batch_size(self, train: RecordSet) -> int | None:
        return _per_instance(train, self.instance_count, 1000)


class KMeans(AmazonAlgorithmEstimatorBase):
    """`k` is required. The SDK's `max_iterations`, `tol`, `num_trials`, `local_init_method` and
    `center_factor` are the wire's `local_lloyd_*` and `extra_center_factor`."""

    repo_name = "kmeans"
    renamed = {
        "max_iterations": "local_lloyd_max_iter",
        "tol": "local_lloyd_tol",
        "num_trials": "local_lloyd_num_trials",
        "local_init_method": "local_lloyd_init_method",
        "center_factor": "extra_center_factor",
    }
    default_mini_batch_size = 5000


class PCA(AmazonAlgorithmEstimatorBase):
    """`num_components` is required."""

    repo_name = "pca"

    def _mini_batch_size(self, train: RecordSet) -> int | None:
        return _per_instance(train, self.instance_count, 500)


class KNN(AmazonAlgorithmEstimatorBase):
    """`k`, `sample_size` and `predictor_type` (`classifier` or `regressor`) are required."""

    repo_name = "knn"
    default_mini_batch_size = 5000


class FactorizationMachines(AmazonAlgorithmEstimatorBase):
    """`num_factors` and `predictor_type` (`binary_classifier` or `regressor`) are required;
    trains on RecordIO-protobuf record sets only, as the algorithm does."""

    repo_name = "factorization-machines"


class RandomCutForest(AmazonAlgorithmEstimatorBase):
    """Anomaly scores; `num_samples_per_tree`, `num_trees` and `eval_metrics` are optional.
    Like the SDK's, it always trains with `mini_batch_size` 1000 and refuses another."""

    repo_name = "randomcutforest"
    MINI_BATCH_SIZE: ClassVar[int] = 1000
    default_mini_batch_size = MINI_BATCH_SIZE

    def _prepare_for_training(
        self, records: RecordSet | list[RecordSet], mini_batch_size: int | None = None
    ) -> dict[str, TrainingInput]:
        if mini_batch_size not in (None, self.MINI_BATCH_SIZE):
            raise ValueError(
                f"Random Cut Forest uses a fixed mini_batch_size of {self.MINI_BATCH_SIZE}"
            )
        return super()._prepare_for_training(records, self.MINI_BATCH_SIZE)


class IPInsights(AmazonAlgorithmEstimatorBase):
    """`num_entity_vectors` and `vector_dim` are required. IP Insights trains on CSV
    (`entity_id,ipv4` rows) from S3, not on record sets, and its predictor sends CSV and reads
    JSON, as the SDK's `IPInsightsPredictor` does."""

    repo_name = "ipinsights"
    MINI_BATCH_SIZE: ClassVar[int] = 10000

    def record_set(self, *args: Any, **kwargs: Any) -> RecordSet:
        raise NotImplementedError("IP Insights does not support RecordIO; train on CSV in S3")

    def fit(  # type: ignore[override]
        self,
        inputs: str | TrainingInput | dict[str, str | TrainingInput],
        mini_batch_size: int | None = None,
        wait: bool = True,
        logs: bool = True,
        job_name: str | None = None,
    ) -> None:
        """Train on CSV channels: an S3 URI, a `TrainingInput`, or a dict of them by channel."""
        size = self.MINI_BATCH_SIZE if mini_batch_size is None else mini_batch_size
        if not 1 <= size <= 500000:
            raise ValueError("mini_batch_size must be in [1, 500000]")
        self.hyperparameters["mini_batch_size"] = str(size)
        Estimator.fit(self, inputs, wait=wait, logs=logs, job_name=job_name)

    def deploy(  # type: ignore[override]
        self,
        initial_instance_count: int = 1,
        instance_type: str = "ml.m5.large",
        serializer: BaseSerializer | None = None,
        deserializer: BaseDeserializer | None = None,
        endpoint_name: str | None = None,
        wait: bool = True,
        **kwargs: Any,
    ) -> Predictor:
        return super().deploy(
            initial_instance_count,
            instance_type,
            serializer or CSVSerializer(),
            deserializer or JSONDeserializer(),
            endpoint_name,
            wait,
            **kwargs,
        )


class LDA(AmazonAlgorithmEstimatorBase):
    """`num_topics` is required; `alpha0`, `max_restarts`, `max_iterations` and `tol` are
    optional. As the SDK's `LDA`: training runs on one instance (any other `instance_count` is
    refused), and `fit` needs `mini_batch_size` (the number of documents): `_prepare_for_training`
    raises `ValueError` without it."""

    repo_name = "lda"

    def __init__(
        self,
        role: str = DEFAULT_ROLE,
        instance_count: int = 1,
        instance_type: str = "ml.m5.large",
        **kwargs: Any,
    ) -> None:
        if instance_count != 1:
            raise ValueError("LDA trains on a single instance: instance_count must be 1")
        super().__init__(role, 1, instance_type, **kwargs)

    def _prepare_for_training(
        self, records: RecordSet | list[RecordSet], mini_batch_size: int | None = None
    ) -> dict[str, TrainingInput]:
        if mini_batch_size is None:
            raise ValueError("mini_batch_size must be set")
        return super()._prepare_for_training(records, mini_batch_size)


class NTM(AmazonAlgorithmEstimatorBase):
    """The Neural Topic Model. As the SDK's `NTM`: `num_topics` is required (2..1000, the fourth
    positional argument); `encoder_layers` given as a list is sent as JSON (`[30, 20]`), which
    the algorithm reads; `fit` refuses a `mini_batch_size` outside [1, 10000]."""

    repo_name = "ntm"

    def __init__(
        self,
        role: str = DEFAULT_ROLE,
        instance_count: int = 1,
        instance_type: str = "ml.m5.large",
        num_topics: int | None = None,
        **kwargs: Any,
    ) -> None:
        if num_topics is None:
            raise ValueError("num_topics is required")
        if not 2 <= num_topics <= 1000:
            raise ValueError("num_topics must be in [2, 1000]")
        super().__init__(role, instance_count, instance_type, num_topics=num_topics, **kwargs)

    def _prepare_for_training(
        self, records: RecordSet | list[RecordSet], mini_batch_size: int | None = None
    ) -> dict[str, TrainingInput]:
        if mini_batch_size is not None and not 1 <= mini_batch_size <= 10000:
            raise ValueError("mini_batch_size must be in [1, 10000]")
        return super()._prepare_for_training(records, mini_batch_size)


class Object2Vec(AmazonAlgorithmEstimatorBase):
    """Object2Vec, as the SDK's `Object2Vec`: `epochs`, `enc0_max_seq_len` and
    `enc0_vocab_size` are required (the fourth to sixth positional arguments; 1..100, 1..5000,
    2..3,000,000); the other hyperparameters are keywords. It trains on JSON Lines channels
    (`{"label": 0, "in0": [ids], "in1": [ids]}`) from S3, not on record sets, with
    `mini_batch_size` 32 unless given; its predictor sends and reads JSON."""

    repo_name = "object2vec"
    MINI_BATCH_SIZE: ClassVar[int] = 32
    REQUIRED: ClassVar[tuple[tuple[str, int, int], ...]] = (
        ("epochs", 1, 100),
        ("enc0_max_seq_len", 1, 5000),
        ("enc0_vocab_size", 2, 3_000_000),
    )

    def __init__(
        self,
        role: str = DEFAULT_ROLE,
        instance_count: int = 1,
        instance_type: str = "ml.m5.large",
        epochs: int | None = None,
        enc0_max_seq_len: int | None = None,
        enc0_vocab_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        given = {
            "epochs": epochs,
            "enc0_max_seq_len": enc0_max_seq_len,
            "enc0_vocab_size": enc0_vocab_size,
        }
        for name, low, high in self.REQUIRED:
            value = given[name]
            if value is None:
                raise ValueError(f"{name} is required")
            if not low <= value <= high:
                raise ValueError(f"{name} must be in [{low}, {high}]")
        super().__init__(role, instance_count, instance_type, **given, **kwargs)

    def record_set(self, *args: Any, **kwargs: Any) -> RecordSet:
        raise NotImplementedError("Object2Vec trains on JSON Lines in S3, not on RecordIO")

    def fit(  # type: ignore[override]
        self,
        inputs: str | TrainingInput | dict[str, str | TrainingInput],
        mini_batch_size: int | None = None,
        wait: bool = True,
        logs: bool = True,
        job_name: str | None = None,
    ) -> None:
        """Train on JSON Lines channels: an S3 URI, a `TrainingInput`, or a dict by channel."""
        self._set_mini_batch_size(mini_batch_size)
        Estimator.fit(self, inputs, wait=wait, logs=logs, job_name=job_name)

    def _set_mini_batch_size(self, mini_batch_size: int | None) -> None:
        """`fit`'s size, else the constructor's, else the SDK's 32."""
        if mini_batch_size is not None:
            if not 1 <= mini_batch_size <= 10000:
                raise ValueError("mini_batch_size must be in [1, 10000]")
            self.hyperparameters["mini_batch_size"] = str(mini_batch_size)
        self.hyperparameters.setdefault("mini_batch_size", str(self.MINI_BATCH_SIZE))

    def deploy(  # type: ignore[override]
        self,
        initial_instance_count: int = 1,
        instance_type: str = "ml.m5.large",
        serializer: BaseSerializer | None = None,
        deserializer: BaseDeserializer | None = None,
        endpoint_name: str | None = None,
        wait: bool = True,
        **kwargs: Any,
    ) -> Predictor:
        return super().deploy(
            initial_instance_count,
            instance_type,
            serializer or JSONSerializer(),
            deserializer or JSONDeserializer(),
            endpoint_name,
            wait,
            **kwargs,
        )
