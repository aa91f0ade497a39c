"""DataProcessing for batch transform: what CreateTransformJob refuses, the input filter, the
per-record split of responses, the join and the output filter, for CSV and JSON (Lines)."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opensage.control.transform_filters import (
    CSV,
    JSON,
    JSON_LINES,
    DataProcessing,
    FilterError,
)


def processing(
    input_filter: str | None = None,
    output_filter: str | None = None,
    join: bool = False,
    content_type: str = CSV,
    accept: str | None = None,
    split_type: str = "Line",
    assemble_with: str = "Line",
) -> DataProcessing:
    given_: dict[str, str] = {"JoinSource": "Input" if join else "None"}
    if input_filter is not None:
        given_["InputFilter"] = input_filter
    if output_filter is not None:
        given_["OutputFilter"] = output_filter
    made = DataProcessing.from_request(
        given_, content_type, accept or content_type, split_type, assemble_with
    )
    assert made is not None
    return made


def csv_line(fields: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(fields)
    return out.getvalue().encode()


def csv_fields(line: bytes) -> list[str]:
    assert line.endswith(b"\n")
    return next(csv.reader([line.decode()[:-1]]))


# --- CreateTransformJob validation -------------------------------------------------------------


@pytest.mark.parametrize(
    "given_",
    [
        None,
        {},
        {"InputFilter": "$", "OutputFilter": "$", "JoinSource": "None"},
        {"InputFilter": "", "OutputFilter": ""},  # the API allows length 0: the default
        {"JoinSource": None},
    ],
)
def test_nothing_to_do_is_none(given_: dict[str, Any] | None) -> None:
    # Even on formats DataProcessing does not support: the defaults are no processing at all.
    assert DataProcessing.from_request(given_, "application/x-image", None, "None", "None") is None


def test_a_request_compiles_to_canonical_media_types() -> None:
    made = DataProcessing.from_request(
        {"InputFilter": "$.features", "JoinSource": "Input"},
        "application/x-jsonlines",
        "application/json; verbose=true",
        "Line",
        "None",
    )
    assert made is not None
    assert (made.content_type, made.accept, made.join) == (JSON_LINES, JSON, True)
    assert made.input_filter is not None
    assert made.input_filter.expression == "$.features"
    assert made.output_filter is None
    assert made.rewrites_output


def test_csv_with_parameters_and_a_bare_name_are_csv() -> None:
    made = DataProcessing.from_request(
        {"OutputFilter": "$[0]"}, "text/csv; charset=utf-8", "csv", "Line", "Line"
    )
    assert made is not None
    assert (made.content_type, made.accept) == (CSV, CSV)
    assert made.input_filter is None


def test_only_an_input_filter_leaves_responses_as_they_are() -> None:
    dp = processing(input_filter="$[1:]", content_type=CSV, accept=JSON_LINES)
    assert not dp.rewrites_output
    assert dp.output(b"1,2\n", b"not json", 1) == b"not json\n"
    assert dp.output(b"1,2\n", b'"a,b"\n', 1) == b'"a,b"\n'


@pytest.mark.parametrize(
    ("given_", "content_type", "accept", "split", "assemble", "message"),
    [
        (
            {"JoinSource": "Output"},
            CSV,
            CSV,
            "Line",
            "Line",
            "DataProcessing.JoinSource must be Input or None, not 'Output'",
        ),
        (
            {"InputFilter": "$.a..b"},
            JSON,
            JSON,
            "None",
            "None",
            "DataProcessing.InputFilter: JSONPath '$.a..b', character 4: deep scan",
        ),
        (
            {"OutputFilter": "$[1:2:3]"},
            CSV,
            CSV,
            "Line",
            "Line",
            "DataProcessing.OutputFilter: JSONPath '$[1:2:3]', character 6: slice steps",
        ),
        (
            {"InputFilter": 5},
            CSV,
            CSV,
            "Line",
            "Line",
            "DataProcessing.InputFilter must be a JSONPath string",
        ),
        (
            {"InputFilter": "$[1:]"},
            "application/x-recordio-protobuf",
            CSV,
            "RecordIO",
            "Line",
            "DataProcessing works on text/csv, application/json or application/jsonlines only; "
            "TransformInput.ContentType is 'application/x-recordio-protobuf'",
        ),
        (
            {"JoinSource": "Input"},
            CSV,
            "application/x-recordio-protobuf",
            "Line",
            "Line",
            "TransformOutput.Accept is 'application/x-recordio-protobuf'",
        ),
        (
            {"InputFilter": "$[1:]"},
            None,
            CSV,
            "Line",
            "Line",
            "DataProcessing needs TransformInput.ContentType set to text/csv, "
            "application/json or application/jsonlines",
        ),
        (
            {"InputFilter": "$[1:]"},
            CSV,
            None,
            "Line",
            "Line",
            "DataProcessing needs TransformOutput.Accept set to text/csv",
        ),
        (
            {"InputFilter": "$[1:]"},
            "text/csv; =x",
            CSV,
            "Line",
            "Line",
            "TransformInput.ContentType: bad media type parameter",
        ),
        (
            {"InputFilter": "$[1:]"},
            CSV,
            CSV,
            "None",
            "Line",
            "DataProcessing on text/csv input needs TransformInput.SplitType=Line (each line "
            "is a record), not None",
        ),
        (
            {"JoinSource": "Input"},
            CSV,
            CSV,
            "Line",
            "None",
            "DataProcessing with text/csv output needs TransformOutput.AssembleWith=Line, not None",
        ),
        (
            {"InputFilter": "$.features"},
            JSON,
            JSON,
            "RecordIO",
            "None",
            "DataProcessing on application/json input needs TransformInput.SplitType Line",
        ),
        (
            {"JoinSource": "Input"},
            CSV,
            JSON,
            "Line",
            "None",
            "both must be CSV or both JSON / JSON Lines; TransformInput.ContentType is "
            "text/csv and TransformOutput.Accept is application/json",
        ),
        (
            {"JoinSource": "Input"},
            JSON_LINES,
            CSV,
            "Line",
            "Line",
            "both must be CSV or both JSON / JSON Lines",
        ),
        (
            {"InputFilter": "$.features"},
            CSV,
            CSV,
            "Line",
            "Line",
            "DataProcessing.InputFilter '$.features' selects a key, but a CSV row is an array "
            "of columns: select columns by index",
        ),
        (
            {"OutputFilter": "$['id','SageMakerOutput']"},
            JSON,
            CSV,
            "None",
            "Line",
            "DataProcessing.OutputFilter \"$['id','SageMakerOutput']\" selects a key",
        ),
        (
            {"OutputFilter": "$[0][1]"},
            CSV,
            CSV,
            "Line",
            "Line",
            "DataProcessing.OutputFilter '$[0][1]' goes into a column, but CSV columns are text",
        ),
    ],
)
def test_create_refuses_with_an_actionable_message(
    given_: dict[str, Any],
    content_type: str | None,
    accept: str | None,
    split: str,
    assemble: str,
    message: str,
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        DataProcessing.from_request(given_, content_type, accept, split, assemble)


def test_json_paths_are_fine_on_json_and_json_lines_framings() -> None:
    for content_type, split in [(JSON, "None"), (JSON, "Line"), (JSON_LINES, "Line")]:
        made = DataProcessing.from_request(
            {"InputFilter": "$.features", "OutputFilter": "$['id','SageMakerOutput']"},
            content_type,
            JSON,
            split,
            "None",
        )
        assert made is not None


def test_csv_input_with_json_output_filters_each_side_in_its_own_syntax() -> None:
    made = DataProcessing.from_request(
        {"InputFilter": "$[1:]", "OutputFilter": "$.score"}, CSV, JSON_LINES, "Line", "Line"
    )
    assert made is not None
    assert made.filter_input(b"id7,1,2\n", 1) == b"1,2\n"
    assert made.output(b"id7,1,2\n", b'{"score":0.5,"label":1}', 1) == b"0.5\n"


# --- the input filter --------------------------------------------------------------------------


def test_csv_input_filter_drops_the_id_column_and_keeps_the_line_ending() -> None:
    dp = processing(input_filter="$[1:]")
    assert dp.filter_input(b"id1,0.5,2\n", 1) == b"0.5,2\n"
    assert dp.filter_input(b"id1,0.5,2\r\n", 1) == b"0.5,2\r\n"
    assert dp.filter_input(b"id1,0.5,2", 1) == b"0.5,2"  # the last line of a file


def test_csv_values_keep_their_text() -> None:
    dp = processing(input_filter="$[1:]")
    assert dp.filter_input(b'x, 1.50 ,"a,b","say ""hi""",,1e3\n', 1) == (
        b' 1.50 ,"a,b","say ""hi""",,1e3\n'
    )
    assert dp.filter_input(b'x,"plain"\n', 1) == b"plain\n"  # quotes only where needed
    assert dp.filter_input("x,caf\u00e9\n".encode(), 1) == "caf\u00e9\n".encode()


