"""Image Classification: the hyperparameter rules, the ResNet depths, augmentation, optimizers
and schedule, reproducibility, the data paths (RecordIO with flag labels, bad records), the model
channel (incremental and transfer learning, mismatches), serving errors, and quality on
generated shapes."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from opensage.algorithms.base import HyperparameterError  # noqa: E402
from opensage.algorithms.image_classification import serve  # noqa: E402
from opensage.algorithms.image_classification.data import Images  # noqa: E402
from opensage.algorithms.image_classification.model import (  # noqa: E402
    SHAPES,
    SYMBOL,
    Architecture,
    ResNet,
    augment,
    read_model,
    state_arrays,
)
from opensage.algorithms.image_classification.spec import SPEC, TABLE  # noqa: E402
from opensage.algorithms.image_classification.synthetic import encode, shapes  # noqa: E402
from opensage.algorithms.image_classification.train import (  # noqa: E402
    Config,
    EarlyStopping,
    Trainer,
    build_optimizer,
    learning_rate,
    train,
)
from opensage.algorithms.runner import run  # noqa: E402
from opensage.contract import MLPaths  # noqa: E402
from opensage.formats.image_records import ImageRecord, encode_rec  # noqa: E402
from opensage.formats.recordio import encode_record  # noqa: E402
from opensage.serving.errors import InferenceError  # noqa: E402

CPU = torch.device("cpu")
SIZE = 16
BASE = {"num_classes": "3", "num_training_samples": "40", "num_layers": "20",
        "image_shape": f"3,{SIZE},{SIZE}", "epochs": "1", "mini_batch_size": "16"}  # fmt: skip


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Tiny networks run fastest on one thread (and the CI machine's cores are shared)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pixels(images: Any) -> Any:
    return np.ascontiguousarray(np.asarray(images).transpose(0, 3, 1, 2))


def dataset(count: int, seed: int) -> Images:
    images, labels = shapes(count, SIZE, seed=seed)
    return Images(pixels(images), labels)


def rec(count: int, seed: int, labels: Any = None, multi: bool = False) -> bytes:
    images, classes = shapes(count, SIZE, seed=seed)
    values = labels if labels is not None else [(float(c),) for c in classes]
    return encode_rec(
        ImageRecord(tuple(v), encode(image), id=i, multi=multi)
        for i, (image, v) in enumerate(zip(images, values, strict=True))
    )


def job(base: Path, hyperparameters: dict[str, str], channels: dict[str, Any]) -> MLPaths:
    """A job tree: `channels` maps a name to (content type, {file: bytes})."""
    paths = MLPaths(base)
    for folder in paths.directories():
        folder.mkdir(parents=True, exist_ok=True)
    paths.hyperparameters_file.write_text(json.dumps(hyperparameters))
    paths.resource_config_file.write_text(json.dumps({"current_host": "algo-1",
                                                      "hosts": ["algo-1"]}))  # fmt: skip
    entries = {}
    for name, (content_type, files) in channels.items():
        folder = paths.channel(name)
        folder.mkdir(parents=True, exist_ok=True)
        for file, data in files.items():
            (folder / file).write_bytes(data)
        entries[name] = {"ContentType": content_type, "TrainingInputMode": "File"}
    paths.input_data_config_file.write_text(json.dumps(entries))
    return paths


def failure(paths: MLPaths) -> str:
    return paths.failure_file.read_text() if paths.failure_file.exists() else ""


def run_job(base: Path, hps: dict[str, str], channels: dict[str, Any]) -> tuple[int, MLPaths]:
    paths = job(base, hps, channels)
    return run(SPEC, train, paths), paths


def tarball(model_dir: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    return buffer.getvalue()


# --- hyperparameters ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"image_shape": "3,224"}, "image_shape"),
        ({"image_shape": "2,32,32"}, "image_shape"),
        ({"image_shape": "3,4,4"}, "image_shape"),
        ({"num_layers": "19"}, "num_layers"),
        ({"lr_scheduler_step": "10,x"}, "lr_scheduler_step"),
        ({"lr_scheduler_step": "20,10"}, "lr_scheduler_step"),
        ({"use_pretrained_model": "1", "num_layers": "20"}, "num_layers"),
        ({"checkpoint_frequency": "5", "epochs": "2"}, "checkpoint_frequency"),
        ({"optimizer": "adagrad"}, "optimizer"),
        ({"precision_dtype": "bfloat16"}, "precision_dtype"),
        ({"top_k": "1"}, "top_k"),
    ],
)
def test_bad_hyperparameters_are_named(changes: dict[str, str], name: str) -> None:
    with pytest.raises(HyperparameterError, match=f"^Hyperparameter '{name}'"):
        TABLE.validate({**BASE, **changes})


def test_sdk_style_values_are_read() -> None:
    values = TABLE.resolved({**BASE, "lr_scheduler_step": "[10, 20]", "early_stopping": "True",
                             "kv_store": "dist_sync", "use_pretrained_model": "1",
                             "num_layers": "18"})  # fmt: skip
    assert values["lr_scheduler_step"] == ("10", "20")
    assert values["early_stopping"] is True
    assert values["image_shape"] == f"3,{SIZE},{SIZE}"
    assert SPEC.tunable_objectives() == {"validation:accuracy": "Maximize"}
    assert TABLE["learning_rate"].tunable_range is not None


# --- the network --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("depth", "blocks", "kind"),
    [
        (18, [2, 2, 2, 2], "BasicBlock"),
        (34, [3, 4, 6, 3], "BasicBlock"),
        (50, [3, 4, 6, 3], "Bottleneck"),
        (101, [3, 4, 23, 3], "Bottleneck"),
        (152, [3, 8, 36, 3], "Bottleneck"),
        (200, [3, 24, 36, 3], "Bottleneck"),
        (20, [3, 3, 3], "BasicBlock"),
        (32, [5, 5, 5], "BasicBlock"),
        (44, [7, 7, 7], "BasicBlock"),
        (56, [9, 9, 9], "BasicBlock"),
        (110, [18, 18, 18], "BasicBlock"),
    ],
)
def test_each_depth_has_its_blocks(depth: int, blocks: list[int], kind: str) -> None:
    net = ResNet(Architecture(depth, (3, 32, 32), 5))
    assert net.stage_blocks() == blocks
    assert {type(b).__name__ for stage in net.stages for b in stage} == {kind}  # type: ignore[union-attr]
    per_block = 2 if kind == "BasicBlock" else 3
    assert per_block * sum(blocks) + 2 == depth
    if depth in (18, 20):
        assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 5)


def test_a_weight_snapshot_is_not_the_live_weights() -> None:
    """The best epoch's snapshot must not move with later training (on the CPU `.numpy()`
    shares memory with the tensor)."""
    net = ResNet(Architecture(20, (3, 16, 16), 2))
    snapshot = state_arrays(net)
    before = {name: value.copy() for name, value in snapshot.items()}
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.add_(1.0)
    for name, value in snapshot.items():
        np.testing.assert_array_equal(value, before[name])


def test_large_images_get_the_imagenet_stem() -> None:
    net = ResNet(Architecture(18, (1, 64, 48), 2))
    assert isinstance(net.stem[-1], torch.nn.MaxPool2d)
    assert net(torch.zeros(2, 1, 64, 48)).shape == (2, 2)


@pytest.mark.parametrize("kind", [None, "crop", "crop_color", "crop_color_transform"])
def test_augmentation_keeps_shapes_and_is_seeded(kind: str | None) -> None:
    x = torch.from_numpy(dataset(8, 0).pixels).float()
    a = augment(x, kind, torch.Generator().manual_seed(1))
    b = augment(x, kind, torch.Generator().manual_seed(1))
    assert a.shape == x.shape
    assert torch.equal(a, b)
    assert float(a.min()) >= 0
    assert float(a.max()) <= 255
    assert torch.equal(a, x) == (kind is None)


def test_grey_images_augment_with_colour() -> None:
    x = torch.full((4, 1, 16, 16), 100.0)
    assert augment(x, "crop_color", torch.Generator().manual_seed(0)).shape == x.shape


@pytest.mark.parametrize(
    ("name", "kind", "check"),
    [
        ("sgd", torch.optim.SGD, {"momentum": 0.5, "nesterov": False, "weight_decay": 0.01}),
        ("nag", torch.optim.SGD, {"momentum": 0.5, "nesterov": True}),
        ("adam", torch.optim.Adam, {"betas": (0.8, 0.99), "eps": 1e-6}),
        ("rmsprop", torch.optim.RMSprop, {"alpha": 0.7, "eps": 1e-6}),
    ],
)
def test_optimizers_take_their_parameters(name: str, kind: type, check: dict[str, Any]) -> None:
    config = Config(optimizer=name, momentum=0.5, weight_decay=0.01, beta_1=0.8, beta_2=0.99,
                    eps=1e-6, gamma=0.7)  # fmt: skip
    optimizer = build_optimizer(torch.nn.Linear(2, 2), config)
    assert type(optimizer) is kind
    for key, value in check.items():
        assert optimizer.param_groups[0][key] == value


def test_learning_rate_steps_at_the_given_epochs() -> None:
    config = Config(learning_rate=0.1, lr_steps=(2, 4), lr_factor=0.5)
    rates = [learning_rate(config, epoch) for epoch in range(6)]
    assert rates == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])


def test_training_is_reproducible_on_the_cpu() -> None:
    data = dataset(24, 1)
    arch = Architecture(20, (3, SIZE, SIZE), 3)
    config = Config(epochs=1, batch_size=8, augmentation="crop_color_transform")
    first, second = Trainer(arch, config, CPU), Trainer(arch, config, CPU)
    first.fit(data, None, None)
    second.fit(data, None, None)
    for (name, a), b in zip(first.net.state_dict().items(), second.net.state_dict().values(),
                            strict=True):  # fmt: skip
        assert torch.equal(a, b), name


# --- data ---------------------------------------------------------------------------------------


def test_multi_label_records_with_flag_labels_train(tmp_path: Path) -> None:
    hot = [(1.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 1.0, 0.0), (0.0, 0.0, 1.0)] * 5
    ids = [(0.0, 2.0), (1.0,), (0.0, 1.0), (2.0,)] * 5
    hps = {**BASE, "multi_label": "1", "use_weighted_loss": "1"}
    code, paths = run_job(tmp_path / "hot", hps, {
        "train": ("application/x-recordio", {"a.rec": rec(20, 0, hot, multi=True)}),
        "validation": ("application/x-recordio", {"b.rec": rec(20, 0, hot, multi=True)}),
    })  # fmt: skip
    assert code == 0, failure(paths)
    arch, _ = read_model(paths.model)
    assert arch.multi_label
    handler = serve.load(paths.model)
    body = encode(shapes(1, SIZE, seed=5)[0][0])
    answer = json.loads(handler.invoke(body, "image/png", "application/json", None).body)
    assert len(answer) == 3
    assert all(0 <= p <= 1 for p in answer)
    code, paths = run_job(tmp_path / "ids", hps, {
        "train": ("application/x-recordio;label-format=class-id",
                  {"a.rec": rec(20, 0, ids, multi=True)}),
    })  # fmt: skip
    assert code == 0, failure(paths)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a.rec": rec(3, 0, [(0.0,), (7.0,), (1.0,)])},
         "record 1 (id 1) of 'a.rec' has label [7]"),
        ({"a.rec": encode_rec([ImageRecord((0.0,), b"not an image", id=4)])},
         "record 0 (id 4) of 'a.rec': the image cannot be decoded"),
        ({"a.rec": b"garbage!"}, "Could not read file 'a.rec' of channel 'train'"),
    ],
)  # fmt: skip
def test_bad_records_fail_the_job_naming_them(
    tmp_path: Path, files: dict[str, bytes], message: str
) -> None:
    code, paths = run_job(tmp_path, BASE, {"train": ("application/x-recordio", files)})
    assert code == 1
    assert failure(paths).startswith("ClientError: "), failure(paths)
    assert message in failure(paths)


def test_image_files_need_resize_and_a_list(tmp_path: Path) -> None:
    images = {"a.png": encode(shapes(1, SIZE)[0][0])}
    code, paths = run_job(tmp_path / "a", BASE, {"train": ("image/png", images)})
    assert code == 1
    assert "Hyperparameter 'resize' is required" in failure(paths)
    code, paths = run_job(tmp_path / "b", {**BASE, "resize": "16"},
                          {"train": ("image/png", images)})  # fmt: skip
    assert "'train_lst' must hold a .lst file" in failure(paths)
    code, paths = run_job(tmp_path / "c", {**BASE, "resize": "16"}, {
        "train": ("image/png", images),
        "train_lst": ("image/png", {"t.lst": b"0\t1\tmissing.png\n"}),
    })  # fmt: skip
    assert "line 0 of 't.lst' (image 'missing.png'): no such image" in failure(paths)


def test_pipe_mode_reads_rec_streams_and_augmented_manifests(tmp_path: Path) -> None:
    """The platform's FIFO `<channel>_0` holds the `.rec` stream, or with RecordWrapperType
    RecordIO an augmented manifest's records: image bytes, then the class, per line."""
    paths = job(tmp_path / "rec", BASE, {})
    paths.input_data_config_file.write_text(
        json.dumps(
            {"train": {"ContentType": "application/x-recordio", "TrainingInputMode": "Pipe"}}
        )
    )
    (paths.data / "train_0").write_bytes(rec(8, 0))
    assert run(SPEC, train, paths) == 0, failure(paths)
    images, labels = shapes(8, SIZE, seed=0)
    stream = b"".join(
        encode_record(part)
        for image, label in zip(images, labels, strict=True)
        for part in (encode(image), str(int(label)).encode())
    )
    paths = job(tmp_path / "manifest", BASE, {})
    paths.input_data_config_file.write_text(json.dumps({"train": {
        "ContentType": "application/x-image", "TrainingInputMode": "Pipe",
        "RecordWrapperType": "RecordIO"}}))  # fmt: skip
    (paths.data / "train_0").write_bytes(stream)
    assert run(SPEC, train, paths) == 0, failure(paths)
    (paths.data / "train_0").write_bytes(stream + encode_record(encode(images[0])))
    assert run(SPEC, train, paths) == 1
    assert "do not pair up as image and label" in failure(paths)


