"""The Semantic Segmentation built-in (SageMaker repository `semantic-segmentation`): FCN, PSP
and DeepLab v3 decoders on a dilated ResNet-50/101, in PyTorch (spec algorithms §18).

Implemented: every hyperparameter of §18(a) with its rules (num_classes 2..254; backbone
resnet-50/101; algorithm fcn/psp/deeplab; base_size and crop_size above 16, crop_size rounded up
to a multiple of 8; lr_scheduler poly/cosine/step, step needing lr_scheduler_step; optimizers
sgd, nag, adam, adagrad, rmsprop (and adadelta, in SageMaker's documented tuning range);
early stopping on the validation mIOU; syncbn accepted) and the tuning ranges of §18(c), plus
the opensage extension `width_multiplier` (see `spec`). Data: JPEG images and single-channel PNG
masks (255 = ignore) in `train`, `validation`, `train_annotation` and `validation_annotation`,
File mode; an optional `label_map` channel (`{"scale": ...}` or `{"map": {...}}`); a `model`
channel (a previous job's model.tar.gz or its files) continues training (incremental
training). Training: random scale (base_size x U(0.5, 2)), crop_size crops and flips;
pixel-wise cross entropy ignoring 255; metrics `validation:mIOU` and
`validation:pixel_accuracy` per epoch (both tunable, maximised). Inference from one JPEG (or
PNG): an indexed PNG mask of the input's size, or the per-class probabilities as a
RecordIO-protobuf Record. A GPU is used when present; on the CPU training is seeded and
reproducible. The model `model_algo-1` (torch state dict as numpy arrays and the architecture,
an `.npz`) loads without a GPU.

Not implemented: augmented manifests (Pipe mode, `application/x-recordio`) fail the job with a
ClientError saying they are not supported yet; nothing pretrained exists (nothing is
downloaded: use_pretrained_model=true without a model channel trains from scratch, and the log
says so); GluonCV's auxiliary FCN loss on stage 3; training on more than one instance (refused,
as SageMaker's is single-instance). MXNet/GluonCV model files in the model channel are not read
(only this algorithm's own).
"""
