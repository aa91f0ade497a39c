"""The Linear Learner built-in (SageMaker image repository `linear-learner`, spec algorithms §2).

Linear models for binary classification (logistic or hinge loss), multiclass classification
(softmax) and regression (squared, absolute, Huber, quantile and epsilon-insensitive losses),
trained by mini-batch SGD, Adam or RMSProp. As SageMaker does, `num_models` models with
different learning rates and L1/L2 strengths are trained together (one stacked weight matrix, so
a mini-batch costs one matmul for all of them) and the best one on the validation channel (or on
a sample of the training rows) is kept; a binary classifier's decision threshold is calibrated
there for `binary_classifier_model_selection_criteria`. Features (and regression labels) are
normalised automatically, and early stopping watches the selection loss.

Implemented: every documented hyperparameter, the train / validation / test channels in CSV or
RecordIO-protobuf (dense or sparse), File and Pipe mode, every documented metric, inference in
CSV / JSON / JSON Lines / RecordIO-protobuf with JSON / JSON Lines / RecordIO-protobuf answers.

Not implemented: distributed training over several instances (the job fails with a clear
ClientError asking for InstanceCount=1); centring sparse data (`unbias_data=true` on sparse
records is refused: it would make the data dense). The model file is an npz zip
(`opensage.algorithms.artifacts`), not SageMaker's MXNet module zip.
"""