def test_early_stopping_waits_for_min_epochs_and_patience() -> None:
    stopper = EarlyStopping(min_epochs=3, patience=2, tolerance=0.0)
    decisions = [stopper.stop(epoch, accuracy) for epoch, accuracy in
                 enumerate([0.5, 0.4, 0.4, 0.6, 0.6, 0.6])]  # fmt: skip
    assert decisions == [False, False, True, False, False, True]


# --- the model channel --------------------------------------------------------------------------


def train_losses(log: str) -> list[float]:
    return [float(v) for v in re.findall(r"Epoch\[\d+\] Train-loss=(\S+)", log)]


def test_incremental_training_continues_from_the_previous_loss(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second job given the first's model.tar.gz starts near where the first ended."""
    data = {"train": ("application/x-recordio", {"a.rec": rec(60, 2)})}
    hps = {**BASE, "epochs": "4", "learning_rate": "0.05", "checkpoint_frequency": "2"}
    code, first = run_job(tmp_path / "first", hps, data)
    assert code == 0, failure(first)
    assert (first.model / SHAPES).is_file()
    assert json.loads((first.model / SYMBOL).read_text())["params"].endswith("0004.params")
    assert (first.model / "image-classification-0002.params").is_file()
    before = train_losses(capsys.readouterr().out)
    model = ("application/x-sagemaker-model", {"model.tar.gz": tarball(first.model)})
    code, second = run_job(tmp_path / "second", {**BASE, "learning_rate": "0.05"},
                           {**data, "model": model})  # fmt: skip
    assert code == 0, failure(second)
    after = train_losses(capsys.readouterr().out)
    assert len(before) == 4
    assert len(after) == 1
    assert before[-1] < 0.5 * before[0]
    assert after[0] < 0.5 * before[0]  # not from scratch
    assert after[0] < before[-1] * 1.5 + 0.05  # about where the first job ended


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_classes": "4"}, "num_classes=3 but this job has num_classes=4"),
        ({"num_layers": "32"}, "num_layers=20 but this job has num_layers=32"),
        ({"image_shape": "3,20,20"}, "image_shape=3,16,16 but this job has image_shape=3,20,20"),
    ],
)
def test_a_mismatched_model_channel_is_refused(
    tmp_path: Path, changes: dict[str, str], message: str
) -> None:
    arch = Architecture(20, (3, SIZE, SIZE), 3)
    trainer = Trainer(arch, Config(epochs=1), CPU)
    trainer.fit(dataset(4, 0), None, None)
    trainer.save(tmp_path / "previous")
    model = ("application/x-sagemaker-model", {"model.tar.gz": tarball(tmp_path / "previous")})
    code, paths = run_job(tmp_path / "job", {**BASE, **changes}, {
        "train": ("application/x-recordio", {"a.rec": rec(4, 0)}), "model": model,
    })  # fmt: skip
    assert code == 1
    assert message in failure(paths)


