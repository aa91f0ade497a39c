"""MXNet image RecordIO: the IRHeader, flag labels, `.rec` files through the dmlc framing, and
the `.lst` / `.idx` companions."""

from __future__ import annotations

import io
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opensage.formats.errors import RecordError
from opensage.formats.image_records import (
    IR_HEADER_SIZE,
    ImageRecord,
    ListEntry,
    encode_rec,
    format_idx,
    format_lst,
    pack,
    parse_idx,
    parse_lst,
    read_rec,
    unpack,
    write_rec,
)
from opensage.formats.recordio import MAGIC_BYTES, encode_record, read_all_records

_float32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
_ids = st.integers(0, 2**64 - 1)


@st.composite
def records(draw: st.DrawFn) -> ImageRecord:
    multi = draw(st.booleans())
    count = draw(st.integers(1, 6)) if multi else 1
    labels = tuple(draw(st.lists(_float32, min_size=count, max_size=count)))
    return ImageRecord(labels, draw(st.binary(max_size=64)), draw(_ids), draw(_ids), multi)


def test_header_is_mxnets_irheader() -> None:
    payload = pack(ImageRecord((3.0,), b"JPEG", id=7, id2=0))
    assert IR_HEADER_SIZE == 24
    assert payload[:24] == struct.pack("<IfQQ", 0, 3.0, 7, 0)
    assert payload[24:] == b"JPEG"


def test_flag_labels_follow_the_header() -> None:
    payload = pack(ImageRecord((1.0, 0.0, 1.0), b"PNG", id=2, multi=True))
    flag, label, rid, _ = struct.unpack_from("<IfQQ", payload)
    assert (flag, label, rid) == (3, 0.0, 2)
    assert struct.unpack_from("<3f", payload, 24) == (1.0, 0.0, 1.0)
    assert payload[36:] == b"PNG"
    back = unpack(payload)
    assert back.labels == (1.0, 0.0, 1.0)
    assert back.flag == 3
    assert back.image == b"PNG"


def test_single_label_needs_exactly_one_value() -> None:
    with pytest.raises(ValueError, match="exactly one label"):
        pack(ImageRecord((1.0, 2.0), b""))


@settings(max_examples=60, deadline=None)
@given(records())
def test_payload_round_trip(record: ImageRecord) -> None:
    assert unpack(pack(record)) == record


@settings(max_examples=30, deadline=None)
@given(st.lists(records(), max_size=6))
def test_rec_file_round_trip_through_the_framing(items: list[ImageRecord]) -> None:
    buffer = io.BytesIO()
    index = write_rec(buffer, items)
    data = buffer.getvalue()
    assert data == encode_rec(items)
    assert read_rec(data) == items
    assert len(read_all_records(data)) == len(items)
    for (rid, offset), item in zip(index, items, strict=True):
        assert rid == item.id
        assert data[offset : offset + 4] == MAGIC_BYTES


def test_a_short_payload_names_the_record() -> None:
    data = encode_rec([ImageRecord((0.0,), b"x")]) + encode_record(b"short")
    with pytest.raises(RecordError, match="IRHeader") as info:
        read_rec(data, source="train.rec")
    assert info.value.record == 1
    assert "train.rec" in str(info.value)


def test_truncated_flag_labels_are_an_error() -> None:
    payload = struct.pack("<IfQQ", 5, 0.0, 0, 0) + b"\x00" * 8
    with pytest.raises(RecordError, match="5 float32 labels"):
        unpack(payload)


_paths = st.text(st.sampled_from(list("abcXYZ019/._-éø")), min_size=1, max_size=20)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.builds(
            ListEntry,
            st.integers(0, 10**6),
            st.lists(st.integers(0, 999).map(float), min_size=1, max_size=4).map(tuple),
            _paths,
        ),
        max_size=8,
    )
)
def test_lst_round_trip(entries: list[ListEntry]) -> None:
    assert parse_lst(format_lst(entries)) == entries


def test_lst_reads_mxnets_lines() -> None:
    text = "0\t2\tcat/1.jpg\n1\t0.000000\tdog/a b.png\n\n2\t1\t0\t1\tboth.jpg\n"
    assert parse_lst(text) == [
        ListEntry(0, (2.0,), "cat/1.jpg"),
        ListEntry(1, (0.0,), "dog/a b.png"),
        ListEntry(2, (1.0, 0.0, 1.0), "both.jpg"),
    ]


@pytest.mark.parametrize("line", ["0\tcat.jpg", "x\t1\tcat.jpg", "0\tone\tcat.jpg"])
def test_bad_lst_lines_name_the_line(line: str) -> None:
    with pytest.raises(RecordError) as info:
        parse_lst("0\t1\tok.jpg\n" + line + "\n", source="train.lst")
    assert info.value.record == 1


def test_idx_round_trip_and_errors() -> None:
    entries = [(0, 0), (1, 1032), (5, 4096)]
    assert parse_idx(format_idx(entries)) == entries
    with pytest.raises(RecordError, match="key<TAB>offset"):
        parse_idx("0\t0\n1 nope\n")
