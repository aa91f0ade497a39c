"""The IP Insights built-in: hashing, IPv4 parsing, the encoder and its gradient, the quality
target, data reading, the handler, the hyperparameter rules and the training program's
refusals.

Quality target (the issue, Done-when 2): the validation discriminator AUC at least 0.9 on
generated logins with per-user habits (200 users, each with three home /24 subnets).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from opensage.algorithms.base import HyperparameterError
from opensage.algorithms.env import TrainingEnv
from opensage.algorithms.ipinsights.data import RowError, csv_pairs, csv_rows, pairs, read_channel
from opensage.algorithms.ipinsights.fit import Logins, Settings, draw, fit
from opensage.algorithms.ipinsights.hashing import (
    AddressError,
    entity_rows,
    format_ipv4,
    parse_ipv4,
    parse_many,
    prefix_rows,
)
from opensage.algorithms.ipinsights.model import (
    IPInsightsModel,
    Pairs,
    auc,
    loss_and_gradients,
    sum_rows,
)
from opensage.algorithms.ipinsights.serve import IPInsightsHandler, load
from opensage.algorithms.ipinsights.spec import SPEC
from opensage.algorithms.ipinsights.train import settings as settings_of
from opensage.contract import MLPaths
from opensage.serving.errors import InferenceError
from tests.algorithms.cases_ipinsights import csv_body, login_rows

CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
RECORDIO = "application/x-recordio-protobuf"
BASE = {"num_entity_vectors": "400", "vector_dim": "16"}


def logins(rows: list[tuple[str, str]], table: int) -> Logins:
    entities, ips = pairs(enumerate([list(row) for row in rows], start=1))
    return Logins(entity_rows(entities, table), ips)


# --- hashing and addresses ---------------------------------------------------------------------


def test_entity_hashing_is_stable_across_processes_and_versions() -> None:
    """blake2b, never the salted `hash`: a served model must find the rows it trained."""
    assert entity_rows(["user_1", "alice", "ünï"], 1000).tolist() == [40, 469, 72]
    digest = hashlib.blake2b(b"user_1", digest_size=8).digest()
    assert entity_rows(["user_1"], 97)[0] == int.from_bytes(digest, "little") % 97
    code = (
        "from opensage.algorithms.ipinsights.hashing import entity_rows as r; print(r(['x'], 1000))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1


def test_prefix_rows_share_the_leading_prefixes_of_a_subnet() -> None:
    rows = prefix_rows([parse_ipv4("192.168.1.2"), 0, 2**32 - 1], 1024)
    assert rows.tolist() == [
        [192, 49576, 66083, 67729],
        [0, 256, 66223, 67366],
        [255, 65791, 66812, 67562],
    ]
    same_subnet = prefix_rows([parse_ipv4("10.1.2.3"), parse_ipv4("10.1.2.200")], 1024)
    assert (same_subnet[0, :3] == same_subnet[1, :3]).all()
    assert same_subnet[0, 3] != same_subnet[1, 3]
    assert same_subnet.min() >= 0
    assert same_subnet.max() < 256 + 65536 + 2 * 1024


@given(st.tuples(*[st.integers(0, 255)] * 4), st.sampled_from(["", " ", "\t"]))
def test_every_dotted_quad_parses(octets: tuple[int, ...], space: str) -> None:
    text = space + ".".join(map(str, octets)) + space
    value = parse_ipv4(text)
    assert value == int(ipaddress.IPv4Address(".".join(map(str, octets))))
    assert format_ipv4(value) == ".".join(map(str, octets))


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=20), st.text(alphabet="0123456789.x -", max_size=20)))
def test_text_parses_exactly_when_ipaddress_accepts_it(text: str) -> None:
    try:
        expected: int | None = int(ipaddress.IPv4Address(text.strip()))
    except ValueError:
        expected = None
    if expected is None:
        with pytest.raises(AddressError, match="is not an IPv4 address"):
            parse_ipv4(text)
    else:
        assert parse_ipv4(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "1.2.3",
        "1.2.3.4.5",
        "256.1.1.1",
        "01.2.3.4",
        "a.b.c.d",
        "1.2.3.-4",
        "",
        "1..2.3",
        "::1",
        "1.2.3.4/24",
    ],
)
def test_malformed_addresses_are_refused(text: str) -> None:
    with pytest.raises(AddressError, match="is not an IPv4 address"):
        parse_ipv4(text)


def test_parse_many_reports_the_first_bad_address() -> None:
    ips, bad = parse_many(["1.2.3.4", "1.2.3.4", "5.6.7.8"])
    assert bad is None
    assert ips.tolist() == [0x01020304, 0x01020304, 0x05060708]
    assert parse_many(["1.2.3.4", "nope", "1.2.3"])[1] == 1


ADDRESSES = ["1.2.3.4", " 10.0.0.1 ", "1.2.3", "01.2.3.4", "", "255.255.255.255\t", "1.2.3.4 x"]


@settings(max_examples=200)
@given(st.lists(st.sampled_from(ADDRESSES), max_size=6))
def test_parse_many_agrees_with_parsing_each(texts: list[str]) -> None:
    expected: list[int] = []
    first_bad = None
    for i, text in enumerate(texts):
        try:
            expected.append(parse_ipv4(text))
        except AddressError:
            first_bad = i
            break
    ips, bad = parse_many(texts)
    assert bad == first_bad
    assert ips.tolist()[: len(expected)] == expected


# --- the model -----------------------------------------------------------------------------------


@pytest.mark.parametrize("layers", [0, 1, 3])
def test_encoder_shapes(layers: int) -> None:
    model = IPInsightsModel.initial(50, 8, layers, seed=0)
    rows = prefix_rows(np.arange(7, dtype=np.uint32) * 1000003, model.buckets)
    h, cache = model.forward(rows)
    assert h.shape == (7, 8)
    assert h.dtype == np.float32
    assert len(cache) == layers
    assert model.encode(np.arange(7, dtype=np.uint32) * 1000003).shape == (7, 8)
    assert model.scores(np.arange(7), np.arange(7, dtype=np.uint32)).shape == (7,)


def test_sum_rows_matches_add_at() -> None:
    rng = np.random.default_rng(0)
    indices = rng.integers(0, 9, 40)
    grads = rng.normal(size=(10, 3)).astype(np.float32)
    rows, sums = sum_rows(indices, grads, repeat=4)
    dense = np.zeros((9, 3))
    np.add.at(dense, indices, grads[np.arange(40) // 4])
    np.testing.assert_allclose(sums, dense[rows], rtol=1e-6)
    assert set(rows.tolist()) == set(indices.tolist())


def _float64(model: IPInsightsModel) -> IPInsightsModel:
    """The same model in float64 (the code keeps the arrays' type), so differences are exact."""
    wide: Any = [w.astype(np.float64) for w in model.weights]
    biases: Any = [b.astype(np.float64) + 0.1 for b in model.biases]
    entity: Any = model.entity.astype(np.float64)
    prefix: Any = model.prefix.astype(np.float64)
    return IPInsightsModel(entity, prefix, wide, biases, model.buckets)


def test_gradient_matches_finite_differences() -> None:
    model = _float64(IPInsightsModel.initial(6, 5, 2, seed=3))
    model.entity *= 8  # scores far enough from 0 for every term to matter
    model.prefix *= 8
    rng = np.random.default_rng(1)
    n = 5
    pairs_ = Pairs(
        rng.integers(0, 6, n),
        rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32),
        rng.integers(0, 1 << 32, (2, n), dtype=np.uint64).astype(np.uint32),
        np.stack([rng.permutation(n), rng.permutation(n)]),
    )
    _, grads = loss_and_gradients(model, pairs_)

    def loss() -> float:
        return loss_and_gradients(model, pairs_)[0].loss

    def numeric(param: Any, index: tuple[int, ...]) -> float:
        old = param[index]
        param[index] = old + 1e-6
        up = loss()
        param[index] = old - 1e-6
        down = loss()
        param[index] = old
        return (up - down) / 2e-6

    for row, grad in zip(grads.entity_rows, grads.entity, strict=True):
        for j in range(5):
            assert numeric(model.entity, (row, j)) == pytest.approx(grad[j], abs=1e-7, rel=1e-5)
    for row, grad in list(zip(grads.prefix_rows, grads.prefix, strict=True))[::3]:
        for j in range(5):
            assert numeric(model.prefix, (row, j)) == pytest.approx(grad[j], abs=1e-7, rel=1e-5)
    for layer in range(2):
        for i, j in [(0, 0), (1, 3), (4, 2)]:
            expected = grads.weights[layer][i, j]
            assert numeric(model.weights[layer], (i, j)) == pytest.approx(
                expected, abs=1e-7, rel=1e-5
            )
        for j in range(5):
            expected = grads.biases[layer][j]
            assert numeric(model.biases[layer], (j,)) == pytest.approx(expected, abs=1e-7, rel=1e-5)


