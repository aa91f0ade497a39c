"""The BlazingText built-in (SageMaker repository `blazingtext`, spec algorithms §10): word2vec
(`cbow`, `skipgram`, `batch_skipgram`) and fastText-style text classification (`supervised`).
On the CPU every mode trains with fastText's own per-example loop, compiled from `_fasttext.c`
at install time (Hogwild threads on every core; see `native`); on a GPU, and on a CPU where the
module could not be built, with PyTorch (the `deep` extra). Seeded: one thread
(OMP_NUM_THREADS=1) trains the same model every time; several threads vary slightly, as
fastText's do.

Implemented: SageMaker's hyperparameters (`mode`, `vector_dim`, `window_size`,
`negative_samples`, `min_count`, `sampling_threshold`, `learning_rate`, `epochs`,
`batch_size`, `subwords`, `min_char`, `max_char`, `buckets`, `evaluation`, `word_ngrams`,
`early_stopping`, `patience`, `min_epochs`); negative sampling from the unigram^0.75 table,
word2vec's subsampling and random window shrink, fastText's linearly decaying learning rate,
character n-gram subwords with fastText's FNV-1a hash and `<`/`>` marks, batch_skipgram's
negative-sample sharing (Ji et al. 2016; see `word2vec`); the fastText classifier with hashed
word n-grams, a softmax over the labels (a multi-label line trains on one of its labels drawn at
random, fastText's softmax rule, not one-vs-all) and early stopping on validation accuracy
(which needs the `validation` channel: early_stopping=True without it fails the job clearly; see
`classifier`). Channels: `train` (and `validation` for supervised) as `text/plain` lines
(`__label__x` tokens anywhere in a line) or augmented-manifest JSON Lines
(`application/jsonlines`, `{"source": "...", "label": 1}` or `"label": [1, 3]`), File or Pipe.

train:mean_rho: SageMaker computes it on WS-353, which it bundles; opensage does not
redistribute WS-353. Instead an optional `evaluation` channel (text/plain or text/csv) holds
word-similarity files, lines `word1<TAB or comma>word2<TAB or comma>score` with `#` comments
(WS-353's tsv as it is). With `evaluation=True` and that channel the job logs `train:mean_rho`
(Spearman's rho over the pairs whose words have a vector) and writes eval.json in SageMaker's
layout; without the channel it logs once that no word-similarity file was given and mean_rho is
not computed, and eval.json says so. `validation:accuracy` is fastText's precision@1.

Artifacts: word2vec `vectors.txt` (word2vec text format, gensim's `load_word2vec_format`),
`vectors.bin` (word2vec's binary format, `binary=True`; NOT fastText's .bin), `eval.json`, and
with subwords `subwords.npz` (n-gram rows, so served out-of-vocabulary words get vectors);
supervised `model.bin` in opensage's own format (see `model`). Inference: see `serve`.

Not implemented: fastText's .bin format (model.bin is not readable by `fasttext.load_model`, and
hosting a fastText .bin fails with a clear "not supported yet" error); fastText's `</s>`
end-of-line token; training on several instances (batch_skipgram's multi-CPU distribution is
refused, as for the other single-instance built-ins); the evaluation channel in Pipe mode (a
ClientError).
"""
