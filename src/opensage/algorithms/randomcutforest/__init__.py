"""The Random Cut Forest built-in (SageMaker repository `randomcutforest`): anomaly scores from
a forest of random cut trees (Guha et al. 2016; spec algorithms §8).

Implemented: SageMaker's hyperparameters (`feature_dim`, `num_samples_per_tree`, `num_trees`,
`eval_metrics`, and `mini_batch_size` as the SDK sends it); CSV (`text/csv;label_size=0`) and
RecordIO-protobuf (dense or sparse) training in File or Pipe mode, streamed through a reservoir
sample with replacement (never holding the channel); trees of random cuts (a dimension with
probability proportional to its side, a uniform cut); the labelled `test` channel
(`text/csv;label_size=1` or RecordIO with labels) scored with the three-sigma rule, logging
`test:f1` (the tunable objective) and `accuracy` / `precision` / `recall` per `eval_metrics`;
inference in CSV, JSON, JSON Lines and RecordIO-protobuf answering `{"scores": [{"score": x}]}`,
JSON Lines `{"score": x}` or RecordIO `label.score`.

The score is rrcf's collusive displacement of the point inserted into each tree, in expectation
over the insertion's random cut (computed exactly, not sampled), averaged over the trees; it is
not rescaled. SageMaker's own scale is undocumented, so scores are comparable with rrcf's, not
with SageMaker's numbers. The model `model_algo-1` holds the trees as flat arrays in an `.npz`
archive (SageMaker's format is undocumented). Seeds are fixed: the same data give the same model.

Not implemented: training on more than one instance (InstanceCount > 1 fails with
`ClientError: Distributed Random Cut Forest training over N instances is not supported yet`),
and forests whose bounding boxes would exceed 1 GiB (about 2,600 features with the default
100 trees of 256 samples; the job fails saying what to lower).
"""
