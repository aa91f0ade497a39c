"""The Semantic Segmentation built-in: mIOU and pixel accuracy against hand counts, label maps,
the table's rules (crop rounding, the step schedule), each decoder's output shape, the
responses (PNG mask, protobuf layout), bad data, determinism, incremental training (loading,
mismatches, continuing from the previous loss) and learning generated scenes."""

from __future__ import annotations

import io
import math
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from opensage.algorithms.base import HyperparameterError, UserError  # noqa: E402
from opensage.algorithms.env import ChannelReader  # noqa: E402
from opensage.algorithms.ntm.model import configure_threads  # noqa: E402
from opensage.algorithms.semantic_segmentation.data import (  # noqa: E402
    LabelMap,
    Scenes,
    parse_label_map,
    read_scenes,
    require_file_mode,
    training_crop,
)
from opensage.algorithms.semantic_segmentation.metrics import Confusion  # noqa: E402
from opensage.algorithms.semantic_segmentation.model import (  # noqa: E402
    Architecture,
    SegmentationNet,
    Segmenter,
    build,
    read_model,
    save,
    state_arrays,
)
from opensage.algorithms.semantic_segmentation.serve import SegmentationHandler  # noqa: E402
from opensage.algorithms.semantic_segmentation.spec import TABLE, crop_size  # noqa: E402
from opensage.algorithms.semantic_segmentation.synthetic import (  # noqa: E402
    encode_image,
    encode_mask,
    scenes,
)
from opensage.algorithms.semantic_segmentation.train import (  # noqa: E402
    Config,
    EarlyStopping,
    Trainer,
    check_compatible,
    learning_rate,
    model_folder,
)
from opensage.formats.tensors import read_record_messages  # noqa: E402
from opensage.serving.errors import InferenceError  # noqa: E402

CPU = torch.device("cpu")
TINY = Architecture("resnet-50", "fcn", 3, width=4, base_size=32)


@pytest.fixture(autouse=True)
def _threads_for_tiny_networks() -> None:
    """What training sizes them to for these networks: one thread (more only contend)."""
    configure_threads(0)


def tiny_scenes(count: int, seed: int, size: int = 32) -> Scenes:
    images, masks = scenes(count, size, 3, seed=seed)
    return Scenes(list(images), list(masks), [f"s{i}" for i in range(count)])


# --- metrics ----------------------------------------------------------------------------------


def test_miou_and_pixel_accuracy_match_hand_counts_and_ignore_255() -> None:
    truth = np.array([[0, 0, 1, 1], [0, 2, 2, 255]])
    predicted = np.array([[0, 1, 1, 1], [0, 2, 0, 2]])
    confusion = Confusion(3)
    confusion.add(truth, predicted)
    # 7 labelled pixels, 5 right; IoU: class 0 2/(3+3-2)=0.5, class 1 2/3, class 2 1/2
    assert confusion.pixel_accuracy == pytest.approx(5 / 7)
    assert confusion.miou == pytest.approx((0.5 + 2 / 3 + 0.5) / 3)


def test_classes_absent_from_labels_and_predictions_do_not_count() -> None:
    confusion = Confusion(5)
    confusion.add(np.array([0, 0, 1]), np.array([0, 0, 1]))
    assert confusion.miou == 1.0
    assert confusion.pixel_accuracy == 1.0
    assert Confusion(2).miou == 0.0


# --- label maps and the table -------------------------------------------------------------------


def test_label_map_scale_divides_pixel_values_and_keeps_255() -> None:
    mapping = parse_label_map('{"scale": "3"}', "here")
    pixels = np.array([[0, 3, 6], [255, 4, 0]], dtype=np.uint8)
    assert mapping.apply(pixels, "here").tolist() == [[0, 1, 2], [255, 1, 0]]
    assert parse_label_map('{"scale": 2}', "here") == LabelMap(scale=2)


def test_label_map_map_gives_each_class_its_encoded_value() -> None:
    mapping = parse_label_map('{"map": {"0": 5, "1": 0, "2": 7}}', "here")
    pixels = np.array([[5, 0, 7, 255]], dtype=np.uint8)
    assert mapping.apply(pixels, "here").tolist() == [[0, 1, 2, 255]]
    with pytest.raises(UserError, match="pixel value 9 is not in the label map"):
        mapping.apply(np.array([[9]], dtype=np.uint8), "here")


