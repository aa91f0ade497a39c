"""The Factorization Machines built-in (SageMaker image repository `factorization-machines`,
spec algorithms §7).

A second-order factorization machine (Rendle 2010) for regression (squared loss) or binary
classification (log loss on sigmoid(y), labels 0/1), trained in mini-batches on sparse
RecordIO-protobuf with SageMaker's per-term learning rates, weight decays and initialisations
for the bias, the linear weights and the factors. Every step costs O(nnz * num_factors): the
model equation uses Rendle's linear-time identity and only the rows of w and V that a batch uses
are read and updated (`model.localise`, `fit.LazyAdam`).

Implemented: every documented hyperparameter; the `train` and optional `test` channels in
RecordIO-protobuf (sparse or dense), File or Pipe mode; the `test:` metrics (rmse, or binary
accuracy, cross-entropy and F1 at 0.5); inference from JSON, JSON Lines and RecordIO-protobuf
(dense or sparse) answered in JSON, JSON Lines or RecordIO-protobuf, as Linear Learner answers.
CSV is refused, as SageMaker refuses it: training fails with a ClientError naming the content
types it takes, and a CSV request gets 415.

Not implemented: training on more than one instance (InstanceCount > 1 fails with a clear
ClientError); SageMaker's MXNet model file (`model_algo-1` is an npz zip with the same parameter
names `w0_weight`, `w1_weight`, `v`). The optimizer is MXNet's lazy Adam, which the spec does not
name; `eps` is its epsilon.
"""
