"""The built-in XGBoost algorithm's serving handler: `load(model_dir)` for `opensage.serving`.

It answers like the SageMaker XGBoost container in algorithm mode (spec algorithms §3(d)):
requests in `text/csv` (features only), `text/libsvm` (labels optional) or
`application/x-recordio-protobuf` (labels ignored), answers in `text/csv`, `application/json`,
`application/jsonlines` or `application/x-recordio-protobuf`, and `SAGEMAKER_INFERENCE_OUTPUT`
selects extra keys. The booster is loaded once at start-up with `nthread=1`, as the container
does: parallelism comes from the server's worker processes (`SAGEMAKER_MODEL_SERVER_WORKERS`), and
OpenMP start-up would cost more than a one-row prediction. A one-row CSV request takes the cheap
path: a `str.split`, a float64 numpy row, `inplace_predict` (no pandas, no DMatrix).

Choices where the container is vague or inconsistent, all deliberate:

* CSV output is one newline-terminated row per input (1.5-1+ images), so `SAGEMAKER_BATCH`
  ("values joined by newlines plus a trailing newline") produces the same bytes; for
  `multi:softprob` a row holds the comma-separated class probabilities.
* Selected keys come out in the order `SAGEMAKER_INFERENCE_OUTPUT` lists them, in JSON as in
  CSV. Keys the objective cannot produce come back as NaN, rendered as Python's `json`
  renders it: the bare token `NaN` (what the container's `json.dumps` sends, and what Python
  clients such as the SageMaker SDK parse), `nan` in CSV. Objectives outside the container's
  table (e.g. `reg:absoluteerror`, `count:poisson`, `rank:*`) offer `predicted_score` instead of
  failing every request.
* A missing Content-Type is read as CSV, the container's old default; blank lines are skipped.
* RecordIO-protobuf answers hold one record per input, each selected key a Float32 tensor in the
  record's `label` map (as the container writes selected output); without selected keys the one
  key is `score`, as in the JSON answer. (The container's own recordio writer repeats earlier
  records inside later ones; we write each record once.)
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from opensage.algorithms.xgboost.lean_import import import_xgboost_without_sklearn
from opensage.formats.csv import read_numbers
from opensage.formats.errors import RecordError
from opensage.formats.tensors import encode_label_records, read_tensors
from opensage.serving.environment import ServingEnvironment
from opensage.serving.errors import InferenceError
from opensage.serving.handler import Result, accept_list, builtin_execution_parameters, media_type

import_xgboost_without_sklearn()  # first: the plain import below then finds xgboost loaded
import xgboost as xgb  # noqa: E402

MODEL_FILE: Final = "xgboost-model"
CSV: Final = "text/csv"
LIBSVM: Final = "text/libsvm"
JSON: Final = "application/json"
JSONLINES: Final = "application/jsonlines"
RECORDIO: Final = "application/x-recordio-protobuf"
INFERENCE_OUTPUT_ENV: Final = "SAGEMAKER_INFERENCE_OUTPUT"
DEFAULT_ACCEPT: Final = CSV

_CONTENT_TYPES: Final = {
    CSV: CSV,
    "csv": CSV,
    LIBSVM: LIBSVM,
    "text/x-libsvm": LIBSVM,
    "libsvm": LIBSVM,
    RECORDIO: RECORDIO,
    "recordio-protobuf": RECORDIO,
}
_ACCEPTS: Final = {
    CSV: CSV,
    "csv": CSV,
    JSON: JSON,
    "json": JSON,
    JSONLINES: JSONLINES,
    RECORDIO: RECORDIO,
}
_SUPPORTED_CONTENT_TYPES: Final = (
    "text/csv, text/libsvm, text/x-libsvm, application/x-recordio-protobuf"
)
_SUPPORTED_ACCEPTS: Final = (
    "text/csv, application/json, application/jsonlines, application/x-recordio-protobuf"
)
_LOG_PREFIX: Final = re.compile(r"^\[[0-9:]+\] [^\s:]+:\d+: ")

Floats = npt.NDArray[np.float64]
Features: TypeAlias = "Floats | sp.csr_matrix"
log = logging.getLogger("opensage.algorithms.xgboost")

PREDICTED_LABEL: Final = "predicted_label"
LABELS: Final = "labels"
PROBABILITY: Final = "probability"
PROBABILITIES: Final = "probabilities"
RAW_SCORE: Final = "raw_score"
RAW_SCORES: Final = "raw_scores"
PREDICTED_SCORE: Final = "predicted_score"
SELECTABLE_KEYS: Final = (
    PREDICTED_LABEL,
    LABELS,
    PROBABILITY,
    PROBABILITIES,
    RAW_SCORE,
    RAW_SCORES,
    PREDICTED_SCORE,
)
_LABEL_KEYS: Final = frozenset({PREDICTED_LABEL, LABELS, RAW_SCORE, RAW_SCORES})
VALID_KEYS: Final[Mapping[str, frozenset[str]]] = {
    "binary:logistic": frozenset(SELECTABLE_KEYS) - {PREDICTED_SCORE},
    "multi:softprob": frozenset(SELECTABLE_KEYS) - {PREDICTED_SCORE},
    "binary:logitraw": _LABEL_KEYS,
    "binary:hinge": _LABEL_KEYS,
    "multi:softmax": _LABEL_KEYS,
}
"""Keys each classification objective can fill; every other objective offers `predicted_score`."""


def load(model_dir: Path, environ: Mapping[str, str] | None = None) -> XGBoostHandler:
    """Load `<model_dir>/xgboost-model` (what training writes) and read the serving settings."""
    env = ServingEnvironment.from_env(environ)
    raw_keys = (_environ(environ).get(INFERENCE_OUTPUT_ENV) or "").replace(" ", "").lower()
    handler = XGBoostHandler(
        load_booster(model_dir),
        default_accept=env.default_accept or DEFAULT_ACCEPT,
        selected_keys=tuple(dict.fromkeys(key for key in raw_keys.split(",") if key)),
        workers=env.workers,
    )
    log.info(
        "Loaded XGBoost model (objective %s, %d features)", handler.objective, handler.n_features
    )
    return handler


def _environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def load_booster(model_dir: Path) -> xgb.Booster:
    """The booster of the model directory, read from bytes (the format is in the content)."""
    path = _model_file(model_dir)
    raw = path.read_bytes()
    if raw[:1] == b"\x80":
        raise ValueError(
            f"{path} is a pickled model (SageMaker XGBoost 1.2 and older); opensage does not "
            "unpickle models: load it and re-save it with Booster.save_model."
        )
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(raw))
    except xgb.core.XGBoostError as exc:
        raise ValueError(f"{path} is not an XGBoost model: {_clean(str(exc))}") from None
    booster.set_param("nthread", "1")
    return booster


def _model_file(model_dir: Path) -> Path:
    """`xgboost-model`, or the only file of the directory (models trained elsewhere)."""
    path = model_dir / MODEL_FILE
    if path.is_file():
        return path
    files = (
        sorted(p for p in model_dir.iterdir() if p.is_file() and not p.name.startswith("."))
        if model_dir.is_dir()
        else []
    )
    if len(files) == 1:
        return files[0]
    found = ", ".join(p.name for p in files) if files else "nothing"
    raise FileNotFoundError(
        f"No XGBoost model file '{MODEL_FILE}' in {model_dir} (found {found}); the built-in "
        "XGBoost handler serves the booster its training job writes there."
    )


class XGBoostHandler:
    """Parse, predict with `inplace_predict`, encode; thread-safe, nothing mutable per request."""

    def __init__(
        self,
        booster: xgb.Booster,
        default_accept: str = DEFAULT_ACCEPT,
        selected_keys: tuple[str, ...] = (),
        workers: int = 1,
    ) -> None:
        self.booster = booster
        self.n_features = int(booster.num_features())
        learner = json.loads(booster.save_config())["learner"]
        self.objective: str = learner["objective"]["name"]
        self.num_class = int(learner["learner_model_param"].get("num_class") or 0)
        best = booster.attr("best_iteration")
        # Early stopping keeps the rounds after the best one; predict with the best, as the
        # container does (it passes best_ntree_limit).
        self.iteration_range = (0, int(best) + 1) if best is not None else (0, 0)
        self.default_accepts = accept_list(default_accept) or [DEFAULT_ACCEPT]
        self.selected_keys = selected_keys
        self.workers = workers
        invalid = [key for key in selected_keys if key not in self.valid_keys]
        if invalid:
            log.warning(
                "%s key(s) %s do not apply to objective %s and will be NaN; valid keys: %s",
                INFERENCE_OUTPUT_ENV,
                ", ".join(invalid),
                self.objective,
                ", ".join(k for k in SELECTABLE_KEYS if k in self.valid_keys),
            )

    @property
    def valid_keys(self) -> frozenset[str]:
        return VALID_KEYS.get(self.objective, frozenset({PREDICTED_SCORE}))

    def invoke(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        custom_attributes: str | None,
    ) -> Result:
        if not body:
            return Result(b"", DEFAULT_ACCEPT, 204)
        kind = _content_kind(content_type)
        accept_kind = self._accept(accept)
        features = self._parse(body, kind)
        if features.shape[0] == 0:
            return Result(b"", accept_kind, 204)
        return Result(self._encode(self._predict(features), accept_kind), accept_kind)

    def execution_parameters(self) -> Mapping[str, object]:
        return builtin_execution_parameters(self.workers)

    def _accept(self, accept: str | None) -> str:
        """The first supported type of the Accept list; absent or `*/*` means the default."""
        requested = accept_list(accept)
        for kind in requested:
            if kind in _ACCEPTS:
                return _ACCEPTS[kind]
        considered = requested
        if not requested or "*/*" in requested:
            considered = self.default_accepts
            for kind in considered:
                if kind in _ACCEPTS:
                    return _ACCEPTS[kind]
        raise InferenceError(
            406,
            f"Accept type {', '.join(considered)} is not supported. Please use supported accept "
            f"types: {_SUPPORTED_ACCEPTS}.",
        )

    def _parse(self, body: bytes, kind: str) -> Features:
        if kind == RECORDIO:
            return self._parse_recordio(body)
        try:
            text = body.decode("utf-8-sig")  # a byte-order mark is not part of the first value
        except UnicodeDecodeError as exc:
            raise _format_error(kind, exc) from None
        if kind == CSV:
            matrix = parse_csv(text)
            if matrix.shape[0] and matrix.shape[1] != self.n_features:
                raise InferenceError(
                    415,
                    f"Feature size of csv inference data {matrix.shape[1]} is not consistent "
                    f"with feature size of trained model {self.n_features}.",
                )
            return matrix
        sparse = parse_libsvm(text)
        if sparse.shape[1] > self.n_features:
            raise InferenceError(
                415,
                f"Feature size of libsvm inference data {sparse.shape[1]} is larger than "
                f"feature size of trained model {self.n_features}.",
            )
        return sp.csr_matrix(
            (sparse.data, sparse.indices, sparse.indptr), shape=(sparse.shape[0], self.n_features)
        )

    def _parse_recordio(self, body: bytes) -> Features:
        """Records as `write_numpy_to_dense_tensor` / `write_spmatrix_to_sparse_tensor` write
        them; a label, if any, is ignored."""
        try:
            features, _ = read_tensors(body)
        except RecordError as exc:
            raise InferenceError(
                415,
                "Loading recordio-protobuf data failed, please ensure data is in "
                f"recordio-protobuf format: {exc}",
            ) from None
        if sp.issparse(features):
            if features.shape[1] > self.n_features:
                raise InferenceError(
                    415,
                    f"Feature size of recordio-protobuf inference data {features.shape[1]} is "
                    f"larger than feature size of trained model {self.n_features}.",
                )
            return sp.csr_matrix(
                (features.data, features.indices, features.indptr),
                shape=(features.shape[0], self.n_features),
            )
        if features.shape[0] and features.shape[1] != self.n_features:
            raise InferenceError(
                415,
                f"Feature size of recordio-protobuf inference data {features.shape[1]} is not "
                f"consistent with feature size of trained model {self.n_features}.",
            )
        dense: Floats = np.asarray(features, dtype=np.float64)
        return dense

    def _predict(self, features: Features) -> Floats:
        try:
            predictions = self.booster.inplace_predict(
                features, iteration_range=self.iteration_range, validate_features=False
            )
        except (xgb.core.XGBoostError, ValueError) as exc:
            message = f"Unable to evaluate payload provided: {_clean(str(exc))}"
            raise InferenceError(400, message) from None
        return np.asarray(predictions)

    def _encode(self, predictions: Floats, accept: str) -> bytes:
        if self.selected_keys:
            return self._encode_selected(predictions, accept)
        values: list[Any] = predictions.tolist()
        if accept == CSV:
            if predictions.ndim == 1:
                return ("\n".join(map(repr, values)) + "\n").encode()
            return "".join(",".join(map(repr, row)) + "\n" for row in values).encode()
        if accept == JSON:
            return json.dumps({"predictions": [{"score": value} for value in values]}).encode()
        if accept == RECORDIO:
            return encode_label_records([{"score": value} for value in values])
        return "".join(json.dumps({"score": value}) + "\n" for value in values).encode()

    def _encode_selected(self, predictions: Floats, accept: str) -> bytes:
        rows = [self.select(row) for row in predictions]
        if accept == JSON:
            return json.dumps({"predictions": rows}).encode()
        if accept == JSONLINES:
            return "".join(json.dumps(row) + "\n" for row in rows).encode()
        if accept == RECORDIO:
            return encode_label_records(rows)
        lines = (",".join(_csv_cell(row[key]) for key in self.selected_keys) for row in rows)
        return "".join(line + "\n" for line in lines).encode()

    def select(self, prediction: Any) -> dict[str, Any]:
        """The selected keys for one row's raw prediction (NaN where the objective has none)."""
        valid = self.valid_keys
        return {
            key: _SELECTORS[key](self, prediction) if key in valid else math.nan
            for key in self.selected_keys
        }


