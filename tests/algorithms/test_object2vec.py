"""The Object2Vec built-in: each encoder's shape and padding invariance, the comparator's parts
in order, negative sampling, the hyperparameter rules, bad records naming their line, the
serving requests (scores, embeddings, `infer_max_seqlens`, the preferred mode), determinism, and
quality on generated data: planted low-rank ratings (a MovieLens analogue) against the global
mean, and same/different token pairs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from opensage.algorithms.base import HyperparameterError, UserError  # noqa: E402
from opensage.algorithms.env import TrainingEnv  # noqa: E402
from opensage.algorithms.ntm.model import configure_threads  # noqa: E402
from opensage.algorithms.object2vec.data import (  # noqa: E402
    Pairs,
    batch_order,
    negative_samples,
)
from opensage.algorithms.object2vec.model import (  # noqa: E402
    Object2VecModel,
    Object2VecNet,
    compare,
)
from opensage.algorithms.object2vec.serve import Object2VecHandler, load  # noqa: E402
from opensage.algorithms.object2vec.spec import OPTIMIZERS, SPEC, TABLE  # noqa: E402
from opensage.algorithms.object2vec.train import Trainer, architecture, train  # noqa: E402
from opensage.contract import MLPaths  # noqa: E402
from opensage.serving.errors import InferenceError  # noqa: E402

JSON = "application/json"
JSONLINES = "application/jsonlines"
BASE = {"enc0_max_seq_len": "6", "enc0_vocab_size": "30", "enc_dim": "8",
        "enc0_token_embedding_dim": "4", "mlp_dim": "8", "mlp_layers": "1"}  # fmt: skip


@pytest.fixture(autouse=True)
def _threads_for_tiny_networks() -> None:
    configure_threads(0)


def values(**changes: str) -> dict[str, Any]:
    return TABLE.resolved({**BASE, **changes})


def net(**changes: str) -> Object2VecNet:
    torch.manual_seed(0)
    return Object2VecNet(architecture(values(**changes)))


def pairs_of(in0: list[list[int]], in1: list[list[int]], labels: list[float]) -> Pairs:
    return Pairs.from_sequences(in0, in1, labels)


def trainer_config(**changes: Any) -> dict[str, Any]:
    base = {"optimizer": "adam", "learning_rate": 0.01, "weight_decay": 0.0,
            "negative_sampling_rate": 0}  # fmt: skip
    return {**base, **changes}


# --- the network ------------------------------------------------------------------------------


@pytest.mark.parametrize("network", ["pooled_embedding", "hcnn", "bilstm"])
def test_each_encoder_gives_enc_dim_vectors_whatever_the_padding(network: str) -> None:
    model = net(enc0_network=network, enc0_layers="2", enc0_cnn_filter_width="2")
    encoder = model.encoders.enc0.eval()
    tokens = torch.tensor([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8]])
    lengths = torch.tensor([3, 5])
    with torch.no_grad():
        batch = encoder(tokens, lengths)
        alone = encoder(torch.tensor([[1, 2, 3]]), torch.tensor([3]))
    assert batch.shape == (2, 8)
    np.testing.assert_allclose(batch[0].numpy(), alone[0].numpy(), rtol=1e-5, atol=1e-6)


def test_the_comparator_concatenates_its_parts_in_the_order_given() -> None:
    u = torch.tensor([[1.0, -2.0]])
    v = torch.tensor([[3.0, 5.0]])
    got = compare(u, v, ["abs_diff", "concat", "hadamard"])
    assert got.tolist() == [[2.0, 7.0, 1.0, -2.0, 3.0, 5.0, 3.0, -10.0]]
    assert compare(u, v, ["hadamard"]).tolist() == [[3.0, -10.0]]
    with pytest.raises(ValueError, match="unknown comparator"):
        compare(u, v, ["cosine"])


def test_shared_encoder_and_tied_embedding_share_parameters() -> None:
    shared = net(enc1_network="enc0")
    assert shared.encoders.enc1 is shared.encoders.enc0
    tied = net(enc1_network="hcnn", enc1_max_seq_len="6", enc1_token_embedding_dim="4",
               tied_token_embedding_weight="true")  # fmt: skip
    assert tied.encoders.enc1 is not tied.encoders.enc0
    assert tied.encoders.enc1.embedding is tied.encoders.enc0.embedding
    separate = net(enc1_network="pooled_embedding", enc1_max_seq_len="3", enc1_vocab_size="7")
    assert separate.encoders.enc1.embedding.weight.shape == (7, 300)


def test_outputs_are_num_classes_logits_or_one_value() -> None:
    tokens, lengths = torch.tensor([[1, 2], [3, 4]]), torch.tensor([2, 1])
    assert net(num_classes="5")(tokens, lengths, tokens, lengths).shape == (2, 5)
    regression = net(output_layer="mean_squared_error", mlp_layers="0")
    assert regression(tokens, lengths, tokens, lengths).shape == (2,)


def test_negative_samples_pair_each_positive_with_other_in1s() -> None:
    rng = np.random.default_rng(0)
    labels = np.asarray([1, 0, 1, 1, 0], dtype=np.float32)
    first, second = negative_samples(labels, 3, rng)
    assert first.tolist() == [0, 0, 0, 2, 2, 2, 3, 3, 3]
    assert (first != second).all()
    assert ((second >= 0) & (second < 5)).all()
    assert len(negative_samples(labels, 0, rng)[0]) == 0
    assert len(negative_samples(np.zeros(4, np.float32), 2, rng)[0]) == 0


def test_negative_sampling_adds_rate_negatives_labelled_zero_per_positive() -> None:
    data = pairs_of([[1], [2], [3], [4]], [[1], [2], [3], [4]], [1, 1, 0, 1])
    trainer = Trainer(net(), trainer_config(negative_sampling_rate=2))
    seen: list[np.ndarray] = []
    original = trainer.loss

    def spy(output: Any, labels: Any) -> Any:
        seen.append(labels.numpy().copy())
        return original(output, labels)

    trainer.loss = spy  # type: ignore[method-assign]
    _, count = trainer.epoch(data, 4, 0)
    assert count == 4 + 2 * 3
    assert seen[0][4:].tolist() == [0.0] * 6


def test_a_batch_is_padded_from_the_records_ids() -> None:
    data = pairs_of([[5], [1, 2, 3], [7, 8]], [[9, 9], [4], [6]], [0, 1, 0])
    tokens, lengths = data.side(0, np.asarray([2, 0]))
    assert tokens.tolist() == [[7, 8], [5, 0]]
    assert lengths.tolist() == [2, 1]
    assert data.side(1, np.asarray([1, 0]))[0].tolist() == [[4, 0], [9, 9]]


def test_bucketing_batches_similar_lengths_together() -> None:
    lengths = (np.asarray([1, 9, 1, 9, 1, 9]), np.asarray([1, 1, 1, 1, 1, 1]))
    batches = batch_order(lengths, 3, 2, np.random.default_rng(0))
    assert sorted(len(set(lengths[0][b].tolist())) for b in batches) == [1, 1]
    plain = batch_order(lengths, 4, 0, np.random.default_rng(0))
    assert sorted(np.concatenate(plain).tolist()) == list(range(6))


# --- the hyperparameters ----------------------------------------------------------------------


def test_defaults_are_sagemakers() -> None:
    got = values()
    assert got["enc_dim"] == 8
    assert TABLE.resolved({"enc0_max_seq_len": "2", "enc0_vocab_size": "3"})["enc_dim"] == 4096
    assert got["enc0_network"] == "hcnn"
    assert got["enc1_network"] == "enc0"
    assert got["comparator_list"] == ("hadamard", "concat", "abs_diff")
    assert got["mini_batch_size"] == 32
    assert got["optimizer"] == "adam"
    assert got["enc0_layers"] == "auto"
    assert architecture(got).encoders[0].layers == 2
    assert architecture(values(enc0_network="bilstm")).encoders[1].layers == 1
    assert set(SPEC.tunable_objectives()) == {m.name for m in SPEC.metrics}


@pytest.mark.parametrize(
    ("changes", "named", "says"),
    [
        ({"enc1_network": "hcnn"}, "enc1_vocab_size", "required"),
        ({"enc1_network": "hcnn", "enc1_vocab_size": "30"}, "enc1_max_seq_len", "required"),
        ({"enc1_vocab_size": "31"}, "enc1_vocab_size", "enc1_network is enc0"),
        (
            {
                "enc1_network": "bilstm",
                "enc1_max_seq_len": "3",
                "enc1_vocab_size": "9",
                "tied_token_embedding_weight": "true",
            },
            "enc1_vocab_size",
            "tied",
        ),
        (
            {
                "enc1_network": "bilstm",
                "enc1_max_seq_len": "3",
                "enc1_token_embedding_dim": "5",
                "tied_token_embedding_weight": "true",
            },
            "enc1_token_embedding_dim",
            "tied",
        ),
        ({"comparator_list": "hadamard,cosine"}, "comparator_list", "cosine"),
        ({"comparator_list": "concat,concat"}, "comparator_list", "twice"),
        (
            {"output_layer": "mean_squared_error", "negative_sampling_rate": "2"},
            "negative_sampling_rate",
            "mean_squared_error",
        ),
        (
            {"token_embedding_storage_type": "row_sparse", "optimizer": "rmsprop"},
            "token_embedding_storage_type",
            "optimizer rmsprop does not take",
        ),
        ({"enc0_pretrained_embedding_file": "glove.txt"}, "enc0_vocab_file", "needed"),
        ({"enc0_vocab_file": "v.json"}, "enc0_pretrained_embedding_file", "needed"),
        (
            {"enc0_vocab_file": "../v.json", "enc0_pretrained_embedding_file": "g"},
            "enc0_vocab_file",
            "file name",
        ),
        (
            {"enc1_pretrained_embedding_file": "g.txt", "enc1_vocab_file": "v.json"},
            "enc1_pretrained_embedding_file",
            "enc1_network is enc0",
        ),
        ({"enc0_layers": "5"}, "enc0_layers", "[1, 4]"),
        ({"mlp_layers": "11"}, "mlp_layers", "[0, 10]"),
        ({"num_classes": "31"}, "num_classes", "[2, 30]"),
        ({"enc_dim": "3"}, "enc_dim", "[4, 10000]"),
    ],
)
def test_cross_field_rules_name_the_hyperparameter(
    changes: dict[str, str], named: str, says: str
) -> None:
    with pytest.raises(HyperparameterError, match=f"^Hyperparameter '{named}'") as caught:
        TABLE.validate({**BASE, **changes})
    assert says in str(caught.value)


def test_enc1_settings_mirror_enc0_when_shared_or_tied() -> None:
    shared = architecture(values(enc1_max_seq_len="6"))
    assert shared.encoders[1] == shared.encoders[0]
    tied = architecture(
        values(
            enc1_network="pooled_embedding",
            enc1_max_seq_len="2",
            tied_token_embedding_weight="true",
            enc1_token_embedding_dim="4",
        )
    )
    assert tied.encoders[1].vocab_size == 30
    assert tied.encoders[1].max_seq_len == 2
    assert tied.encoders[1].network == "pooled_embedding"


# --- the training program -----------------------------------------------------------------------


def job(
    base: Path,
    channels: dict[str, list[Any]],
    hyperparameters: dict[str, str],
    auxiliary: dict[str, bytes] | None = None,
) -> TrainingEnv:
    paths = MLPaths(base)
    for folder in paths.directories():
        folder.mkdir(parents=True, exist_ok=True)
    paths.hyperparameters_file.write_text(json.dumps(hyperparameters))
    paths.resource_config_file.write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]})
    )
    config: dict[str, dict[str, str]] = {}
    for name, records in channels.items():
        paths.channel(name).mkdir(parents=True, exist_ok=True)
        lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
        (paths.channel(name) / "part-0.jsonl").write_text("\n".join(lines) + "\n")
        config[name] = {"ContentType": JSONLINES}
    if auxiliary is not None:
        paths.channel("auxiliary").mkdir(parents=True, exist_ok=True)
        for file, body in auxiliary.items():
            (paths.channel("auxiliary") / file).write_bytes(body)
        config["auxiliary"] = {"ContentType": "text/plain"}
    paths.input_data_config_file.write_text(json.dumps(config))
    return TrainingEnv.load(paths, SPEC)


def same_pairs(seed: int, n: int, vocab: int = 20) -> list[dict[str, Any]]:
    """in0 = [a], in1 = [b], label 1 when a == b (half the pairs)."""
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(n):
        a = int(rng.integers(vocab))
        b = a if rng.random() < 0.5 else int((a + rng.integers(1, vocab)) % vocab)
        records.append({"label": int(a == b), "in0": [a], "in1": [b]})
    return records


@pytest.mark.parametrize(
    ("record", "says"),
    [
        ({"label": 1, "in0": [1, 99], "in1": [2]}, r"'in0' holds token id 99, outside .*\[0, 30\)"),
        ({"label": 1, "in0": [1], "in1": []}, "'in1' must be a non-empty list"),
        ({"label": 1, "in0": [1]}, "has no 'in1'"),
        ({"in0": [1], "in1": [2]}, "has no 'label'"),
        ({"label": 2, "in0": [1], "in1": [2]}, "not a class in 0..1"),
        ({"label": 0.5, "in0": [1], "in1": [2]}, "not a class"),
        ({"label": 1, "in0": [1, "x"], "in1": [2]}, "not a token id"),
        ("{not json", "not a JSON object"),
        ("[1, 2]", "not a JSON object"),
    ],
)
def test_a_bad_record_fails_naming_the_channel_file_and_line(
    tmp_path: Path, record: Any, says: str
) -> None:
    records = [*same_pairs(0, 3, 10), record]
    env = job(tmp_path, {"train": [*records[:3], "", record]}, {**BASE, "epochs": "1"})
    with pytest.raises(UserError, match=rf"Channel 'train', file 'part-0.jsonl', line 5: .*{says}"):
        train(env)


def test_long_sequences_are_cut_to_max_seq_len(tmp_path: Path) -> None:
    long = {"label": 1, "in0": [*range(20), 99], "in1": [1, 2]}
    env = job(tmp_path, {"train": [long] * 4}, {**BASE, "epochs": "1"})
    train(env)  # id 99 lies past enc0_max_seq_len (6) and is never read


def test_training_logs_metrics_keeps_the_best_epoch_and_stops_early(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hps = {**BASE, "epochs": "40", "early_stopping_patience": "1",
           "early_stopping_tolerance": "0.1", "enc0_network": "pooled_embedding"}  # fmt: skip
    channels = {"train": same_pairs(0, 64), "validation": same_pairs(1, 32),
                "test": same_pairs(2, 32)}  # fmt: skip
    train(job(tmp_path, channels, hps))
    log = capsys.readouterr().out
    epochs = log.count("validation accuracy <score>=")
    assert 2 <= epochs < 40
    assert log.count("validation cross_entropy <loss>=") == epochs
    assert "Early stopping after epoch" in log
    assert "test accuracy <score>=" in log
    assert "test cross_entropy <loss>=" in log
    assert "mean_squared_error" not in log


def test_same_job_trains_the_same_model(tmp_path: Path) -> None:
    hps = {**BASE, "epochs": "2", "enc0_network": "bilstm", "negative_sampling_rate": "1",
           "dropout": "0.3", "bucket_width": "1"}  # fmt: skip
    models = []
    for run in ("a", "b"):
        env = job(tmp_path / run, {"train": same_pairs(0, 40)}, hps)
        train(env)
        models.append(Object2VecModel.load(env.model_dir).arrays)
    assert models[0].keys() == models[1].keys()
    for name in models[0]:
        np.testing.assert_array_equal(models[0][name], models[1][name], err_msg=name)


def test_pretrained_embeddings_are_loaded_and_frozen(tmp_path: Path) -> None:
    vectors = {f"w{i}": [float(i), -float(i), 0.5, 1.0] for i in range(0, 30, 3)}
    glove = "".join(f"{w} {' '.join(map(str, v))}\n" for w, v in vectors.items())
    vocab = {f"w{i}": i for i in range(30)}
    auxiliary = {"g.txt": glove.encode(), "v.json": json.dumps(vocab).encode()}
    hps = {**BASE, "epochs": "2", "enc0_pretrained_embedding_file": "g.txt",
           "enc0_vocab_file": "v.json", "enc0_network": "pooled_embedding"}  # fmt: skip
    env = job(tmp_path, {"train": same_pairs(0, 32)}, hps, auxiliary)
    train(env)
    weight = Object2VecModel.load(env.model_dir).arrays["encoders.enc0.embedding.weight"]
    np.testing.assert_allclose(weight[9], vectors["w9"])
    env = job(tmp_path / "bad", {"train": same_pairs(0, 8)},
              {**hps, "enc0_token_embedding_dim": "3"}, auxiliary)  # fmt: skip
    with pytest.raises(UserError, match=r"'g.txt', line 1: 4 values.* dimension is 3"):
        train(env)


@pytest.mark.parametrize("optimizer", ["adam", "adagrad", "sgd"])
def test_row_sparse_embeddings_update_only_the_rows_of_a_batch(optimizer: str) -> None:
    model = net(token_embedding_storage_type="row_sparse", optimizer=optimizer,
                enc0_network="pooled_embedding")  # fmt: skip
    weight = model.encoders.enc0.embedding.weight
    before = weight.detach().clone()
    data = pairs_of([[i % 5] for i in range(20)], [[i % 5] for i in range(20)],
                    [float(i % 2) for i in range(20)])  # fmt: skip
    trainer = Trainer(model, trainer_config(optimizer=optimizer, weight_decay=0.01))
    assert len(trainer.optimizers) == 2
    loss, _ = trainer.epoch(data, 4, 0)
    assert weight.grad is not None
    assert weight.grad.is_sparse
    changed = (weight.detach() != before).any(dim=1)
    assert changed[:5].all()
    assert not changed[5:].any()
    assert np.isfinite(loss)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_lowers_the_loss(optimizer: str) -> None:
    data = pairs_of([[i % 5] for i in range(40)], [[i % 5] for i in range(40)],
                    [float(i % 2) for i in range(40)])  # fmt: skip
    trainer = Trainer(net(enc0_network="pooled_embedding"), trainer_config(optimizer=optimizer))
    first, _ = trainer.epoch(data, 8, 0)
    for _ in range(15):
        last, _ = trainer.epoch(data, 8, 0)
    assert last < first


# --- serving ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("o2v")
    hps = {**BASE, "epochs": "1", "enc0_network": "hcnn", "num_classes": "3",
           "enc1_network": "pooled_embedding", "enc1_vocab_size": "12",
           "enc1_max_seq_len": "4"}  # fmt: skip
    records = [{"label": i % 3, "in0": [i % 30, 3], "in1": [i % 12]} for i in range(30)]
    env = job(base, {"train": records}, hps)
    train(env)
    return env.model_dir


def invoke(handler: Object2VecHandler, body: Any, content_type: str = JSON) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    result = handler.invoke(raw, content_type, JSON, None)
    assert result.status == 200
    return json.loads(result.body)["predictions"]


def test_scores_and_embeddings_in_json_and_json_lines(model_dir: Path) -> None:
    handler = load(model_dir, {})
    scores = invoke(handler, {"instances": [{"in0": [1, 2], "in1": [3]}, {"in0": [4], "in1": [5]}]})
    assert [list(row) for row in scores] == [["scores"], ["scores"]]
    np.testing.assert_allclose([sum(row["scores"]) for row in scores], 1.0, rtol=1e-5)
    assert len(scores[0]["scores"]) == 3
    lines = b'{"in0": [1, 2], "in1": [3]}\n{"in0": [4], "in1": [5]}\n'
    result = handler.invoke(lines, JSONLINES, JSONLINES, None)
    assert [json.loads(line) for line in result.body.splitlines()] == scores
    embeddings = invoke(handler, {"instances": [{"in0": [1, 2]}, {"in1": [11]}]})
    assert [len(row["embeddings"]) for row in embeddings] == [8, 8]


def test_infer_max_seqlens_cuts_each_side(model_dir: Path) -> None:
    handler = load(model_dir, {})
    cut = invoke(handler, {"instances": [{"in0": [1, 2, 3, 4]}, {"in1": [1, 2, 3]}]},
                 f"{JSON}; infer_max_seqlens=2,1")  # fmt: skip
    short = invoke(handler, {"instances": [{"in0": [1, 2]}, {"in1": [1]}]})
    full = invoke(handler, {"instances": [{"in0": [1, 2, 3, 4]}]})
    assert cut == short
    assert cut[0] != full[0]
    for bad in ("0,2", "2", "a,b", "5001,1"):
        with pytest.raises(InferenceError, match="infer_max_seqlens") as caught:
            handler.invoke(b'{"in0": [1]}', f"{JSON}; infer_max_seqlens={bad}", JSON, None)
        assert caught.value.status_code == 400


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"instances": [{"in0": [1], "in1": [2]}, {"in0": [1]}]}, "Mixed records"),
        ({"instances": [{"in0": [1], "in1": [2]}, {"label": 1}]}, "neither 'in0' nor 'in1'"),
        ({"instances": [{"in0": [1, 30]}]}, r"outside the vocabulary \[0, 30\)"),
        ({"instances": [{"in1": [12]}]}, r"outside the vocabulary \[0, 12\)"),
        ({"instances": [{"in0": []}]}, "non-empty list"),
        ({"instances": [{"in0": [1.5]}]}, "integer token ids"),
        ({"instances": 3}, "instances"),
    ],
)
def test_bad_requests_are_400_with_a_clear_message(model_dir: Path, body: Any, says: str) -> None:
    handler = load(model_dir, {})
    with pytest.raises(InferenceError, match=says) as caught:
        handler.invoke(json.dumps(body).encode(), JSON, JSON, None)
    assert caught.value.status_code == 400


def test_the_preferred_mode_loads_its_network_first_and_the_other_on_demand(
    model_dir: Path,
) -> None:
    embedding = load(model_dir, {"INFERENCE_PREFERRED_MODE": "embedding"})
    assert embedding.model._net is None
    classification = load(model_dir, {})
    assert classification.model._net is not None
    for body in ({"instances": [{"in0": [1]}]}, {"instances": [{"in0": [1], "in1": [2]}]}):
        assert invoke(embedding, body) == invoke(classification, body)
    assert embedding.model._net is not None
    with pytest.raises(ValueError, match="INFERENCE_PREFERRED_MODE"):
        load(model_dir, {"INFERENCE_PREFERRED_MODE": "gpu"})


# --- quality on generated data ------------------------------------------------------------------


def ratings(seed: int = 0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A MovieLens analogue: 60 users x 40 items, ratings = 3 + a rank-2 interaction + noise,
    ~60% of the matrix observed, split 80/20."""
    rng = np.random.default_rng(seed)
    users, items = 60, 40
    p = rng.normal(size=(users, 2))
    q = rng.normal(size=(items, 2))
    records = []
    for u in range(users):
        for i in range(items):
            if rng.random() < 0.6:
                rating = 3.0 + p[u] @ q[i] + rng.normal(scale=0.3)
                records.append({"label": float(rating), "in0": [u], "in1": [i]})
    order = rng.permutation(len(records))
    cut = int(0.8 * len(records))
    return [records[k] for k in order[:cut]], [records[k] for k in order[cut:]]


