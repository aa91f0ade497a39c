"""`import xgboost` for the model server, without the scikit-learn it does not need there.

xgboost's `compat` module imports scikit-learn (and with it much of scipy) for its estimator
classes alone: 1 s of the 1.4 s an XGBoost model server takes to start, paid by every worker
process of every endpoint instance and batch transform job. The serving handler uses `Booster`
and `DMatrix` only, so it imports xgboost while `sklearn` is marked absent (xgboost then defines
stand-in base classes for its estimators) and unmarks it afterwards: anything that imports
scikit-learn later gets the real one. Where either is loaded already, nothing changes.
"""

from __future__ import annotations

import contextlib
import sys


def import_xgboost_without_sklearn() -> None:
    if "xgboost" in sys.modules or "sklearn" in sys.modules:
        return
    sys.modules["sklearn"] = None  # type: ignore[assignment]  # "import sklearn" now fails
    try:
        # A future xgboost that needs scikit-learn: the caller's plain import loads both.
        with contextlib.suppress(ImportError):
            import xgboost  # noqa: F401
    finally:
        del sys.modules["sklearn"]