@pytest.mark.parametrize(
    "text",
    ['{"scale": "0"}', '{"scale": "x"}', '{"map": {"a": 1}}', '{"map": {"0": 1, "1": 1}}',
     '{"other": 1}', "not json"],
)  # fmt: skip
def test_bad_label_maps_are_refused(text: str) -> None:
    with pytest.raises(UserError, match=r"label_map\.json"):
        parse_label_map(text, "Channel 'label_map': train_label_map.json")


@pytest.mark.parametrize(("given", "used"), [(17, 24), (24, 24), (240, 240), (241, 248)])
def test_crop_size_is_rounded_up_to_a_multiple_of_8(given: int, used: int) -> None:
    assert crop_size(given) == used


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"num_classes": "1"}, "num_classes"),
        ({"num_classes": "255"}, "num_classes"),
        ({"crop_size": "16"}, "crop_size"),
        ({"base_size": "16"}, "base_size"),
        ({"backbone": "resnet-18"}, "backbone"),
        ({"algorithm": "unet"}, "algorithm"),
        ({"lr_scheduler": "step"}, "lr_scheduler_step"),
        ({"lr_scheduler": "step", "lr_scheduler_step": "20,10"}, "lr_scheduler_step"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"learning_rate": "0"}, "learning_rate"),
    ],
)
def test_table_refuses_bad_values(change: dict[str, str], named: str) -> None:
    with pytest.raises(HyperparameterError, match=f"^Hyperparameter '{named}'"):
        TABLE.validate({"num_classes": "3", "num_training_samples": "10", **change})


def test_table_defaults_are_sagemakers() -> None:
    values = TABLE.resolved({"num_classes": "3", "num_training_samples": "10"})
    assert values["backbone"] == "resnet-50"
    assert values["algorithm"] == "fcn"
    assert values["use_pretrained_model"] is True
    assert (values["base_size"], values["crop_size"]) == (520, 240)
    valid = TABLE.validate({"num_classes": "3", "num_training_samples": "1", "syncbn": "True",
                            "lr_scheduler": "step", "lr_scheduler_step": "[5, 10]"})  # fmt: skip
    assert valid["lr_scheduler_step"] == ("5", "10")


def test_learning_rate_schedules() -> None:
    poly = Config(learning_rate=0.1)
    assert learning_rate(poly, 0, 0.0) == pytest.approx(0.1)
    assert learning_rate(poly, 5, 0.5) == pytest.approx(0.1 * 0.5**0.9)
    cosine = Config(learning_rate=0.1, lr_scheduler="cosine")
    assert learning_rate(cosine, 5, 0.5) == pytest.approx(0.05)
    step = Config(learning_rate=0.1, lr_scheduler="step", lr_steps=(2, 4), lr_factor=0.5)
    assert [learning_rate(step, e, 0.0) for e in range(5)] == pytest.approx(
        [0.1, 0.1, 0.05, 0.05, 0.025]
    )


def test_early_stopping_waits_for_min_epochs_and_patience() -> None:
    stopper = EarlyStopping(min_epochs=3, patience=2, tolerance=0.0)
    assert [stopper.stop(e, s) for e, s in enumerate([0.5, 0.4, 0.4, 0.45, 0.6])] == [
        False, False, True, True, False,
    ]  # fmt: skip


# --- the networks --------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["fcn", "psp", "deeplab"])
@pytest.mark.parametrize("output_stride", [8, 16])
def test_each_head_gives_logits_of_the_input_size(algorithm: str, output_stride: int) -> None:
    arch = Architecture("resnet-50", algorithm, 5, width=4, output_stride=output_stride)
    net = SegmentationNet(arch).eval()
    features = net.backbone(torch.zeros(2, 3, 40, 48))
    side = (math.ceil(40 / output_stride), math.ceil(48 / output_stride))
    assert features.shape == (2, arch.features, *side)
    with torch.no_grad():
        assert net(torch.zeros(2, 3, 40, 48)).shape == (2, 5, 40, 48)


def test_resnet_101_has_23_blocks_in_its_third_stage() -> None:
    net = SegmentationNet(Architecture("resnet-101", "fcn", 2, width=4))
    assert [len(stage) for stage in net.backbone.stages] == [3, 4, 23, 3]  # type: ignore[arg-type]


# --- data ----------------------------------------------------------------------------------------


def write_split(root: Path, images: Any, masks: Any) -> tuple[Path, Path]:
    (root / "img").mkdir(parents=True)
    (root / "ann").mkdir()
    for i, (image, mask) in enumerate(zip(images, masks, strict=True)):
        (root / "img" / f"p{i}.jpg").write_bytes(encode_image(image))
        (root / "ann" / f"p{i}.png").write_bytes(encode_mask(mask))
    return root / "img", root / "ann"