def test_one_selected_empty_column_is_written_quoted_so_the_row_stays_a_row() -> None:
    assert processing(input_filter="$[1]").filter_input(b"a,,c\n", 1) == b'""\n'


def test_json_input_filter_selects_a_sub_value() -> None:
    dp = processing(input_filter="$.features", content_type=JSON_LINES)
    assert dp.filter_input(b'{"id": 1, "features": [1, 2.5]}\n', 4) == b"[1,2.5]\n"
    whole = processing(input_filter="$.instances[0]", content_type=JSON, split_type="None")
    document = b'{\n  "instances": [{"f": "\xc3\xa9"}, {}]\n}'
    assert whole.filter_input(document, 1) == '{"f":"\u00e9"}'.encode()


@pytest.mark.parametrize(
    ("dp", "record", "message"),
    [
        (
            processing(input_filter="$[3]"),
            b"a,b\n",
            "record 12: InputFilter '$[3]' step '[3]' (character 2): index 3 is outside the "
            "array of 2 elements",
        ),
        (
            processing(input_filter="$[1:]"),
            b"a,\xff\n",
            "record 12: the input record is not UTF-8 text (byte offset 2)",
        ),
        (
            processing(input_filter="$[1:]"),
            b'a,"b"c\n',
            "record 12: the input record is not an RFC 4180 CSV row (',' expected after '\"')",
        ),
        (
            processing(input_filter="$[1:]"),
            b'a,"b\n',
            "record 12: the input record is not an RFC 4180 CSV row",
        ),
        (
            processing(input_filter="$.features", content_type=JSON_LINES),
            b'{"id": 1}\n',
            "record 12: InputFilter '$.features' step '.features' (character 2): no key "
            "'features' in the object",
        ),
        (
            processing(input_filter="$.features", content_type=JSON_LINES),
            b"{oops}\n",
            "record 12: the input record is not JSON: Expecting property name enclosed in "
            "double quotes at character 1",
        ),
        (
            processing(input_filter="$.features", content_type=JSON, split_type="None"),
            b'{"features": 1}\n{"features": 2}\n',
            "is not JSON: Extra data at character 16 (several lines: set SplitType=Line for "
            "JSON Lines)",
        ),
    ],
)
def test_input_errors_name_the_record(dp: DataProcessing, record: bytes, message: str) -> None:
    with pytest.raises(FilterError) as info:
        dp.filter_input(record, 12)
    assert message in str(info.value)
    assert info.value.record == 12


