"""The Object Detection built-in (SageMaker repository `object-detection`): SSD (Liu et al.,
ECCV 2016) on a VGG-16 or ResNet-50 base, written in PyTorch (spec algorithms §17).

Implemented: every hyperparameter of §17(a) with its rules (`image_shape` an integer >= 300,
the image stretched to a square; `label_width`; `nms_threshold`; `overlap_threshold`, used
both to match default boxes in training and as the IoU of the mAP; `freeze_layer_pattern` a
regex over the torch parameter names; optimizers sgd, adam, rmsprop, adadelta;
`lr_scheduler_step`/`factor` in epochs; early stopping on the validation mAP) and the tuning
ranges of §17(c), plus one opensage extension, `width_multiplier` (default 1, the published
widths), which scales every layer's channels so that tests and examples train on a CPU at
300x300. The network: VGG-16 (SSD's reduced form) or ResNet-50 with batch normalisation,
extra layers down to 1x1, default boxes of SSD's scales and aspect ratios, IoU matching,
smooth-L1 plus softmax loss with 3:1 hard negative mining, flip / rescale (crop or zoom-out) /
colour-jitter augmentation, and NMS written in torch. `validation:mAP` (tunable, maximised;
Pascal VOC all-point AP) and the epoch's `train:cross_entropy` and `train:smooth_l1` are logged
per epoch as `#quality_metric: host=algo-1, epoch=N, validation mAP <score>=(x)`.

Data: RecordIO image records (`.rec`, `application/x-recordio`, MXNet's detection label
layout) in File or Pipe mode; image files with one JSON annotation each (`train_annotation`,
`validation_annotation`) in File mode; an augmented manifest (`source-ref` and bounding-box
attributes, `RecordWrapperType` RecordIO) in Pipe mode. Bad records, annotations or images
fail the job naming them. A `model` channel holding a previous job's model continues training
from its weights (base_network, num_classes, image_shape and width_multiplier must match).
`use_pretrained_model=1` (SageMaker's default) without a `model` channel trains from scratch
and says so in the log: nothing is downloaded. Inference: one JPEG/PNG per request, answered
as `{"prediction": [[class, score, xmin, ymin, xmax, ymax], ...]}` (normalised corners), the
pixel form for `application/json;annotation=1`, and JSON Lines for batch transform.

The model files are `model_algo_1-0000.params` (the torch state dict as numpy arrays, an
`.npz`, not MXNet's params format), `model_algo_1-symbol.json` (the architecture, not an MXNet
symbol) and `hyperparams.json`; they load without a GPU. A GPU is used when present; on the
CPU training is seeded and reproducible.

Not implemented: training on more than one instance (`kv_store` is accepted and has nothing to
synchronise); MXNet model files in the model channel (only this algorithm's own); ImageNet
pretrained bases (nothing is downloaded); image files with annotations in Pipe mode (a
ClientError saying to use RecordIO or an augmented manifest); MXNet's IoU-constrained random
crops (the crop here only keeps a box whose centre stays inside).
"""
