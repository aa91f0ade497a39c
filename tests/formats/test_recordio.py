"""RecordIO framing: the SDK's bytes, dmlc multi-part records, streaming, and broken frames."""

from __future__ import annotations

import gzip
import io
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opensage.formats import recordio
from opensage.formats.errors import RecordError
from opensage.formats.recordio import (
    MAGIC_BYTES,
    encode_record,
    read_all_records,
    read_records,
    split_frames,
    write_records,
)
from tests.formats.conftest import trickle


def _sdk_frame(data: bytes) -> bytes:
    """The SDK's `_write_recordio`, verbatim in effect."""
    length = len(data)
    pad = (((length + 3) >> 2) << 2) - length
    return struct.pack("I", 0xCED7230A) + struct.pack("I", length) + data + b"\x00" * pad


def test_single_record_is_the_sdks_framing() -> None:
    for size in range(9):
        payload = bytes(range(size))
        assert encode_record(payload) == _sdk_frame(payload)


def test_magic_is_little_endian() -> None:
    assert bytes.fromhex("0a23d7ce") == MAGIC_BYTES


def test_sdk_writer_never_splits_even_with_magic_inside() -> None:
    payload = b"abcd" + MAGIC_BYTES + b"efg"
    assert encode_record(payload) == _sdk_frame(payload)


def test_dmlc_split_at_aligned_magic() -> None:
    payload = b"abcd" + MAGIC_BYTES + b"efg"
    framed = encode_record(payload, split_magic=True)
    expected = (
        MAGIC_BYTES
        + struct.pack("<I", (1 << 29) | 4)
        + b"abcd"
        + MAGIC_BYTES
        + struct.pack("<I", (3 << 29) | 3)
        + b"efg\x00"
    )
    assert framed == expected
    assert read_all_records(framed) == [payload]


def test_dmlc_split_magic_at_start_end_and_twice() -> None:
    payload = MAGIC_BYTES + b"1234" + MAGIC_BYTES + MAGIC_BYTES
    framed = encode_record(payload, split_magic=True)
    flags = []
    pos = 0
    while pos < len(framed):
        _, lrec = struct.unpack_from("<II", framed, pos)
        flags.append(lrec >> 29)
        length = lrec & recordio.MAX_LENGTH
        pos += 8 + length + recordio.padding(length)
    assert flags == [1, 2, 2, 3]
    assert read_all_records(framed) == [payload]


def test_unaligned_magic_is_not_a_cut() -> None:
    payload = b"ab" + MAGIC_BYTES + b"cd"
    assert encode_record(payload, split_magic=True) == _sdk_frame(payload)


def test_too_long_payload_is_cut_at_magic_or_refused() -> None:
    payload = b"x" * 8 + MAGIC_BYTES + b"y" * 8
    framed = encode_record(payload, max_part=10)
    assert read_all_records(framed) == [payload]
    assert framed != _sdk_frame(payload)
    with pytest.raises(ValueError, match="at most 10 bytes"):
        encode_record(b"z" * 11, max_part=10)


payloads_st = st.lists(
    st.builds(
        lambda parts, magic: MAGIC_BYTES.join(parts) if magic else b"".join(parts),
        st.lists(st.binary(max_size=12).map(lambda b: b + b"\x00" * (-len(b) % 4)), max_size=4),
        st.booleans(),
    )
    | st.binary(max_size=40),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(payloads_st, st.booleans(), st.integers(1, 64))
def test_round_trip_streaming_and_whole(payloads: list[bytes], split: bool, step: int) -> None:
    buffer = io.BytesIO()
    write_records(buffer, payloads, split_magic=split)
    data = buffer.getvalue()
    assert read_all_records(data) == payloads
    assert list(read_records(trickle(data, step), chunk_size=step)) == payloads
    assert list(read_records(io.BytesIO(data), chunk_size=5)) == payloads


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(min_size=8, max_size=8), min_size=1, max_size=300), st.integers(1, 500))
def test_runs_of_equal_records(payloads: list[bytes], chunk: int) -> None:
    """Equal-length records take the vectorised run path; the result is the same."""
    data = b"".join(encode_record(p) for p in payloads) + encode_record(b"tail")
    assert read_all_records(data) == [*payloads, b"tail"]
    assert list(read_records(io.BytesIO(data), chunk_size=chunk)) == [*payloads, b"tail"]


def test_frames_carry_offsets_and_indices() -> None:
    data = b"".join(encode_record(bytes(n)) for n in (3, 8, 1))
    frames = split_frames(data)
    assert frames.offsets.tolist() == [0, 12, 28]
    assert frames.payloads() == [bytes(3), bytes(8), bytes(1)]


def test_missing_final_padding_is_forgiven() -> None:
    data = encode_record(b"ab")[:-2]
    assert read_all_records(data) == [b"ab"]


def _error(data: bytes, **kwargs: int) -> RecordError:
    with pytest.raises(RecordError) as info:
        list(read_records(io.BytesIO(data), source="train/part-0.pbr", **kwargs))
    with pytest.raises(RecordError) as whole:
        read_all_records(data, source="train/part-0.pbr")
    assert str(whole.value) == str(info.value)
    return info.value


def test_bad_magic_names_file_record_offset() -> None:
    good = encode_record(b"hello") * 3
    data = good + struct.pack("<II", 0x12345678, 4) + b"abcd"
    err = _error(data)
    assert (err.source, err.record, err.offset) == ("train/part-0.pbr", 3, len(good))
    assert str(err) == (
        f"train/part-0.pbr: record 3 at byte {len(good)}: "
        "bad RecordIO magic 0x12345678 (expected 0xced7230a)"
    )


def test_truncated_header_and_payload() -> None:
    data = encode_record(b"12345678")
    err = _error(data + data[:5])
    assert (err.record, err.offset) == (1, len(data))
    assert "truncated RecordIO header" in str(err)
    err = _error(data + data[:12], chunk_size=3)
    assert (err.record, err.offset) == (1, len(data))
    assert "header says 8 bytes, 4 remain" in str(err)


def test_broken_continuations() -> None:
    first = MAGIC_BYTES + struct.pack("<I", (1 << 29) | 4) + b"abcd"
    middle = MAGIC_BYTES + struct.pack("<I", (2 << 29) | 4) + b"efgh"
    assert "without its last part" in str(_error(first))
    assert "without a first part" in str(_error(middle))
    assert "before the previous one ended" in str(_error(first + first))
    assert "without its last part" in str(_error(first + encode_record(b"x")))
    bad_flag = MAGIC_BYTES + struct.pack("<I", (5 << 29) | 0)
    assert "continuation flag 5" in str(_error(bad_flag))


def test_gzip_is_not_recordio_but_formats_readers_unwrap_it() -> None:
    from opensage.formats.compression import decompressed

    data = encode_record(b"abc") * 4
    stream = decompressed(io.BytesIO(gzip.compress(data)))
    assert list(read_records(stream)) == [b"abc"] * 4
    stream = decompressed(trickle(gzip.compress(data), 1))
    assert list(read_records(stream)) == [b"abc"] * 4
    assert list(read_records(decompressed(trickle(data, 1)))) == [b"abc"] * 4


def test_record_error_pickles() -> None:
    import pickle

    err = RecordError("boom", source="s", record=1, offset=2)
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) == "s: record 1 at byte 2: boom"
    assert str(RecordError("boom")) == "boom"
    assert str(err.with_source("train/s")) == "train/s: record 1 at byte 2: boom"