def test_without_an_input_filter_the_record_goes_as_it_is() -> None:
    dp = processing(join=True)
    assert dp.filter_input(b"not, even ,\xff csv", 1) == b"not, even ,\xff csv"


# --- responses cut per record ------------------------------------------------------------------


def test_csv_and_json_lines_responses_are_cut_by_lines() -> None:
    dp = processing(join=True)
    assert dp.per_record_outputs(b"0.1\n0.2\n0.3\n", 3, 1) == [b"0.1", b"0.2", b"0.3"]
    assert dp.per_record_outputs(b"0.1\r\n0.2", 2, 1) == [b"0.1", b"0.2"]
    assert dp.per_record_outputs(b"\n", 1, 1) == [b""]
    lines = processing(join=True, content_type=JSON_LINES)
    assert lines.per_record_outputs(b'{"a":1}\n[2]\n', 2, 1) == [b'{"a":1}', b"[2]"]
    assert lines.per_record_outputs(b'{\n "a": 1\n}\n', 1, 1) == [b'{\n "a": 1\n}']


def test_json_responses_are_cut_by_items() -> None:
    dp = processing(join=True, content_type=JSON, split_type="Line", assemble_with="None")
    assert dp.per_record_outputs(b'[1, {"b": 2}, "c"]', 3, 1) == [b"1", b'{"b":2}', b'"c"']
    assert dp.per_record_outputs(b'{"predictions": [{"score": 0.5}, {"score": 0.7}]}', 2, 1) == [
        b'{"score":0.5}',
        b'{"score":0.7}',
    ]
    assert dp.per_record_outputs(b'{"predictions": [1, 2]}\n', 1, 1) == [
        b'{"predictions": [1, 2]}\n'
    ]


