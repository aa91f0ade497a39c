"""The opensage SDK: the SageMaker Python SDK's shapes (Session, Estimator, Model, Predictor,
Transformer, HyperparameterTuner, serializers, `attach`, `production_variant`), built on boto3.

It talks to a server only through boto3 clients, so the same code runs against real SageMaker.
"""

from opensage.sdk import deserializers, serializers
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
)
from opensage.sdk.amazon import (
    RecordSet,
    read_records,
    write_numpy_to_dense_tensor,
    write_spmatrix_to_sparse_tensor,
)
from opensage.sdk.endpoints import production_variant
from opensage.sdk.errors import UnexpectedStatusError
from opensage.sdk.estimator import Estimator, TrainingInput
from opensage.sdk.model import Model
from opensage.sdk.predictor import Predictor
from opensage.sdk.session import Session
from opensage.sdk.transformer import Transformer
from opensage.sdk.tuner import (
    CategoricalParameter,
    ContinuousParameter,
    HyperbandStrategyConfig,
    HyperparameterTuner,
    HyperparameterTuningJobAnalytics,
    IntegerParameter,
    StrategyConfig,
    TuningJobCompletionCriteriaConfig,
    WarmStartConfig,
    WarmStartTypes,
)

__all__ = [
    "KNN",
    "LDA",
    "NTM",
    "PCA",
    "CategoricalParameter",
    "ContinuousParameter",
    "Estimator",
    "FactorizationMachines",
    "HyperbandStrategyConfig",
    "HyperparameterTuner",
    "HyperparameterTuningJobAnalytics",
    "IPInsights",
    "IntegerParameter",
    "KMeans",
    "LinearLearner",
    "Model",
    "Object2Vec",
    "Predictor",
    "RandomCutForest",
    "RecordSet",
    "Session",
    "StrategyConfig",
    "TrainingInput",
    "Transformer",
    "TuningJobCompletionCriteriaConfig",
    "UnexpectedStatusError",
    "WarmStartConfig",
    "WarmStartTypes",
    "deserializers",
    "production_variant",
    "read_records",
    "serializers",
    "write_numpy_to_dense_tensor",
    "write_spmatrix_to_sparse_tensor",
]
