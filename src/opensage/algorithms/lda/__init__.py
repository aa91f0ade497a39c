"""The LDA built-in (SageMaker repository `lda`): topics of the `train` channel's word counts by
the spectral method of moments (Anandkumar et al., JMLR 2014; see `model`).

Implemented: SageMaker's hyperparameters (`num_topics`, `feature_dim`, `mini_batch_size` (the
corpus size; a mismatch is only logged), `alpha0`, `max_restarts`, `max_iterations`, `tol`),
RecordIO-protobuf (dense or sparse counts) training in File or Pipe mode and CSV
(`text/csv;label_size=0`) in File mode, streamed in two passes (kept in memory up to 1 GiB);
25 % extra topics found and the `num_topics` with the largest alpha kept; the `test:pwll`
metric on the optional `test` channel; inference from CSV, JSON, JSON Lines and RecordIO
answering `topic_mixture` (EM on each document's likelihood).

The model `model_algo-1` holds `alpha` (num_topics) and `beta` (num_topics x feature_dim, each
row a topic's word distribution) in an `.npz` archive rather than MXNet's `[alpha, beta]`
NDArray list.

Limits and refusals: the pair moment is a dense feature_dim x feature_dim matrix (fine up to a
few thousand words; it is not sketched); CSV in Pipe mode, negative or non-integer counts, and
rows wider than feature_dim fail the job with a ClientError; training on more than one
instance is refused (`max_instances` 1, as SageMaker's LDA is single-instance).
"""
