"""BlazingText training: read the channels' text, train word2vec or the classifier, log the
metrics and write the model directory (see `model`).

word2vec modes log `train:mean_rho` when `evaluation=True` and the `evaluation` channel gives
word pairs (else they say once that it is not computed) and write eval.json; supervised mode
logs `validation:accuracy` (fastText's precision@1) after each epoch and at the end when a
`validation` channel is given, and with `early_stopping` stops once it has not improved for
`patience` epochs (never before `min_epochs`), keeping the best epoch's model.

On the CPU training uses every core (`native.cpu_threads`; OMP_NUM_THREADS overrides), as
SageMaker's BlazingText does. Everything random is seeded, so the same job with one thread
(OMP_NUM_THREADS=1) trains the same model byte for byte; with several, the compiled loop's
Hogwild threads (fastText's scheme) make runs differ slightly, as fastText's do.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any, Final

import numpy as np
import torch

from opensage.algorithms.base import UserError
from opensage.algorithms.blazingtext import native
from opensage.algorithms.blazingtext.classifier import (
    ClassifierSettings,
    ClassifierTrainer,
    accuracy,
    parse_lines,
)
from opensage.algorithms.blazingtext.evaluation import case_insensitive, evaluate, read_pairs
from opensage.algorithms.blazingtext.model import EVAL_JSON, WordVectors, save_classifier
from opensage.algorithms.blazingtext.spec import SUPERVISED
from opensage.algorithms.blazingtext.text import Vocabulary, channel_lines
from opensage.algorithms.blazingtext.word2vec import (
    Settings,
    Word2Vec,
    configure_threads,
    encode_corpus,
)
from opensage.algorithms.env import ChannelReader, TrainingEnv, data_files

SEED: Final = 0
NO_EVALUATION: Final = (
    "No word-similarity file was given (the 'evaluation' channel), so train:mean_rho is not "
    "computed; opensage does not bundle WS-353: give its tsv (word1<TAB>word2<TAB>score) there."
)


def train(env: TrainingEnv) -> None:
    torch.manual_seed(SEED)
    if env["mode"] == SUPERVISED:
        train_classifier(env)
    else:
        train_word2vec(env)


def _lines(env: TrainingEnv, name: str) -> list[str] | None:
    reader = env.channel(name)
    if reader is None:
        return None
    lines = [line for line in channel_lines(reader) if line.strip()]
    if not lines:
        raise UserError(
            f"No data in channel '{name}': its files hold no text; BlazingText reads one "
            "space-tokenised sentence per line."
        )
    return lines


def _train_lines(env: TrainingEnv) -> list[str]:
    lines = _lines(env, "train")
    assert lines is not None  # required; TrainingEnv checked it
    return lines


# --- word2vec -----------------------------------------------------------------------------------


def train_word2vec(env: TrainingEnv) -> None:
    tokens = [line.split() for line in _train_lines(env)]
    counter = Counter(t for line in tokens for t in line)
    vocab = Vocabulary.build(counter, env["min_count"])
    if len(vocab) == 0:
        raise UserError(
            f"No word of channel 'train' occurs min_count={env['min_count']} times or more; "
            "lower min_count or give more text."
        )
    corpus = encode_corpus(tokens, vocab)
    env.log.info(
        f"Vocabulary: {len(vocab)} words (min_count={env['min_count']}) of {len(counter)}; "
        f"{corpus.size} training words"
    )
    settings = Settings(
        mode=env["mode"],
        dim=env["vector_dim"],
        window=env["window_size"],
        negatives=env["negative_samples"],
        threshold=env["sampling_threshold"],
        learning_rate=env["learning_rate"],
        epochs=env["epochs"],
        batch_size=env["batch_size"],
        subwords=env["subwords"],
        min_char=env["min_char"],
        max_char=env["max_char"],
        buckets=env["buckets"],
        seed=SEED,
        threads=native.cpu_threads(),
    )
    model = Word2Vec(settings, vocab)
    configure_threads(model.work())
    env.log.info(native.describe(model.native, model.device.type, settings.threads))
    model.train(corpus, env.log.info)
    vectors = WordVectors(
        vocab.words,
        model.word_vectors(),
        model.ngram_rows() if model.subwords is not None else None,
        model.subwords.bucket_ids if model.subwords is not None else None,
        settings.min_char,
        settings.max_char,
        settings.buckets,
    )
    vectors.save(env.model_dir)
    env.log.progress(settings.epochs, settings.epochs)
    if env["evaluation"]:
        report = word_similarity(env, vectors)
        (env.model_dir / EVAL_JSON).write_text(json.dumps(report, indent=2, sort_keys=True))


def word_similarity(env: TrainingEnv, vectors: WordVectors) -> dict[str, Any]:
    reader = env.channel("evaluation")
    if reader is None:
        env.log.info(NO_EVALUATION)
        return {"mean_rho": None, "note": NO_EVALUATION}
    files = _evaluation_files(reader)
    lowered = case_insensitive(vectors.words)

    def lookup(word: str) -> Any:
        i = lowered.get(word.lower())
        if i is not None:
            return vectors.vectors[i]
        return vectors.vector(word)

    report: dict[str, Any] = {}
    for path in files:
        entry = evaluate(read_pairs(path, reader.name), lookup)
        report[str(path.relative_to(reader.folder))] = entry
        env.log.info(
            f"{path.name}: Spearman's rho {entry['spearmans_rho']} over "
            f"{entry['total_pairs'] - entry['not_found']} of {entry['total_pairs']} pairs"
        )
    rhos = [e["spearmans_rho"] for e in report.values() if e["spearmans_rho"] is not None]
    mean = float(np.mean(rhos)) if rhos else math.nan
    if math.isnan(mean):
        env.log.info("train:mean_rho is not computed: no word pair has both words in the model")
        report["mean_rho"] = None
    else:
        env.log.quality("train", "mean_rho", mean, "Maximize")
        report["mean_rho"] = mean
    return report


def _evaluation_files(reader: ChannelReader) -> list[Any]:
    if reader.pipe:
        raise UserError(
            "Channel 'evaluation' is in Pipe mode: BlazingText reads word-similarity files in "
            "File mode only."
        )
    files = data_files(reader.folder) if reader.folder.is_dir() else []
    if not files:
        raise UserError(
            "Channel 'evaluation' holds no file: give a word-similarity file "
            "(word1<TAB>word2<TAB>score per line)."
        )
    return files


# --- supervised -----------------------------------------------------------------------------------


def train_classifier(env: TrainingEnv) -> None:
    labels, tokens = parse_lines(_train_lines(env))
    if not any(labels):
        raise UserError(
            "No line of channel 'train' has a label: supervised mode reads lines like "
            "'__label__positive some text' (or augmented-manifest records with a \"label\")."
        )
    validation = _lines(env, "validation")
    if env["early_stopping"] and validation is None:
        raise UserError(
            "early_stopping=True needs a 'validation' channel: it stops on validation accuracy."
        )
    settings = ClassifierSettings(
        dim=env["vector_dim"],
        learning_rate=env["learning_rate"],
        epochs=env["epochs"],
        word_ngrams=env["word_ngrams"],
        buckets=env["buckets"],
        min_count=env["min_count"],
        seed=SEED,
        threads=native.cpu_threads(),
    )
    trainer = ClassifierTrainer(settings, tokens, labels)
    configure_threads(trainer.batch * 20 * settings.dim * 3)
    env.log.info(native.describe(trainer.native, trainer.device.type, settings.threads))
    env.log.info(
        f"Vocabulary: {len(trainer.vocab)} words, {len(trainer.label_names)} labels, "
        f"{len(trainer.featurizer.bucket_ids)} word n-gram buckets in use"
    )
    held = parse_lines(validation) if validation is not None else None
    best: tuple[float, Any] | None = None
    waited = 0
    for epoch in range(settings.epochs):
        trainer.epoch(epoch)
        env.log.progress(epoch + 1, settings.epochs)
        if held is None:
            continue
        score = accuracy(trainer.model(), held[1], held[0])
        env.log.info(f"Epoch {epoch + 1}: validation accuracy {score:.4f}")
        if not env["early_stopping"]:
            continue
        if best is None or score > best[0]:
            best, waited = (score, trainer.model()), 0
        else:
            waited += 1
        if waited >= env["patience"] and epoch + 1 >= env["min_epochs"]:
            env.log.info(
                f"Early stopping after epoch {epoch + 1}: validation accuracy has not improved "
                f"for {waited} epochs (patience {env['patience']}); keeping the best, "
                f"{best[0]:.4f}"
            )
            break
    model = best[1] if best is not None else trainer.model()
    save_classifier(env.model_dir, model)
    if held is not None:
        score = accuracy(model, held[1], held[0])
        if math.isnan(score):
            env.log.info("validation:accuracy is not computed: no validation line has a label")
        else:
            env.log.quality("validation", "accuracy", score, "Maximize")
