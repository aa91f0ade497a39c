"""The built-in XGBoost serving handler, called directly (no HTTP): formats, statuses, outputs."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse
import xgboost as xgb
from sklearn.datasets import load_svmlight_file

from opensage.algorithms.xgboost import serve
from opensage.formats.tensors import encode_dense, encode_sparse, read_record_messages
from opensage.serving.errors import InferenceError
from tests.serving.conftest import N_FEATURES, Trained, csv_rows, train


def handler_for(trained: Trained, tmp_path: Path, **env: str) -> serve.XGBoostHandler:
    trained.write(tmp_path / "model")
    return serve.load(tmp_path / "model", env)


def status_of(call: Any) -> tuple[int, str]:
    with pytest.raises(InferenceError) as caught:
        call()
    return caught.value.status_code, caught.value.message


def test_csv_in_csv_out_one_row_per_input(binary: Trained, tmp_path: Path) -> None:
    handler = handler_for(binary, tmp_path)
    rows = binary.x[:3]
    result = handler.invoke(csv_rows(rows), "text/csv", "text/csv", None)
    assert result.status == 200
    assert result.content_type == "text/csv"
    assert result.body.endswith(b"\n")
    values = [float(line) for line in result.body.decode().splitlines()]
    np.testing.assert_allclose(values, binary.expected(rows), rtol=1e-6)


def test_one_row_with_charset_parameter_and_default_accept(binary: Trained, tmp_path: Path) -> None:
    handler = handler_for(binary, tmp_path)
    body = ",".join(repr(float(v)) for v in binary.x[0]).encode()
    for accept in (None, "*/*"):
        result = handler.invoke(body, "text/csv; charset=utf-8", accept, None)
        assert result.content_type == "text/csv"
        assert float(result.body) == pytest.approx(float(binary.expected(binary.x[:1])[0]))


def test_default_accept_comes_from_the_environment(binary: Trained, tmp_path: Path) -> None:
    handler = handler_for(binary, tmp_path, SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT="application/json")
    result = handler.invoke(csv_rows(binary.x[:1]), "text/csv", None, None)
    assert result.content_type == "application/json"
    assert list(json.loads(result.body)) == ["predictions"]


def test_json_and_jsonlines(binary: Trained, tmp_path: Path) -> None:
    handler = handler_for(binary, tmp_path)
    rows = binary.x[:2]
    expected = binary.expected(rows)
    as_json = json.loads(handler.invoke(csv_rows(rows), "text/csv", "application/json", None).body)
    scores = [p["score"] for p in as_json["predictions"]]
    np.testing.assert_allclose(scores, expected, rtol=1e-6)
    lines = handler.invoke(csv_rows(rows), "text/csv", "application/jsonlines", None).body
    assert lines.endswith(b"\n")
    objects = [json.loads(line) for line in lines.decode().splitlines()]
    np.testing.assert_allclose([o["score"] for o in objects], expected, rtol=1e-6)


def test_accept_list_picks_the_first_supported(binary: Trained, tmp_path: Path) -> None:
    handler = handler_for(binary, tmp_path)
    result = handler.invoke(csv_rows(binary.x[:1]), "text/csv", "text/html, application/json", None)
    assert result.content_type == "application/json"


def test_softprob_scores_are_lists(softprob: Trained, tmp_path: Path) -> None:
    handler = handler_for(softprob, tmp_path)
    rows = softprob.x[:2]
    expected = softprob.expected(rows)
    as_json = json.loads(handler.invoke(csv_rows(rows), "text/csv", "application/json", None).body)
    scores = [p["score"] for p in as_json["predictions"]]
    assert all(isinstance(s, list) and len(s) == 3 for s in scores)
    np.testing.assert_allclose(scores, expected, rtol=1e-6)
    as_csv = handler.invoke(csv_rows(rows), "text/csv", "text/csv", None).body.decode()
    parsed = [[float(v) for v in line.split(",")] for line in as_csv.splitlines()]
    np.testing.assert_allclose(parsed, expected, rtol=1e-6)


def test_batch_csv_is_one_value_per_line_with_a_trailing_newline(
    regression: Trained, tmp_path: Path
) -> None:
    handler = handler_for(regression, tmp_path, SAGEMAKER_BATCH="true")
    rows = regression.x[:4]
    body = handler.invoke(csv_rows(rows), "text/csv", "text/csv", None).body.decode()
    expected = regression.expected(rows)
    assert body == "\n".join(repr(float(v)) for v in expected.astype(np.float32).tolist()) + "\n"
    assert handler.execution_parameters() == {
        "MaxConcurrentTransforms": 1,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }


def test_execution_parameters_follow_the_worker_count(binary: Trained, tmp_path: Path) -> None:
    handler = handler_for(binary, tmp_path, SAGEMAKER_MODEL_SERVER_WORKERS="3")
    assert handler.execution_parameters()["MaxConcurrentTransforms"] == 3


def test_empty_body_is_204(binary: Trained, tmp_path: Path) -> None:
    handler = handler_for(binary, tmp_path)
    assert handler.invoke(b"", "text/csv", "text/csv", None).status == 204
    assert handler.invoke(b"\n\n", "text/csv", "text/csv", None).status == 204
    assert handler.invoke(b"", "image/png", "text/html", None).status == 204


def test_missing_values_in_csv_are_nan(binary: Trained, tmp_path: Path) -> None:
    handler = handler_for(binary, tmp_path)
    row = np.array([[binary.x[0, 0], np.nan, binary.x[0, 2], np.nan]])
    body = f"{float(binary.x[0, 0])!r},,{float(binary.x[0, 2])!r},".encode()
    result = handler.invoke(body, "text/csv", "text/csv", None)
    assert float(result.body) == pytest.approx(float(binary.expected(row)[0]))


def test_unsupported_accept_is_406(binary: Trained, tmp_path: Path) -> None:
    handler = handler_for(binary, tmp_path)
    body = csv_rows(binary.x[:1])
    status, message = status_of(lambda: handler.invoke(body, "text/csv", "text/html", None))
    assert status == 406
    assert "text/html" in message
    assert "application/jsonlines" in message


def test_unsupported_content_type_is_415(binary: Trained, tmp_path: Path) -> None:
    handler = handler_for(binary, tmp_path)
    status, message = status_of(lambda: handler.invoke(b"x", "image/png", None, None))
    assert status == 415
    assert "image/png" in message
    assert "text/libsvm" in message
    assert "application/x-recordio-protobuf" in message


def test_recordio_protobuf_in_dense_and_sparse(binary: Trained, tmp_path: Path) -> None:
    handler = handler_for(binary, tmp_path)
    rows = binary.x[:5].astype(np.float32)
    expected = binary.expected(rows)
    dense = encode_dense(rows, np.zeros(5, np.float32))  # a label is ignored
    sparse = encode_sparse(scipy.sparse.csr_matrix(rows))
    for body in (dense, sparse):
        result = handler.invoke(body, "application/x-recordio-protobuf", "text/csv", None)
        values = [float(line) for line in result.body.decode().splitlines()]
        np.testing.assert_allclose(values, expected, rtol=1e-6)


def test_recordio_protobuf_out_puts_scores_in_the_label_map(
    binary: Trained, tmp_path: Path
) -> None:
    handler = handler_for(binary, tmp_path)
    rows = binary.x[:3]
    result = handler.invoke(csv_rows(rows), "text/csv", "application/x-recordio-protobuf", None)
    assert result.content_type == "application/x-recordio-protobuf"
    records = read_record_messages(result.body)
    scores = [list(r.label["score"].float32_tensor.values) for r in records]
    np.testing.assert_allclose(np.ravel(scores), binary.expected(rows), rtol=1e-6)
    assert all(not r.features for r in records)


def test_recordio_protobuf_out_of_selected_keys(binary: Trained, tmp_path: Path) -> None:
    handler = handler_for(
        binary, tmp_path, SAGEMAKER_INFERENCE_OUTPUT="predicted_label,probabilities"
    )
    rows = binary.x[:2]
    body = handler.invoke(csv_rows(rows), "text/csv", "application/x-recordio-protobuf", None).body
    records = read_record_messages(body)
    expected = binary.expected(rows)
    for record, p in zip(records, expected, strict=True):
        assert sorted(record.label) == ["predicted_label", "probabilities"]
        assert record.label["predicted_label"].float32_tensor.values[0] == float(p > 0.5)
        np.testing.assert_allclose(
            record.label["probabilities"].float32_tensor.values, [1 - p, p], rtol=1e-6
        )


def test_malformed_recordio_protobuf_is_415_naming_the_record(
    binary: Trained, tmp_path: Path
) -> None:
    handler = handler_for(binary, tmp_path)
    body = encode_dense(binary.x[:3].astype(np.float32))
    broken = body[: len(body) // 3 * 2 + 4] + b"\x00\x01\x02\x03" + body[len(body) // 3 * 2 + 8 :]
    for bad in (body[:-3], b"\x00" * 8 + body[8:], broken):
        status, message = status_of(
            lambda bad=bad: handler.invoke(bad, "application/x-recordio-protobuf", None, None)
        )
        assert status == 415
        assert "recordio-protobuf" in message
        assert "record" in message
    wide = encode_dense(np.ones((1, N_FEATURES + 2), np.float32))
    status, message = status_of(
        lambda: handler.invoke(wide, "application/x-recordio-protobuf", None, None)
    )
    assert status == 415
    assert f"{N_FEATURES + 2} is not consistent" in message


def test_feature_size_mismatch_is_415(binary: Trained, tmp_path: Path) -> None:
    handler = handler_for(binary, tmp_path)
    status, message = status_of(lambda: handler.invoke(b"1,2,3", "text/csv", None, None))
    assert status == 415
    assert message == (
        "Feature size of csv inference data 3 is not consistent with feature size of trained "
        f"model {N_FEATURES}."
    )
    status, message = status_of(lambda: handler.invoke(b"9:1.0", "text/libsvm", None, None))
    assert status == 415
    assert "Feature size of libsvm inference data 10 is larger" in message


@pytest.mark.parametrize(
    "body",
    [b"a,b,c,d", b"1,2,3,4\n1,2", b"\xff\xfe", b"1;2;x;4"],
    ids=["header", "ragged", "not-utf8", "text"],
)
def test_unparseable_csv_is_415(binary: Trained, tmp_path: Path, body: bytes) -> None:
    handler = handler_for(binary, tmp_path)
    status, message = status_of(lambda: handler.invoke(body, "text/csv", None, None))
    assert status == 415
    assert "please ensure data is in csv format" in message


def test_unparseable_libsvm_is_415(binary: Trained, tmp_path: Path) -> None:
    handler = handler_for(binary, tmp_path)
    for body in (b"1 a:2", b"1 0:x", b"1 2:3 4", b"1 -1:2"):
        status, message = status_of(
            lambda body=body: handler.invoke(body, "text/libsvm", None, None)
        )
        assert status == 415
        assert "please ensure data is in libsvm format" in message, body


def test_libsvm_serves_the_feature_numbering_training_read(tmp_path: Path) -> None:
    """Train on libsvm lines the way the training program reads them, then send the same lines."""
    lines = "1 0:1.5 2:-0.5\n0 1:2.0 3:0.25\n1 0:0.5 3:1.0\n0 2:3.0\n" * 5
    features, labels = load_svmlight_file(io.BytesIO(lines.encode()), zero_based=True)
    booster = xgb.train(
        {"objective": "binary:logistic", "nthread": 1, "max_depth": 2},
        xgb.DMatrix(features, label=labels),
        3,
    )
    handler = handler_for(Trained(booster, features.toarray()), tmp_path)
    for content_type in ("text/libsvm", "text/x-libsvm"):
        body = handler.invoke(lines.encode(), content_type, "text/csv", None).body
        served = [float(v) for v in body.decode().split()]
        np.testing.assert_allclose(served, booster.predict(xgb.DMatrix(features)), rtol=1e-6)
    unlabelled = "0:1.5 2:-0.5\n"
    assert handler.invoke(unlabelled.encode(), "text/libsvm", None, None).body == (
        handler.invoke(b"1 0:1.5 2:-0.5", "text/libsvm", None, None).body
    )


def test_early_stopped_models_predict_with_the_best_iteration(tmp_path: Path) -> None:
    trained = train("reg:squarederror", np.linspace(0.0, 5.0, 40))
    trained.booster.set_attr(best_iteration="0")
    handler = handler_for(trained, tmp_path)
    body = handler.invoke(csv_rows(trained.x[:1]), "text/csv", None, None).body
    first_tree_only = trained.booster.inplace_predict(trained.x[:1], iteration_range=(0, 1))
    assert float(body) == pytest.approx(float(first_tree_only[0]))


def test_selectable_output_for_binary_logistic(binary: Trained, tmp_path: Path) -> None:
    keys = "predicted_label, probability,probabilities,labels,raw_score,raw_scores,predicted_score"
    handler = handler_for(binary, tmp_path, SAGEMAKER_INFERENCE_OUTPUT=keys)
    p = float(binary.expected(binary.x[:1])[0])
    body = handler.invoke(csv_rows(binary.x[:1]), "text/csv", "application/json", None).body
    assert b"NaN" in body  # predicted_score does not apply to a classifier
    (row,) = json.loads(body)["predictions"]
    assert list(row) == [
        "predicted_label",
        "probability",
        "probabilities",
        "labels",
        "raw_score",
        "raw_scores",
        "predicted_score",
    ]
    assert row["predicted_label"] == int(p > 0.5)
    assert row["probability"] == pytest.approx(p)
    assert row["probabilities"] == pytest.approx([1 - p, p])
    assert row["labels"] == [0, 1]
    assert row["raw_score"] == pytest.approx(p)
    assert math.isnan(row["predicted_score"])
    csv_line = handler.invoke(csv_rows(binary.x[:1]), "text/csv", "text/csv", None).body.decode()
    assert csv_line.endswith("\n")
    assert csv_line.startswith(f"{int(p > 0.5)},")
    assert f'"{row["labels"]}"' in csv_line
    assert csv_line.rstrip("\n").endswith(",nan")
    jsonl = handler.invoke(csv_rows(binary.x[:2]), "text/csv", "application/jsonlines", None).body
    assert len(jsonl.decode().splitlines()) == 2


def test_selectable_output_for_softprob_softmax_and_regression(
    softprob: Trained, softmax: Trained, regression: Trained, tmp_path: Path
) -> None:
    keys = "predicted_label,probabilities,labels,predicted_score"
    handler = handler_for(softprob, tmp_path / "a", SAGEMAKER_INFERENCE_OUTPUT=keys)
    probabilities = softprob.expected(softprob.x[:1])[0]
    body = handler.invoke(csv_rows(softprob.x[:1]), "text/csv", "application/json", None).body
    (row,) = json.loads(body)["predictions"]
    assert row["predicted_label"] == int(np.argmax(probabilities))
    assert row["probabilities"] == pytest.approx(probabilities.tolist())
    assert row["labels"] == [0, 1, 2]

    handler = handler_for(softmax, tmp_path / "b", SAGEMAKER_INFERENCE_OUTPUT=keys)
    body = handler.invoke(csv_rows(softmax.x[:1]), "text/csv", "application/json", None).body
    (row,) = json.loads(body)["predictions"]
    assert row["predicted_label"] == float(softmax.expected(softmax.x[:1])[0])
    assert row["labels"] == [0, 1, 2]
    assert math.isnan(row["probabilities"])

    handler = handler_for(regression, tmp_path / "c", SAGEMAKER_INFERENCE_OUTPUT=keys)
    body = handler.invoke(csv_rows(regression.x[:1]), "text/csv", "application/json", None).body
    (row,) = json.loads(body)["predictions"]
    assert row["predicted_score"] == pytest.approx(float(regression.expected(regression.x[:1])[0]))
    assert math.isnan(row["predicted_label"])


def test_model_file_problems_fail_the_load(binary: Trained, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="xgboost-model"):
        serve.load(tmp_path / "absent", {})
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "xgboost-model").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="is not an XGBoost model"):
        serve.load(tmp_path / "corrupt", {})
    (tmp_path / "pickled").mkdir()
    (tmp_path / "pickled" / "xgboost-model").write_bytes(b"\x80\x04\x95")
    with pytest.raises(ValueError, match="pickled model"):
        serve.load(tmp_path / "pickled", {})


def test_a_single_differently_named_model_file_is_served(binary: Trained, tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.json").write_bytes(bytes(binary.booster.save_raw("json")))
    handler = serve.load(tmp_path / "model", {})
    assert handler.n_features == N_FEATURES


def test_the_handler_imports_xgboost_without_scikit_learn() -> None:
    """The model server's start-up skips scikit-learn (1 s); scikit-learn still imports after."""
    probe = (
        "import sys\n"
        "from opensage.algorithms.xgboost import serve\n"
        "assert 'sklearn' not in sys.modules, 'scikit-learn was imported'\n"
        "assert serve.xgb.Booster is not None\n"
        "import sklearn.base\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