def as_pairs(records: list[dict[str, Any]]) -> Pairs:
    return pairs_of([r["in0"] for r in records], [r["in1"] for r in records],
                    [r["label"] for r in records])  # fmt: skip


def test_low_rank_ratings_beat_the_global_mean_clearly() -> None:
    train_records, validation_records = ratings()
    hps = {"enc0_max_seq_len": "1", "enc0_vocab_size": "60", "enc1_max_seq_len": "1",
           "enc1_vocab_size": "40", "enc0_network": "pooled_embedding",
           "enc1_network": "pooled_embedding", "enc_dim": "16", "enc0_token_embedding_dim": "16",
           "enc1_token_embedding_dim": "16", "mlp_dim": "32", "mlp_layers": "1",
           "mlp_activation": "relu", "output_layer": "mean_squared_error"}  # fmt: skip
    torch.manual_seed(0)
    model = Object2VecNet(architecture(TABLE.resolved(hps)))
    trainer = Trainer(model, trainer_config(learning_rate=0.01))
    data, validation = as_pairs(train_records), as_pairs(validation_records)
    for _ in range(25):
        trainer.epoch(data, 64, 0)
    ours = trainer.evaluate(validation)["mean_squared_error"]
    baseline = float(np.mean((validation.labels - data.labels.mean()) ** 2))
    assert ours < 0.5 * baseline, (ours, baseline)


def test_same_or_different_tokens_are_learnt() -> None:
    hps = {"enc0_max_seq_len": "1", "enc0_vocab_size": "20", "enc_dim": "16",
           "enc0_network": "pooled_embedding", "enc0_token_embedding_dim": "16",
           "comparator_list": "abs_diff, hadamard", "mlp_dim": "16", "mlp_layers": "1",
           "mlp_activation": "relu"}  # fmt: skip
    torch.manual_seed(0)
    trainer = Trainer(Object2VecNet(architecture(TABLE.resolved(hps))), trainer_config())
    data, test = as_pairs(same_pairs(0, 1000)), as_pairs(same_pairs(1, 400))
    for _ in range(20):
        trainer.epoch(data, 32, 0)
    assert trainer.evaluate(test)["accuracy"] >= 0.9
