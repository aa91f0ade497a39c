"""DataProcessing for batch transform: input filter, join with the input, output filter (§4.4).

Per record: `InputFilter` picks what the model sees → inference → with `JoinSource=Input` the
*original* record is joined with the model's output for it → `OutputFilter` picks what is written.

CSV rows are arrays of column texts (RFC 4180; values keep their text, numbers are not parsed), so
only index paths apply to them; a CSV join is the input's columns followed by the output's. JSON
and JSON Lines records are JSON values; a join adds the model's output under `SageMakerOutput` to
an input object, or wraps any other input as `{"SageMakerInput": ..., "SageMakerOutput": ...}`.
An input object that already holds `SageMakerOutput` has it replaced: the guide warns that it
"might be overwritten" rather than refusing it, and refusing would fail jobs that run on AWS (such
as a second transform over a first one's joined output).

A response to several records is matched to them by position (line i, or item i of a JSON
array, answers record i). Rewritten records end in "\\n" whatever AssembleWith says, so they stay
one per line; a CSV row is written with minimal quoting, JSON compactly (UTF-8, not \\u escapes;
JSON numbers are re-serialised, so `1.10` comes back as `1.1`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opensage.control.jsonpath import JsonPath, JsonPathError, Name, compile_path
from opensage.formats import content_types

CSV = content_types.CSV
JSON = content_types.JSON
JSON_LINES = content_types.JSONLINES
_FAMILY = {CSV: "CSV", JSON: "JSON", JSON_LINES: "JSON"}
_SUPPORTED = "text/csv, application/json or application/jsonlines"
_OUTPUT_KEY = "SageMakerOutput"
_INPUT_KEY = "SageMakerInput"
_INPUT_RECORD = "input record"
_RESULT = "model's output for the record"
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_ASCII_ENCODER = json.JSONEncoder(separators=(",", ":"))


class FilterError(Exception):
    """A record the filters or the join cannot handle; fails the object it belongs to.

    `record` is the 1-based number of the (first) record concerned within its object.
    """

    def __init__(self, message: str, record: int) -> None:
        super().__init__(message)
        self.record = record


@dataclass(frozen=True)
class DataProcessing:
    """A job's compiled DataProcessing; `None` filters stand for the default `$`.

    `content_type` and `accept` are the canonical media types (CSV, JSON or JSON_LINES).
    """

    input_filter: JsonPath | None
    output_filter: JsonPath | None
    join: bool
    content_type: str
    accept: str

    @classmethod
    def from_request(
        cls,
        data_processing: Mapping[str, Any] | None,
        content_type: str | None,
        accept: str | None,
        split_type: str,
        assemble_with: str,
    ) -> DataProcessing | None:
        """None when there is nothing to do (no DataProcessing, or only its defaults).

        ValueError, with what to change, for what CreateTransformJob refuses: filters or a join
        on other formats than CSV / JSON / JSON Lines (both ContentType and Accept must be one of
        them, as the guide requires), CSV without SplitType=Line / AssembleWith=Line, a join of
        a CSV side with a JSON side, and paths that are not valid (or name keys of CSV rows).
        """
        given = data_processing or {}
        join_source = given.get("JoinSource") or "None"
        if join_source not in ("Input", "None"):
            raise ValueError(
                f"DataProcessing.JoinSource must be Input or None, not {join_source!r}"
            )
        input_filter = _compile(given, "InputFilter")
        output_filter = _compile(given, "OutputFilter")
        join = join_source == "Input"
        if input_filter is None and output_filter is None and not join:
            return None
        source = _media_type(content_type, "TransformInput.ContentType")
        target = _media_type(accept, "TransformOutput.Accept")
        _check_framing(source, target, split_type, assemble_with)
        if join and _FAMILY[source] != _FAMILY[target]:
            raise ValueError(
                "DataProcessing.JoinSource=Input joins each input record with the model's output "
                "for it, so both must be CSV or both JSON / JSON Lines; TransformInput.ContentType "
                f"is {source} and TransformOutput.Accept is {target}"
            )
        if source == CSV and input_filter is not None:
            _check_csv_path(input_filter, "InputFilter")
        if target == CSV and output_filter is not None:
            _check_csv_path(output_filter, "OutputFilter")
        return cls(input_filter, output_filter, join, source, target)

    @property
    def rewrites_output(self) -> bool:
        """Whether responses go through `per_record_outputs` and `output` (else: as they are)."""
        return self.join or self.output_filter is not None

    def filter_input(self, record: bytes, number: int) -> bytes:
        """What the model gets for one record as split, keeping the record's line ending."""
        if self.input_filter is None:
            return record
        body, ending = _split_ending(record)
        try:
            if self.content_type == CSV:
                picked = self.input_filter.select(_csv_row(body, number, _INPUT_RECORD))
                return _csv_line(picked).encode() + ending
            picked = self.input_filter.select(_json(body, number, _INPUT_RECORD))
            return _dumps(picked) + ending
        except JsonPathError as exc:
            raise FilterError(f"record {number}: InputFilter {exc}", number) from None

    def per_record_outputs(self, body: bytes, count: int, first_number: int) -> list[bytes]:
        """One response for the `count` records from `first_number` on, cut into one result
        each: lines for CSV and JSON Lines; for JSON the whole body for one record, else the
        items of a JSON array (or of an object's one list, like `{"predictions": [...]}`)."""
        if self.accept == JSON:
            items = [body] if count == 1 else _json_items(body, count, first_number)
        elif self.accept == JSON_LINES and count == 1:
            items = [_split_ending(body)[0]]
        else:
            items = _lines(body)
        if len(items) != count:
            raise FilterError(
                f"the model answered {_plural(len(items), 'result')} for "
                f"{_plural(count, 'record')} ({_span(first_number, count)}): each record needs "
                "one result, in order",
                first_number,
            )
        return items

    def output(self, record: bytes, result: bytes, number: int) -> bytes:
        """The line written for one record: its result, joined with the original (unfiltered)
        record when asked, then through the output filter. Without either, the result as it is
        (on its own line): prefer passing responses through whole then (`rewrites_output`)."""
        if not self.rewrites_output:
            return result if result.endswith(b"\n") else result + b"\n"
        try:
            if self.accept == CSV:
                return self._csv_output(record, result, number)
            return self._json_output(record, result, number)
        except JsonPathError as exc:
            raise FilterError(f"record {number}: OutputFilter {exc}", number) from None

    def _csv_output(self, record: bytes, result: bytes, number: int) -> bytes:
        row = _csv_row(_split_ending(result)[0], number, _RESULT)
        if self.join:
            row = _csv_row(_split_ending(record)[0], number, _INPUT_RECORD) + row
        if self.output_filter is None:
            return _csv_line(row).encode() + b"\n"
        return _csv_line(self.output_filter.select(row)).encode() + b"\n"

    def _json_output(self, record: bytes, result: bytes, number: int) -> bytes:
        if self.join:
            text = _text(result, number, _RESULT)
            try:
                value: Any = json.loads(text)
            except ValueError:
                value = text.strip()
            source = _json(record, number, _INPUT_RECORD)
            if isinstance(source, dict):
                source[_OUTPUT_KEY] = value
                value = source
            else:
                value = {_INPUT_KEY: source, _OUTPUT_KEY: value}
        else:
            value = _json(result, number, _RESULT)
        if self.output_filter is not None:
            value = self.output_filter.select(value)
        return _dumps(value) + b"\n"