def test_auc_matches_scikit_learn_with_ties() -> None:
    rng = np.random.default_rng(0)
    pos = rng.integers(0, 5, 50).astype(float)
    neg = rng.integers(-2, 3, 70).astype(float)
    expected = roc_auc_score(np.r_[np.ones(50), np.zeros(70)], np.r_[pos, neg])
    assert auc(pos, neg) == pytest.approx(expected)


def test_negatives_are_drawn_per_positive() -> None:
    data = logins(login_rows(users=5, per_user=4), 50)
    config = Settings(50, 8, random_negative_sampling_rate=3, shuffled_negative_sampling_rate=2)
    drawn = draw(np.random.default_rng(0), data, np.arange(10), config)
    assert drawn.random.shape == (3, 10)
    assert drawn.shuffles.shape == (2, 10)
    assert all(sorted(perm) == list(range(10)) for perm in drawn.shuffles.tolist())
    assert drawn.total == 60


def test_validation_auc_reaches_0_9_on_login_habits() -> None:
    """Done-when 2: validation logins of the same habits against random and shuffled pairs."""
    table = 400
    train = logins(login_rows(users=200, per_user=40, seed=1), table)
    validation = logins(login_rows(users=200, per_user=5, seed=2), table)
    config = Settings(table, 16, epochs=6, learning_rate=0.01, mini_batch_size=500)
    scores: list[float] = []
    model = fit(config, train, validation, on_epoch=lambda _e, _s, a: scores.append(a or 0.0))
    assert len(scores) == 6
    assert scores[-1] >= 0.9, scores
    # An unseen address of the user's own subnets outscores a random one for most users.
    rng = np.random.default_rng(7)
    own = model.scores(validation.entities, validation.ips)
    other = model.scores(
        validation.entities, rng.integers(0, 1 << 32, validation.n).astype(np.uint32)
    )
    assert (own > other).mean() > 0.9


