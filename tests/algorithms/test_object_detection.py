"""Object Detection's maths and formats: box encoding, IoU, matching, NMS and mAP against hand
examples, label parsing of RecordIO label arrays and JSON annotations, augmentation moving
boxes with the pixels, the model files, the annotation=1 form, and learning: generated scenes
learned to a validation mAP (a small CPU budget here; the full-size check is in
benchmarks/bench_object_detection.py) and incremental training continuing from the previous
loss."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from opensage.algorithms.base import UserError  # noqa: E402
from opensage.algorithms.object_detection.data import (  # noqa: E402
    Scenes,
    annotation_objects,
    record_objects,
)
from opensage.algorithms.object_detection.evaluation import (  # noqa: E402
    average_precision,
    mean_average_precision,
)
from opensage.algorithms.object_detection.files import (  # noqa: E402
    HYPERPARAMS,
    model_folder,
    read_model,
    save,
)
from opensage.algorithms.object_detection.model import (  # noqa: E402
    SSD,
    Architecture,
    box_iou,
    corners,
    decode,
    default_boxes,
    encode,
    match,
    match_batch,
    multibox_loss,
    nms,
)
from opensage.algorithms.object_detection.serve import choose_accept, pixel_annotations  # noqa: E402
from opensage.algorithms.object_detection.spec import TABLE  # noqa: E402
from opensage.algorithms.object_detection.synthetic import encode as encode_image  # noqa: E402
from opensage.algorithms.object_detection.synthetic import scenes  # noqa: E402
from opensage.algorithms.object_detection.train import Config, Trainer, augment  # noqa: E402
from opensage.serving.errors import InferenceError  # noqa: E402

CPU = torch.device("cpu")


@pytest.fixture
def one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Training tests on one thread: on a shared or busy machine a second one only waits."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def test_iou_of_hand_boxes() -> None:
    a = t([[0, 0, 2, 2]])
    b = t([[1, 1, 3, 3], [0, 0, 2, 2], [2, 2, 3, 3], [0, 0, 1, 2]])
    assert box_iou(a, b)[0].tolist() == pytest.approx([1 / 7, 1.0, 0.0, 0.5])


def test_encoding_round_trips_and_is_zero_on_the_default_box() -> None:
    priors = default_boxes([3, 2, 1])
    assert encode(corners(priors), priors).abs().max() < 1e-5
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 0.5, (len(priors), 2))
    boxes = t(np.concatenate([xy, xy + rng.uniform(0.05, 0.5, xy.shape)], 1).tolist())
    assert decode(encode(boxes, priors), priors).numpy() == pytest.approx(boxes.numpy(), abs=1e-5)


def test_default_boxes_follow_ssd_scales_and_ratios() -> None:
    priors = default_boxes([2, 1])
    assert priors.shape == (2 * 2 * 4 + 4, 4)
    # the first box of the 2x2 map: centre (0.25, 0.25), scale 0.1 (the first map's), aspect 1
    assert priors[0].tolist() == pytest.approx([0.25, 0.25, 0.1, 0.1])
    # the 1x1 map's aspect-2 box: scale 0.2 (the second of two maps), width s*sqrt(2)
    assert priors[-2].tolist() == pytest.approx([0.5, 0.5, 0.2 * 2**0.5, 0.2 / 2**0.5])


def test_ssd300_has_the_papers_feature_maps_on_both_bases() -> None:
    vgg = SSD(Architecture("vgg-16", 3, 300, 1 / 32))
    assert vgg.sizes == (38, 19, 10, 5, 3, 2, 1)
    resnet = SSD(Architecture("resnet-50", 3, 300, 1 / 32))
    assert resnet.sizes == (19, 10, 5, 3, 2, 1)
    logits, offsets = resnet(torch.zeros(2, 3, 300, 300))
    assert logits.shape == (2, resnet.priors.shape[0], 4)
    assert offsets.shape == (2, resnet.priors.shape[0], 4)


def test_matching_takes_overlaps_above_the_threshold_and_each_objects_best_box() -> None:
    priors = t([[0.25, 0.25, 0.5, 0.5], [0.75, 0.75, 0.5, 0.5], [0.35, 0.35, 0.5, 0.5],
                [0.8, 0.2, 0.1, 0.1]])  # fmt: skip
    objects = t([[1, 0.0, 0.0, 0.5, 0.5], [0, 0.7, 0.1, 0.9, 0.3]])
    labels, targets = match(objects, priors, 0.5)
    # prior 0 is the first object exactly; prior 2 overlaps it by 0.47 < 0.5 (background);
    # prior 3 overlaps the second object by 0.25 only, but is its best box, so takes it.
    assert labels.tolist() == [2, 0, 0, 1]
    assert targets[0].abs().max() < 1e-5
    assert decode(targets, priors)[3].tolist() == pytest.approx([0.7, 0.1, 0.9, 0.3], abs=1e-5)
    empty, _ = match(torch.zeros(0, 5), priors, 0.5)
    assert empty.tolist() == [0, 0, 0, 0]


def test_batch_matching_is_per_image_matching() -> None:
    """The trainer matches a padded batch at once; it must give what `match` gives each image,
    an image without objects and two objects sharing a best default box included."""
    priors = SSD(Architecture("vgg-16", 3, 64, 1 / 32)).priors
    rng = np.random.default_rng(5)
    rows = []
    for count in (3, 0, 1, 4):
        low = rng.uniform(0, 0.6, (count, 2))
        high = np.minimum(low + rng.uniform(0.05, 0.5, (count, 2)), 1.0)
        rows.append(np.concatenate([rng.integers(0, 3, (count, 1)), low, high], 1))
    rows[3][1] = rows[3][0]  # the same box twice: the later object takes its best default box
    padded = np.zeros((len(rows), 4, 5), dtype=np.float32)
    valid = np.zeros((len(rows), 4), dtype=bool)
    for i, objects in enumerate(rows):
        padded[i, : len(objects)], valid[i, : len(objects)] = objects, True
    labels, boxes = match_batch(torch.from_numpy(padded), torch.from_numpy(valid), priors, 0.5)
    for i, objects in enumerate(rows):
        one_labels, one_boxes = match(torch.from_numpy(objects.astype(np.float32)), priors, 0.5)
        assert torch.equal(labels[i], one_labels)
        assert torch.equal(boxes[i], one_boxes)
    assert int(labels[1].sum()) == 0


def test_loss_mines_three_negatives_per_positive() -> None:
    labels = torch.tensor([[1, 0, 0, 0, 0, 0]])
    logits = torch.zeros(1, 6, 3)
    logits[0, :, 1] = torch.tensor([0.0, 5.0, 4.0, 3.0, -9.0, -9.0])  # hardest negatives 1, 2, 3
    confidence, box = multibox_loss(logits, torch.zeros(1, 6, 4), labels, torch.zeros(1, 6, 4))
    ce = torch.nn.functional.cross_entropy(
        logits[0], torch.tensor([1, 0, 0, 0, 0, 0]), reduction="none"
    )
    assert float(confidence) == pytest.approx(float(ce[:4].sum()))
    assert float(box) == 0.0


def test_nms_keeps_the_best_box_of_each_overlapping_group() -> None:
    boxes = t([[0, 0, 1, 1], [0.05, 0, 1, 1], [2, 2, 3, 3], [0, 0, 0.5, 1], [2.1, 2, 3, 3]])
    scores = torch.tensor([0.9, 0.95, 0.5, 0.8, 0.6])
    # 1 beats 0 (IoU 0.95); 3 overlaps 1 by 0.47 and survives at 0.5; 4 beats 2 (IoU 0.9)
    assert nms(boxes, scores, 0.5).tolist() == [1, 3, 4]
    assert nms(boxes, scores, 0.4).tolist() == [1, 4]
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).tolist() == []


def test_average_precision_by_hand() -> None:
    # ranked hits: TP, FP, TP with 2 ground truths: recall .5, .5, 1; precision 1, .5, 2/3
    assert average_precision(np.array([0.5, 0.5, 1.0]), np.array([1, 0.5, 2 / 3])) == (
        pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    )


def test_map_by_hand() -> None:
    truths = [
        np.array([[0, 0.0, 0.0, 0.5, 0.5], [1, 0.5, 0.5, 1.0, 1.0]]),
        np.array([[0, 0.2, 0.2, 0.6, 0.6]]),
    ]
    detections = [
        np.array([
            [0, 0.9, 0.0, 0.0, 0.5, 0.5],    # TP for class 0
            [0, 0.8, 0.0, 0.0, 0.5, 0.5],    # duplicate: FP
            [1, 0.7, 0.5, 0.5, 1.0, 1.0],    # TP for class 1
        ]),
        np.array([[0, 0.6, 0.2, 0.2, 0.6, 0.6]]),  # TP, after the FP
    ]  # fmt: skip
    # class 0: TP, FP, TP over 2 truths -> AP 0.5 + 0.5 * 2/3; class 1: AP 1
    expected = (0.5 + 0.5 * 2 / 3 + 1.0) / 2
    assert mean_average_precision(detections, truths, 2, 0.5) == pytest.approx(expected)
    # a class with no ground truth does not count; no detections at all is 0
    assert mean_average_precision(detections, truths, 3, 0.5) == pytest.approx(expected)
    assert mean_average_precision([np.zeros((0, 6))] * 2, truths, 2) == 0.0
    # at IoU 0.99 a slightly shifted box no longer counts
    shifted = [np.array([[1, 0.9, 0.52, 0.5, 1.0, 1.0]]), np.zeros((0, 6))]
    assert mean_average_precision(shifted, [*truths[:1], np.zeros((0, 5))], 2, 0.99) == 0.0


def test_record_labels_parse_with_padding_and_extra_header() -> None:
    objects = record_objects([2, 5, 1, 0.1, 0.2, 0.3, 0.4, -1, -1, -1, -1, -1], 2, 350)
    np.testing.assert_allclose(objects, [[1, 0.1, 0.2, 0.3, 0.4]], atol=1e-6)
    wide = record_objects([4, 6, 640, 480, 0, 0.1, 0.2, 0.3, 0.4, 0.0], 1, 350)
    np.testing.assert_allclose(wide, [[0, 0.1, 0.2, 0.3, 0.4]], atol=1e-6)
    assert record_objects([2, 5], 1, 350).shape == (0, 5)


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        ([2.0], "no detection label header"),
        ([2, 5, 0, 0.1, 0.2, 0.3], "not a multiple of object_width 5"),
        ([2, 5, 3, 0.1, 0.2, 0.3, 0.4], "class 3: class ids are integers from 0 to"),
        ([2, 5, 0, 0.5, 0.2, 0.3, 0.4], "corners are xmin < xmax"),
        ([2, 5, 0, 10, 20, 30, 40], "normalised to"),
        ([1, 5, 0, 0.1, 0.2, 0.3, 0.4], "header_width 1"),
        ([2, 5, *[0, 0.1, 0.2, 0.3, 0.4] * 2], "more than label_width=10"),
    ],
)
def test_bad_record_labels_are_named(labels: list[float], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        record_objects(labels, 2, 10)


def test_annotations_in_pixels_become_normalised_corners() -> None:
    document = {
        "file": "a.jpg",
        "image_size": [{"width": 200, "height": 100, "depth": 3}],
        "annotations": [{"class_id": 1, "left": 20, "top": 10, "width": 100, "height": 50}],
    }
    objects = annotation_objects(document, 2, 1, 1)
    np.testing.assert_allclose(objects, [[1, 0.1, 0.1, 0.6, 0.6]], atol=1e-6)
    # without image_size the decoded image's size is used; boxes are clipped to the image
    del document["image_size"]
    document["annotations"][0]["width"] = 500
    clipped = annotation_objects(document, 2, 400, 100)
    np.testing.assert_allclose(clipped, [[1, 0.05, 0.1, 1.0, 0.6]], atol=1e-6)
    with pytest.raises(ValueError, match="class ids are integers"):
        annotation_objects(document, 1, 400, 100)
    with pytest.raises(ValueError, match="needs numeric class_id"):
        annotation_objects({"annotations": [{"class_id": 0}]}, 1, 10, 10)
    with pytest.raises(ValueError, match="no 'annotations' list"):
        annotation_objects({}, 1, 10, 10)


def test_augmentation_moves_boxes_with_the_pixels() -> None:
    rng = np.random.default_rng(0)
    for _ in range(12):
        x = torch.zeros(1, 3, 64, 64)
        x[:, :, 10:30, 20:50] = 1.0
        objects = [np.array([[0, 20 / 64, 10 / 64, 50 / 64, 30 / 64]], dtype=np.float32)]
        out, moved = augment(x, objects, rng)
        channel = out[0, 0]
        bright = (channel > (channel.max() + channel.min()) / 2).numpy()
        ys, xs = np.nonzero(bright)
        box = moved[0][0, 1:] * 64
        assert [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == pytest.approx(box, abs=1.01)


def test_hyperparameter_rules() -> None:
    base = {"num_classes": "2", "num_training_samples": "10"}
    assert TABLE.resolved(base)["image_shape"] == 300
    for name, value in (("image_shape", "299"), ("base_network", "vgg-19"),
                        ("optimizer", "nag"), ("freeze_layer_pattern", "conv(["),
                        ("lr_scheduler_step", "20,10"), ("nms_threshold", "0")):  # fmt: skip
        with pytest.raises(ValueError, match=f"Hyperparameter '{name}'"):
            TABLE.validate({**base, name: value})
    assert TABLE["learning_rate"].tunable_range is not None
    assert TABLE["mini_batch_size"].tunable_range is not None


def test_accept_and_annotation_form() -> None:
    assert choose_accept("application/json;annotation=1") == ("application/json", True)
    assert choose_accept("application/json") == ("application/json", False)
    assert choose_accept("application/jsonlines") == ("application/jsonlines", False)
    with pytest.raises(InferenceError):
        choose_accept("text/csv")
    found = np.array([[1, 0.9, 0.1, 0.25, 0.6, 0.75]], dtype=np.float32)
    document = pixel_annotations(found, 200, 100)
    assert document == {
        "image_size": [{"width": 200, "height": 100, "depth": 3}],
        "annotations": [
            {
                "class_id": 1,
                "score": pytest.approx(0.9),
                "left": 20,
                "top": 25,
                "width": 100,
                "height": 50,
            }
        ],
    }


def _split(
    count: int, size: int, seed: int, classes: int = 2, most: int = 2
) -> tuple[Scenes, Scenes]:
    images, objects = scenes(count + 40, size, seed=seed, classes=classes, most=most)
    pixels = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    return Scenes(pixels[:count], objects[:count]), Scenes(pixels[count:], objects[count:])


@pytest.mark.usefixtures("one_thread")
def test_generated_scenes_are_learned() -> None:
    """A CPU budget of about 10 s: one object of one class per 64x64 scene, 60 steps, to a
    validation mAP of 0.5 (0.70 as this runs). The full check, two classes and up to two
    objects per scene learned to mAP >= 0.8, is benchmarks/bench_object_detection.py: on a
    CPU it takes minutes, not seconds."""
    train, validation = _split(160, 64, seed=1, classes=1, most=1)
    config = Config(epochs=6, batch_size=16, optimizer="adam", learning_rate=0.003,
                    weight_decay=0.0, augment=False)  # fmt: skip
    trainer = Trainer(Architecture("vgg-16", 1, 64, 0.125), config, CPU, info=lambda _: None)
    trainer.fit(train, validation)
    assert trainer.history[-1].loss < 0.6 * trainer.history[0].loss
    assert max(trainer.scores) >= 0.5


@pytest.mark.usefixtures("one_thread")
def test_incremental_training_continues_from_the_previous_loss(tmp_path: Path) -> None:
    train, _ = _split(32, 48, seed=2)
    arch = Architecture("resnet-50", 2, 48, 0.0625)
    config = Config(epochs=4, batch_size=16, optimizer="adam", learning_rate=0.003,
                    weight_decay=0.0, augment=False)  # fmt: skip
    first = Trainer(arch, config, CPU, info=lambda _: None)
    first.fit(train, None)
    save(tmp_path / "model", first.state(), arch, {"num_classes": 2, "lr_scheduler_step": ("3",)})
    archive = tmp_path / "channel" / "model.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for path in (tmp_path / "model").iterdir():
            tar.add(path, arcname=path.name)
    folder = model_folder(archive.parent, tmp_path / "scratch")
    previous, arrays = read_model(folder)
    assert previous == arch
    assert json.loads((folder / HYPERPARAMS).read_text())["lr_scheduler_step"] == "3"
    resumed = Trainer(arch, Config(**{**config.__dict__, "epochs": 1}), CPU, arrays, lambda _: None)
    resumed.fit(train, None)
    fresh_first, last = first.history[0].loss, first.history[-1].loss
    assert resumed.history[0].loss < fresh_first
    assert resumed.history[0].loss < last + 0.25 * (fresh_first - last)


def test_a_model_folder_without_the_files_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"neither model_algo_1-symbol\.json nor a model\.tar\.gz"):
        model_folder(tmp_path, tmp_path / "scratch")
    (tmp_path / "model.tar.gz").write_bytes(io.BytesIO(b"not a tar").getvalue())
    with pytest.raises(ValueError, match="not a tar archive"):
        model_folder(tmp_path, tmp_path / "scratch")


@pytest.mark.usefixtures("one_thread")
def test_freeze_layer_pattern_keeps_matching_parameters() -> None:
    train, _ = _split(8, 32, seed=4)
    arch = Architecture("resnet-50", 2, 32, 1 / 32)
    config = Config(epochs=1, batch_size=8, optimizer="adam", freeze=r"^base\.stem\.")
    trainer = Trainer(arch, config, CPU, info=lambda _: None)
    before = trainer.state()
    trainer.fit(train, None)
    after = trainer.state()
    assert np.array_equal(before["base.stem.0.weight"], after["base.stem.0.weight"])
    assert not np.array_equal(before["classify.0.weight"], after["classify.0.weight"])
    with pytest.raises(UserError, match="freezes every layer"):
        Trainer(arch, Config(freeze="."), CPU, info=lambda _: None)


def test_pipe_mode_reads_an_augmented_manifest_and_recordio(tmp_path: Path) -> None:
    """The training program in Pipe mode: `train` an augmented manifest (image bytes, then the
    bounding-box attribute's JSON, as RecordIO records), `validation` a `.rec` stream."""
    from opensage.contract import MLPaths
    from opensage.formats.recordio import encode_record
    from tests.algorithms.cases_object_detection import annotation, rec

    images, objects = scenes(12, 40, seed=8)
    paths = MLPaths(tmp_path)
    for folder in paths.directories():
        folder.mkdir(parents=True, exist_ok=True)
    hps = {"num_classes": "2", "num_training_samples": "8", "base_network": "resnet-50",
           "width_multiplier": "0.03125", "epochs": "1", "mini_batch_size": "4"}  # fmt: skip
    paths.hyperparameters_file.write_text(json.dumps(hps))
    paths.resource_config_file.write_text(json.dumps({"current_host": "algo-1",
                                                      "hosts": ["algo-1"]}))  # fmt: skip
    manifest = b"".join(
        encode_record(encode_image(image)) + encode_record(annotation("x.png", found, 40))
        for image, found in zip(images[:8], objects[:8], strict=True)
    )
    paths.data.mkdir(parents=True, exist_ok=True)
    (paths.data / "train_0").write_bytes(manifest)
    (paths.data / "validation_0").write_bytes(rec(images[8:], objects[8:]))
    config = {
        "train": {"ContentType": "application/x-recordio", "TrainingInputMode": "Pipe",
                  "RecordWrapperType": "RecordIO"},
        "validation": {"ContentType": "application/x-recordio", "TrainingInputMode": "Pipe"},
    }  # fmt: skip
    paths.input_data_config_file.write_text(json.dumps(config))
    proc = subprocess.run(
        [sys.executable, "-m", "opensage.algorithms.object_detection", "train"],
        env={**os.environ, "SAGEMAKER_BASE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "8 training and 4 validation images" in proc.stdout + proc.stderr
    assert (paths.model / "model_algo_1-0000.params").is_file()
