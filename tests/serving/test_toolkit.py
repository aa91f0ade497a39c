"""The user-script handler: the Inference Toolkit's defaults, hooks, context and errors."""

from __future__ import annotations

import importlib
import io
import json
import logging
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from opensage.serving import codecs, toolkit
from opensage.serving.app import error_result
from opensage.serving.environment import ServingEnvironment
from opensage.serving.errors import InferenceError, UnsupportedFormatError
from opensage.serving.handler import Result

Load = Callable[..., toolkit.ScriptHandler]


@pytest.fixture
def load_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Load]:
    """`load_script(source, **env)`: write `model/code/<unique>.py` and load it as the server does.

    Each script gets its own module name (SAGEMAKER_PROGRAM), and sys.path and sys.modules are
    restored afterwards, so scripts of different tests never see each other.
    """
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "dont_write_bytecode", sys.dont_write_bytecode)
    names: list[str] = []

    def load(source: str | None, program: str | None = None, **env: Any) -> toolkit.ScriptHandler:
        model_dir = tmp_path / "ml" / "model"
        (model_dir / "code").mkdir(parents=True, exist_ok=True)
        name = program or f"inference_{uuid.uuid4().hex[:12]}"
        names.append(name.removesuffix(".py"))
        if source is not None:
            code = textwrap.dedent(source)
            (model_dir / "code" / f"{name.removesuffix('.py')}.py").write_text(code)
        importlib.invalidate_caches()
        return toolkit.load(ServingEnvironment(model_dir=model_dir, program=name, **env))

    yield load
    for name in names:
        sys.modules.pop(name, None)


SKLEARN_LIKE = """
    class Doubler:
        def predict(self, data):
            return data * 2

    def model_fn(model_dir):
        return Doubler()
"""


def invoke(
    handler: toolkit.ScriptHandler,
    body: bytes,
    content_type: str | None = "application/json",
    accept: str | None = None,
    attributes: str | None = None,
) -> Any:
    return handler.invoke(body, content_type, accept, attributes)


def failure(handler: toolkit.ScriptHandler, body: bytes) -> Result:
    """What the server answers when `invoke` raises."""
    try:
        invoke(handler, body)
    except Exception as exc:
        return error_result(exc)
    raise AssertionError(f"{body!r} did not fail")


def test_defaults_decode_predict_and_encode_json(load_script: Load) -> None:
    handler = load_script(SKLEARN_LIKE)
    result = invoke(handler, b"[[1, 2], [3, 4]]")
    assert result.status == 200
    assert result.content_type == "application/json"
    assert json.loads(result.body) == [[2, 4], [6, 8]]


def test_default_accept_and_the_environment_override(load_script: Load) -> None:
    handler = load_script(SKLEARN_LIKE, default_accept="text/csv")
    for accept in (None, "*/*"):
        result = invoke(handler, b"1,2\n3,4", "text/csv", accept)
        assert result.content_type == "text/csv"
        assert result.body == b"2.0,4.0\n6.0,8.0\n"


def test_default_codecs_npy_npz_and_accept_lists(load_script: Load) -> None:
    handler = load_script(SKLEARN_LIKE)
    stream = io.BytesIO()
    np.save(stream, np.array([1.5, 2.5]))
    result = invoke(handler, stream.getvalue(), "application/x-npy", "text/html, application/x-npy")
    assert result.content_type == "application/x-npy"
    np.testing.assert_array_equal(np.load(io.BytesIO(result.body)), [3.0, 5.0])
    sparse = io.BytesIO()
    sp.save_npz(sparse, sp.csr_matrix(np.eye(2)))
    decoded = codecs.default_input_fn(sparse.getvalue(), "application/x-npz")
    np.testing.assert_array_equal(decoded.toarray(), np.eye(2))