def test_training_is_reproducible() -> None:
    data = logins(login_rows(users=20, per_user=10), 64)
    config = Settings(64, 8, epochs=2, mini_batch_size=37)
    first, second = fit(config, data), fit(config, data)
    np.testing.assert_array_equal(first.entity, second.entity)
    np.testing.assert_array_equal(first.prefix, second.prefix)


# --- reading rows --------------------------------------------------------------------------------


def test_rows_strip_whitespace_and_read_quoted_entities() -> None:
    entities, ips = pairs(csv_rows(' user_1 ,  10.0.0.1\n\n"a, b",192.168.1.2 \n'))
    assert entities == ["user_1", "a, b"]
    assert ips.tolist() == [0x0A000001, 0xC0A80102]


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(st.text(alphabet='ab ,"\t\x0b\xa0', max_size=4), st.sampled_from(ADDRESSES)),
        max_size=5,
    ),
    st.sampled_from(["\n", "\r\n"]),
)
def test_the_fast_csv_path_agrees_with_the_csv_module(
    rows: list[tuple[str, str]], newline: str
) -> None:
    text = newline.join(f"{entity},{ip}" for entity, ip in rows)
    try:
        expected = pairs(csv_rows(text))
    except RowError as exc:
        with pytest.raises(RowError, match=re.escape(str(exc))):
            csv_pairs(text)
        return
    entities, ips = csv_pairs(text)
    assert entities == expected[0]
    assert ips.tolist() == expected[1].tolist()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("u1, 1.2.3.4\nu2, 1.2.3\n", r"^line 2: '1.2.3' is not an IPv4 address"),
        ("u1, 1.2.3.4\n\nu2, 1.2.3.4, extra\n", r"^line 3: has 3 fields"),
        ("u1\n", r"^line 1: has 1 fields"),
        (" , 1.2.3.4\n", r"^line 1: the entity_id is empty"),
        ("u1, 300.1.1.1\n", r"^line 1: '300.1.1.1' is not an IPv4 address: 300 exceeds 255"),
    ],
)
def test_bad_rows_are_named(text: str, message: str) -> None:
    with pytest.raises(RowError, match=message):
        pairs(csv_rows(text))