def test_images_pair_with_their_masks_by_name(tmp_path: Path) -> None:
    images, masks = scenes(3, 32, 3, seed=1)
    found = read_scenes(*write_split(tmp_path, images, masks), "train", 3, LabelMap())
    assert found.names == ["p0.jpg", "p1.jpg", "p2.jpg"]
    assert [m.tolist() for m in found.masks] == [m.tolist() for m in masks]


def test_bad_data_fails_naming_the_file(tmp_path: Path) -> None:
    images, masks = scenes(2, 32, 3, seed=1)
    image_dir, mask_dir = write_split(tmp_path, images, masks)
    with pytest.raises(UserError, match=r"mask 'p0.png' has class 2, but num_classes is 2"):
        read_scenes(image_dir, mask_dir, "train", 2, LabelMap())
    (mask_dir / "p1.png").write_bytes(encode_mask(masks[1][:16]))
    with pytest.raises(UserError, match=r"'p1.png' is 32x16 but its image 'p1.jpg' is 32x32"):
        read_scenes(image_dir, mask_dir, "train", 3, LabelMap())
    (mask_dir / "p1.png").write_bytes(encode_image(images[1], "PNG"))
    with pytest.raises(UserError, match="is a RGB image; a mask is a single-channel PNG"):
        read_scenes(image_dir, mask_dir, "train", 3, LabelMap())
    (mask_dir / "p1.png").unlink()
    with pytest.raises(UserError, match=r"image 'p1\.jpg' has no mask 'p1\.png'"):
        read_scenes(image_dir, mask_dir, "train", 3, LabelMap())


def test_augmented_manifests_in_pipe_mode_fail_saying_they_are_not_supported_yet(
    tmp_path: Path,
) -> None:
    reader = ChannelReader("train", tmp_path, tmp_path, "application/x-recordio", 0, pipe=True)
    with pytest.raises(UserError, match=r"augmented manifests .* are not supported yet"):
        require_file_mode(reader)


def test_training_crops_have_the_crop_size_and_aligned_masks() -> None:
    image = np.zeros((20, 30, 3), dtype=np.uint8)
    image[:, :15] = 200
    mask = np.zeros((20, 30), dtype=np.uint8)
    mask[:, :15] = 1
    rng = np.random.default_rng(0)
    for _ in range(10):
        x, y = training_crop(image, mask, 30, 24, rng, CPU)
        assert x.shape == (3, 24, 24)
        assert y.shape == (24, 24)
        labelled = y != 255
        bright = x[0] > 100
        # bilinear edges may blur one pixel; away from them the mask follows the image
        agree = (bright == (y == 1)) | ~labelled
        assert float(agree.float().mean()) > 0.9


# --- serving ---------------------------------------------------------------------------------


def test_responses_png_mask_and_protobuf_probabilities_agree() -> None:
    torch.manual_seed(0)
    handler = SegmentationHandler(Segmenter(SegmentationNet(TINY), CPU))
    image = scenes(1, 32, 3, seed=4)[0][0][:, :28]
    jpeg = encode_image(image)
    png = handler.invoke(jpeg, "image/jpeg", "image/png", None)
    assert png.content_type == "image/png"
    from PIL import Image

    mask_image = Image.open(io.BytesIO(png.body))
    assert mask_image.mode == "P"
    mask = np.asarray(mask_image)
    assert mask.shape == (32, 28)
    for accept in ("application/x-recordio-protobuf", "application/x-protobuf"):
        result = handler.invoke(jpeg, "image/jpeg", accept, None)
        assert result.content_type == accept
        (record,) = read_record_messages(result.body)
        assert sorted(record.features) == ["shape", "target"]
        assert list(record.features["shape"].int32_tensor.values) == [1, 3, 32, 28]
        target = np.asarray(record.features["target"].float32_tensor.values).reshape(3, 32, 28)
        np.testing.assert_allclose(target.sum(axis=0), 1.0, rtol=1e-5)
        assert (target.argmax(axis=0) == mask).all()


def test_bad_requests_are_refused() -> None:
    handler = SegmentationHandler(Segmenter(SegmentationNet(TINY), CPU))
    jpeg = encode_image(scenes(1, 32, 3, seed=4)[0][0])
    cases = [
        (jpeg, "text/csv", "image/png", 415),
        (jpeg, "image/png", "image/png", 415),
        (jpeg, "image/jpeg", "application/json", 406),
        (b"\xff\xd8\xff broken", "image/jpeg", "image/png", 400),
    ]
    for body, content_type, accept, status in cases:
        with pytest.raises(InferenceError) as caught:
            handler.invoke(body, content_type, accept, None)
        assert caught.value.status_code == status