def test_unsupported_types_are_500_and_say_what_is_supported(load_script: Load) -> None:
    handler = load_script(SKLEARN_LIKE)
    with pytest.raises(UnsupportedFormatError) as caught:
        invoke(handler, b"x", "image/png")
    mapped = error_result(caught.value)
    assert mapped.status == 500
    assert b"Content type image/png is not supported" in mapped.body
    assert b"application/x-npy" in mapped.body
    assert b"Traceback" in mapped.body
    with pytest.raises(UnsupportedFormatError, match="text/html"):
        invoke(handler, b"[1]", accept="text/html")


def test_bodies_reach_input_fn_as_str_only_for_exact_json_and_csv(load_script: Load) -> None:
    handler = load_script(
        """
        def model_fn(model_dir):
            return None

        def transform_fn(model, data, content_type, accept):
            return type(data).__name__ + " " + str(content_type) + " " + accept
        """
    )
    assert invoke(handler, b"{}").body == b"str application/json application/json"
    assert invoke(handler, b"a", "text/csv").body == b"str text/csv application/json"
    assert invoke(handler, b"a", "text/csv; charset=utf-8").body.startswith(b"bytes ")
    assert invoke(handler, b"a", None).body == b"bytes None application/json"


def test_user_functions_without_context(load_script: Load, tmp_path: Path) -> None:
    handler = load_script(
        """
        import json

        def model_fn(model_dir):
            return {"offset": 10, "dir": model_dir}

        def input_fn(body, content_type):
            return json.loads(body)["values"]

        def predict_fn(data, model):
            return [v + model["offset"] for v in data]

        def output_fn(prediction, accept):
            return json.dumps({"results": prediction}), "application/vnd+json"
        """
    )
    assert handler.model["dir"] == str(tmp_path / "ml" / "model")
    result = invoke(handler, b'{"values": [1, 2]}', accept="text/csv")
    assert json.loads(result.body) == {"results": [11, 12]}
    assert result.content_type == "application/vnd+json"
    assert handler.execution_parameters() is None


def test_user_functions_with_context_and_custom_attributes(load_script: Load) -> None:
    handler = load_script(
        """
        seen = {}

        def pre_model_fn(model_dir, context):
            seen["pre"] = context.system_properties["model_dir"]

        def model_fn(model_dir, context):
            return "model"

        def model_warmup_fn(model_dir, model, context):
            seen["warm"] = model

        def input_fn(body, content_type, context):
            return body

        def predict_fn(data, model, context):
            return data

        def output_fn(prediction, accept, context):
            attributes = context.get_request_header(0, "X-Amzn-SageMaker-Custom-Attributes")
            processor = context.request_processor[0]
            same = processor.get_request_header("x-amzn-sagemaker-custom-attributes")
            assert attributes == same == context.custom_attributes
            context.set_response_custom_attributes("echo=" + str(attributes))
            return prediction + " " + context.get_request_header(0, "content-type")
        """,
        program="context_script.py",
    )
    result = invoke(handler, b"body", "text/csv", "text/plain", "trace=1")
    assert result.body == b"body text/csv"
    assert result.content_type == "text/plain"
    assert result.custom_attributes == "echo=trace=1"
    user = sys.modules["context_script"]
    assert user.seen == {"pre": handler.model_dir.as_posix(), "warm": "model"}


def test_transform_fn_with_other_functions_fails_at_load(load_script: Load) -> None:
    source = """
        def model_fn(model_dir):
            return None

        def transform_fn(model, data, content_type, accept):
            return data

        def input_fn(data, content_type):
            return data
        """
    with pytest.raises(ValueError, match="Cannot use transform_fn implementation in conjunction"):
        load_script(source)


def test_wrong_arity_fails_at_load(load_script: Load) -> None:
    source = """
        def model_fn(model_dir):
            return None

        def transform_fn(model, data):
            return data
        """
    with pytest.raises(TypeError, match="transform_fn takes 2 arguments but 4"):
        load_script(source)


def test_missing_model_fn_fails_at_load_with_a_clear_message(load_script: Load) -> None:
    with pytest.raises(NotImplementedError, match="Please provide a model_fn implementation"):
        load_script("def input_fn(data, content_type):\n    return data\n")
    with pytest.raises(NotImplementedError, match="no module 'absent' was found"):
        load_script(None, program="absent.py")