@pytest.mark.parametrize(
    ("content_type", "body", "count", "message"),
    [
        (CSV, b"1\n2\n3\n", 5, "the model answered 3 results for 5 records (records 11-15)"),
        (CSV, b"", 1, "the model answered 0 results for 1 record (record 11)"),
        (CSV, b"1\n2\n", 1, "the model answered 2 results for 1 record (record 11)"),
        (JSON_LINES, b"[1]\n", 2, "the model answered 1 result for 2 records (records 11-12)"),
        (JSON, b"[1, 2, 3]", 2, "the model answered 3 results for 2 records (records 11-12)"),
        (
            JSON,
            b'{"predictions": [1], "n": 1}',
            2,
            "the model's application/json answer for records 11-12 is neither an array of 2 "
            "results nor an object holding one such array",
        ),
        (JSON, b"7", 2, "is neither an array of 2 results"),
        (JSON, b"[1,", 2, "the model's application/json answer for records 11-12 is not JSON"),
    ],
)
def test_a_response_that_does_not_fit_the_records_fails_naming_them(
    content_type: str, body: bytes, count: int, message: str
) -> None:
    dp = processing(join=True, content_type=content_type, split_type="Line")
    with pytest.raises(FilterError) as info:
        dp.per_record_outputs(body, count, 11)
    assert message in str(info.value)
    assert info.value.record == 11


# --- join and output filter --------------------------------------------------------------------


def test_csv_join_is_the_input_columns_then_the_output_columns() -> None:
    dp = processing(join=True)
    assert dp.output(b"1,2,3\n", b"0.7", 1) == b"1,2,3,0.7\n"
    assert dp.output(b'1,"a,b"\r\n', b'0.7,"x"', 1) == b'1,"a,b",0.7,x\n'


def test_csv_join_uses_the_original_record_not_the_filtered_one() -> None:
    dp = processing(input_filter="$[1:]", join=True, output_filter="$[0,-1]")
    record = b"id42,0.5,1.5\n"
    assert dp.filter_input(record, 1) == b"0.5,1.5\n"
    assert dp.output(record, b"0.9", 1) == b"id42,0.9\n"


def test_csv_output_filter_without_join_filters_the_models_row() -> None:
    dp = processing(output_filter="$[1]")
    assert dp.output(b"ignored\n", b"label,0.25,0.75", 1) == b"0.25\n"


