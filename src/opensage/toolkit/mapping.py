"""Hyperparameter decoding and the two encodings the toolkit gives a user script.

`to_cmd_args` and `to_env_vars` mirror `sagemaker_training.mapping` value for value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping


def decode_hyperparameter(value: object) -> object:
    """Decode one `hyperparameters.json` value with `json.loads`, or keep it as given.

    >>> [decode_hyperparameter(v) for v in ("0.001", '"adam"', "adam", "[1, 2]")]
    [0.001, 'adam', 'adam', [1, 2]]
    """
    if not isinstance(value, str | bytes | bytearray):
        return value
    try:
        return json.loads(value)
    except (ValueError, TypeError, RecursionError):
        return value


def decode_hyperparameters(raw: Mapping[str, object]) -> dict[str, object]:
    return {str(key): decode_hyperparameter(value) for key, value in raw.items()}


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin1")
    return str(value)


def to_cmd_args(mapping: Mapping[str, object]) -> list[str]:
    """Command-line arguments for a user script: sorted `--key value` pairs.

    One-character keys get one dash; a dict value becomes `k1=v1,k2=v2`.

    >>> to_cmd_args({"lr": 0.001, "b": 32, "opt": {"x": 1, "a": True}})
    ['-b', '32', '--lr', '0.001', '--opt', 'a=True,x=1']
    """
    args: list[str] = []
    for key in sorted(mapping):
        name = _text(key)
        args.append(("--" if len(name) > 1 else "-") + name if name else "")
        value = mapping[key]
        if isinstance(value, Mapping):
            args.append(",".join(f"{k}={v}" for k, v in sorted(value.items())))
        else:
            args.append(_text(value))
    return args


def encode_env_value(value: object) -> str:
    """Strings raw, `None` empty, everything else compact sorted JSON."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin1")
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def to_env_vars(mapping: Mapping[str, object]) -> dict[str, str]:
    """`SM_<KEY>` variables: the key upper-cased (hyphens kept), the value encoded.

    >>> to_env_vars({"hp_learning-rate": 0.001, "hosts": ["algo-1"], "model_dir": "/opt/ml/model"})
    {'SM_HP_LEARNING-RATE': '0.001', 'SM_HOSTS': '["algo-1"]', 'SM_MODEL_DIR': '/opt/ml/model'}
    """
    return {
        (f"SM_{_text(key).upper()}" if key else ""): encode_env_value(value)
        for key, value in mapping.items()
    }
