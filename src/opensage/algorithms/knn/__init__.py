"""The k-NN built-in (SageMaker's `knn` image): k-nearest-neighbour classification and
regression over a sampled index of the training data (spec algorithms §5).

Implemented: every hyperparameter of SageMaker's table; reservoir sampling of `sample_size`
training rows; sign and FJLT dimension reduction; the FAISS index types `faiss.Flat` (exact,
BLAS), `faiss.IVFFlat` and `faiss.IVFPQ` (k-means coarse quantiser, product quantisation), all
in numpy, with the L2, INNER_PRODUCT and COSINE metrics; `test:accuracy` / `test:mse` on the
test channel; SageMaker's three model files (the index file is an opensage npz, not a FAISS
index); inference in CSV, JSON, JSON Lines and RecordIO-protobuf with `verbose=true`.

Not implemented: training on several instances (the job is refused with a message to set
InstanceCount to 1), and reading or writing FAISS's own index format. IVF indexes choose how
many lists to search (`nprobe`, written to `model_algo-1.json` and editable there) at training,
for 95 % recall of the exact neighbours.
"""
