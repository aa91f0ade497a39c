"""The Neural Topic Model built-in (SageMaker repository `ntm`): a variational autoencoder over
bags of words (NVDM / ProdLDA style, spec algorithms §12; see `model`), in PyTorch.

Implemented: SageMaker's hyperparameters (`feature_dim`, `num_topics`, `batch_norm`,
`clip_gradient`, `encoder_layers` (`auto` = [3K, 2K], a comma list or the SDK's JSON list),
`encoder_layers_activation`, `epochs`, `learning_rate`, `mini_batch_size`,
`num_patience_epochs`, `optimizer` (adagrad, adam, rmsprop, sgd, adadelta), `rescale_gradient`,
`sub_sample`, `tolerance`, `weight_decay`); `train` with optional `validation` and `test`
channels in RecordIO-protobuf (dense or sparse) or CSV (`text/csv;label_size=0`), File or Pipe,
read one mini-batch at a time; early stopping on the validation (else training) loss; the
metrics `validation:total_loss` (tunable, minimised), `train:total_loss` and `test:total_loss`;
an `auxiliary` channel (`text/plain`, `vocab.txt`) that logs each topic's top words and the topic
uniqueness; inference from CSV, JSON, JSON Lines and RecordIO answering `topic_weights`
(`softmax(mu)`). A GPU is used when present; on the CPU training is seeded and deterministic.

The model `model_algo-1` is an `.npz` archive (not MXNet's zip of `params`) holding the torch
state dict as numpy arrays and `projection_weight`, the decoder W (vocab x topics, each column
a topic: SageMaker's `arg:projection_weight`); it loads without a GPU.

Not implemented: WETC (it needs pretrained word embeddings; the log says it is not computed);
`clip_gradient=Infinity` as a string (leave it out for no clipping); the auxiliary channel in
Pipe mode (a ClientError); training on more than one instance (refused, as for the other
single-instance built-ins here). AdaDelta ignores `learning_rate`, as MXNet's does.
"""