# --- request checks ----------------------------------------------------------------------------


def _compile(given: Mapping[str, Any], name: str) -> JsonPath | None:
    """The compiled filter, None for the default: absent, empty (the API allows length 0) or $."""
    expression = given.get(name)
    if not expression:
        return None
    if not isinstance(expression, str):
        raise ValueError(f"DataProcessing.{name} must be a JSONPath string such as $[1:]")
    try:
        path = compile_path(expression)
    except JsonPathError as exc:
        raise ValueError(f"DataProcessing.{name}: {exc}") from None
    return path if path.steps else None


def _media_type(value: str | None, name: str) -> str:
    if not value:
        raise ValueError(f"DataProcessing needs {name} set to {_SUPPORTED}")
    try:
        found = content_types.lookup(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    if found is None or found.media_type not in _FAMILY:
        raise ValueError(
            f"DataProcessing works on {_SUPPORTED} only; {name} is {value!r}. "
            "Remove DataProcessing or use one of these formats"
        )
    return found.media_type


def _check_framing(source: str, target: str, split_type: str, assemble_with: str) -> None:
    """Records must be what the filters see: CSV lines; whole JSON documents or JSON lines."""
    if source == CSV and split_type != "Line":
        raise ValueError(
            "DataProcessing on text/csv input needs TransformInput.SplitType=Line (each line is "
            f"a record), not {split_type}"
        )
    if source != CSV and split_type not in ("Line", "None"):
        raise ValueError(
            f"DataProcessing on {source} input needs TransformInput.SplitType Line (JSON Lines) "
            f"or None (one JSON document per object), not {split_type}"
        )
    if target == CSV and assemble_with != "Line":
        raise ValueError(
            "DataProcessing with text/csv output needs TransformOutput.AssembleWith=Line, "
            f"not {assemble_with}"
        )


def _check_csv_path(path: JsonPath, name: str) -> None:
    """CSV rows are flat arrays of texts: only one step of indexes, slices or * can apply."""
    if any(isinstance(s, Name) for step in path.steps for s in step.selectors):
        raise ValueError(
            f"DataProcessing.{name} {path.expression!r} selects a key, but a CSV row is an "
            "array of columns: select columns by index, e.g. $[0], $[1:] or $[0,-1]"
        )
    if len(path.steps) > 1:
        raise ValueError(
            f"DataProcessing.{name} {path.expression!r} goes into a column, but CSV columns "
            "are text: use one step of indexes or slices, e.g. $[0,2:4]"
        )


# --- records -----------------------------------------------------------------------------------


def _split_ending(record: bytes) -> tuple[bytes, bytes]:
    """A line and its ending ("\\r\\n", "\\n" or none), so a filtered line keeps it."""
    if record.endswith(b"\n"):
        cut = 2 if record.endswith(b"\r\n") else 1
        return record[:-cut], record[-cut:]
    return record, b""


def _text(data: bytes, number: int, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FilterError(
            f"record {number}: the {what} is not UTF-8 text (byte offset {exc.start})", number
        ) from None


def _csv_row(line: bytes, number: int, what: str) -> list[str]:
    text = _text(line, number, what)
    if '"' not in text:
        return text.split(",")
    try:
        return next(csv.reader((text,), strict=True))
    except csv.Error as exc:
        raise FilterError(
            f"record {number}: the {what} is not an RFC 4180 CSV row ({exc})", number
        ) from None


def _csv_line(picked: Any) -> str:
    """A row with minimal quoting; one selected column is a one-column row."""
    row = picked if isinstance(picked, list) else [picked]
    text = ",".join(row)
    if (
        '"' not in text
        and "\n" not in text
        and "\r" not in text
        and text.count(",") + 1 == len(row)
    ):
        return text if text or len(row) != 1 else '""'
    return ",".join(_quoted(value) for value in row)


def _quoted(value: str) -> str:
    if any(char in value for char in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _json(data: bytes, number: int, what: str) -> Any:
    try:
        return json.loads(_text(data, number, what))
    except json.JSONDecodeError as exc:
        several = what == _INPUT_RECORD and b"\n" in data.strip()
        hint = " (several lines: set SplitType=Line for JSON Lines)" if several else ""
        raise FilterError(
            f"record {number}: the {what} is not JSON: {exc.msg} at character {exc.pos}{hint}",
            number,
        ) from None


def _dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; \\u escapes only for lone surrogates, which UTF-8 cannot hold."""
    try:
        return _ENCODER.encode(value).encode()
    except UnicodeEncodeError:
        return _ASCII_ENCODER.encode(value).encode()


def _lines(body: bytes) -> list[bytes]:
    """The lines of a response; a final newline ends the last line rather than starting one."""
    lines = body.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    if b"\r" in body:
        lines = [line.removesuffix(b"\r") for line in lines]
    return lines


def _json_items(body: bytes, count: int, first: int) -> list[bytes]:
    """The per-record results of one JSON answer to several records."""
    try:
        answer = json.loads(body)
    except ValueError as exc:
        raise FilterError(
            f"the model's application/json answer for {_span(first, count)} is not JSON ({exc})",
            first,
        ) from None
    if isinstance(answer, dict) and len(answer) == 1:
        answer = next(iter(answer.values()))
    if not isinstance(answer, list):
        raise FilterError(
            f"the model's application/json answer for {_span(first, count)} is neither an array "
            f"of {count} results nor an object holding one such array",
            first,
        )
    return [_dumps(item) for item in answer]


def _span(first: int, count: int) -> str:
    return f"record {first}" if count == 1 else f"records {first}-{first + count - 1}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