def _content_kind(content_type: str | None) -> str:
    kind = media_type(content_type) or CSV
    if kind in _CONTENT_TYPES:
        return _CONTENT_TYPES[kind]
    raise InferenceError(
        415,
        f"Content-type {content_type} not supported. Supported content-types are "
        f"{_SUPPORTED_CONTENT_TYPES}.",
    )


def parse_csv(text: str) -> Floats:
    """Rows of features, no header and no label; an empty field is a missing value (NaN).

    The delimiter is the first of `, TAB ; |` found in the first row, as training sniffs it.
    """
    text = text.strip()
    if not text:
        return np.empty((0, 0))
    try:
        if "\n" not in text:  # the one-row fast path
            fields = text.split(_delimiter(text))
            if "" in fields:
                fields = [field or "nan" for field in fields]
            return np.array(fields, dtype=np.float64).reshape(1, -1)
        delimiter = _delimiter(text[: text.find("\n")])
        # Bytes, not a StringIO: pandas reads those a third faster.
        rows_read = read_numbers(io.BytesIO(text.encode()), np.float64, delimiter)
        if rows_read is not None:
            return rows_read
        # An empty field (a missing value) or a ragged row: the exact reader says which.
        lines = [line for line in text.splitlines() if line.strip()]
        rows = [line.split(delimiter) for line in lines]
        width = len(rows[0])
        for number, row in enumerate(rows, start=1):
            if len(row) != width:
                raise ValueError(f"row {number} has {len(row)} columns but row 1 has {width}")
            if "" in row:
                row[:] = [field or "nan" for field in row]
        return np.array(rows, dtype=np.float64)
    except ValueError as exc:
        raise _format_error(CSV, exc) from None