def test_a_model_without_predict_needs_predict_fn(load_script: Load) -> None:
    with pytest.raises(TypeError, match="has no predict method and is not callable"):
        load_script("def model_fn(model_dir):\n    return 42\n")
    handler = load_script("def model_fn(model_dir):\n    return lambda data: data + 1\n")
    assert json.loads(invoke(handler, b"[1]").body) == [2]


def test_errors_keep_their_status_other_exceptions_are_500(load_script: Load) -> None:
    handler = load_script(
        """
        from opensage.serving.errors import InferenceError

        class BaseInferenceToolkitError(Exception):
            def __init__(self, status_code, message, phrase):
                super().__init__(status_code, message, phrase)
                self.status_code, self.message, self.phrase = status_code, message, phrase

        def model_fn(model_dir):
            return None

        def transform_fn(model, data, content_type, accept):
            if data == "teapot":
                raise BaseInferenceToolkitError(418, "short and stout", "teapot")
            if data == "bad":
                raise InferenceError(400, "bad input")
            raise RuntimeError("the model cannot take " + data)
        """
    )
    results = {body: failure(handler, body.encode()) for body in ("teapot", "bad", "boom")}
    assert (results["teapot"].status, results["teapot"].body) == (418, b"short and stout")
    assert (results["bad"].status, results["bad"].body) == (400, b"bad input")
    assert results["boom"].status == 500
    message, trace = results["boom"].body.decode().split("\n", 1)
    assert message == "the model cannot take boom"
    assert trace.startswith("Traceback")
    assert "RuntimeError" in trace
    assert isinstance(InferenceError(404, "x"), Exception)


def test_results_are_encoded_like_mms(load_script: Load) -> None:
    handler = load_script(
        """
        import numpy as np

        def model_fn(model_dir):
            return None

        def transform_fn(model, data, content_type, accept):
            return {"bytes": b"raw", "none": None, "text": "é"}.get(data, np.arange(2))
        """
    )
    assert invoke(handler, b"bytes").body == b"raw"
    assert invoke(handler, b"none").body == b""
    assert invoke(handler, b"text").body == "é".encode()
    assert json.loads(invoke(handler, b"array").body) == [0, 1]


def test_legacy_execution_parameters_fn(load_script: Load) -> None:
    handler = load_script(
        """
        def model_fn(model_dir):
            return None

        def transform_fn(model, data, content_type, accept):
            return data

        def execution_parameters_fn():
            return '{"MaxConcurrentTransforms": 2, "BatchStrategy": "SINGLE_RECORD"}'
        """
    )
    assert handler.execution_parameters() == {
        "MaxConcurrentTransforms": 2,
        "BatchStrategy": "SINGLE_RECORD",
    }


def test_requirements_are_not_installed_but_mentioned(
    load_script: Load, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "ml" / "model" / "code").mkdir(parents=True)
    (tmp_path / "ml" / "model" / "code" / "requirements.txt").write_text("left-pad\n")
    with caplog.at_level(logging.WARNING, logger="opensage.serving"):
        load_script(SKLEARN_LIKE)
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "requirements.txt" in warning.getMessage()
    assert "platform's Python environment" in warning.getMessage()


def test_a_local_submit_directory_is_importable(load_script: Load, tmp_path: Path) -> None:
    elsewhere = tmp_path / "src"
    elsewhere.mkdir()
    name = f"inference_{uuid.uuid4().hex[:12]}"
    (elsewhere / f"{name}.py").write_text(textwrap.dedent(SKLEARN_LIKE))
    handler = load_script(None, program=f"{name}.py", submit_directory=str(elsewhere))
    assert json.loads(invoke(handler, b"[2]").body) == [4]


def test_inference_error_shape() -> None:
    error = InferenceError(415, "nope")
    assert (error.status_code, error.message, str(error)) == (415, "nope", "nope")
