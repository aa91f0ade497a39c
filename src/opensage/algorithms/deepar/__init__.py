"""The DeepAR forecasting built-in (SageMaker repository `forecasting-deepar`, spec algorithms
§15): an autoregressive RNN over lagged targets giving probabilistic forecasts by Monte-Carlo
sample paths (Salinas et al.; see `model`), in PyTorch.

Implemented: SageMaker's hyperparameters (`context_length`, `epochs`, `prediction_length`,
`time_freq` as `<int?>(M|W|D|H|min)`, `cardinality` auto / ignore / "" / a list,
`num_dynamic_feat` auto / ignore / "" / an int, `dropout_rate`, `early_stopping_patience`,
`embedding_dimension`, `learning_rate`, `likelihood` gaussian / student-T / negative-binomial /
beta / deterministic-L1, `mini_batch_size`, `num_cells`, `num_layers`, `num_eval_samples`,
`test_quantiles`) plus `cell_type` (lstm, gru) from the issue; `train` and optional `test`
channels in File mode as JSON Lines (`.json`, `.json.gz`, any name with content type
application/jsonlines) or Parquet (when pyarrow is installed; otherwise a ClientError says so),
a folder of files skipping dot-files and `_SUCCESS`; records with `start`, `target` (null /
"NaN" gaps), `cat`, `dynamic_feat`, each problem a ClientError naming the file and line;
frequency lags (GluonTS's `get_lags_for_frequency`, limited to the longest training series),
the date features of spec §15(f), an age feature, category embeddings, mean scaling, NaN
targets masked out of the loss; Adam with gradient-norm clipping, early stopping on the
training loss keeping the best epoch; the metrics `train:final_loss`, `test:RMSE`,
`test:mean_wQuantileLoss` and `#test_score` lines per quantile; inference in JSON (with a
`configuration`) and JSON Lines (configuration from `DEEPAR_INFERENCE_CONFIG`), seeded per
request so the same request gets the same answer. A GPU is used when present.

The model `model_algo-1` is an `.npz` archive of the torch state dict as numpy arrays and the
architecture (not GluonTS's serialized predictor); it loads without a GPU.

Not implemented: zoneout (`dropout_rate` is dropout between RNN layers, so it has no effect with
one layer); SageMaker's learning-rate decay; Pipe mode and training on more than one instance
(refused with a clear message).
"""
