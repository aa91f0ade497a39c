"""The training program: `python -m opensage.algorithms.xgboost train`.

Steps, cheapest first so a misconfigured job fails fast: validate the hyperparameters, check
the channels, then (only now importing pandas, scikit-learn and xgboost) read the data, train
and write `<model_dir>/xgboost-model`. Every failure leaves `/opt/ml/output/failure`:
`ClientError: ...` for what the user can fix, `AlgorithmError: ...` for anything else, and the
process exits 1. Round logs go to stdout, everything else to stderr.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from opensage.algorithms.runner import guarded, started
from opensage.algorithms.xgboost import channels
from opensage.algorithms.xgboost.errors import UserError
from opensage.algorithms.xgboost.hyperparameters import HyperparameterError, Value, validate
from opensage.contract import MLPaths

if TYPE_CHECKING:
    import xgboost as xgb

MODEL_FILE: Final = "xgboost-model"
log = logging.getLogger("opensage.algorithms.xgboost")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: the one argument is `train`, as in `docker run <image> train`."""
    return run(MLPaths.from_env()) if started("xgboost", argv) else 2


def run(paths: MLPaths) -> int:
    """Train once under `paths`; return the exit code after writing any failure reason."""
    return guarded(paths, lambda: _train(paths))


def _train(paths: MLPaths) -> None:
    values = validate(paths.hyperparameters())
    _refuse_unsupported(paths, values)
    train_channel, validation_channel = channels.find_channels(paths)
    if "early_stopping_rounds" in values and validation_channel is None:
        raise HyperparameterError(
            "early_stopping_rounds", "needs a 'validation' channel to watch; add one or remove it"
        )
    # Imported here, not at the top: a config error should not wait for pandas and xgboost.
    from opensage.algorithms.xgboost import fit

    dtrain, dvalid = _dmatrices(train_channel, validation_channel, values.get("csv_weights") == 1)
    booster = fit.train(fit.plan(values), dtrain, dvalid)
    paths.model.mkdir(parents=True, exist_ok=True)
    # Same bytes as `save_model` picks for a name with no extension, without its format warning.
    (paths.model / MODEL_FILE).write_bytes(bytes(booster.save_raw(raw_format="ubj")))
    log.info("Stored the trained model at %s", paths.model / MODEL_FILE)


def _dmatrices(
    train: channels.Channel, validation: channels.Channel | None, csv_weights: bool
) -> tuple[xgb.DMatrix, xgb.DMatrix | None]:
    """Read both channels into DMatrices of the same width."""
    from opensage.algorithms.xgboost import data

    train_data = data.load(train, csv_weights)
    valid_data = data.load(validation, csv_weights) if validation else None
    width = data.common_width(train_data, valid_data)
    log.info("Train matrix has %d rows and %d features", train_data.labels.shape[0], width)
    dvalid = data.to_dmatrix(valid_data, width) if valid_data else None
    return data.to_dmatrix(train_data, width), dvalid


def _refuse_unsupported(paths: MLPaths, values: dict[str, Value]) -> None:
    """Fail clearly on what the container does but this program does not yet."""
    if "_kfold" in values:
        raise HyperparameterError("_kfold", "(k-fold cross-validation) is not supported yet")
    hosts = paths.resource_config().get("hosts", [])
    if isinstance(hosts, list) and len(hosts) > 1:
        raise UserError(
            f"Distributed XGBoost training over {len(hosts)} instances is not supported yet; "
            "set InstanceCount to 1."
        )