def test_csv_output_filter_outside_the_joined_row_names_the_record() -> None:
    dp = processing(join=True, output_filter="$[0,4]")
    with pytest.raises(FilterError) as info:
        dp.output(b"1,2,3\n", b"0.7", 9)
    assert str(info.value) == (
        "record 9: OutputFilter '$[0,4]' step '[0,4]' (character 2): index 4 is outside the "
        "array of 4 elements"
    )


def test_csv_results_that_are_not_csv_name_the_record() -> None:
    dp = processing(join=True)
    with pytest.raises(FilterError, match=r"^record 3: the model's output for the record is not"):
        dp.output(b"1\n", b'"0.7', 3)
    with pytest.raises(FilterError, match=r"^record 3: .* not UTF-8 text \(byte offset 1\)"):
        dp.output(b"1\n", b"0\xfe", 3)


def test_json_join_adds_sagemaker_output_to_an_object() -> None:
    dp = processing(join=True, content_type=JSON_LINES)
    assert dp.output(b'{"key": 1}\n', b'{"label": 1}', 1) == (
        b'{"key":1,"SageMakerOutput":{"label":1}}\n'
    )


@pytest.mark.parametrize(
    ("record", "joined"),
    [
        (b"[1, 2]\n", {"SageMakerInput": [1, 2], "SageMakerOutput": 0.5}),
        (b"3\n", {"SageMakerInput": 3, "SageMakerOutput": 0.5}),
        (b'"text"\n', {"SageMakerInput": "text", "SageMakerOutput": 0.5}),
        (b"null\n", {"SageMakerInput": None, "SageMakerOutput": 0.5}),
    ],
)
def test_json_join_wraps_an_input_that_is_not_an_object(record: bytes, joined: Any) -> None:
    dp = processing(join=True, content_type=JSON_LINES)
    assert json.loads(dp.output(record, b"0.5", 1)) == joined


def test_json_join_keeps_an_output_that_is_not_json_as_a_string() -> None:
    dp = processing(join=True, content_type=JSON_LINES)
    assert dp.output(b'{"k": 1}\n', b"0.7,0.3\n", 1) == b'{"k":1,"SageMakerOutput":"0.7,0.3"}\n'


def test_json_join_replaces_an_input_sagemaker_output_as_the_guide_warns() -> None:
    dp = processing(join=True, content_type=JSON_LINES)
    record = b'{"SageMakerOutput": "old", "k": 1}\n'
    assert dp.output(record, b'"new"', 1) == b'{"SageMakerOutput":"new","k":1}\n'


def test_the_guides_json_example() -> None:
    dp = processing(
        input_filter="$.features",
        join=True,
        output_filter="$['id','SageMakerOutput']",
        content_type=JSON_LINES,
    )
    record = b'{"id": "a7", "features": [1, 2]}\n'
    assert dp.filter_input(record, 1) == b"[1,2]\n"
    assert dp.output(record, b'{"predicted_label": 1}', 1) == (
        b'{"id":"a7","SageMakerOutput":{"predicted_label":1}}\n'
    )


def test_json_output_filter_without_join_needs_json_output() -> None:
    dp = processing(output_filter="$.scores[0]", content_type=JSON, split_type="None")
    assert dp.output(b"{}", b'{"scores": [0.25, 0.75]}', 1) == b"0.25\n"
    with pytest.raises(FilterError) as info:
        dp.output(b"{}", b"0.25,0.75", 6)
    assert str(info.value) == (
        "record 6: the model's output for the record is not JSON: Extra data at character 4"
    )


def test_json_errors_name_the_record() -> None:
    dp = processing(join=True, output_filter="$.missing", content_type=JSON_LINES)
    with pytest.raises(FilterError, match=r"^record 5: OutputFilter '\$\.missing' step"):
        dp.output(b'{"k": 1}\n', b"1", 5)
    with pytest.raises(FilterError, match=r"^record 5: the input record is not JSON"):
        dp.output(b"{\n", b"1", 5)
    with pytest.raises(FilterError, match=r"^record 5: the model's output .* \(byte offset 0\)"):
        dp.output(b"{}\n", b"\xff", 5)


