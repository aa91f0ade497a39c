"""to_cmd_args, to_env_vars and hyperparameter decoding, value for value like the real toolkit."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from opensage.toolkit.mapping import (
    decode_hyperparameter,
    decode_hyperparameters,
    encode_env_value,
    to_cmd_args,
    to_env_vars,
)

SDK_HYPERPARAMETERS = {
    "epochs": "2",
    "lr": "0.001",
    "optimizer": '"adam"',
    "sagemaker_program": '"train.py"',
    "sagemaker_submit_directory": '"s3://b/k/sourcedir.tar.gz"',
}


def test_decode_sdk_encoded_values() -> None:
    assert decode_hyperparameters(SDK_HYPERPARAMETERS) == {
        "epochs": 2,
        "lr": 0.001,
        "optimizer": "adam",
        "sagemaker_program": "train.py",
        "sagemaker_submit_directory": "s3://b/k/sourcedir.tar.gz",
    }


def test_decode_keeps_raw_strings_and_non_strings() -> None:
    assert decode_hyperparameter("adam") == "adam"
    assert decode_hyperparameter("True") == "True"  # str() encoding of the generic Estimator
    assert decode_hyperparameter("true") is True
    assert decode_hyperparameter("[1,2]") == [1, 2]
    assert decode_hyperparameter("1e-3") == 0.001
    assert decode_hyperparameter("") == ""
    assert decode_hyperparameter(5) == 5
    assert decode_hyperparameter("[" * 100_000) == "[" * 100_000


@given(st.text())
def test_decode_any_string_is_json_or_itself(value: str) -> None:
    try:
        expected: object = json.loads(value)
    except ValueError:
        expected = value
    decoded = decode_hyperparameter(value)
    if expected != expected:  # NaN
        assert decoded != decoded
    else:
        assert decoded == expected


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_decode_inverts_the_sdk_json_encoding(value: object) -> None:
    assert decode_hyperparameter(json.dumps(value)) == value


def test_to_cmd_args_spec_examples() -> None:
    hps = decode_hyperparameters({"epochs": "2", "lr": "0.001", "optimizer": '"adam"'})
    assert to_cmd_args(hps) == ["--epochs", "2", "--lr", "0.001", "--optimizer", "adam"]
    assert to_cmd_args(
        {"batch-size": 32, "model_dir": "s3://b/job/model", "learning-rate": 0.001, "epochs": 2}
    ) == [
        "--batch-size",
        "32",
        "--epochs",
        "2",
        "--learning-rate",
        "0.001",
        "--model_dir",
        "s3://b/job/model",
    ]


def test_to_cmd_args_value_forms() -> None:
    assert to_cmd_args({"x": 1, "flag": True, "ids": [1, 2], "lr": 1e-3, "none": None}) == [
        "--flag",
        "True",
        "--ids",
        "[1, 2]",
        "--lr",
        "0.001",
        "--none",
        "",
        "-x",
        "1",
    ]
    assert to_cmd_args({"opts": {"b": 2, "a": "x"}}) == ["--opts", "a=x,b=2"]
    assert to_cmd_args({}) == []


def test_to_env_vars_encoding() -> None:
    assert to_env_vars(
        {
            "model_dir": "/opt/ml/model",
            "hp_learning-rate": 0.001,
            "hp_optimizer": "adam",
            "hps": {"epochs": 2, "batch-size": 32},
            "hosts": ["algo-1", "algo-2"],
            "is_hetero": False,
            "framework_module": None,
            "num_gpus": 0,
        }
    ) == {
        "SM_MODEL_DIR": "/opt/ml/model",
        "SM_HP_LEARNING-RATE": "0.001",
        "SM_HP_OPTIMIZER": "adam",
        "SM_HPS": '{"batch-size":32,"epochs":2}',
        "SM_HOSTS": '["algo-1","algo-2"]',
        "SM_IS_HETERO": "false",
        "SM_FRAMEWORK_MODULE": "",
        "SM_NUM_GPUS": "0",
    }


def test_encode_env_value_is_ascii_json() -> None:
    assert encode_env_value({"k": "é"}) == '{"k":"\\u00e9"}'
    assert encode_env_value("é") == "é"
