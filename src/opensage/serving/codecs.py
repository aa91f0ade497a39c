"""The Inference Toolkit's default `input_fn` decoders and `output_fn` encoders (spec §1.6).

Same types and the same numpy calls as `sagemaker_inference.decoder`/`encoder`, with three
deliberate differences: media-type parameters are ignored (`text/csv; charset=utf-8` decodes as
CSV), a UTF-8 type that arrived as bytes is decoded here, and `.npy` bodies are loaded with
`allow_pickle=False`, since a pickle in a request body would run the caller's code in the server.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np

from opensage.serving.errors import UnsupportedFormatError
from opensage.serving.handler import accept_list, media_type

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"
NPZ = "application/x-npz"
UTF8_TYPES = (JSON, CSV)
"""Bodies of exactly these Content-Type values reach `input_fn` as `str` (toolkit rule)."""


def _text(data: str | bytes) -> str:
    return data.decode("utf-8") if isinstance(data, bytes | bytearray) else data


def _binary(data: str | bytes) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


def _json_to_numpy(data: str | bytes) -> Any:
    return np.array(json.loads(data))


def _csv_to_numpy(data: str | bytes) -> Any:
    return np.genfromtxt(io.StringIO(_text(data)), delimiter=",")


def _npy_to_numpy(data: str | bytes) -> Any:
    return np.load(io.BytesIO(_binary(data)), allow_pickle=False)


def _npz_to_sparse(data: str | bytes) -> Any:
    import scipy.sparse

    return scipy.sparse.load_npz(io.BytesIO(_binary(data)))


def to_json(value: Any) -> str:
    def default(item: Any) -> Any:
        if hasattr(item, "tolist"):
            return item.tolist()
        raise TypeError(f"Object of type {type(item).__name__} is not JSON serializable")

    return json.dumps(value, default=default)


def _to_csv(value: Any) -> str:
    stream = io.StringIO()
    np.savetxt(stream, value, delimiter=",", fmt="%s")
    return stream.getvalue()


def _to_npy(value: Any) -> bytes:
    stream = io.BytesIO()
    np.save(stream, value)
    return stream.getvalue()


DECODERS: dict[str, Callable[[str | bytes], Any]] = {
    NPY: _npy_to_numpy,
    CSV: _csv_to_numpy,
    JSON: _json_to_numpy,
    NPZ: _npz_to_sparse,
}
ENCODERS: dict[str, Callable[[Any], str | bytes]] = {
    JSON: to_json,
    CSV: _to_csv,
    NPY: _to_npy,
}


def default_input_fn(input_data: str | bytes, content_type: str | None) -> Any:
    """Decode a request body of a default type into a numpy array (or scipy sparse matrix)."""
    decoder = DECODERS.get(media_type(content_type) or "")
    if decoder is None:
        raise UnsupportedFormatError(content_type, DECODERS, "input_fn")
    return decoder(input_data)


def default_output_fn(prediction: Any, accept: str) -> tuple[str | bytes, str]:
    """Encode with the first type of the Accept list that has an encoder, as the toolkit does."""
    for kind in accept_list(accept):
        encoder = ENCODERS.get(kind)
        if encoder is not None:
            return encoder(prediction), kind
    raise UnsupportedFormatError(accept, ENCODERS, "output_fn")
