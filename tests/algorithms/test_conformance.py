"""Every built-in through the conformance suite (`tests/algorithms/conformance.py`).

Each algorithm registers its cases in `tests/algorithms/cases_<name>.py`; an algorithm whose
package is installed but has no cases fails here, so none escapes the suite.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from opensage.algorithms.registry import algorithms
from tests.algorithms.conformance import (
    Case,
    DocumentCase,
    check_algorithm,
    check_document_algorithm,
    check_metric_coverage,
)


def _cases_of(name: str) -> list[Case | DocumentCase]:
    module = importlib.import_module(f"tests.algorithms.cases_{name}")
    cases: list[Case | DocumentCase] = module.CASES
    return cases


ALGORITHMS = sorted(algorithms())
CASES = [case for name in ALGORITHMS for case in _cases_of(name)]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_conformance(case: Case | DocumentCase, tmp_path: Path) -> None:
    if isinstance(case, DocumentCase):
        check_document_algorithm(case, tmp_path)
    else:
        check_algorithm(case, tmp_path)


# XGBoost declares every eval_metric on both channels (66 names); test_xgboost checks each regex
# against rendered round lines instead.
@pytest.mark.parametrize("name", [name for name in ALGORITHMS if name != "xgboost"])
def test_cases_cover_every_declared_metric(name: str) -> None:
    check_metric_coverage(_cases_of(name))