def test_transfer_learning_replaces_only_fc(tmp_path: Path) -> None:
    arch = Architecture(18, (3, 8, 8), 5)
    images = dataset(6, 0).pixels[:, :, ::2, ::2].copy()
    trainer = Trainer(arch, Config(epochs=1), CPU)
    trainer.fit(Images(images, np.arange(6) % 5), None, None)
    trainer.save(tmp_path / "previous")
    hps = {**BASE, "num_layers": "18", "use_pretrained_model": "1", "learning_rate": "0",
           "image_shape": "3,8,8"}  # fmt: skip
    model = ("application/x-sagemaker-model", {"model.tar.gz": tarball(tmp_path / "previous")})
    code, paths = run_job(tmp_path / "job", hps, {
        "train": ("application/x-recordio", {"a.rec": rec(6, 0)}), "model": model,
    })  # fmt: skip
    assert code == 0, failure(paths)
    _, before = read_model(tmp_path / "previous")
    _, after = read_model(paths.model)
    assert after["fc.weight"].shape == (3, 512)
    assert np.array_equal(before["stem.0.weight"], after["stem.0.weight"])
    code, paths = run_job(tmp_path / "none", hps, {
        "train": ("application/x-recordio", {"a.rec": rec(6, 0)}),
    })  # fmt: skip
    assert "needs a 'model' channel" in failure(paths)
    assert "never downloaded" in failure(paths)


