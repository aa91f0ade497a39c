"""The conformance suite every built-in passes (`check_algorithm`), from its declared contract.

A built-in registers `Case`s in `tests/algorithms/cases_<name>.py` (`CASES`): a small, fast
configuration and a synthetic data set. For each case the suite checks, with the real training
program (`python -m opensage.algorithms.<name> train` on a temporary `/opt/ml` tree) and the real
serving handler (`opensage.algorithms.<name>.serve.load`):

1. the table: every default parses; the case's hyperparameters validate; invalid values
   generated from the table (wrong type, out of range, not an option, missing required,
   unknown name) are refused with a message naming the hyperparameter;
2. training from CSV and from RecordIO-protobuf writes a model, and both models predict alike;
3. every declared request content type and Accept type answers with one object per row holding
   the documented keys (and the verbose keys with `;verbose=true`), the same numbers in every
   format;
4. save -> load gives identical predictions; a second run with the same settings gives the same
   model (training is reproducible);
5. each metric the case names appears in the log in SageMaker's line format, matched by the
   algorithm's own metric regex; together the cases of an algorithm cover all its metrics.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from opensage.algorithms.base import Algorithm, HyperparameterError, Kind, parse_value
from opensage.algorithms.registry import algorithms
from opensage.contract import MLPaths
from opensage.formats.csv import encode_csv
from opensage.formats.libsvm import encode_libsvm
from opensage.formats.tensors import encode_dense, encode_sparse, read_record_messages
from opensage.serving.errors import InferenceError

Array = np.ndarray[Any, Any]
CSV = "text/csv"
RECORDIO = "application/x-recordio-protobuf"
JSON = "application/json"
JSONLINES = "application/jsonlines"
LIBSVM = "text/libsvm"
TextRow = tuple[str, ...]


@dataclass(frozen=True)
class Case:
    """One configuration of a built-in to put through the suite.

    `data()` returns deterministic float32 features and labels (None for unsupervised data);
    the suite writes them to every channel in `channels` (the same rows: the suite checks the
    contract, not quality). `metrics` are the declared metric names this run must log.
    `response_keys` are the keys of each prediction object, `verbose_keys` the extra ones with
    `;verbose=true`. `csv_content_type` is the training content type for CSV
    (`text/csv;label_size=0` for unsupervised algorithms).
    """

    name: str
    algorithm: str
    hyperparameters: dict[str, str]
    data: Callable[[], tuple[Array, Array | None]]
    response_keys: tuple[str, ...]
    channels: tuple[str, ...] = ("train",)
    metrics: tuple[str, ...] = ()
    envelope: str = "predictions"
    verbose_keys: tuple[str, ...] = ()
    csv_content_type: str = "text/csv"
    sparse: bool = False
    """Train (the RecordIO run) and predict on sparse records as well."""
    tolerance: float = 1e-4
    """How close CSV-trained and RecordIO-trained predictions must be."""
    environ: dict[str, str] = field(default_factory=dict)
    training_content_types: tuple[str, ...] = (CSV, RECORDIO)
    """The training content types the algorithm takes; training on any other of CSV and
    RecordIO must FAIL with a FailureReason naming the content type (Factorization Machines
    takes RecordIO only). Without CSV, the suite trains on dense RecordIO where it would train
    on CSV, and compares it with the (sparse, if `sparse`) RecordIO run."""
    text_rows: Callable[[], tuple[list[TextRow], list[TextRow]]] | None = None
    """For an algorithm whose columns are text (IP Insights: `entity_id, ipv4`): the training
    rows and the request rows. The suite then trains on those rows as CSV (instead of `data()`)
    and sends the request rows as CSV, JSON and JSON Lines (`features` lists, and the
    `data.features.values` form where it would send sparse instances)."""

    @property
    def spec(self) -> Algorithm:
        return algorithms()[self.algorithm]

    @property
    def primary_content_type(self) -> str:
        """What the suite trains on first: CSV, or dense RecordIO when CSV is refused."""
        return self.csv_content_type if CSV in self.training_content_types else RECORDIO


@dataclass
class Run:
    """A finished training process."""

    paths: MLPaths
    returncode: int
    stdout: str
    stderr: str

    @property
    def failure(self) -> str:
        return self.paths.failure_file.read_text() if self.paths.failure_file.exists() else ""


def train(case: Case, base: Path, content_type: str, sparse: bool = False) -> Run:
    """Write a job tree under `base` and run the algorithm's training program on it."""
    paths = MLPaths(base)
    for folder in paths.directories():
        folder.mkdir(parents=True, exist_ok=True)
    paths.hyperparameters_file.write_text(json.dumps(case.hyperparameters))
    paths.resource_config_file.write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]})
    )
    if case.text_rows is not None:  # text columns: the rows as CSV, whatever the content type
        body = text_csv(case.text_rows()[0])
    else:
        x, y = case.data()
        body = _training_body(x, y, content_type, sparse)
    config = {}
    for channel in case.channels:
        folder = paths.channel(channel)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "part-0").write_bytes(body)
        config[channel] = {"ContentType": content_type, "TrainingInputMode": "File"}
    paths.input_data_config_file.write_text(json.dumps(config))
    proc = subprocess.run(
        [sys.executable, "-m", f"opensage.algorithms.{case.algorithm}", "train"],
        env={**os.environ, "SAGEMAKER_BASE_DIR": str(base), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return Run(paths, proc.returncode, proc.stdout, proc.stderr)


def _training_body(x: Array, y: Array | None, content_type: str, sparse: bool) -> bytes:
    if content_type.startswith(CSV):
        return encode_csv(x, y)
    if sparse:
        return encode_sparse(sp.csr_matrix(x), y)
    return encode_dense(x, y)


def load_handler(case: Case, model_dir: Path) -> Any:
    module = importlib.import_module(f"opensage.algorithms.{case.algorithm}.serve")
    return module.load(model_dir, {**case.environ})


def text_csv(rows: list[TextRow]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


def text_request_body(rows: list[TextRow], content_type: str, sparse: bool = False) -> bytes:
    """Text rows as a request; `sparse` picks the `data.features.values` form of an instance."""
    if content_type == CSV:
        return text_csv(rows)
    instances = [
        {"data": {"features": {"values": list(row)}}} if sparse else {"features": list(row)}
        for row in rows
    ]
    if content_type == JSON:
        return json.dumps({"instances": instances}).encode()
    if content_type == JSONLINES:
        return b"".join(json.dumps(instance).encode() + b"\n" for instance in instances)
    raise AssertionError(f"no text request encoding for {content_type}")


def request_body(x: Array, content_type: str, sparse: bool = False) -> bytes:
    """`x` as a request in `content_type` (features only); a list of text rows as text."""
    if isinstance(x, list):
        return text_request_body(x, content_type, sparse)
    if content_type == CSV:
        return encode_csv(x)
    if content_type == JSON:
        if sparse:
            return json.dumps({"instances": [_sparse_instance(row) for row in x]}).encode()
        return json.dumps({"instances": [{"features": row.tolist()} for row in x]}).encode()
    if content_type == JSONLINES:
        return b"".join(json.dumps({"features": row.tolist()}).encode() + b"\n" for row in x)
    if content_type == RECORDIO:
        return encode_sparse(sp.csr_matrix(x)) if sparse else encode_dense(x)
    if content_type == LIBSVM:
        return encode_libsvm(x, np.zeros(len(x)))
    raise AssertionError(f"no request encoding for {content_type}")


def _sparse_instance(row: Array) -> dict[str, Any]:
    keys = np.flatnonzero(row)
    values = row[keys].tolist()
    return {"data": {"features": {"keys": keys.tolist(), "shape": [len(row)], "values": values}}}


def decode_response(body: bytes, accept: str, case: Case) -> list[dict[str, Any]]:
    """The per-row objects of a response, whatever its type (CSV keeps the key order)."""
    if accept == JSON:
        document = json.loads(body)
        assert list(document) == [case.envelope], document
        rows: list[dict[str, Any]] = document[case.envelope]
        return rows
    if accept == JSONLINES:
        return [json.loads(line) for line in body.decode().splitlines()]
    if accept == RECORDIO:
        out = []
        for record in read_record_messages(body):
            assert not record.features, "responses carry their values under label"
            row = {}
            for key in record.label:
                values = list(record.label[key].float32_tensor.values)
                row[key] = values
            out.append(row)
        return out
    if accept == CSV:
        return [{"csv": [float(v) for v in line.split(",")]} for line in body.decode().splitlines()]
    raise AssertionError(f"no decoding for {accept}")


def flat(row: dict[str, Any], keys: tuple[str, ...]) -> list[float]:
    """A row's numbers in key order, lists flattened: comparable across formats."""
    out: list[float] = []
    for key in keys:
        value = row[key]
        out.extend(float(v) for v in (value if isinstance(value, list) else [value]))
    return out


# --- the checks -------------------------------------------------------------------------------


def check_table(case: Case | DocumentCase) -> None:
    table = case.spec.hyperparameters
    for hp in table:
        if hp.default is not None:
            parse_value(hp, hp.default)  # every documented default is a valid value
    table.resolved(case.hyperparameters)
    values = table.validate(case.hyperparameters)
    assert set(values) <= {hp.name for hp in table} | {"_tuning_objective_metric"}
    for hp in table:
        for bad in invalid_values(hp):
            with pytest.raises(
                HyperparameterError, match=f"^Hyperparameter '{re.escape(hp.name)}'"
            ):
                table.validate({**case.hyperparameters, hp.name: bad})
        if hp.required:
            raw = {k: v for k, v in case.hyperparameters.items() if k != hp.name}
            with pytest.raises(HyperparameterError, match=f"'{re.escape(hp.name)}'"):
                table.validate(raw)
    with pytest.raises(HyperparameterError, match="no_such_hyperparameter"):
        table.validate({**case.hyperparameters, "no_such_hyperparameter": "1"})


def invalid_values(hp: Any) -> list[str]:
    """Strings the table must refuse for `hp`."""
    bad: list[str] = []
    if hp.kind in (Kind.INT, Kind.FLOAT):
        bad.append("not-a-number")
        if hp.kind is Kind.INT:
            bad.append("1.5")
        interval = hp.interval
        if interval is not None and interval.low is not None:
            bad.append(
                repr(interval.low - 1) if hp.kind is Kind.FLOAT else str(int(interval.low) - 1)
            )
        if interval is not None and interval.high is not None:
            high = interval.high + 1
            bad.append(repr(float(high)) if hp.kind is Kind.FLOAT else str(int(high)))
    elif hp.kind is Kind.BOOL:
        bad.append("maybe")
    elif hp.kind is Kind.CHOICE:
        bad.append("no-such-option")
    elif hp.kind in (Kind.LIST, Kind.METRICS) and hp.options:
        bad.append('["no-such-option"]')
    return [value for value in bad if not (hp.auto and value == "auto")]


def check_refused_training(case: Case, tmp_path: Path) -> None:
    """Training on a content type the algorithm does not take fails with a clear reason."""
    for kind in (CSV, RECORDIO):
        if kind in case.training_content_types:
            continue
        content_type = case.csv_content_type if kind == CSV else kind
        run = train(case, tmp_path / f"refused-{kind.replace('/', '-')}", content_type)
        assert run.returncode != 0, f"training on {content_type} should fail"
        assert run.failure.startswith("ClientError: "), run.failure + run.stderr[-2000:]
        assert kind in run.failure, run.failure
        assert not run.paths.success_file.exists()


def check_training_and_serving(case: Case, tmp_path: Path) -> None:
    check_refused_training(case, tmp_path)
    csv_run = train(case, tmp_path / "csv", case.primary_content_type)
    assert csv_run.returncode == 0, csv_run.failure + csv_run.stderr[-3000:]
    assert not csv_run.failure
    assert any(csv_run.paths.model.iterdir()), "training wrote no model"
    assert csv_run.paths.success_file.exists()
    check_metrics(case, csv_run.stdout)

    rows: Any
    if case.text_rows is not None:
        rows = case.text_rows()[1]
    else:
        x, _ = case.data()
        rows = x[: min(len(x), 6)]
    from_csv = predictions(case, csv_run.paths.model, rows)
    if RECORDIO in case.training_content_types:  # IP Insights trains on CSV only
        pbr_run = train(case, tmp_path / "recordio", RECORDIO, sparse=case.sparse)
        assert pbr_run.returncode == 0, pbr_run.failure + pbr_run.stderr[-3000:]
        from_pbr = predictions(case, pbr_run.paths.model, rows)
        np.testing.assert_allclose(from_pbr, from_csv, rtol=case.tolerance, atol=case.tolerance)

    check_formats(case, csv_run.paths.model, rows)

    copy = tmp_path / "copied-model"
    shutil.copytree(csv_run.paths.model, copy)
    np.testing.assert_array_equal(predictions(case, copy, rows), from_csv)

    again = train(case, tmp_path / "again", case.primary_content_type)
    assert again.returncode == 0, again.failure
    np.testing.assert_array_equal(predictions(case, again.paths.model, rows), from_csv)


def predictions(case: Case, model_dir: Path, rows: Array) -> Array:
    handler = load_handler(case, model_dir)
    kind = case.spec.request_types[0]
    result = handler.invoke(request_body(rows, kind), kind, JSON, None)
    assert result.status == 200, result.body
    decoded = decode_response(result.body, JSON, case)
    return np.asarray([flat(row, case.response_keys) for row in decoded], dtype=np.float64)


def check_formats(case: Case, model_dir: Path, rows: Array) -> None:
    handler = load_handler(case, model_dir)
    spec = case.spec
    reference: list[list[float]] | None = None
    for content_type in spec.request_types:
        for sparse in (False, True) if content_type in (JSON, RECORDIO) else (False,):
            body = request_body(rows, content_type, sparse)
            for accept in spec.accept_types:
                result = handler.invoke(body, content_type, accept, None)
                where = f"{content_type} (sparse={sparse}) -> {accept}"
                assert result.status == 200, (where, result.body[:300])
                assert result.content_type == accept, where
                decoded = decode_response(result.body, accept, case)
                assert len(decoded) == len(rows), where
                if accept == CSV:
                    numbers = [row["csv"] for row in decoded]
                else:
                    for row in decoded:
                        assert set(row) == set(case.response_keys), (where, row)
                    numbers = [flat(row, case.response_keys) for row in decoded]
                if reference is None:
                    reference = numbers
                np.testing.assert_allclose(numbers, reference, rtol=1e-5, atol=1e-5, err_msg=where)
            if case.verbose_keys:
                for accept in (a for a in (JSON, RECORDIO) if a in spec.accept_types):
                    result = handler.invoke(body, content_type, f"{accept};verbose=true", None)
                    assert result.status == 200, result.body[:300]
                    for row in decode_response(result.body, accept, case):
                        assert set(row) == {*case.response_keys, *case.verbose_keys}, row
    kind = spec.request_types[0]
    body = request_body(rows, kind)
    assert status_of(lambda: handler.invoke(body, "image/png", JSON, None)) == 415
    assert status_of(lambda: handler.invoke(body, kind, "text/html", None)) == 406
    if CSV not in spec.request_types:
        csv_body = request_body(rows, CSV)
        assert status_of(lambda: handler.invoke(csv_body, CSV, JSON, None)) == 415


def status_of(call: Callable[[], Any]) -> int:
    """The status of a handler call: its Result's, or the InferenceError's it raised."""
    try:
        result = call()
    except InferenceError as exc:
        return exc.status_code
    return int(result.status)


def check_metrics(case: Case | DocumentCase, log: str) -> None:
    declared = {metric.name: metric for metric in case.spec.metrics}
    for name in case.metrics:
        assert name in declared, f"{name} is not a declared metric of {case.algorithm}"
        pattern = re.compile(declared[name].regex)
        # The platform, like CloudWatch, renders a tab as `#011` before the regexes see a line.
        lines = [line.replace("\t", "#011") for line in log.splitlines()]
        assert any(pattern.search(line) for line in lines), (
            f"no log line for {name} (regex {declared[name].regex})"
        )


def check_metric_coverage(cases: list[Case | DocumentCase]) -> None:
    """All declared metrics of an algorithm are logged by at least one of its cases."""
    spec = cases[0].spec
    logged = {name for case in cases for name in case.metrics}
    missing = {metric.name for metric in spec.metrics} - logged
    assert not missing, f"{spec.name}: no case logs {sorted(missing)}"


def check_algorithm(case: Case, tmp_path: Path) -> None:
    check_table(case)
    check_training_and_serving(case, tmp_path)


# --- algorithms whose data are files and whose requests are documents ---------------------------


@dataclass(frozen=True)
class Request:
    """One inference request of a `DocumentCase` and what a correct answer holds: `count`
    result objects (as `DocumentCase.decode` finds them), each with exactly `keys`."""

    content_type: str
    accept: str
    body: bytes
    count: int
    keys: tuple[str, ...]


@dataclass(frozen=True)
class DocumentCase:
    """A built-in whose training data are files rather than a feature matrix (text lines,
    JSON Lines of token ids, RecordIO records of token tensors plus vocabularies) and whose
    requests are documents (`{"instances": [...]}` of sentences or token lists).

    `files()` gives each channel's content type and files (name -> bytes); `requests()` the
    requests to send, every one of which must succeed. `decode(body, accept)` turns a response
    into its list of result objects (default: the JSON `predictions` envelope, JSON Lines one
    object per line). The suite checks the table; that training writes a model and logs
    `metrics`; every request's answer (status, content type, count, keys); that a copied model
    and a second training run give byte-identical answers (reproducibility); that an unknown
    content type is 415 and an unknown Accept 406; and that training on each of
    `refused_content_types` fails with a FailureReason naming it.
    """

    name: str
    algorithm: str
    hyperparameters: dict[str, str]
    files: Callable[[], dict[str, tuple[str, dict[str, bytes]]]]
    requests: Callable[[], list[Request]]
    metrics: tuple[str, ...] = ()
    decode: Callable[[bytes, str], list[Any]] | None = None
    refused_content_types: tuple[str, ...] = ()
    environ: dict[str, str] = field(default_factory=dict)
    unsupported_request_type: str = "image/png"
    """A Content-Type the handler must answer 415 (image algorithms take image/png)."""

    @property
    def spec(self) -> Algorithm:
        return algorithms()[self.algorithm]


def decode_documents(body: bytes, accept: str) -> list[Any]:
    """The result objects of a `{"predictions": [...]}` or JSON Lines answer."""
    if accept.startswith(JSONLINES):
        return [json.loads(line) for line in body.decode().splitlines() if line.strip()]
    document = json.loads(body)
    assert isinstance(document, dict), document
    assert list(document) == ["predictions"], document
    rows: list[Any] = document["predictions"]
    return rows


def train_files(case: DocumentCase, base: Path, content_type: str | None = None) -> Run:
    """A job tree under `base` holding the case's files (every channel in `content_type` when
    given), trained on by the algorithm's real training program."""
    paths = MLPaths(base)
    for folder in paths.directories():
        folder.mkdir(parents=True, exist_ok=True)
    paths.hyperparameters_file.write_text(json.dumps(case.hyperparameters))
    paths.resource_config_file.write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]})
    )
    config = {}
    for channel, (channel_type, files) in case.files().items():
        folder = paths.channel(channel)
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)
        config[channel] = {
            "ContentType": content_type or channel_type,
            "TrainingInputMode": "File",
        }
    paths.input_data_config_file.write_text(json.dumps(config))
    proc = subprocess.run(
        [sys.executable, "-m", f"opensage.algorithms.{case.algorithm}", "train"],
        env={**os.environ, "SAGEMAKER_BASE_DIR": str(base), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return Run(paths, proc.returncode, proc.stdout, proc.stderr)


def answers(case: DocumentCase, model_dir: Path) -> list[bytes]:
    """Every request's answer body, each checked against what the request says it holds."""
    handler = importlib.import_module(f"opensage.algorithms.{case.algorithm}.serve").load(
        model_dir, {**case.environ}
    )
    decode = case.decode or decode_documents
    bodies = []
    for request in case.requests():
        where = f"{request.content_type} -> {request.accept}"
        result = handler.invoke(request.body, request.content_type, request.accept, None)
        assert result.status == 200, (where, result.body[:300])
        assert result.content_type == request.accept.split(";")[0], where
        decoded = decode(result.body, request.accept)
        assert len(decoded) == request.count, (where, decoded)
        for row in decoded:
            assert isinstance(row, dict), (where, row)
            assert set(row) == set(request.keys), (where, row)
        bodies.append(result.body)
    first = case.requests()[0]
    unsupported = case.unsupported_request_type
    assert status_of(lambda: handler.invoke(first.body, unsupported, first.accept, None)) == 415
    assert (
        status_of(lambda: handler.invoke(first.body, first.content_type, "text/html", None)) == 406
    )
    return bodies


def check_document_algorithm(case: DocumentCase, tmp_path: Path) -> None:
    check_table(case)
    for content_type in case.refused_content_types:
        run = train_files(
            case, tmp_path / f"refused-{content_type.replace('/', '-')}", content_type
        )
        assert run.returncode != 0, f"training on {content_type} should fail"
        assert run.failure.startswith("ClientError: "), run.failure + run.stderr[-2000:]
        assert content_type in run.failure, run.failure
    run = train_files(case, tmp_path / "first")
    assert run.returncode == 0, run.failure + run.stderr[-3000:]
    assert not run.failure
    assert any(run.paths.model.iterdir()), "training wrote no model"
    assert run.paths.success_file.exists()
    check_metrics(case, run.stdout)
    reference = answers(case, run.paths.model)
    copy = tmp_path / "copied-model"
    shutil.copytree(run.paths.model, copy)
    assert answers(case, copy) == reference, "a copied model answers differently"
    again = train_files(case, tmp_path / "again")
    assert again.returncode == 0, again.failure
    assert answers(case, again.paths.model) == reference, "training is not reproducible"
