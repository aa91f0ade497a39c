"""The Object2Vec built-in (SageMaker repository `object2vec`): a general-purpose pair embedder
(spec algorithms §13), two encoders, a comparator and an MLP, in PyTorch (see `model`).

Implemented: every hyperparameter of SageMaker's table with its ranges, defaults and `auto`
(`enc{0,1}_layers`), and the rules across them (`enc1_vocab_size` / `enc1_max_seq_len` required
unless `enc1_network=enc0`, the vocabulary also mirrored with `tied_token_embedding_weight`, which
needs equal token embedding dims; `comparator_list` a subset of hadamard, concat, abs_diff, each
once; `negative_sampling_rate` only with softmax; the pretrained files in pairs). Encoders
`pooled_embedding`, `hcnn`, `bilstm`; shared encoders and tied token embeddings; `softmax`
(cross entropy) and `mean_squared_error` outputs; negative sampling; `bucket_width` length
bucketing; optimizers adam, adagrad, adadelta, sgd, rmsprop with `learning_rate` and
`weight_decay`; early stopping on the validation loss, keeping the best epoch. Channels `train`,
`validation`, `test` (JSON Lines `{"label": .., "in0": [ids], "in1": [ids]}`, File mode) and
`auxiliary` (GloVe-style text embeddings plus a JSON token -> id vocabulary per encoder, frozen
per `enc{0,1}_freeze_pretrained_embedding`). Metrics `validation:` / `test:` `accuracy`,
`cross_entropy` (softmax) and `mean_squared_error` (regression). Inference from JSON and JSON
Lines: scores of pairs, encoder embeddings of single sequences, `infer_max_seqlens`, and
`INFERENCE_PREFERRED_MODE` (see `serve`). A GPU is used when present; on the CPU training is
seeded and deterministic.

The model `model_algo-1` is an `.npz` archive of the torch state dict as numpy arrays plus the
architecture (SageMaker's format is undocumented); it loads without a GPU.

`token_embedding_storage_type=row_sparse` trains the token embeddings with sparse gradients
(torch's SparseAdam, Adagrad or SGD: only the rows of a mini-batch are updated; weight_decay
applies to the other parameters), and is refused with rmsprop or adadelta.

Not implemented: Pipe mode (a ClientError, as SageMaker's Object2Vec reads File mode only);
more than one instance. AdaDelta ignores `learning_rate`, as MXNet's does. The channels are read
whole into memory (token ids end to end, int32), not streamed. `hcnn` is stacked same-length
convolutions max-pooled over time (SageMaker does not document its hierarchy further).
"""