def test_json_output_is_compact_utf8() -> None:
    dp = processing(join=True, content_type=JSON_LINES)
    assert dp.output('{"name": "Z\u00fcrich"}'.encode(), b'{"p": [1, 2]}', 1) == (
        '{"name":"Z\u00fcrich","SageMakerOutput":{"p":[1,2]}}\n'.encode()
    )


def test_a_lone_surrogate_stays_an_escape() -> None:
    dp = processing(join=True, content_type=JSON_LINES)
    assert dp.output(b'{"k": "\\ud800"}', b'"\\u00e9"', 1) == (
        b'{"k":"\\ud800","SageMakerOutput":"\\u00e9"}\n'
    )


# --- properties: CSV round trips, joins and the cut of responses -------------------------------

# Any text but line breaks (Line split cannot carry them), commas and quotes included.
FIELD = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]), max_size=6)
ROWS = st.lists(FIELD, min_size=1, max_size=8)


@given(fields=ROWS)
def test_csv_rows_round_trip_through_a_filter(fields: list[str]) -> None:
    record = csv_line(fields)
    assert csv_fields(processing(input_filter="$[*]").filter_input(record, 1)) == fields
    assert csv_fields(processing(input_filter="$[0]").filter_input(record, 1)) == fields[:1]
    if len(fields) > 1:
        assert csv_fields(processing(input_filter="$[1:]").filter_input(record, 1)) == fields[1:]


@given(fields=ROWS)
def test_csv_rows_are_written_as_the_csv_module_writes_them(fields: list[str]) -> None:
    record = csv_line(fields)
    assert processing(input_filter="$[*]").filter_input(record, 1) == record


@given(inputs=ROWS, outputs=ROWS)
def test_csv_join_then_filter(inputs: list[str], outputs: list[str]) -> None:
    record, result = csv_line(inputs), csv_line(outputs)[:-1]
    joined = processing(join=True).output(record, result, 1)
    assert csv_fields(joined) == inputs + outputs
    ends = processing(join=True, output_filter="$[0,-1]").output(record, result, 1)
    assert csv_fields(ends) == [inputs[0], outputs[-1]]


KEYS = st.text(max_size=4).filter(lambda key: key != "SageMakerOutput")
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=3),
    max_leaves=10,
)


@given(record=JSON_VALUES, result=JSON_VALUES)
def test_json_join(record: Any, result: Any) -> None:
    dp = processing(join=True, content_type=JSON_LINES)
    line = dp.output(json.dumps(record).encode() + b"\n", json.dumps(result).encode(), 1)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    if isinstance(record, dict):
        assert json.loads(line) == {**record, "SageMakerOutput": result}
    else:
        assert json.loads(line) == {"SageMakerInput": record, "SageMakerOutput": result}


@given(results=st.lists(FIELD.map(str.encode), min_size=1, max_size=20), final=st.booleans())
def test_line_responses_cut_back_into_their_results(results: list[bytes], final: bool) -> None:
    body = b"\n".join(results) + (b"\n" if final else b"")
    if results[-1] == b"" and not final:
        return  # an answer ending in an empty result without a newline cannot say so
    dp = processing(join=True)
    assert dp.per_record_outputs(body, len(results), 1) == results


@given(results=st.lists(JSON_VALUES, min_size=2, max_size=10), wrapped=st.booleans())
def test_json_responses_cut_back_into_their_results(results: list[Any], wrapped: bool) -> None:
    answer: Any = {"predictions": results} if wrapped else results
    dp = processing(join=True, content_type=JSON, split_type="Line", assemble_with="None")
    cut = dp.per_record_outputs(json.dumps(answer).encode(), len(results), 1)
    assert [json.loads(item) for item in cut] == results