def _delimiter(line: str) -> str:
    for delimiter in (",", "\t", ";", "|"):
        if delimiter in line:
            return delimiter
    return ","


def parse_libsvm(text: str) -> sp.csr_matrix:
    """`[label] index:value ...` rows into a CSR matrix as wide as the largest index + 1.

    Indices are used exactly as written (zero-based), because that is how training reads them
    (`data._read_libsvm`: scikit-learn's reader with `zero_based=True`), so a model is asked
    about the feature numbering it was trained on. The SageMaker container shifts a request
    whose smallest index is 1 or more down by one; doing that here, against a training side
    that does not shift, would silently hand every value to the neighbouring feature, and only
    for some requests. A first token without a colon is a label and is ignored (so
    `label:weight` reads as a feature, as in the container); `qid:` tokens are ignored; `#`
    starts a comment.
    """
    indptr = [0]
    indices: list[int] = []
    values: list[float] = []
    try:
        for line in text.splitlines():
            tokens = line.split("#", 1)[0].split()
            if not tokens:
                continue
            for position, token in enumerate(tokens):
                index, colon, value = token.partition(":")
                if not colon:
                    if position == 0:
                        continue  # the label
                    raise ValueError(f"'{token}' is not an index:value pair")
                if index == "qid":
                    continue
                column = int(index)
                if column < 0:
                    raise ValueError(f"negative feature index {column}")
                indices.append(column)
                values.append(float(value))
            indptr.append(len(indices))
    except ValueError as exc:
        raise _format_error(LIBSVM, exc) from None
    width = max(indices) + 1 if indices else 0
    return sp.csr_matrix(
        (np.array(values, dtype=np.float64), np.array(indices, dtype=np.int64), indptr),
        shape=(len(indptr) - 1, width),
    )


