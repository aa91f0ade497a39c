"""The Sequence-to-Sequence built-in (SageMaker repository `seq2seq`): Sockeye-style RNN and
ConvS2S-style CNN encoder-decoders with attention (spec algorithms §14), in PyTorch.

Implemented: every hyperparameter of SageMaker's table with its default and valid values
(`rnn_num_hidden` even); the three required channels `train` and `validation`
(RecordIO-protobuf records of int32 `features["source"]` / `features["target"]` ids) and `vocab`
(`vocab.src.json`, `vocab.trg.json`: token -> id with `<pad>`=0, `<unk>`=1, `<s>`=2, `</s>`=3),
File mode; truncation to `max_seq_len_source/target`; length buckets (`bucketing_enabled`,
`bucket_width`); RNN encoders (bidirectional first layer, LSTM or GRU, residual connections) and
CNN encoders (positional embeddings, GLU or other activations), RNN decoders with `dot`, `mlp`,
`bilinear` or `fixed` attention, input feeding and `last` / `avg` / `zero` state init, CNN
decoders (causal convolutions with attention); Xavier or uniform initialisation; Adam, SGD
(with `momentum`) or RMSProp with weight decay, element-wise gradient clipping and the three
learning-rate schedules; checkpoints every `checkpoint_frequency_num_batches` updates logging
`train:perplexity`, `validation:perplexity`, `validation:accuracy` and `validation:bleu`
(corpus BLEU-4 as sacrebleu's, on `bleu_sample_size` decoded sentences), keeping the best by
`optimized_metric` and stopping as SageMaker's does; inference by beam search from JSON (with
attention matrices), JSON Lines and RecordIO-protobuf. A GPU is used when present; on the CPU
training is seeded and deterministic.

The model `model_algo-1` is an `.npz` archive (not Sockeye's params file) holding the torch state
dict as numpy arrays, the architecture, `beam_size` and both vocabularies; `vocab.src.json` and
`vocab.trg.json` are written beside it. It loads without a GPU.

Not implemented: Pipe mode (SageMaker's seq2seq is File only; refused); training on more than
one instance (refused, as SageMaker's is single instance); `training_metric=accuracy` changes
nothing but the log (train accuracy is always logged as information). `clip_gradient` of 0 or
less disables clipping. `loss_type` has one value, `cross-entropy`, as SageMaker's.
"""
