"""The PCA built-in (SageMaker repository `pca`): principal components of the `train` channel.

Implemented: SageMaker's hyperparameters (`feature_dim`, `mini_batch_size`, `num_components`,
`algorithm_mode`, `subtract_mean`, `extra_components`), CSV (`text/csv;label_size=0`) and
RecordIO-protobuf (dense or sparse) training in File or Pipe mode, streamed in blocks:

* `regular`: one pass accumulating `sum x^T x` and `sum x`; the top eigenpairs of the covariance.
* `randomized`: SageMaker's random +-1 sketch `B = sum H_t X_t` in the first pass, then three
  streamed power-iteration passes and a Nystrom step (more accurate than the sketch's own SVD at
  about scikit-learn's randomized cost; see `model.fit_randomized`). Seeds are fixed.

The model `model_algo-1` holds `v` (features x components), `s` and `mean` (with
`subtract_mean`) in an `.npz` archive rather than an MXNet NDArray file. Components are ordered by
decreasing singular value (SageMaker's own order is undocumented). The optional `test` channel
is read for an informational log line; PCA declares no tunable metric.

Not implemented: training on more than one instance (InstanceCount > 1 fails with
`ClientError: Distributed PCA training over N instances is not supported yet`).
"""