def test_read_channel_names_the_file_and_line(tmp_path: Path) -> None:
    from opensage.algorithms.base import UserError

    (tmp_path / "a.csv").write_bytes(csv_body(login_rows(users=2, per_user=2)))
    (tmp_path / "b.csv").write_bytes(b"u1, 1.2.3.4\nu2, 999.0.0.1\n")
    with pytest.raises(UserError, match=r"file 'b.csv' of channel 'train': line 2: '999.0.0.1'"):
        read_channel(tmp_path, "train", 10)
    (tmp_path / "b.csv").write_bytes(b"\xff\xfe")
    with pytest.raises(UserError, match="not UTF-8 text"):
        read_channel(tmp_path, "train", 10)
    (tmp_path / "b.csv").unlink()
    assert read_channel(tmp_path, "train", 10).n == 4
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="No data in channel 'validation'"):
        read_channel(empty, "validation", 10)


# --- the handler ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def handler(tmp_path_factory: pytest.TempPathFactory) -> IPInsightsHandler:
    model = IPInsightsModel.initial(40, 6, 1, seed=0)
    folder = tmp_path_factory.mktemp("ipi-model")
    model.save(folder)
    return load(folder)


ROWS = [("user_1", "10.0.0.1"), ("user_2", "192.168.7.9"), ("user_1", "8.8.8.8")]


def bodies() -> dict[str, bytes]:
    return {
        CSV: csv_body(ROWS),
        JSON: json.dumps(
            {
                "instances": [
                    {"data": {"features": {"values": list(ROWS[0])}}},
                    {"features": list(ROWS[1])},
                    {"features": list(ROWS[2])},
                ]
            }
        ).encode(),
        JSONLINES: b"".join(json.dumps({"features": list(r)}).encode() + b"\n" for r in ROWS),
    }


def decode(body: bytes, accept: str) -> list[dict[str, Any]]:
    if accept == JSON:
        document = json.loads(body)
        assert list(document) == ["predictions"]
        rows: list[dict[str, Any]] = document["predictions"]
        return rows
    return [json.loads(line) for line in body.decode().splitlines()]


def test_every_request_and_accept_type_gives_the_same_dot_products(
    handler: IPInsightsHandler,
) -> None:
    model = handler.model
    entities = model.entity_rows([e for e, _ in ROWS])
    expected = model.scores(entities, [parse_ipv4(ip) for _, ip in ROWS])
    for content_type, body in bodies().items():
        for accept in (JSON, JSONLINES):
            result = handler.invoke(body, content_type, accept, None)
            assert result.status == 200
            assert result.content_type == accept
            rows = decode(result.body, accept)
            assert [list(row) for row in rows] == [["dot_product"]] * 3
            np.testing.assert_allclose([r["dot_product"] for r in rows], expected, rtol=1e-6)


@pytest.mark.parametrize("accept", [f"{JSON};verbose=true", f"{JSONLINES}; verbose=True"])
def test_verbose_adds_both_embeddings(handler: IPInsightsHandler, accept: str) -> None:
    result = handler.invoke(bodies()[CSV], CSV, accept, None)
    rows = decode(result.body, accept.split(";")[0])
    for row in rows:
        assert set(row) == {"dot_product", "entity_embedding", "ip_embedding"}
        assert len(row["entity_embedding"]) == len(row["ip_embedding"]) == 6
        dot = float(np.dot(row["entity_embedding"], row["ip_embedding"]))
        assert row["dot_product"] == pytest.approx(dot, rel=1e-5, abs=1e-7)


