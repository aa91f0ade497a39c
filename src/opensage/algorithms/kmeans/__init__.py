"""The K-Means built-in (image repository `kmeans`): SageMaker's web-scale k-means.

Training (`train.py`, core in `model.py`): Sculley's mini-batch k-means with
`k · extra_center_factor` centres seeded from the first mini-batch (random or k-means++), a
per-centre learning rate of 1/count with the optional `half_life_time_size` decay, over
`epochs` passes; then local Lloyd's, weighted by the centres' counts, reduces them to k
(best of `local_lloyd_num_trials`). CSV (`text/csv;label_size=0`) or RecordIO-protobuf, dense
or sparse, File or Pipe mode. It logs `train msd`, and `test msd` / `test ssd` per
`eval_metrics` when a `test` channel is given.

Serving (`serve.py`): CSV, JSON, JSON Lines and RecordIO-protobuf requests; JSON, JSON Lines,
RecordIO-protobuf and CSV answers with `closest_cluster` and `distance_to_cluster`.

Not implemented yet: training on several instances (a job with InstanceCount > 1 fails with
"Distributed K-Means training over N instances is not supported yet"), and the MXNet NDArray
file SageMaker writes as `model_algo-1` (ours is the numpy archive of `artifacts.py` holding
the same centroids, so a model trained by SageMaker itself, or written with `mx.nd.save`, is
refused at load with "not an opensage model file").
"""
