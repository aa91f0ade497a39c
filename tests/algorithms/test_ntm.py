"""The NTM built-in: its loss against a hand computation, the training loop's knobs (early
stopping, sub_sample, every optimizer, determinism), the model file, and topic recovery on
Griffiths' bars data."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scipy.optimize import linear_sum_assignment  # noqa: E402

from opensage.algorithms.base import HyperparameterError, UserError  # noqa: E402
from opensage.algorithms.env import TrainingEnv  # noqa: E402
from opensage.algorithms.ntm.model import (  # noqa: E402
    Architecture,
    NTMModel,
    NTMNet,
    configure_threads,
)
from opensage.algorithms.ntm.serve import NTMHandler  # noqa: E402
from opensage.algorithms.ntm.spec import OPTIMIZERS, SPEC, TABLE, encoder_layers  # noqa: E402
from opensage.algorithms.ntm.train import (  # noqa: E402
    EarlyStopping,
    Trainer,
    top_word_ids,
    topic_uniqueness,
    train,
)
from opensage.contract import MLPaths  # noqa: E402
from opensage.formats.csv import encode_csv  # noqa: E402
from opensage.serving.errors import InferenceError  # noqa: E402

CSV0 = "text/csv;label_size=0"


@pytest.fixture(autouse=True)
def _threads_for_tiny_networks() -> None:
    """What training sizes them to for these networks: one thread (more only contend)."""
    configure_threads(0)


def config(**changes: Any) -> dict[str, Any]:
    base = {
        "optimizer": "adam",
        "learning_rate": 0.01,
        "weight_decay": 0.0,
        "rescale_gradient": 1.0,
        "sub_sample": 1.0,
        "clip_gradient": None,
    }
    return {**base, **changes}


def counts(seed: int, documents: int = 40, words: int = 12) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.poisson(2.0, size=(documents, words)).astype(np.float32)


def bars(documents: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Griffiths & Steyvers' bars: 10 topics, the rows and columns of a 5 x 5 grid of words,
    Dirichlet(0.3) document mixtures, 150 words a document."""
    topics = []
    for i in range(5):
        for horizontal in (True, False):
            grid = np.zeros((5, 5))
            if horizontal:
                grid[i, :] = 1
            else:
                grid[:, i] = 1
            topics.append(grid.ravel() / 5)
    beta = np.asarray(topics)
    rng = np.random.default_rng(seed)
    theta = rng.dirichlet(np.full(10, 0.3), size=documents)
    docs = [rng.multinomial(150, t @ beta) for t in theta]
    return np.asarray(docs, dtype=np.float32), beta


def batches(x: np.ndarray, size: int) -> list[np.ndarray]:
    return [x[i : i + size] for i in range(0, len(x), size)]


# --- the maths ----------------------------------------------------------------------------------


def test_loss_matches_a_hand_computation() -> None:
    torch.manual_seed(0)
    net = NTMNet(Architecture(feature_dim=3, num_topics=2, encoder_layers=(2,), activation="tanh"))
    with torch.no_grad():
        net.encoder[0].weight.copy_(torch.tensor([[0.1, -0.2, 0.3], [0.0, 0.5, -0.1]]))
        net.encoder[0].bias.copy_(torch.tensor([0.05, -0.05]))
        net.mu.weight.copy_(torch.tensor([[0.4, -0.3], [0.2, 0.1]]))
        net.mu.bias.copy_(torch.tensor([0.0, 0.1]))
        net.log_sigma2.weight.copy_(torch.tensor([[0.1, 0.2], [-0.2, 0.3]]))
        net.log_sigma2.bias.copy_(torch.tensor([-0.5, 0.2]))
        net.decoder.weight.copy_(torch.tensor([[1.0, -1.0], [0.5, 0.5], [-0.3, 0.8]]))
        net.decoder.bias.copy_(torch.tensor([0.1, 0.0, -0.1]))
    x = np.array([[2.0, 0.0, 1.0], [0.0, 3.0, 1.0]])
    eps = np.array([[0.5, -1.0], [0.0, 2.0]])

    def by_hand(row: np.ndarray, noise: np.ndarray | None) -> float:
        h = np.tanh(np.array([[0.1, -0.2, 0.3], [0.0, 0.5, -0.1]]) @ row + [0.05, -0.05])
        mu = np.array([[0.4, -0.3], [0.2, 0.1]]) @ h + [0.0, 0.1]
        ls2 = np.array([[0.1, 0.2], [-0.2, 0.3]]) @ h + [-0.5, 0.2]
        z = mu if noise is None else mu + np.exp(0.5 * ls2) * noise
        theta = np.exp(z) / np.exp(z).sum()
        logits = np.array([[1.0, -1.0], [0.5, 0.5], [-0.3, 0.8]]) @ theta + [0.1, 0.0, -0.1]
        log_p = logits - math.log(np.exp(logits).sum())
        kl = -0.5 * np.sum(1 + ls2 - mu**2 - np.exp(ls2))
        return float(-(row * log_p).sum() + kl)

    tensor = torch.tensor(x, dtype=torch.float32)
    sampled = net.loss(tensor, torch.tensor(eps, dtype=torch.float32)).total.detach().numpy()
    at_mean = net.loss(tensor).total.detach().numpy()
    np.testing.assert_allclose(
        sampled, [by_hand(r, e) for r, e in zip(x, eps, strict=True)], rtol=1e-5
    )
    np.testing.assert_allclose(at_mean, [by_hand(r, None) for r in x], rtol=1e-5)