def status_and_message(call: Any) -> tuple[int, str]:
    try:
        result = call()
    except InferenceError as exc:
        return exc.status_code, exc.message
    return int(result.status), result.body.decode()


@pytest.mark.parametrize(
    ("content_type", "body", "status", "message"),
    [
        (CSV, b"u1, 1.2.3.4\nu2, 1.2.3\n", 400, "line 2: '1.2.3' is not an IPv4 address"),
        (
            JSON,
            b'{"instances": [{"features": ["u", "1.2.3.4"]}, {"features": ["u"]}]}',
            400,
            "instance 2: has 1 fields",
        ),
        (JSON, b'{"instances": [{"features": ["u", null]}]}', 400, "instance 1: None is not text"),
        (JSONLINES, b'{"features": ["u", "1.2.3.4"]}\n{"nope": 1}\n', 400, "line 2: expected"),
        (JSONLINES, b"{\n", 400, "line 1: not JSON"),
        (JSON, b"[1, 2", 400, "Unable to read the application/json request"),
        (RECORDIO, b"\n\x0a\x23\xd7\xce", 415, "not supported by the IP Insights"),
    ],
)
def test_bad_requests_are_refused_clearly(
    handler: IPInsightsHandler, content_type: str, body: bytes, status: int, message: str
) -> None:
    got, text = status_and_message(lambda: handler.invoke(body, content_type, JSON, None))
    assert got == status, text
    assert message in text, text


def test_accept_csv_is_refused_and_empty_bodies_answer_nothing(handler: IPInsightsHandler) -> None:
    assert status_and_message(lambda: handler.invoke(b"u, 1.2.3.4", CSV, CSV, None))[0] == 406
    assert handler.invoke(b"  \n", CSV, JSON, None).status == 204
    assert handler.invoke(b'{"instances": []}', JSON, JSON, None).status == 204
    # No content type: CSV, as SageMaker's built-ins assume; entities may be JSON numbers.
    assert handler.invoke(b"u, 1.2.3.4", None, None, None).status == 200
    assert handler.invoke(b'{"features": [17, "1.2.3.4"]}', JSON, None, None).status == 200


def test_model_file_round_trip(tmp_path: Path) -> None:
    model = IPInsightsModel.initial(30, 4, 2, seed=1)
    model.save(tmp_path)
    again = IPInsightsModel.load(tmp_path)
    ips = np.arange(5, dtype=np.uint32) * 77777
    np.testing.assert_array_equal(again.scores(np.arange(5), ips), model.scores(np.arange(5), ips))
    (tmp_path / "model_algo-1").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not an opensage model file"):
        IPInsightsModel.load(tmp_path)


# --- hyperparameters and the training program ----------------------------------------------------


def test_defaults_and_sampling_rule() -> None:
    values = SPEC.hyperparameters.resolved(BASE)
    assert values["epochs"] == 10
    assert values["mini_batch_size"] == 10_000
    assert values["learning_rate"] == 0.001
    assert values["weight_decay"] == 0.00001
    table = SPEC.hyperparameters
    with pytest.raises(
        HyperparameterError, match=r"^Hyperparameter 'random_negative_sampling_rate'"
    ):
        table.validate(
            {**BASE, "random_negative_sampling_rate": "0", "shuffled_negative_sampling_rate": "0"}
        )
    with pytest.raises(HyperparameterError, match=r"\[1, 500\]"):
        table.validate(
            {
                **BASE,
                "random_negative_sampling_rate": "300",
                "shuffled_negative_sampling_rate": "201",
            }
        )
    table.validate({**BASE, "random_negative_sampling_rate": "0"})  # S defaults to 1
    with pytest.raises(HyperparameterError, match=r"^Hyperparameter 'num_entity_vectors'.*8 GiB"):
        table.validate({"num_entity_vectors": "250000000", "vector_dim": "4096"})
    with pytest.raises(HyperparameterError, match=r"^Hyperparameter 'vector_dim'"):
        table.validate({**BASE, "vector_dim": "3"})


