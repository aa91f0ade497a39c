"""The seq2seq built-in: BLEU against sacrebleu and hand computations, every architecture's
shapes, beam search against greedy decoding, attention matrices, truncation, vocabulary and
record errors, the learning-rate schedules, determinism, and the quality check: digit-sequence
reversal learned to validation BLEU >= 0.9 on the CPU."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from opensage.algorithms.base import HyperparameterError, UserError  # noqa: E402
from opensage.algorithms.env import TrainingEnv  # noqa: E402
from opensage.algorithms.ntm.model import configure_threads  # noqa: E402
from opensage.algorithms.seq2seq.bleu import corpus_bleu  # noqa: E402
from opensage.algorithms.seq2seq.data import (  # noqa: E402
    encode_records,
    read_pairs,
    read_sources,
    vocabulary_from_mapping,
)
from opensage.algorithms.seq2seq.decoding import (  # noqa: E402
    Seq2SeqModel,
    beam_search,
    greedy,
    source_batch,
    target_batch,
)
from opensage.algorithms.seq2seq.model import (  # noqa: E402
    EOS,
    Architecture,
    Seq2SeqNet,
    initialize,
)
from opensage.algorithms.seq2seq.serve import Seq2SeqHandler, load  # noqa: E402
from opensage.algorithms.seq2seq.spec import SPEC, TABLE  # noqa: E402
from opensage.algorithms.seq2seq.train import Trainer, train  # noqa: E402
from opensage.contract import MLPaths  # noqa: E402
from opensage.serving.errors import InferenceError  # noqa: E402
from tests.algorithms.cases_seq2seq import VOCAB, reversal  # noqa: E402

JSON = "application/json"
RECORDIO = "application/x-recordio-protobuf"
DIGITS = {"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3, **{str(d): d + 4 for d in range(10)}}


@pytest.fixture(autouse=True)
def _threads_for_tiny_networks() -> None:
    configure_threads(0)


def arch(**changes: Any) -> Architecture:
    base: dict[str, Any] = {
        "source_vocab": 12,
        "target_vocab": 12,
        "rnn_num_hidden": 8,
        "rnn_attention_num_hidden": 6,
        "cnn_num_hidden": 8,
        "num_embed_source": 4,
        "num_embed_target": 4,
        "max_seq_len_source": 10,
        "max_seq_len_target": 10,
    }
    return Architecture(**{**base, **changes})


def net_of(a: Architecture, seed: int = 0) -> Seq2SeqNet:
    torch.manual_seed(seed)
    net = Seq2SeqNet(a)
    initialize(net, "xavier", 2.34, "in")
    return net.eval()


SOURCES = [np.array(s) for s in ([4, 5, 6], [7, 8, 9, 10, 11], [5], [11, 4, 6, 8])]


# --- BLEU -------------------------------------------------------------------------------------


def test_bleu_matches_hand_computed_values() -> None:
    assert corpus_bleu([[1, 2, 3, 4, 5]], [[1, 2, 3, 4, 5]]) == pytest.approx(1.0)
    # every precision 1, hypothesis 4 tokens for a reference of 6: brevity penalty e^(1-6/4)
    assert corpus_bleu([list("abcd")], [list("abcdef")]) == pytest.approx(math.exp(-0.5))
    # 1-grams 4/5, 2-grams 2/4, 3-grams 1/3, no 4-gram match: exp smoothing 1/(2 * 2)
    expected = math.exp((math.log(0.8) + math.log(0.5) + math.log(1 / 3) + math.log(0.25)) / 4)
    assert corpus_bleu([list("abcde")], [list("abcxe")]) == pytest.approx(expected)
    # no hypothesis has a 4-gram: BLEU is 0, as sacrebleu's corpus score
    assert corpus_bleu([list("abc")], [list("abc")]) == 0.0
    assert corpus_bleu([[]], [[1, 2]]) == 0.0


def test_bleu_matches_sacrebleu() -> None:
    sacrebleu = pytest.importorskip("sacrebleu")
    hypotheses = [
        "the cat sat on the mat",
        "a b c",
        "x y",
        "one two three four five six",
        "nothing matches here at all",
    ]
    references = [
        "the cat sat on a mat",
        "a b c d",
        "x y z w",
        "one two three four five six",
        "completely different words in reference",
    ]
    for count in (1, 2, 4, 5):
        ours = corpus_bleu(
            [h.split() for h in hypotheses[:count]], [r.split() for r in references[:count]]
        )
        theirs = sacrebleu.corpus_bleu(hypotheses[:count], [references[:count]]).score / 100
        assert ours == pytest.approx(theirs, abs=1e-9)


# --- networks and decoding --------------------------------------------------------------------


VARIANTS = [
    {},
    {"rnn_cell_type": "gru", "rnn_attention_type": "dot", "rnn_decoder_state_init": "avg"},
    {"rnn_attention_type": "bilinear", "rnn_decoder_state_init": "zero"},
    {"rnn_attention_type": "fixed", "rnn_attention_in_upper_layers": False},
    {
        "num_layers_encoder": 3,
        "num_layers_decoder": 3,
        "rnn_residual_connections": True,
        "rnn_first_residual_layer": 2,
    },
    {"encoder_type": "cnn", "decoder_type": "cnn", "num_layers_encoder": 2},
    {"encoder_type": "cnn", "cnn_activation_type": "relu", "rnn_attention_type": "dot"},
    {"decoder_type": "cnn", "cnn_activation_type": "softrelu", "num_layers_decoder": 2},
    {"encoder_type": "cnn", "decoder_type": "cnn", "cnn_activation_type": "tanh"},
    {"encoder_type": "cnn", "decoder_type": "cnn", "cnn_activation_type": "sigmoid"},
]


@pytest.mark.parametrize("changes", VARIANTS, ids=[str(i) for i in range(len(VARIANTS))])
def test_every_architecture_trains_and_decodes(changes: dict[str, Any]) -> None:
    a = arch(**changes)
    net = net_of(a).train()
    source, lengths = source_batch(SOURCES, torch.device("cpu"))
    target_in, target_out = target_batch([s[::-1] for s in SOURCES], torch.device("cpu"))
    logits = net(source, lengths, target_in)
    assert logits.shape == (4, 6, 12)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 12), target_out.reshape(-1))
    loss.backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    net.eval()
    for found in (greedy(net, SOURCES, 10), beam_search(net, SOURCES, 3, 10)):
        assert len(found) == 4
        for source, translation in zip(SOURCES, found, strict=True):
            assert len(translation.ids) <= 10
            assert EOS not in translation.ids
            assert translation.attention.shape == (len(translation.ids), len(source))


@pytest.mark.parametrize("changes", [{}, {"encoder_type": "cnn", "decoder_type": "cnn"}])
def test_beam_search_of_width_one_is_greedy_decoding(changes: dict[str, Any]) -> None:
    net = net_of(arch(**changes), seed=3)
    greedy_found = greedy(net, SOURCES, 10)
    beam_found = beam_search(net, SOURCES, 1, 10)
    assert [t.ids for t in beam_found] == [t.ids for t in greedy_found]
    for b, g in zip(beam_found, greedy_found, strict=True):
        np.testing.assert_allclose(b.attention, g.attention, rtol=1e-5, atol=1e-6)


def test_decoding_a_sentence_does_not_depend_on_its_batch() -> None:
    net = net_of(arch(), seed=1)
    together = beam_search(net, SOURCES, 3, 10)
    alone = [beam_search(net, [s], 3, 10)[0] for s in SOURCES]
    assert [t.ids for t in together] == [t.ids for t in alone]


def test_attention_rows_are_distributions_over_the_source() -> None:
    net = net_of(arch(), seed=2)
    for translation in greedy(net, SOURCES, 10):
        if translation.ids:
            # rows leave out the appended </s>, so each sums to at most 1
            assert (translation.attention.sum(axis=1) <= 1 + 1e-5).all()
            assert (translation.attention >= 0).all()


# --- data ------------------------------------------------------------------------------------


def test_vocabularies_load_in_id_order_and_bad_ones_are_refused() -> None:
    assert vocabulary_from_mapping(VOCAB, "v.json")[:5] == ["<pad>", "<unk>", "<s>", "</s>", "0"]
    with pytest.raises(UserError, match=r"token <unk> must have id 1"):
        vocabulary_from_mapping({"<pad>": 0, "<s>": 1, "<unk>": 2, "</s>": 3}, "v.json")
    with pytest.raises(UserError, match=r"ids must be 0\.\.12"):
        vocabulary_from_mapping({**VOCAB, "x": 99}, "v.json")
    with pytest.raises(UserError, match=r"each used once"):
        vocabulary_from_mapping({"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3, "a": 3}, "v.json")
    with pytest.raises(UserError, match=r"not an integer"):
        vocabulary_from_mapping({"<pad>": "0"}, "v.json")
    with pytest.raises(UserError, match=r"non-empty JSON object"):
        vocabulary_from_mapping([1, 2], "v.json")


def test_records_are_truncated_and_ids_outside_the_vocabulary_refused(tmp_path: Path) -> None:
    folder = tmp_path / "train"
    folder.mkdir()
    (folder / "a.rec").write_bytes(
        encode_records({"source": [[4, 5, 6, 7, 8]], "target": [[8, 7, 6, 5, 4]]})
    )
    pairs = read_pairs(folder, "train", (12, 12), (3, 2))
    assert pairs.sources[0].tolist() == [4, 5, 6]
    assert pairs.targets[0].tolist() == [8, 7]
    (folder / "b.rec").write_bytes(encode_records({"source": [[4]], "target": [[12]]}))
    with pytest.raises(UserError, match=r"target id 12 is outside vocab\.trg\.json"):
        read_pairs(folder, "train", (12, 12), (3, 3))
    (folder / "b.rec").write_bytes(encode_records({"source": [[4]]}))
    with pytest.raises(UserError, match=r"no features\['target'\]"):
        read_pairs(folder, "train", (12, 12), (3, 3))
    (folder / "b.rec").write_bytes(b"not recordio at all")
    with pytest.raises(UserError, match=r"Could not read file 'b\.rec' of channel 'train'"):
        read_pairs(folder, "train", (12, 12), (3, 3))


def test_the_table_refuses_an_odd_rnn_num_hidden_and_zero_max_num_batches() -> None:
    with pytest.raises(HyperparameterError, match=r"^Hyperparameter 'rnn_num_hidden'.*even"):
        TABLE.validate({"rnn_num_hidden": "15"})
    with pytest.raises(HyperparameterError, match=r"^Hyperparameter 'max_num_batches'"):
        TABLE.validate({"max_num_batches": "0"})
    assert TABLE.resolved({})["rnn_num_hidden"] == 1024
    assert [c.name for c in SPEC.channels if c.required] == ["train", "validation", "vocab"]


# --- serving ---------------------------------------------------------------------------------


def handler_of(a: Architecture, tmp_path: Path, beam: int = 2) -> Seq2SeqHandler:
    vocab = list(VOCAB)
    Seq2SeqModel(net_of(a), vocab, vocab, beam).save(tmp_path)
    return load(tmp_path)


def test_attention_matrix_is_target_by_source_and_sources_are_truncated(tmp_path: Path) -> None:
    handler = handler_of(arch(max_seq_len_source=4), tmp_path)
    body = {
        "instances": [
            {"data": "1 2 3", "configuration": {"attention_matrix": "true"}},
            {"data": "1 2 zz 3 4 5 6", "configuration": {"attention_matrix": True}},
            {"data": "1 2"},
        ]
    }
    result = handler.invoke(json.dumps(body).encode(), JSON, JSON, None)
    rows = json.loads(result.body)["predictions"]
    assert set(rows[2]) == {"target"}
    for row, width in zip(rows[:2], (3, 4), strict=True):
        words = row["target"].split()
        assert np.asarray(row["matrix"]).reshape(len(words), -1).shape == (len(words), width)
        assert all(w in VOCAB for w in words)


def test_requests_in_every_type_agree_and_mismatched_accept_is_406(tmp_path: Path) -> None:
    handler = handler_of(arch(), tmp_path)
    sentences = ["1 2 3", "7 6 5 4"]
    instances = {"instances": [{"data": s} for s in sentences]}
    as_json = json.loads(handler.invoke(json.dumps(instances).encode(), JSON, JSON, None).body)
    lines = "".join(json.dumps({"source": s}) + "\n" for s in sentences).encode()
    as_lines = handler.invoke(lines, "application/jsonlines", None, None)
    assert as_lines.content_type == "application/jsonlines"
    assert [json.loads(x) for x in as_lines.body.splitlines()] == as_json["predictions"]
    ids = [[VOCAB[w] for w in s.split()] for s in sentences]
    as_records = handler.invoke(encode_records({"source": ids}), RECORDIO, RECORDIO, None)
    targets = read_sources(encode_records({"source": []})) or []
    assert targets == []
    from opensage.formats.tensors import read_record_messages

    decoded = [
        list(r.features["target"].int32_tensor.values)
        for r in read_record_messages(as_records.body)
    ]
    words = list(VOCAB)
    assert [" ".join(words[i] for i in t) for t in decoded] == [
        p["target"] for p in as_json["predictions"]
    ]
    for accept in (RECORDIO, "text/csv"):
        with pytest.raises(InferenceError) as caught:
            handler.invoke(json.dumps(instances).encode(), JSON, accept, None)
        assert caught.value.status_code == 406
    with pytest.raises(InferenceError) as caught:
        handler.invoke(b"1,2,3", "text/csv", "text/csv", None)
    assert caught.value.status_code == 415
    for bad in (b'{"instances": [{"data": 5}]}', b"[1, 2]", b"{not json"):
        with pytest.raises(InferenceError) as caught:
            handler.invoke(bad, JSON, JSON, None)
        assert caught.value.status_code == 400


# --- training ----------------------------------------------------------------------------------


def job(
    base: Path,
    hyperparameters: dict[str, str],
    train_pairs: dict[str, list[list[int]]],
    validation: dict[str, list[list[int]]],
    vocab: dict[str, int] | None = None,
    vocab_files: tuple[str, ...] = ("vocab.src.json", "vocab.trg.json"),
) -> TrainingEnv:
    paths = MLPaths(base)
    for folder in paths.directories():
        folder.mkdir(parents=True, exist_ok=True)
    paths.hyperparameters_file.write_text(json.dumps(hyperparameters))
    paths.resource_config_file.write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]})
    )
    for name, data in (("train", train_pairs), ("validation", validation)):
        paths.channel(name).mkdir(parents=True, exist_ok=True)
        (paths.channel(name) / f"{name}.rec").write_bytes(encode_records(data))  # type: ignore[arg-type]
    paths.channel("vocab").mkdir(parents=True, exist_ok=True)
    for name in vocab_files:
        (paths.channel("vocab") / name).write_text(json.dumps(vocab or DIGITS))
    config = {name: {"TrainingInputMode": "File"} for name in ("train", "validation", "vocab")}
    paths.input_data_config_file.write_text(json.dumps(config))
    return TrainingEnv.load(paths, SPEC)


TINY = {
    "rnn_num_hidden": "16",
    "num_embed_source": "8",
    "num_embed_target": "8",
    "batch_size": "16",
    "checkpoint_frequency_num_batches": "5",
    "max_num_batches": "10",
    "learning_rate": "0.01",
}


def test_a_missing_vocabulary_file_or_an_id_outside_it_fails_clearly(tmp_path: Path) -> None:
    data = reversal(0, 20)
    env = job(tmp_path / "a", TINY, data, data, vocab_files=("vocab.src.json",))
    with pytest.raises(UserError, match=r"Channel 'vocab' holds no vocab\.trg\.json"):
        train(env)
    small = {"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3, "x": 4}
    env = job(tmp_path / "b", TINY, data, data, vocab=small)
    with pytest.raises(UserError, match=r"source id \d+ is outside vocab\.src\.json"):
        train(env)


def test_a_missing_channel_is_refused(tmp_path: Path) -> None:
    data = reversal(0, 20)
    env_paths = job(tmp_path, TINY, data, data).paths
    config = json.loads(env_paths.input_data_config_file.read_text())
    del config["vocab"]
    env_paths.input_data_config_file.write_text(json.dumps(config))
    import shutil

    shutil.rmtree(env_paths.channel("vocab"))
    with pytest.raises(UserError, match=r"Channel 'vocab' is required"):
        TrainingEnv.load(env_paths, SPEC)


def test_training_is_deterministic_and_stops_at_max_num_batches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, validation = reversal(0, 60), reversal(1, 10)
    models = []
    for run in ("one", "two"):
        env = job(tmp_path / run, {**TINY, "embed_dropout_source": "0.1"}, data, validation)
        train(env)
        models.append((env.model_dir / "model_algo-1").read_bytes())
        assert (env.model_dir / "vocab.trg.json").exists()
    assert models[0] == models[1]
    log = capsys.readouterr().out
    assert log.count("train perplexity <loss>=") == 4  # checkpoints at 5 and 10 updates, twice
    assert "Stopping: max_num_batches=10" in log


def test_checkpoint_threshold_stops_and_schedules_change_the_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = reversal(0, 32)
    hps = {**TINY, "max_num_batches": "-1", "checkpoint_frequency_num_batches": "1",
           "learning_rate": "1e-9", "checkpoint_threshold": "2",
           "optimized_metric": "accuracy"}  # fmt: skip
    env = job(tmp_path / "a", hps, data, data)
    train(env)  # a rate too small to improve accuracy: stops after a few checkpoints
    log = capsys.readouterr().out
    assert "Stopping: no improvement of validation accuracy for 2 checkpoints" in log
    assert log.count("validation accuracy <score>=") <= 10
    for kind, half in (("fixed_rate_inv_t", 0.5), ("fixed_rate_inv_sqrt_t", 0.5)):
        env = job(tmp_path / kind, {**TINY, "lr_scheduler_type": kind,
                                    "fixed_rate_lr_half_life": "4"}, data, data)  # fmt: skip
        trainer = Trainer(net_of(arch(source_vocab=14, target_vocab=14, rnn_num_hidden=16)), env)
        trainer.schedule(4, 0)
        assert trainer.learning_rate == pytest.approx(0.01 * half)
    env = job(tmp_path / "plateau", {**TINY, "plateau_reduce_lr_threshold": "2"}, data, data)
    trainer = Trainer(net_of(arch(source_vocab=14, target_vocab=14, rnn_num_hidden=16)), env)
    trainer.schedule(1, 1)
    assert trainer.learning_rate == pytest.approx(0.01)
    trainer.schedule(2, 2)
    assert trainer.learning_rate == pytest.approx(0.005)


def test_digit_reversal_is_learned_to_bleu_0_9(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Done-when 2 of issue 10: digits, lengths 3-8, reversed; validation BLEU >= 0.9."""

    def digits(seed: int, count: int) -> dict[str, list[list[int]]]:
        rng = np.random.default_rng(seed)
        sources = [rng.integers(4, 14, size=rng.integers(3, 9)) for _ in range(count)]
        return {
            "source": [s.tolist() for s in sources],
            "target": [s[::-1].tolist() for s in sources],
        }

    hps = {"rnn_num_hidden": "32", "num_embed_source": "16", "num_embed_target": "16",
           "batch_size": "32", "checkpoint_frequency_num_batches": "50",
           "max_num_batches": "200", "learning_rate": "0.01", "bleu_sample_size": "-1",
           "optimized_metric": "bleu", "beam_size": "1"}  # fmt: skip
    env = job(tmp_path, hps, digits(0, 2000), digits(1, 100))
    train(env)
    log = capsys.readouterr().out
    final = re.findall(r"validation bleu <score>=(\S+)", log)[-1]
    assert float(final) >= 0.9, log
    handler = load(env.model_dir)
    request = {"instances": [{"data": "1 2 3 4 5"}, {"data": "9 8 7 0 0 1"}]}
    result = handler.invoke(json.dumps(request).encode(), JSON, JSON, None)
    targets = [p["target"] for p in json.loads(result.body)["predictions"]]
    assert targets == ["5 4 3 2 1", "1 0 0 7 8 9"]
