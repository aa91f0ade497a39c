"""Which program an image URI names (control/images.py)."""

from __future__ import annotations

import pytest

from opensage.control.images import TOOLKIT, repository, resolve
from opensage.errors import ValidationError

SCRIPT = {"sagemaker_program": '"train.py"', "sagemaker_submit_directory": '"s3://b/k.tar.gz"'}


@pytest.mark.parametrize(
    ("image", "repo"),
    [
        ("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
         "sagemaker-xgboost"),
        ("811284229777.dkr.ecr.us-east-1.amazonaws.com/xgboost:1", "xgboost"),
        ("727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/xgboost:latest", "xgboost"),
        ("763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-training:2.1-cpu-py310",
         "pytorch-training"),
        ("opensage/python:3", "opensage/python"),
        ("sagemaker-scikit-learn", "sagemaker-scikit-learn"),
    ],
)  # fmt: skip
def test_repository_is_read_from_any_region_and_account(image: str, repo: str) -> None:
    assert repository(image) == repo


def test_xgboost_is_the_builtin_without_a_program_and_script_mode_with_one() -> None:
    image = "246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:1.7-1"
    builtin = resolve(image, {"num_round": "10"})
    assert builtin.algorithm == "xgboost"
    assert builtin.command[-3:] == ["-m", "opensage.algorithms.xgboost", "train"]
    assert any(d["Name"] == "validation:auc" for d in builtin.metric_definitions)
    assert resolve(image, SCRIPT).command == TOOLKIT


@pytest.mark.parametrize(
    "image",
    [
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.1-cpu-py310",
        "opensage/python:3",
    ],
)
def test_framework_images_run_the_toolkit(image: str) -> None:
    assert resolve(image, SCRIPT).command == TOOLKIT
    with pytest.raises(ValidationError, match="sagemaker_program"):
        resolve(image, {})


def test_entrypoint_runs_only_in_the_python_image() -> None:
    assert resolve("opensage/python:3", {}, ["echo"], ["hi"]).command == ["echo", "hi"]
    with pytest.raises(ValidationError, match="ContainerEntrypoint"):
        resolve("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1", {}, ["sh"])


@pytest.mark.parametrize("image", ["acme/whatever:1", "no-such-algorithm:1", "Not A URI!"])
def test_images_opensage_cannot_run_are_refused_by_name(image: str) -> None:
    with pytest.raises(
        ValidationError, match=r"TrainingImage|not in opensage.s image store"
    ) as info:
        resolve(image, {})
    assert image in info.value.message


@pytest.mark.parametrize(
    ("repository", "name", "hyperparameters"),
    [
        ("kmeans", "kmeans", {"k": "3", "feature_dim": "4"}),
        ("pca", "pca", {"num_components": "2", "feature_dim": "4", "mini_batch_size": "10"}),
        ("linear-learner", "linear_learner", {"predictor_type": "regressor"}),
        ("randomcutforest", "randomcutforest", {"feature_dim": "4"}),
        (
            "factorization-machines",
            "factorization_machines",
            {"feature_dim": "4", "num_factors": "2", "predictor_type": "regressor"},
        ),
        ("ipinsights", "ipinsights", {"num_entity_vectors": "100", "vector_dim": "8"}),
        ("lda", "lda", {"num_topics": "2", "feature_dim": "4", "mini_batch_size": "10"}),
        ("ntm", "ntm", {"num_topics": "2", "feature_dim": "4"}),
        ("seq2seq", "seq2seq", {"rnn_num_hidden": "16", "beam_size": "2"}),
        ("object2vec", "object2vec", {"enc0_max_seq_len": "4", "enc0_vocab_size": "10"}),
        ("blazingtext", "blazingtext", {"mode": "skipgram"}),
        (
            "semantic-segmentation",
            "semantic_segmentation",
            {"num_classes": "3", "num_training_samples": "10"},
        ),
        ("object-detection", "object_detection", {"num_classes": "2", "num_training_samples": "9"}),
        (
            "forecasting-deepar",
            "deepar",
            {"time_freq": "D", "context_length": "7", "prediction_length": "5", "epochs": "2"},
        ),
        (
            "image-classification",
            "image_classification",
            {"num_classes": "3", "num_training_samples": "10", "num_layers": "18"},
        ),
    ],
)
def test_builtin_images_of_any_region_run_their_algorithm(
    repository: str, name: str, hyperparameters: dict[str, str]
) -> None:
    for image in (
        f"382416733822.dkr.ecr.us-east-1.amazonaws.com/{repository}:1",
        f"664544806723.dkr.ecr.eu-central-1.amazonaws.com/{repository}:latest",
        f"{repository}:1",
    ):
        program = resolve(image, hyperparameters)
        assert program.command[-3:] == ["-m", f"opensage.algorithms.{name}", "train"]
        assert program.algorithm == name
    with pytest.raises(ValidationError, match=r"^Hyperparameter '"):
        resolve(f"{repository}:1", {**hyperparameters, "no_such": "1"})