def test_early_stopping_counts_consecutive_flat_epochs() -> None:
    stopper = EarlyStopping(tolerance=0.01, patience=2)
    assert [stopper.stop(v) for v in (100.0, 50.0, 49.9, 40.0, 39.99, 39.98)] == [
        False,
        False,
        False,
        False,
        False,
        True,
    ]


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_builds_and_lowers_the_loss(optimizer: str) -> None:
    torch.manual_seed(0)
    x = counts(1, 64)
    net = NTMNet(Architecture(12, 3, (8,)))
    trainer = Trainer(net, config(optimizer=optimizer, learning_rate=0.05), print)
    before = trainer.evaluate(iter(batches(x, 16)))
    for _ in range(5):
        trainer.epoch(iter(batches(x, 16)))
    assert trainer.evaluate(iter(batches(x, 16))) < before


def test_sub_sample_trains_on_that_fraction_of_documents() -> None:
    trainer = Trainer(NTMNet(Architecture(12, 3, (8,))), config(sub_sample=0.25), print)
    kept = sum(trainer._sub_sample(block).shape[0] for block in batches(counts(0, 4000), 100))
    assert 900 < kept < 1100


def test_an_epoch_that_sub_sample_empties_trains_nothing() -> None:
    trainer = Trainer(NTMNet(Architecture(12, 3, (8,))), config(sub_sample=1e-9), print)
    assert math.isnan(trainer.epoch(iter(batches(counts(0), 16))))


def test_gradients_are_rescaled_and_clipped() -> None:
    net = NTMNet(Architecture(12, 3, (8,)))
    trainer = Trainer(net, config(rescale_gradient=0.5, clip_gradient=0.01), print)
    net.loss(torch.tensor(counts(0))).total.mean().backward()
    raw = [p.grad.numpy().copy() for p in net.parameters()]
    trainer._adjust_gradients()
    for before, p in zip(raw, net.parameters(), strict=True):
        np.testing.assert_allclose(p.grad.numpy(), np.clip(before * 0.5, -0.01, 0.01), rtol=1e-6)


