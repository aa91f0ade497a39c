"""The Image Classification built-in (SageMaker repository `image-classification`): a ResNet
trained from scratch, continued from a previous model (incremental training) or fine-tuned
from one (transfer learning), in PyTorch (spec algorithms §16).

Implemented: every hyperparameter of §16(a) with its rules (`num_layers` 18/34/50/101/152/200
ImageNet-style and 20/32/44/56/110 CIFAR-style; `image_shape` "C,H,W" with 1 or 3 channels;
optimizers sgd, adam, rmsprop, nag; `lr_scheduler_step`/`factor` in epochs; `augmentation_type`
crop, crop_color, crop_color_transform, done on the device; `multi_label` with
`use_weighted_loss`; `top_k` logged; early stopping on the validation accuracy;
`checkpoint_frequency`) and the tuning ranges of §16(c). Data: RecordIO image records (`.rec`,
`application/x-recordio`) in File or Pipe mode; image files (`application/x-image`,
`image/jpeg`, `image/png`) listed by `train_lst` / `validation_lst` `.lst` files in File mode
(`resize` required); an augmented manifest (`source-ref` and class, `RecordWrapperType`
RecordIO) in Pipe mode; multi-label labels as multi-hot or class ids (`label-format`). Bad
data (an undecodable image, a label outside 0..num_classes-1) fails the job naming the record.
A `model` channel (`application/x-sagemaker-model`: a previous job's model.tar.gz or its
files) continues training, or with `use_pretrained_model=1` re-initialises only the `fc`
layer; nothing is downloaded. Metrics `validation:accuracy` (tunable, maximised) and
`train:accuracy` per epoch, plus MXNet's `Epoch[N] Validation-accuracy=...` lines. Inference
from one JPEG/PNG answers the probabilities (JSON: a bare list; JSON Lines: `prediction`).
A GPU is used when present (`precision_dtype=float16` then trains in mixed precision); on the
CPU training is seeded and reproducible and float16 falls back to float32 with a log line.

The model files are `image-classification-NNNN.params` (the torch state dict as numpy arrays,
an `.npz`, not MXNet's params format), `image-classification-symbol.json` (the architecture, not
an MXNet symbol) and `model-shapes.json`; they load without a GPU.

Not implemented: training on more than one instance (`kv_store` is accepted and has nothing to
synchronise; InstanceCount above 1 is refused); MXNet model files in the model channel (only
this algorithm's own); image files with `.lst` lists in Pipe mode (a ClientError saying so).
Random crop works on images already fitted to `image_shape` (a shift with reflected edges), not
on a larger decoded image as MXNet's iterator does.
"""