# --- training ------------------------------------------------------------------------------------


def trainer(arch: Architecture = TINY, weights: Any = None, **changes: Any) -> Trainer:
    settings = {"epochs": 2, "batch_size": 4, "base_size": 32, "crop_size": 24,
                "optimizer": "adam", "learning_rate": 0.003, **changes}  # fmt: skip
    return Trainer(arch, Config(**settings), CPU, weights, info=lambda _: None)


def test_training_is_deterministic() -> None:
    data = tiny_scenes(6, seed=5)
    first, second = trainer(epochs=1), trainer(epochs=1)
    first.fit(data, None)
    second.fit(data, None)
    assert first.losses == second.losses
    for name, value in state_arrays(first.net).items():
        np.testing.assert_array_equal(value, state_arrays(second.net)[name], err_msg=name)


def test_model_files_round_trip_and_answer_the_same(tmp_path: Path) -> None:
    net = SegmentationNet(TINY)
    save(tmp_path, TINY, state_arrays(net))
    arch, arrays = read_model(tmp_path)
    assert arch == TINY
    image = scenes(1, 32, 3, seed=2)[0][0]
    before = Segmenter(net, CPU).probabilities(image)
    after = Segmenter(build(arch, arrays), CPU).probabilities(image)
    np.testing.assert_array_equal(before, after)


def test_incremental_training_loads_a_model_tar_and_refuses_other_networks(
    tmp_path: Path,
) -> None:
    save(tmp_path / "model", TINY, state_arrays(SegmentationNet(TINY)))
    channel = tmp_path / "channel"
    channel.mkdir()
    with tarfile.open(channel / "model.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "model" / "model_algo-1", "model_algo-1")
    folder = model_folder(channel, tmp_path / "scratch")
    previous, arrays = read_model(folder)
    check_compatible(previous, TINY)
    other = Architecture("resnet-50", "psp", 3, width=4)
    with pytest.raises(UserError, match="has algorithm=fcn but this job has algorithm=psp"):
        check_compatible(previous, other)
    wider = Architecture("resnet-50", "fcn", 3, width=8)
    with pytest.raises(
        UserError, match=r"width_multiplier=0\.0625 but this job has width_multiplier=0\.125"
    ):
        check_compatible(previous, wider)
    with pytest.raises(UserError, match="weights do not fit this network"):
        trainer(Architecture("resnet-50", "fcn", 4, width=4), weights=arrays)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"holds neither model_algo-1 nor a model\.tar\.gz"):
        model_folder(tmp_path / "empty", tmp_path / "scratch2")


def test_incremental_training_continues_from_the_previous_loss() -> None:
    data = tiny_scenes(16, seed=6)
    first = trainer(epochs=4)
    first.fit(data, None)
    again = trainer(weights=state_arrays(first.net), epochs=1, learning_rate=0.001)
    again.fit(data, None)
    fresh = trainer(epochs=1)
    fresh.fit(data, None)
    assert again.losses[0] < first.losses[0]
    assert again.losses[0] < fresh.losses[0]
    assert again.losses[0] < 1.5 * first.losses[-1]


def test_generated_scenes_are_learned_to_miou_0_8() -> None:
    """64 scenes of 32x32, 3 classes, FCN on a ResNet-50 of width 8, 12 epochs (about 0.9 mIOU
    in 10 s on one free core). base_size 64 shows the network the scenes at twice their size,
    so its 1/8-resolution features resolve the shapes. The model is the best epoch's, as in a
    job; benchmarks/bench_semantic_segmentation.py runs a larger check."""
    arch = Architecture("resnet-50", "fcn", 3, width=8, base_size=64)
    run = trainer(arch, epochs=12, batch_size=8, crop_size=32, base_size=64, learning_rate=0.01)
    validation = tiny_scenes(16, seed=2)
    run.fit(tiny_scenes(64, seed=1), validation)
    assert run.best is not None
    run.net.load_state_dict({k: torch.from_numpy(v) for k, v in run.best[2].items()})
    quality = run.evaluate(validation)
    assert quality.miou == pytest.approx(run.best[1])
    assert quality.miou >= 0.8, quality
    assert quality.pixel_accuracy >= 0.9, quality