def _format_error(kind: str, exc: Exception) -> InferenceError:
    name = "csv" if kind == CSV else "libsvm"
    return InferenceError(
        415,
        f"Loading {name} data failed with Exception, please ensure data is in {name} format: "
        f"{type(exc).__name__}: {exc}",
    )


def _csv_cell(value: Any) -> str:
    """CSV rendering of a selected value: lists quoted whole, as the container writes them."""
    return f'"{value}"' if isinstance(value, list) else str(value)


def _clean(message: str) -> str:
    """The first line of an xgboost error, without its timestamp, source file or stack."""
    lines = message.strip().splitlines()
    return _LOG_PREFIX.sub("", lines[0]) if lines else message


# The selectable outputs, per key, for one row's raw prediction (semantics of the container's
# serve_utils: binary:logistic gives P(1); multi:softprob gives the class probabilities).
def _predicted_label(handler: XGBoostHandler, prediction: Any) -> Any:
    objective = handler.objective
    if objective == "multi:softprob":
        return int(np.argmax(prediction))
    if objective == "binary:logistic":
        return int(prediction > 0.5)
    if objective == "binary:logitraw":
        return int(prediction > 0)
    return float(prediction)  # binary:hinge and multi:softmax predict the label itself


def _labels(handler: XGBoostHandler, prediction: Any) -> Any:
    if handler.objective.startswith("binary:"):
        return [0, 1]
    return list(range(handler.num_class)) if handler.num_class else math.nan


def _probability(handler: XGBoostHandler, prediction: Any) -> Any:
    return float(np.max(prediction))


def _probabilities(handler: XGBoostHandler, prediction: Any) -> Any:
    if handler.objective == "multi:softprob":
        return [float(p) for p in prediction]
    return [1.0 - float(prediction), float(prediction)]


def _raw_scores(handler: XGBoostHandler, prediction: Any) -> Any:
    return _probabilities(handler, prediction)


def _predicted_score(handler: XGBoostHandler, prediction: Any) -> Any:
    return np.asarray(prediction).tolist()


_SELECTORS: Final[dict[str, Callable[[XGBoostHandler, Any], Any]]] = {
    PREDICTED_LABEL: _predicted_label,
    LABELS: _labels,
    PROBABILITY: _probability,
    PROBABILITIES: _probabilities,
    RAW_SCORE: _probability,
    RAW_SCORES: _raw_scores,
    PREDICTED_SCORE: _predicted_score,
}