# --- serving ------------------------------------------------------------------------------------


def test_serving_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    trainer = Trainer(Architecture(20, (3, SIZE, SIZE), 3), Config(epochs=1), CPU)
    trainer.fit(dataset(4, 0), None, None)
    trainer.save(tmp_path)
    handler = serve.load(tmp_path)
    png = encode(shapes(1, SIZE)[0][0])
    lines = handler.invoke(png, "application/x-image", "application/jsonlines", None)
    assert list(json.loads(lines.body)) == ["prediction"]
    for body, kind, accept, status in [
        (png, "text/csv", "application/json", 415),
        (png, "image/jpeg", "application/json", 415),
        (png, "image/png", "text/csv", 406),
        (b"not an image", "application/x-image", "application/json", 400),
    ]:
        with pytest.raises(InferenceError) as info:
            handler.invoke(body, kind, accept, None)
        assert info.value.status_code == status


# --- quality ------------------------------------------------------------------------------------


def test_shapes_reach_95_percent_validation_accuracy() -> None:
    """ResNet-20 on 600 generated 16x16 circles, squares and triangles, 5 epochs (seconds)."""
    arch = Architecture(20, (3, SIZE, SIZE), 3)
    config = Config(epochs=5, batch_size=32, learning_rate=0.1, lr_steps=(4,))
    trainer = Trainer(arch, config, CPU)
    validation = dataset(300, 8)
    trainer.fit(dataset(600, 7), validation, None)
    accuracy, _ = trainer.evaluate(validation)
    assert accuracy >= 0.95