def test_same_seed_trains_the_same_model() -> None:
    def once() -> list[np.ndarray]:
        torch.manual_seed(0)
        net = NTMNet(Architecture(12, 3, (8, 6), batch_norm=True))
        trainer = Trainer(net, config(sub_sample=0.7), print)
        for _ in range(3):
            trainer.epoch(iter(batches(counts(2), 16)))
        return [v.numpy().copy() for v in net.state_dict().values()]

    for a, b in zip(once(), once(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_bars_topics_are_recovered() -> None:
    """1000 bars documents, 40 epochs: every true bar has a decoder topic (matched one to one,
    Hungarian) whose word weights correlate with it above 0.9 (mean above 0.95)."""
    x, beta = bars(1000)
    torch.manual_seed(0)
    net = NTMNet(Architecture(25, 10, (30, 20), activation="tanh"))
    trainer = Trainer(net, config(learning_rate=0.01), print)
    for _ in range(40):
        trainer.epoch(iter(batches(x, 32)))
    w = NTMModel(net).projection  # 25 words x 10 topics
    corr = np.corrcoef(np.vstack([w.T, beta]))[:10, 10:]
    rows, cols = linear_sum_assignment(-corr)
    matched = corr[rows, cols]
    assert matched.min() > 0.9, matched
    assert matched.mean() > 0.95, matched


def test_topic_uniqueness_and_top_words() -> None:
    assert topic_uniqueness([[0, 1], [2, 3]]) == 1.0
    assert topic_uniqueness([[0, 1], [0, 1]]) == 0.5
    w = np.array([[0.1, 0.9], [0.8, 0.2], [0.5, 0.0]])  # 3 words x 2 topics
    assert top_word_ids(w, 2) == [[1, 2], [0, 1]]


# --- the table ----------------------------------------------------------------------------------


def test_encoder_layers_take_auto_comma_and_the_sdks_json() -> None:
    base = {"feature_dim": "10", "num_topics": "4"}
    assert encoder_layers(TABLE.resolved(base)["encoder_layers"], 4) == [12, 8]
    for text in ("30,20", "[30, 20]", '["30", "20"]'):
        assert encoder_layers(
            TABLE.validate({**base, "encoder_layers": text})["encoder_layers"], 4
        ) == [30, 20]
    for bad in ("30,x", "0", "1.5"):
        with pytest.raises(HyperparameterError, match="'encoder_layers'"):
            TABLE.validate({**base, "encoder_layers": bad})
    with pytest.raises(HyperparameterError, match="'num_topics'"):
        TABLE.validate({**base, "num_topics": "1"})
    assert SPEC.tunable_objectives() == {"validation:total_loss": "Minimize"}


# --- the training program -----------------------------------------------------------------------


def job(
    base: Path,
    x: np.ndarray,
    hyperparameters: dict[str, str],
    channels: tuple[str, ...] = ("train",),
    vocab: list[str] | None = None,
) -> TrainingEnv:
    paths = MLPaths(base)
    for folder in paths.directories():
        folder.mkdir(parents=True, exist_ok=True)
    paths.hyperparameters_file.write_text(json.dumps(hyperparameters))
    paths.resource_config_file.write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]})
    )
    config: dict[str, dict[str, str]] = {}
    for name in channels:
        paths.channel(name).mkdir(parents=True, exist_ok=True)
        (paths.channel(name) / "part-0").write_bytes(encode_csv(x))
        config[name] = {"ContentType": CSV0}
    if vocab is not None:
        paths.channel("auxiliary").mkdir(parents=True, exist_ok=True)
        (paths.channel("auxiliary") / "vocab.txt").write_text("\n".join(vocab) + "\n")
        config["auxiliary"] = {"ContentType": "text/plain"}
    paths.input_data_config_file.write_text(json.dumps(config))
    return TrainingEnv.load(paths, SPEC)


def test_training_stops_early_and_logs_top_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hps = {"feature_dim": "12", "num_topics": "3", "epochs": "40", "mini_batch_size": "16",
           "tolerance": "0.1", "num_patience_epochs": "2"}  # fmt: skip
    vocab = [f"word{i}" for i in range(12)]
    env = job(tmp_path, counts(0), hps, ("train", "validation"), vocab)
    train(env)
    log = capsys.readouterr().out
    epochs = log.count("validation total_loss <loss>=")
    assert 3 <= epochs < 40
    assert "Early stopping after epoch" in log
    assert log.count("[topic ") == 3
    assert "[topic 0] word" in log
    assert "Topic uniqueness" in log
    assert "WETC" in log
    model = NTMModel.load(env.model_dir)
    from opensage.algorithms.artifacts import load_model

    arrays, meta = load_model(env.model_dir)
    assert arrays["projection_weight"].shape == (12, 3)
    assert meta["encoder_layers"] == [9, 6]
    theta = model.topic_weights(counts(0)[:4])
    np.testing.assert_allclose(theta.sum(axis=1), 1.0, rtol=1e-5)


def test_rows_wider_than_feature_dim_fail_clearly(tmp_path: Path) -> None:
    env = job(tmp_path, counts(0), {"feature_dim": "10", "num_topics": "3", "epochs": "1"})
    with pytest.raises(UserError, match=r"has 12 words .* feature_dim is 10"):
        train(env)


def test_a_vocabulary_of_the_wrong_size_fails_clearly(tmp_path: Path) -> None:
    hps = {"feature_dim": "12", "num_topics": "3", "epochs": "1"}
    env = job(tmp_path, counts(0), hps, vocab=["a", "b"])
    with pytest.raises(UserError, match=r"vocab\.txt has 2 words but feature_dim is 12"):
        train(env)


def test_negative_counts_are_refused_at_inference() -> None:
    handler = NTMHandler(NTMModel(NTMNet(Architecture(3, 2, (4,)))))
    with pytest.raises(InferenceError) as caught:
        handler.invoke(b"1,-2,3\n", "text/csv", "application/json", None)
    assert caught.value.status_code == 400
