"""Which built-ins exist, and which one an image repository names.

Each built-in's `spec` module is plain data (no ML library), so the API layer imports this to
check a CreateTrainingJob's hyperparameters and to fill its metric definitions.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Final

from opensage.algorithms.base import Algorithm

BUILTINS: Final = (
    "xgboost",
    "linear_learner",
    "kmeans",
    "pca",
    "knn",
    "factorization_machines",
    "randomcutforest",
    "ipinsights",
    "lda",
    "ntm",
    "object2vec",
    "seq2seq",
    "blazingtext",
    "image_classification",
    "deepar",
    "object_detection",
    "semantic_segmentation",
)
"""Package names under `opensage.algorithms`, each with a `spec.SPEC`."""


@cache
def algorithms() -> dict[str, Algorithm]:
    """Every built-in that is installed, by name."""
    found: dict[str, Algorithm] = {}
    for name in BUILTINS:
        try:
            module = importlib.import_module(f"opensage.algorithms.{name}.spec")
        except ModuleNotFoundError as exc:
            if exc.name not in (f"opensage.algorithms.{name}", f"opensage.algorithms.{name}.spec"):
                raise
            continue
        found[name] = module.SPEC
    return found


def by_repository(repository: str) -> Algorithm | None:
    """The built-in an image repository names (`kmeans`, `sagemaker-xgboost`), if any."""
    for algorithm in algorithms().values():
        if repository in algorithm.repositories:
            return algorithm
    return None