def run_job(
    tmp_path: Path,
    body: bytes,
    content_type: str = CSV,
    mode: str = "File",
    validation: bytes | None = None,
    **hyperparameters: str,
) -> tuple[int, str, str]:
    """The training program on a job tree: (exit code, failure reason, stdout)."""
    paths = MLPaths(tmp_path)
    for folder in paths.directories():
        folder.mkdir(parents=True, exist_ok=True)
    paths.hyperparameters_file.write_text(json.dumps({**BASE, "epochs": "2", **hyperparameters}))
    paths.resource_config_file.write_text(json.dumps({"current_host": "algo-1"}))
    config = {}
    for name, data in (("train", body), ("validation", validation)):
        if data is None:
            continue
        paths.channel(name).mkdir(parents=True, exist_ok=True)
        (paths.channel(name) / "part-0").write_bytes(data)
        config[name] = {"ContentType": content_type, "TrainingInputMode": mode}
    paths.input_data_config_file.write_text(json.dumps(config))
    proc = subprocess.run(
        [sys.executable, "-m", "opensage.algorithms.ipinsights", "train"],
        env={**os.environ, "SAGEMAKER_BASE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    failure = paths.failure_file.read_text() if paths.failure_file.exists() else ""
    return proc.returncode, failure, proc.stdout


def test_training_program_logs_the_metric_and_writes_the_model(tmp_path: Path) -> None:
    rows = login_rows(users=20, per_user=10)
    code, failure, stdout = run_job(
        tmp_path,
        csv_body(rows),
        validation=csv_body(rows[:50]),
        mini_batch_size="50",
        batch_metrics_publish_interval="2",
    )
    assert code == 0, failure
    metric = SPEC.metrics[0]
    assert len(re.findall(metric.regex, stdout)) == 2  # once per epoch
    assert "epoch=1, batch=2 train binary_classification_cross_entropy <loss>=" in stdout
    handler = load(MLPaths(tmp_path).model)
    assert handler.invoke(b"user_1, 1.2.3.4", CSV, JSON, None).status == 200


@pytest.mark.parametrize(
    ("body", "content_type", "mode", "reason"),
    [
        (
            b"u1, 1.2.3.4\nu2, 10.0.0\n",
            CSV,
            "File",
            "ClientError: Could not read file 'part-0' of channel 'train': line 2: '10.0.0' is not",
        ),
        (
            b"u1, 1.2.3.4\n",
            RECORDIO,
            "File",
            "ClientError: Content type 'application/x-recordio-protobuf' of channel 'train' "
            "is not accepted by the IP Insights",
        ),
        (
            b"u1, 1.2.3.4\n",
            CSV,
            "Pipe",
            "ClientError: The IP Insights algorithm does not read channels in Pipe mode",
        ),
    ],
)
def test_training_program_refuses_bad_inputs_clearly(
    tmp_path: Path, body: bytes, content_type: str, mode: str, reason: str
) -> None:
    code, failure, _ = run_job(tmp_path, body, content_type, mode)
    assert code == 1
    assert failure.startswith(reason), failure


def test_settings_come_from_the_environment(tmp_path: Path) -> None:
    paths = MLPaths(tmp_path)
    for folder in paths.directories():
        folder.mkdir(parents=True, exist_ok=True)
    paths.hyperparameters_file.write_text(json.dumps({**BASE, "num_ip_encoder_layers": "3"}))
    paths.channel("train").mkdir(parents=True, exist_ok=True)
    paths.input_data_config_file.write_text(json.dumps({"train": {}}))
    env = TrainingEnv.load(paths, SPEC)
    config = settings_of(env)
    assert config.num_ip_encoder_layers == 3
    assert config.vector_dim == 16
    assert env.channels["train"].content_type == CSV  # no content type: CSV
