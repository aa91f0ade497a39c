"""The built-in XGBoost algorithm, algorithm mode: the training program of the container.

It mimics the open-source `aws/sagemaker-xgboost-container`: the platform runs
`python -m opensage.algorithms.xgboost train` with `SAGEMAKER_BASE_DIR` naming the job's `/opt/ml`
tree. Modules, from cheap to heavy (the cheap ones import no ML library, so the API can reuse them):

* `hyperparameters`: the declarative hyperparameter table and its one validation function.
* `metrics`: metric names, the log regexes (`metric_definitions`) and `tunable_objectives`.
* `channels`: content types and channel folders.
* `data`, `custom_metrics`, `fit`: reading data, container-computed metrics, `xgb.train`.
* `train`: the command line, the order of the steps and the failure file.
"""
